"""Address plans of bridge networks: subnets from docker's default pools around the host's
routes (and other engines' bridges), gateway and ip-range checks, and the bridge driver's
view of a network."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Sequence

from engine.errors import Conflict, InvalidArgument
from engine.network.bridge import BridgeNet
from engine.network.model import OPT_MASQ, OPT_MTU, Network

# Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{i}.0.0/16", 16) for i in range(17, 32)),
    ("192.168.0.0/16", 20),
)


async def host_routes() -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes (all tables), default routes excluded."""
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-j",
        "-4",
        "route",
        "show",
        "table",
        "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    nets: list[ipaddress.IPv4Network] = []
    with contextlib.suppress(json.JSONDecodeError):
        for route in json.loads(out or b"[]"):
            dst = str(route.get("dst", ""))
            if not dst or dst == "default":
                continue
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(dst, strict=False))
    return nets


async def plan_addresses(
    subnet: str | None,
    gateway: str | None,
    ip_range: str | None,
    taken: Sequence[ipaddress.IPv4Network],
    pools: Sequence[tuple[str, int]] = DEFAULT_POOLS,
) -> tuple[str, str, str]:
    """(subnet, gateway, ip range) of a new bridge network: the user's values checked, or the
    first pool subnet overlapping neither ``taken`` (other networks) nor the host's routes."""
    if subnet:
        try:
            net = ipaddress.IPv4Network(subnet, strict=False)
        except ValueError:
            raise InvalidArgument(
                f"invalid subnet {subnet!r}: use an IPv4 CIDR like 10.10.0.0/24"
            ) from None
        if net.prefixlen > 30:
            raise InvalidArgument(f"subnet {subnet} is too small: use /30 or larger")
        clash = next((t for t in taken if t.overlaps(net)), None)
        if clash:
            raise Conflict(f"subnet {net} overlaps network subnet {clash}; pick another")
    else:
        if gateway or ip_range:
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        routes = await host_routes()
        net = free_subnet([*taken, *routes], pools)
    hosts_first = net.network_address + 1
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise InvalidArgument(f"invalid gateway {gateway!r}: give an IPv4 address") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"gateway {gw} is not a host address of subnet {net}")
    else:
        gw = hosts_first
    rng = ""
    if ip_range:
        try:
            r = ipaddress.IPv4Network(ip_range, strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid ip range {ip_range!r}: use a CIDR") from None
        if not r.subnet_of(net):
            raise InvalidArgument(f"ip range {r} is not inside subnet {net}")
        rng = str(r)
    return str(net), str(gw), rng


def free_subnet(
    avoid: Sequence[ipaddress.IPv4Network], pools: Sequence[tuple[str, int]] = DEFAULT_POOLS
) -> ipaddress.IPv4Network:
    """The first subnet of ``pools`` that overlaps nothing in ``avoid``."""
    for base, size in pools:
        for cand in ipaddress.IPv4Network(base).subnets(new_prefix=size):
            if not any(cand.overlaps(a) for a in avoid):
                return cand
    raise Conflict(
        "no free subnet left in the default address pools; remove unused networks "
        "(network prune) or give --subnet"
    )


def bridge_net(net: Network) -> BridgeNet:
    """The bridge driver's view of a network: device, addresses, NAT and MTU."""
    masq = not net.internal and net.options.get(OPT_MASQ, "true").lower() != "false"
    mtu = int(net.options[OPT_MTU]) if OPT_MTU in net.options else 0
    return BridgeNet(
        bridge=net.bridge,
        subnet=net.subnet,
        gateway=net.gateway,
        masquerade=masq,
        internal=net.internal,
        mtu=mtu,
    )
