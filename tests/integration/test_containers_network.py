"""Containers on networks with real crun, bridges and iptables: published ports reached from the
host on 127.0.0.1, name and alias resolution on a user-defined network (embedded DNS),
connect/disconnect at run time, an engine restart with networked containers running, and
ports released at stop.

Each test opens an Engine on a shared busybox root with its own default-bridge name; the
fixture removes every container, endpoint, namespace, network, bridge and new iptables
chain afterwards, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.engine import Engine
from engine.errors import Conflict, Forbidden, NotFound
from engine.network import netns
from engine.network.networks import NetworkService
from engine.runtime.networking import netns_name
from tests.fixtures.containers import prepare_root
from tests.fixtures.engine import engine_config
from tests.integration.test_network_bridge import host_chains, http_get, run

__all__ = ["host_chains"]  # the module fixture restoring the host's iptables chains


HTTPD = "mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def net_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("netrun") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


class Env:
    """One test's engine (reopenable) on the shared root, with a unique default bridge."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bridge = f"pst{secrets.token_hex(3)}"
        self.engine: Engine | None = None
        self.ids: set[str] = set()

    async def open(self) -> Engine:
        nets = NetworkService(self.root, default_bridge=self.bridge)
        self.engine = await Engine.open(engine_config(self.root), networks=nets)
        return self.engine

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()
            self.engine = None

    async def run(self, image: str, cmd: list[str], name: str | None = None, **kw: Any) -> str:
        assert self.engine is not None
        cid = str(
            (await self.engine.containers.create({"Image": image, "Cmd": cmd, **kw}, name))["Id"]
        )
        self.ids.add(cid)
        await self.engine.containers.start(cid)
        return cid

    async def output(self, cid: str) -> tuple[int, str]:
        """Wait for a container to exit: (exit code, its output)."""
        assert self.engine is not None
        code = (await self.engine.containers.wait(cid))["StatusCode"]
        chunks = [data async for _, data in self.engine.containers.logs(cid)]
        return code, b"".join(chunks).decode()

    async def cleanup(self) -> None:
        eng = self.engine or await self.open()
        for cid in list(self.ids):
            with contextlib.suppress(NotFound):
                await eng.containers.remove(cid, force=True)
        svc = eng.networks
        await svc.reconcile([])
        bridges = [n.bridge for n in svc._nets.values() if n.driver == "bridge"]
        await svc.prune()
        await self.close()
        for cid in self.ids:
            await netns.delete(netns_name(cid))
        for bridge in bridges:
            await run("ip", "link", "delete", bridge)
        shutil.rmtree(self.root / "networks", ignore_errors=True)


@pytest.fixture
async def env(net_root: Path) -> AsyncIterator[Env]:
    e = Env(net_root)
    await e.open()
    try:
        yield e
    finally:
        await e.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def refused(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s,
            s.get(url) as resp,
        ):
            await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        return True
    return False


