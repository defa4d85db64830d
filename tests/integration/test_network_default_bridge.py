"""The default "bridge" network as an engine opened from its config sets it up: containers
created without a network mode join it, get an address on the engine's own subnet and reach
a host server on the gateway address; two engines on one host get different bridges and
subnets; a bridge nobody uses is removed with its iptables chains when its engine closes.

Engines here use their config's defaults (a bridge name derived from the root, a /24 of
``default_address_pool``), as the daemon does; the fixture removes every container, and
closing the engines removes the bridges (checked by the tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import EngineConfig
from engine.errors import InvalidArgument
from engine.network import netns
from engine.network.bridge import veth_name
from engine.network.networks import NetworkService
from engine.runtime.networking import netns_name
from tests.fixtures.containers import Harness, open_harness, prepare_root
from tests.fixtures.engine import engine_config
from tests.integration.test_network_bridge import host_chains, iptables_dump

__all__ = ["host_chains"]  # the module fixture restoring the host's iptables chains


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> list[Path]:
    base = tmp_path_factory.mktemp("defbridge")
    out = [base / "one" / "root", base / "two" / "root"]
    for root in out:
        prepare_root(root, [pushed_images["test/busybox:1"]])
    return out


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def run_to_end(h: Harness, image: str, cmd: list[str], **config: Any) -> tuple[int, str]:
    cid = await h.create(image, cmd, **config)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    code = (await waiter)["StatusCode"]
    return code, await h.output(cid)


def fetch(host: str, port: int) -> str:
    """A shell line printing what a TCP server at host:port greets with."""
    return f"nc -w 5 {host} {port} </dev/null"


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


async def gone(link: str) -> bool:
    """Whether ``link`` disappears (bounded wait: namespaces are destroyed asynchronously)."""
    for _ in range(200):
        if not link_exists(link):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def host_server() -> AsyncIterator[Any]:
    """Start a TCP server on the host at a given address: it greets with a random token."""
    servers: list[asyncio.Server] = []
    token = secrets.token_hex(8)

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{token}\n".encode())
        await writer.drain()
        writer.close()

    async def start(address: str) -> tuple[int, str]:
        server = await asyncio.start_server(greet, address, 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], token

    try:
        yield start
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def test_containers_join_the_default_bridge(
    roots: list[Path], busybox: str, host_server: Any
) -> None:
    async with open_harness(roots[0], "crun") as h:
        bridge = EngineConfig(root=roots[0]).bridge_name()
        assert bridge.startswith("psb") and bridge != "portside0"
        info = await h.engine.networks.inspect("bridge")
        assert info["Options"]["com.docker.network.bridge.name"] == bridge
        subnet = ipaddress.ip_network(info["IPAM"]["Config"][0]["Subnet"])
        assert subnet.subnet_of(ipaddress.ip_network("10.213.0.0/16"))
        gateway = info["IPAM"]["Config"][0]["Gateway"]

        sleeper = await h.run(busybox, ["sleep", "60"])  # no NetworkMode: docker's default
        details = await h.containers.inspect(sleeper)
        assert details["HostConfig"]["NetworkMode"] == "default"
        ep = details["NetworkSettings"]["Networks"]["bridge"]
        assert ipaddress.ip_address(ep["IPAddress"]) in subnet and ep["Gateway"] == gateway
        assert link_exists(bridge)

        port, token = await host_server(gateway)  # listening on the bridge's address only
        code, out = await run_to_end(
            h,
            busybox,
            ["sh", "-c", f"ip -4 addr show eth0; {fetch(gateway, port)}"],
        )
        assert code == 0, out
        assert out.strip().endswith(token), out
        inet = re.search(r"inet (\S+)/(\d+)", out)
        assert inet is not None, out
        assert ipaddress.ip_address(inet[1]) in subnet and inet[1] != ep["IPAddress"]
        await h.containers.remove(sleeper, force=True)
    # the engine closed with no container on its bridge: bridge and chains are gone
    assert not link_exists(bridge)
    assert bridge not in await iptables_dump()


async def test_two_engines_get_their_own_bridges(
    roots: list[Path], busybox: str, host_server: Any
) -> None:
    async with open_harness(roots[0], "crun") as one, open_harness(roots[1], "crun") as two:
        a = await one.run(busybox, ["sleep", "60"])
        b = await two.run(busybox, ["sleep", "60"])
        nets = [await e.engine.networks.inspect("bridge") for e in (one, two)]
        names = [n["Options"]["com.docker.network.bridge.name"] for n in nets]
        subnets = [ipaddress.ip_network(n["IPAM"]["Config"][0]["Subnet"]) for n in nets]
        assert names[0] != names[1] and all(link_exists(n) for n in names)
        assert not subnets[0].overlaps(subnets[1])
        addr = [
            (await e.containers.inspect(c))["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            for e, c in ((one, a), (two, b))
        ]
        assert ipaddress.ip_address(addr[0]) in subnets[0]
        assert ipaddress.ip_address(addr[1]) in subnets[1]
        # each engine's containers reach its own gateway
        gw = nets[1]["IPAM"]["Config"][0]["Gateway"]
        port, token = await host_server(gw)
        code, out = await run_to_end(two, busybox, ["sh", "-c", fetch(gw, port)])
        assert code == 0 and out.strip() == token, out
        await one.containers.remove(a, force=True)
        await two.containers.remove(b, force=True)
    assert not any(link_exists(n) for n in names)


async def test_an_engine_whose_subnet_is_taken_moves_to_a_free_one(
    tmp_path: Path, roots: list[Path], busybox: str
) -> None:
    async with open_harness(roots[0], "crun") as one:
        a = await one.run(busybox, ["sleep", "60"])
        taken = (await one.engine.networks.inspect("bridge"))["IPAM"]["Config"][0]["Subnet"]
        # a second engine whose stored default bridge has that very subnet
        second = NetworkService(tmp_path / "other", default_bridge=f"pst{secrets.token_hex(3)}")
        await second.start()
        net = second.get("bridge")
        net.subnet, net.gateway = taken, str(ipaddress.ip_network(taken).network_address + 1)
        ns_name = f"pst-{secrets.token_hex(3)}"
        path = await netns.create(ns_name)
        try:
            att = await second.attach("c" * 64, path)
            assert ipaddress.ip_address(att.ip) not in ipaddress.ip_network(taken)
            assert second.get("bridge").subnet != taken
            await second.detach_all("c" * 64)
        finally:
            await second.close()
            await netns.delete(ns_name)
        assert not link_exists(net.bridge)
        await one.containers.remove(a, force=True)


def test_bad_default_bridge_settings_say_what_is_wrong(tmp_path: Path) -> None:
    cases = [
        ({"default_bridge": "far-too-long-bridge-name"}, "invalid default_bridge"),
        ({"default_address_pool": "10.1.2"}, "invalid default_address_pool"),
        ({"default_subnet_size": 8}, "invalid default_subnet_size 8"),
    ]
    for kw, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            NetworkService.for_config(engine_config(tmp_path / "root", **kw))
    a = EngineConfig(root=tmp_path / "a").bridge_name()
    b = EngineConfig(root=tmp_path / "b").bridge_name()
    assert a != b and len(a) <= 15


async def test_a_root_opened_with_other_settings_follows_the_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    old = NetworkService(
        root, default_bridge="pstold0", bridge_pools=[("10.250.0.0/16", 16)], embedded_dns=False
    )
    await old.start()
    assert (old.get("bridge").bridge, old.get("bridge").subnet) == ("pstold0", "10.250.0.0/16")
    config = engine_config(root)
    new = NetworkService.for_config(config)
    await new.start()
    net = new.get("bridge")
    assert net.id == old.get("bridge").id and net.bridge == config.bridge_name()
    subnet = ipaddress.ip_network(net.subnet)
    assert subnet.prefixlen == 24 and subnet.subnet_of(ipaddress.ip_network("10.213.0.0/16"))
    assert net.gateway == str(subnet.network_address + 1)
    assert not link_exists(net.bridge)  # nothing is set up before a container attaches


async def test_a_start_that_fails_leaves_no_network_behind(
    roots: list[Path], busybox: str, tmp_path: Path
) -> None:
    async with open_harness(roots[0], "crun") as h:
        missing = tmp_path / "gone"
        mount = {"Type": "bind", "Source": str(missing), "Target": "/x"}
        missing.mkdir()
        cid = await h.create(busybox, ["true"], HostConfig={"Mounts": [mount]})
        missing.rmdir()  # gone between create and start
        # the network comes up while the mounts are checked: both are undone
        with pytest.raises(InvalidArgument, match="bind source path does not exist"):
            await h.containers.start(cid)
        assert h.engine.networks.container_endpoints(cid) == []
        assert not Path(f"/run/netns/{netns_name(cid)}").exists()
        # its veth went with the namespace (the kernel removes it in the background)
        assert await gone(veth_name(cid, h.engine.networks.get("bridge").id))
