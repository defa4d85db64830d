"""NetworkService: docker-shaped networks (create/list/inspect/remove/prune) and per-container
attach/detach on bridge networks.

State lives under ``<root>/networks/``: one ``<id>.json`` per network and one
``endpoints/<container>.<network>.json`` per attachment (its address, veth and ports), so an
engine restart knows every address in use and can undo every attachment. The bridge work
itself (device, veth pairs, NAT and published-port rules) is ``engine.network.bridge``.
The built-in networks are "bridge" (docker's default network: a bridge device and subnet of
this engine's own, ``default_bridge`` and a /24 of ``bridge_pools``), "host" and "none"; the
last two are modes the runtime applies itself. A bridge with no containers left is removed
when the engine closes. User-defined networks with containers get an embedded DNS responder
(``embedded_dns``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import EngineConfig
from engine.errors import Conflict, Forbidden, InvalidArgument, NotFound
from engine.network import bridge as driver
from engine.network.embedded_dns import EmbeddedDNS
from engine.network.hosts import DEFAULT_DNS_V4, HostEntry, read_host_resolv_conf
from engine.network.ipam import (
    DEFAULT_POOLS,
    bridge_net,
    free_subnet,
    host_routes,
    plan_addresses,
)
from engine.network.model import (
    DEFAULT_BRIDGE,
    DEFAULT_BRIDGE_POOL,
    DEFAULT_BRIDGE_SIZE,
    NAME_RE,
    OPT_BRIDGE_NAME,
    OPT_MASQ,
    OPT_MTU,
    Attachment,
    Endpoint,
    Network,
    NetworkError,
    NetworkMode,
    parse_network_mode,
)
from engine.network.ports import PortMapping, PortSpec, resolve

__all__ = [
    "Attachment",
    "Endpoint",
    "Network",
    "NetworkError",
    "NetworkMode",
    "NetworkService",
    "host_routes",
    "parse_network_mode",
]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class NetworkService:
    """Networks of one engine, and the containers attached to them."""

    def __init__(
        self,
        root: Path,
        *,
        default_bridge: str = DEFAULT_BRIDGE,
        pools: Sequence[tuple[str, int]] = DEFAULT_POOLS,
        bridge_pools: Sequence[tuple[str, int]] = ((DEFAULT_BRIDGE_POOL, DEFAULT_BRIDGE_SIZE),),
        embedded_dns: bool = True,
        dns_upstreams: Sequence[str | tuple[str, int]] | None = None,
        dns_port: int = 53,
    ) -> None:
        self.dir = Path(root) / "networks"
        self.ep_dir = self.dir / "endpoints"
        self.default_bridge = default_bridge
        self.pools = list(pools)
        self.bridge_pools = list(bridge_pools)
        self._ready: set[str] = set()  # networks whose bridge and rules this process set up
        self._last_ip: dict[str, str] = {}  # per network: the address handed out last
        self._pending: dict[tuple[str, str], _Pending] = {}  # attaches setting up their veth
        self._nets: dict[str, Network] = {}
        self._eps: dict[tuple[str, str], Endpoint] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._dns_wanted = embedded_dns
        self._dns_upstreams = dns_upstreams
        self._dns_port = dns_port
        self.dns: EmbeddedDNS | None = None

    @classmethod
    def for_config(cls, config: EngineConfig) -> NetworkService:
        """The networks of an engine: its default bridge's name and address pool checked."""
        name = config.bridge_name()
        if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", name):
            raise InvalidArgument(
                f"invalid default_bridge {name!r}: 1-15 letters, digits, '_', '.', '-'"
            )
        try:
            pool = ipaddress.IPv4Network(config.default_address_pool)
        except ValueError:
            raise InvalidArgument(
                f"invalid default_address_pool {config.default_address_pool!r}: "
                "give an IPv4 CIDR like 10.213.0.0/16"
            ) from None
        size = int(config.default_subnet_size)
        if not pool.prefixlen <= size <= 30:
            raise InvalidArgument(
                f"invalid default_subnet_size {size}: between {pool.prefixlen} and 30"
            )
        return cls(config.root, default_bridge=name, bridge_pools=[(str(pool), size)])

    # ----- state -----

    async def start(self) -> None:
        """Load networks and endpoints from disk; create the built-in networks if missing."""
        async with self._lock:
            if self._started:
                return
            nets, eps = await asyncio.to_thread(self._load)
            self._nets = {n.id: n for n in nets}
            self._eps = {(e.container_id, e.network_id): e for e in eps}
            names = {n.name for n in nets}
            if "bridge" not in names:
                opts = {
                    OPT_BRIDGE_NAME: self.default_bridge,
                    OPT_MASQ: "true",
                    "com.docker.network.bridge.default_bridge": "true",
                }
                await self._create_locked("bridge", "bridge", options=opts)
            else:
                await self._follow_default_bridge()
            if "host" not in names:
                await self._create_locked("host", "host")
            if "none" not in names:
                await self._create_locked("none", "null")
            if self._dns_wanted:
                upstreams = self._dns_upstreams
                if upstreams is None:
                    # the responder runs in the host's netns: loopback upstreams work too
                    upstreams = (await read_host_resolv_conf()).nameservers or list(DEFAULT_DNS_V4)
                self.dns = EmbeddedDNS(self, upstreams, self._dns_port)
                await self.dns.sync()
            self._started = True

    def _load(self) -> tuple[list[Network], list[Endpoint]]:
        self.ep_dir.mkdir(parents=True, exist_ok=True)
        nets = [Network(**_read_json(p)) for p in sorted(self.dir.glob("*.json"))]
        known = set(Endpoint.__dataclass_fields__)
        eps = [
            Endpoint(**{k: v for k, v in _read_json(p).items() if k in known})
            for p in sorted(self.ep_dir.glob("*.json"))
        ]
        return nets, eps

    def _ep_path(self, container_id: str, network_id: str) -> Path:
        return self.ep_dir / f"{container_id}.{network_id}.json"

    async def _save_net(self, net: Network) -> None:
        await asyncio.to_thread(_write_json, self.dir / f"{net.id}.json", asdict(net))

    async def _follow_default_bridge(self) -> None:
        """The "bridge" network takes this engine's configured device name and address pool
        (the root may have been opened with others) unless containers are attached to it."""
        net = next(n for n in self._nets.values() if n.name == "bridge")
        if any(e.network_id == net.id for e in self._eps.values()):
            return
        pools = [ipaddress.IPv4Network(base) for base, _ in self.bridge_pools]
        in_pool = any(ipaddress.IPv4Network(net.subnet).subnet_of(p) for p in pools)
        if net.bridge == self.default_bridge and (in_pool or net.user_subnet):
            return
        net.options[OPT_BRIDGE_NAME] = self.default_bridge
        if not in_pool and not net.user_subnet:
            others = [ipaddress.IPv4Network(n.subnet) for n in self._nets.values() if n.subnet]
            others = [o for o in others if str(o) != net.subnet]
            fresh = await asyncio.to_thread(free_subnet, others, self.bridge_pools)
            net.subnet, net.gateway, net.ip_range = str(fresh), str(fresh.network_address + 1), ""
        await self._save_net(net)

    async def _ensure_bridge(self, net: Network) -> None:
        """Set up the network's bridge and rules once per process. Under a host-wide lock:
        an idle network whose subnet now overlaps a route (another engine's bridge, docker0)
        moves to a free subnet first, so engines on one host never share addresses."""
        if net.id in self._ready:
            return
        async with driver.HostLock():
            idle = not any(e.network_id == net.id for e in self._eps.values())
            if idle and not net.user_subnet and not driver.link_exists(net.bridge):
                current = ipaddress.IPv4Network(net.subnet)
                routes = await host_routes()
                if any(r.overlaps(current) for r in routes):
                    others = [
                        ipaddress.IPv4Network(n.subnet)
                        for n in self._nets.values()
                        if n.subnet and n.id != net.id
                    ]
                    pools = self.bridge_pools if net.name == "bridge" else self.pools
                    fresh = await asyncio.to_thread(free_subnet, [*others, *routes], pools)
                    net.subnet, net.gateway = str(fresh), str(fresh.network_address + 1)
                    await self._save_net(net)
            await driver.ensure(bridge_net(net), self._published_on(net.id))
        self._ready.add(net.id)

    def _published_on(self, network_id: str) -> list[tuple[str, PortMapping]]:
        return [
            (e.address, m)
            for e in self._eps.values()
            if e.network_id == network_id
            for m in e.mappings
        ]

    # ----- lookup -----

    def get(self, name_or_id: str) -> Network:
        """A network by full name, full id or unique id prefix (docker's rules)."""
        if not name_or_id:
            raise InvalidArgument("no network given: name one by name or id")
        if name_or_id in self._nets:
            return self._nets[name_or_id]
        for n in self._nets.values():
            if n.name == name_or_id:
                return n
        found = [n for n in self._nets.values() if n.id.startswith(name_or_id)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFound(f"network {name_or_id} is ambiguous: {len(found)} networks match")
        raise NotFound(f"network {name_or_id} not found")

    def endpoints(self, network: str | None = None) -> list[Endpoint]:
        """Every attachment, or those of one network."""
        nid = self.get(network).id if network else None
        return [e for e in self._eps.values() if nid is None or e.network_id == nid]

    def container_endpoints(self, container_id: str) -> list[Endpoint]:
        return [e for e in self._eps.values() if e.container_id == container_id]

    def peers(self, network: str, exclude: str = "") -> list[HostEntry]:
        """/etc/hosts entries naming the network's containers (name, aliases, short id)."""
        out: list[HostEntry] = []
        for e in self.endpoints(network):
            if e.container_id == exclude:
                continue
            names = [e.container_name, *e.aliases, e.container_id[:12]]
            out.append(HostEntry(e.address, tuple(dict.fromkeys(n for n in names if n))))
        return out

    def published(self, exclude: str = "") -> list[tuple[PortMapping, str]]:
        """Every published port of every container but ``exclude``, with its owner's name."""
        out = [
            (m, e.container_name or e.container_id[:12])
            for e in self._eps.values()
            if e.container_id != exclude
            for m in e.mappings
        ]
        for r in self._pending.values():  # attaches under way hold their ports already
            if r.container_id != exclude:
                out += [(m, r.name) for m in r.mappings]
        return out

    # ----- create / inspect / list / remove / prune -----

    async def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """``docker network create``; answers ``{"Id": ..., "Warning": ""}``."""
        await self.start()
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported: use bridge")
        if not NAME_RE.match(name or ""):
            raise InvalidArgument(
                f"invalid network name {name!r}: use letters, digits, '_', '.', '-' "
                "(first a letter or digit)"
            )
        async with self._lock:
            net = await self._create_locked(
                name,
                driver,
                subnet=subnet,
                gateway=gateway,
                ip_range=ip_range,
                internal=internal,
                labels=labels,
                options=options,
            )
        return {"Id": net.id, "Warning": ""}

    async def _create_locked(
        self,
        name: str,
        driver: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        if any(n.name == name for n in self._nets.values()):
            raise Conflict(f"network with name {name} already exists")
        opts = dict(options or {})
        net = Network(
            id=secrets.token_hex(32),
            name=name,
            driver=driver,
            created=_now(),
            internal=internal,
            labels=dict(labels or {}),
            options=opts,
        )
        if driver == "bridge":
            bridge = opts.get(OPT_BRIDGE_NAME)
            if bridge is not None and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", bridge):
                raise InvalidArgument(f"invalid bridge name {bridge!r}: 1-15 letters or digits")
            if bridge and any(
                n.driver == "bridge" and n.bridge == bridge for n in self._nets.values()
            ):
                raise Conflict(f"bridge {bridge} is already used by another network")
            if OPT_MTU in opts and not opts[OPT_MTU].isdigit():
                raise InvalidArgument(f"invalid {OPT_MTU} {opts[OPT_MTU]!r}: give a number")
            taken = [ipaddress.IPv4Network(n.subnet) for n in self._nets.values() if n.subnet]
            pools = self.bridge_pools if name == "bridge" else self.pools
            net.subnet, net.gateway, net.ip_range = await plan_addresses(
                subnet, gateway, ip_range, taken, pools
            )
            net.user_subnet = subnet is not None
        elif subnet or gateway or ip_range:
            raise InvalidArgument(f"network {name}: driver {driver} takes no subnet")
        await self._save_net(net)
        self._nets[net.id] = net
        return net

    def _inspect(self, net: Network) -> dict[str, Any]:
        containers = {
            e.container_id: {
                "Name": e.container_name,
                "EndpointID": e.endpoint_id,
                "MacAddress": e.mac,
                "IPv4Address": e.ip,
                "IPv6Address": "",
            }
            for e in self._eps.values()
            if e.network_id == net.id
        }
        config: list[dict[str, str]] = []
        if net.subnet:
            entry = {"Subnet": net.subnet, "Gateway": net.gateway}
            if net.ip_range:
                entry["IPRange"] = net.ip_range
            config.append(entry)
        return {
            "Name": net.name,
            "Id": net.id,
            "Created": net.created,
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": net.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(net.options),
            "Labels": dict(net.labels),
        }

    async def inspect(self, name_or_id: str) -> dict[str, Any]:
        """``docker network inspect`` of one network."""
        await self.start()
        return self._inspect(self.get(name_or_id))

    async def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """``GET /networks``: every network matching ``filters`` (name, id, driver, label,
        type=custom|builtin, dangling=true|false), sorted by name."""
        await self.start()
        out = [
            self._inspect(n)
            for n in sorted(self._nets.values(), key=lambda n: n.name)
            if self._matches(n, filters or {})
        ]
        return out

    def _matches(self, net: Network, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "name":
                ok = any(v in net.name for v in values)
            elif key == "id":
                ok = any(net.id.startswith(v) for v in values)
            elif key == "driver":
                ok = net.driver in values
            elif key == "type":
                ok = ("builtin" if net.builtin else "custom") in values
            elif key == "dangling":
                in_use = any(e.network_id == net.id for e in self._eps.values())
                ok = any((v.lower() in ("1", "true")) != (in_use or net.builtin) for v in values)
            elif key == "label":
                ok = all(self._label_match(net, v) for v in values)
            else:
                raise InvalidArgument(f"invalid network filter {key!r}")
            if not ok:
                return False
        return True

    @staticmethod
    def _label_match(net: Network, spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in net.labels and (not eq or net.labels[key] == value)

    async def remove(self, name_or_id: str) -> None:
        """``docker network rm``: refused for built-in networks and networks in use."""
        await self.start()
        async with self._lock:
            net = self.get(name_or_id)
            if net.builtin:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            users = [e.container_name or e.container_id[:12] for e in self.endpoints(net.id)]
            if users:
                raise Conflict(
                    f"network {net.name} has active endpoints ({', '.join(sorted(users))}); "
                    "disconnect or remove them first"
                )
            await self._delete_locked(net)

    async def _delete_locked(self, net: Network) -> None:
        await driver.teardown(net.bridge)
        self._ready.discard(net.id)
        (self.dir / f"{net.id}.json").unlink(missing_ok=True)
        del self._nets[net.id]

    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """``docker network prune``: remove unused user-defined networks; their names."""
        await self.start()
        removed: list[str] = []
        async with self._lock:
            for net in sorted(self._nets.values(), key=lambda n: n.name):
                if net.builtin or any(e.network_id == net.id for e in self._eps.values()):
                    continue
                if not self._matches(net, {k: v for k, v in (filters or {}).items()}):
                    continue
                await self._delete_locked(net)
                removed.append(net.name)
        return removed

    async def close(self) -> None:
        """Stop the embedded DNS servers and remove the bridges no container uses any more
        (attachments of running containers stay; they are on disk)."""
        if self.dns is not None:
            await self.dns.close()
        async with self._lock:
            for net in list(self._nets.values()):
                if net.driver != "bridge" or not driver.link_exists(net.bridge):
                    continue
                # on disk: another process on this root may have attached since we loaded
                used = await asyncio.to_thread(_has_endpoint_files, self.ep_dir, net.id)
                if not used:
                    await driver.teardown(net.bridge)
            self._ready.clear()

    # ----- attach / detach -----

    async def attach(
        self,
        container_id: str,
        netns: str | Path,
        network: str = "bridge",
        *,
        name: str = "",
        aliases: Iterable[str] = (),
        ports: Iterable[PortSpec] = (),
        ifname: str | None = None,
    ) -> Attachment:
        """Connect a container's network namespace to ``network``: loopback up, a veth on the
        network's bridge with an address from its subnet, and ``ports`` published (host ports
        checked against other containers and the host). Undone completely on failure."""
        await self.start()
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        netns = str(netns)
        if not await asyncio.to_thread(os.path.exists, netns):
            raise NetworkError(f"network namespace {netns} does not exist: start the container")
        async with self._lock:
            net = self.get(network)
            if net.driver != "bridge":
                raise InvalidArgument(
                    f"network {net.name} is the {net.name} mode: the runtime applies it, "
                    "there is nothing to attach"
                )
            key = (container_id, net.id)
            if key in self._eps or key in self._pending:
                raise Conflict(
                    f"container {name or container_id[:12]} is already connected to "
                    f"network {net.name}"
                )
            specs = list(ports)
            if specs and net.internal:
                raise InvalidArgument(
                    f"network {net.name} is internal: ports cannot be published on it"
                )
            if not net.internal and shutil.which("iptables") is None:
                raise NetworkError(
                    "outbound NAT and published ports need iptables (iptables-nft is fine); "
                    "install iptables, or use an --internal network or --network none"
                )
            mappings = await asyncio.to_thread(resolve, specs, self.published(exclude=container_id))
            own = self.container_endpoints(container_id)
            if ifname is None:
                used = {e.ifname for e in own}
                ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
            await self._ensure_bridge(net)
            used = [e.address for e in self.endpoints(net.id)]
            used += [r.ip for k, r in self._pending.items() if k[1] == net.id]
            last = self._last_ip.get(net.id, "")
            ip = str(driver.free_address(net.subnet, net.gateway, net.ip_range, used, last))
            self._last_ip[net.id] = ip
            self._pending[key] = _Pending(container_id, name or container_id[:12], ip, mappings)
        # the veth is made outside the lock: attaches of several containers run together
        host_if = driver.veth_name(container_id, net.id)
        bn = bridge_net(net)
        try:
            mac = await driver.add_veth(bn, netns, host_if, ifname, ip, first=not own)
        except BaseException:
            self._pending.pop(key, None)
            if self._last_ip.get(net.id) == ip:  # the address was never used: hand it out next
                self._last_ip[net.id] = last
            raise
        async with self._lock:
            try:
                ep = Endpoint(
                    container_id=container_id,
                    container_name=name.lstrip("/"),
                    network_id=net.id,
                    endpoint_id=secrets.token_hex(32),
                    netns=netns,
                    ifname=ifname,
                    ip=f"{ip}/{bn.prefix_len}",
                    gateway=net.gateway,
                    mac=mac,
                    aliases=list(dict.fromkeys(a for a in aliases if a)),
                    ports=[asdict(m) for m in mappings],
                    host_if=host_if,
                )
                await asyncio.to_thread(_write_json, self._ep_path(*key), asdict(ep))
                self._eps[key] = ep
                self._pending.pop(key, None)
                if mappings:
                    await driver.set_ports(bn, self._published_on(net.id))
            except BaseException:
                self._pending.pop(key, None)
                self._eps.pop(key, None)
                self._ep_path(*key).unlink(missing_ok=True)
                await driver.del_veth(host_if)
                raise
            if self.dns is not None:
                await self.dns.sync()
            dns = self.dns.nameserver(net.id) if self.dns is not None else ""
        addr, _, plen = ep.ip.partition("/")
        return Attachment(
            network_id=net.id,
            network_name=net.name,
            endpoint_id=ep.endpoint_id,
            ifname=ifname,
            ip=addr,
            prefix_len=int(plen or 32),
            gateway=ep.gateway,
            mac=ep.mac,
            aliases=tuple(ep.aliases),
            ports=tuple(mappings),
            dns=dns,
        )

    async def detach(self, container_id: str, network: str) -> None:
        """Disconnect a container from ``network``: its address goes back to the pool and its
        port rules are removed. Works after an engine restart and with the netns gone."""
        await self.start()
        async with self._lock:
            net = self.get(network)
            ep = self._eps.get((container_id, net.id))
            if ep is None:
                raise NotFound(f"container {container_id[:12]} is not connected to {net.name}")
            await self._detach_locked(ep)

    async def detach_all(self, container_id: str, *, netns_going: bool = False) -> None:
        """Disconnect a container from every network (when it stops or is removed). With
        ``netns_going`` the caller deletes the namespace next: its veths go with it, which
        the kernel does faster than an ``ip link delete`` each."""
        await self.start()
        async with self._lock:
            for ep in self.container_endpoints(container_id):
                await self._detach_locked(ep, keep_link=netns_going)

    async def _detach_locked(self, ep: Endpoint, *, keep_link: bool = False) -> None:
        if ep.host_if and not keep_link:
            await driver.del_veth(ep.host_if)
        self._ep_path(ep.container_id, ep.network_id).unlink(missing_ok=True)
        self._eps.pop((ep.container_id, ep.network_id), None)
        net = self._nets.get(ep.network_id)
        if ep.ports and net is not None:
            await driver.set_ports(bridge_net(net), self._published_on(net.id))
        if self.dns is not None:
            await self.dns.sync()

    async def reconcile(self, live: Iterable[str]) -> list[str]:
        """After a restart: detach every endpoint whose container is not in ``live``; the ids
        of the containers cleaned up."""
        await self.start()
        keep = set(live)
        gone: list[str] = []
        async with self._lock:
            for ep in list(self._eps.values()):
                if ep.container_id not in keep:
                    await self._detach_locked(ep)
                    gone.append(ep.container_id)
        return sorted(set(gone))


def _has_endpoint_files(ep_dir: Path, network_id: str) -> bool:
    return any(ep_dir.glob(f"*.{network_id}.json"))


@dataclass(frozen=True)
class _Pending:
    """An attach between its address reservation and its endpoint record."""

    container_id: str
    name: str
    ip: str
    mappings: list[PortMapping]