async def test_published_ports_inspect_and_release_at_stop(env: Env, busybox: str) -> None:
    eng = env.engine
    assert eng is not None
    port = free_port()
    token = secrets.token_hex(8)
    web = await env.run(
        busybox,
        ["sh", "-c", HTTPD.format(token=token)],
        "web",
        ExposedPorts={"80/tcp": {}, "81/tcp": {}},
        Hostname="webhost",
        HostConfig={
            "NetworkMode": "bridge",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
            "Dns": ["192.0.2.53"],
            "ExtraHosts": ["gw:host-gateway", "db:10.9.8.7"],
        },
    )
    assert (await http_get(f"http://127.0.0.1:{port}/")).strip() == token

    info = await eng.containers.inspect(web)
    ns = info["NetworkSettings"]
    ep = ns["Networks"]["bridge"]
    subnet = ipaddress.ip_network(
        (await eng.networks.inspect("bridge"))["IPAM"]["Config"][0]["Subnet"]
    )
    assert ipaddress.ip_address(ep["IPAddress"]) in subnet
    assert (
        ep["Gateway"] == str(subnet.network_address + 1) and ep["IPPrefixLen"] == subnet.prefixlen
    )
    assert len(ep["MacAddress"].split(":")) == 6 and len(ep["EndpointID"]) == 64
    assert (
        ns["IPAddress"] == ep["IPAddress"] and ns["SandboxKey"] == f"/run/netns/{netns_name(web)}"
    )
    assert ns["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
        "81/tcp": None,
    }
    item = next(c for c in await eng.containers.list_containers() if c["Id"] == web)
    assert {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"} in item[
        "Ports"
    ]
    assert item["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ep["IPAddress"]
    hosts = Path(info["HostsPath"]).read_text().splitlines()
    assert f"{ep['IPAddress']}\twebhost" in hosts
    assert f"{ep['Gateway']}\tgw" in hosts and "10.9.8.7\tdb" in hosts
    assert Path(info["ResolvConfPath"]).read_text().splitlines()[0] == "nameserver 192.0.2.53"

    # the same host port for another container is refused while web holds it
    other = await eng.containers.create(
        {
            "Image": busybox,
            "Cmd": ["sleep", "60"],
            "HostConfig": {
                "NetworkMode": "bridge",
                "PortBindings": {"80/tcp": [{"HostPort": str(port)}]},
            },
        }
    )
    env.ids.add(other["Id"])
    with pytest.raises(Conflict, match=f"{port}/tcp: port is already allocated by web"):
        await eng.containers.start(other["Id"])
    assert not Path(f"/run/netns/{netns_name(other['Id'])}").exists()

    await eng.containers.stop(web, timeout=1)
    assert await refused(f"http://127.0.0.1:{port}/")
    assert not Path(f"/run/netns/{netns_name(web)}").exists()
    assert eng.networks.container_endpoints(web) == []
    assert (await eng.containers.inspect(web))["NetworkSettings"]["Ports"] == {}

    # the port is free again: a new container publishes it, and -P picks ephemeral ones
    token2 = secrets.token_hex(8)
    again = await env.run(
        busybox,
        ["sh", "-c", HTTPD.format(token=token2)],
        ExposedPorts={"80/tcp": {}},
        HostConfig={
            "NetworkMode": "bridge",
            "PublishAllPorts": True,
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
        },
    )
    assert (await http_get(f"http://127.0.0.1:{port}/")).strip() == token2
    await eng.containers.remove(again, force=True)
    assert await refused(f"http://127.0.0.1:{port}/")
    assert eng.networks.endpoints() == []

    auto = await env.run(
        busybox,
        ["sh", "-c", HTTPD.format(token=token2)],
        ExposedPorts={"80/tcp": {}},
        HostConfig={"NetworkMode": "bridge", "PublishAllPorts": True},
    )
    bound = (await eng.containers.inspect(auto))["NetworkSettings"]["Ports"]["80/tcp"][0]
    assert int(bound["HostPort"]) > 0 and bound["HostIp"] == "0.0.0.0"
    assert (await http_get(f"http://127.0.0.1:{bound['HostPort']}/")).strip() == token2


async def test_names_aliases_and_connect_disconnect(env: Env, busybox: str) -> None:
    eng = env.engine
    assert eng is not None
    front = f"front-{env.bridge}"
    back = f"back-{env.bridge}"
    await eng.networks.create(front)
    await eng.networks.create(back)
    token = secrets.token_hex(8)
    web = await env.run(
        busybox,
        ["sh", "-c", HTTPD.format(token=token)],
        f"web-{env.bridge}",
        HostConfig={"NetworkMode": front},
        NetworkingConfig={"EndpointsConfig": {front: {"Aliases": ["www"]}}},
    )
    info = await eng.containers.inspect(web)
    assert info["NetworkSettings"]["Networks"][front]["Aliases"] == ["www"]
    gateway = info["NetworkSettings"]["Networks"][front]["Gateway"]
    resolv = Path(info["ResolvConfPath"]).read_text().splitlines()
    assert resolv[0] == f"nameserver {gateway}"  # the embedded DNS server
    web_ip = info["NetworkSettings"]["Networks"][front]["IPAddress"]
    script = (
        "nslookup {n} && ping -c1 -W3 {n} && "
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{n}/ && exit 0; sleep 0.3; done; exit 1"
    )
    for name in (f"web-{env.bridge}", "www", web[:12]):
        client = await env.run(
            busybox, ["sh", "-c", script.format(n=name)], HostConfig={"NetworkMode": front}
        )
        code, out = await env.output(client)
        assert code == 0, out
        assert token in out and web_ip in out
        await eng.containers.remove(client)

    # back is not connected yet: a container there cannot resolve web
    probe = ["sh", "-c", f"nslookup web-{env.bridge} && wget -qO- http://web-{env.bridge}/"]
    client = await env.run(busybox, probe, HostConfig={"NetworkMode": back})
    code, out = await env.output(client)
    assert code != 0 and token not in out, out

    await eng.containers.connect(web, back, aliases=["api"])
    info = await eng.containers.inspect(web)
    assert set(info["NetworkSettings"]["Networks"]) == {front, back}
    back_ip = info["NetworkSettings"]["Networks"][back]["IPAddress"]
    assert back_ip and back_ip != web_ip
    with pytest.raises(Forbidden, match="already exists"):
        await eng.containers.connect(web, back)
    client = await env.run(busybox, probe, HostConfig={"NetworkMode": back})
    code, out = await env.output(client)
    assert code == 0 and token in out and back_ip in out, out
    assert set((await eng.networks.inspect(back))["Containers"]) == {web}  # client exited

    await eng.containers.disconnect(web, back)
    assert set((await eng.containers.inspect(web))["NetworkSettings"]["Networks"]) == {front}
    client = await env.run(busybox, probe, HostConfig={"NetworkMode": back})
    code, out = await env.output(client)
    assert code != 0 and token not in out, out
    with pytest.raises(NotFound, match="not connected"):
        await eng.containers.disconnect(web, back)
    with pytest.raises(Conflict, match="active endpoints"):
        await eng.networks.remove(front)

    # container:NAME shares web's namespace: httpd answers on its loopback
    shared = await env.run(
        busybox,
        ["wget", "-qO-", "http://127.0.0.1/"],
        HostConfig={"NetworkMode": f"container:web-{env.bridge}"},
    )
    code, out = await env.output(shared)
    assert code == 0 and token in out, out
    with pytest.raises(Forbidden, match="cannot be connected"):
        await eng.containers.connect(shared, back)


async def test_engine_restart_keeps_running_containers_networked(env: Env, busybox: str) -> None:
    eng = env.engine
    assert eng is not None
    port = free_port()
    token = secrets.token_hex(8)
    web = await env.run(
        busybox,
        ["sh", "-c", HTTPD.format(token=token)],
        HostConfig={
            "NetworkMode": "bridge",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
        },
    )
    doomed = await env.run(busybox, ["sleep", "600"], HostConfig={"NetworkMode": "bridge"})
    assert (await http_get(f"http://127.0.0.1:{port}/")).strip() == token
    before = (await eng.containers.inspect(web))["NetworkSettings"]["Networks"]["bridge"]
    doomed_pid = (await eng.containers.inspect(doomed))["State"]["Pid"]
    monitor_pid = eng.containers._records[doomed].MonitorPid
    endpoints = env.root / "networks" / "endpoints"
    assert len(list(endpoints.glob("*.json"))) == 2

    await env.close()  # the engine goes away; the containers keep running
    assert (await http_get(f"http://127.0.0.1:{port}/")).strip() == token
    os.kill(doomed_pid, signal.SIGKILL)  # one of them dies while no engine watches
    for _ in range(200):  # until its monitor has recorded the exit and gone
        if not Path(f"/proc/{monitor_pid}").exists():
            break
        await asyncio.sleep(0.05)

    eng = await env.open()
    after = (await eng.containers.inspect(web))["NetworkSettings"]["Networks"]["bridge"]
    assert after == before
    assert (await http_get(f"http://127.0.0.1:{port}/")).strip() == token
    state = (await eng.containers.inspect(doomed))["State"]
    assert state["Running"] is False
    assert eng.networks.container_endpoints(doomed) == []
    assert not Path(f"/run/netns/{netns_name(doomed)}").exists()
    assert [p.name.split(".")[0] for p in endpoints.glob("*.json")] == [web]
    assert [e.address for e in eng.networks.endpoints()] == [before["IPAddress"]]

    # the restarted engine still watches web: an exit on its own releases everything
    await eng.containers.kill(web)
    assert await refused(f"http://127.0.0.1:{port}/")
    assert eng.networks.endpoints() == []
    assert not Path(f"/run/netns/{netns_name(web)}").exists()


async def test_network_mode_errors(env: Env, busybox: str) -> None:
    eng = env.engine
    assert eng is not None
    with pytest.raises(NotFound, match="network nope-net not found"):
        await eng.containers.create({"Image": busybox, "HostConfig": {"NetworkMode": "nope-net"}})
    with pytest.raises(NotFound, match="No such container"):
        await eng.containers.create(
            {"Image": busybox, "HostConfig": {"NetworkMode": "container:nope"}}
        )
    bindings = {"80/tcp": [{"HostPort": "8080"}]}
    with pytest.raises(Exception, match="conflicting options"):
        await eng.containers.create(
            {
                "Image": busybox,
                "HostConfig": {"NetworkMode": "container:x", "PortBindings": bindings},
            }
        )
    with pytest.raises(Exception, match="invalid host port"):
        await eng.containers.create(
            {
                "Image": busybox,
                "HostConfig": {
                    "NetworkMode": "bridge",
                    "PortBindings": {"80/tcp": [{"HostPort": "x"}]},
                },
            }
        )
    # a stopped container sharing another's namespace cannot start without it
    base = await env.run(busybox, ["sleep", "60"], HostConfig={"NetworkMode": "bridge"})
    joiner = await eng.containers.create(
        {"Image": busybox, "Cmd": ["true"], "HostConfig": {"NetworkMode": f"container:{base}"}}
    )
    env.ids.add(joiner["Id"])
    await eng.containers.stop(base, timeout=0)
    with pytest.raises(Conflict, match="non running container"):
        await eng.containers.start(joiner["Id"])
