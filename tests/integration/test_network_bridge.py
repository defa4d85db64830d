"""NetworkService attach/detach through the bridge driver (real bridges, veths and iptables),
in network namespaces the tests create (``ip netns add``), with all traffic inside them and
on the host's 127.0.0.1.

Each test gets its own engine root, a unique default-bridge name and unique namespace names;
the fixture detaches every endpoint, removes the networks and their bridges and deletes the
namespaces even when the test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import shlex
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from engine.errors import Conflict, InvalidArgument
from engine.network import netns
from engine.network.bridge import BridgeError, veth_name
from engine.network.model import NetworkError
from engine.network.networks import NetworkService
from engine.network.ports import parse_port_specs

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


async def run(*argv: str, timeout: float = 20.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def iptables_dump() -> str:
    code, out = await run("iptables-save")
    assert code == 0, out
    return out


def _chains(dump: str) -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = set()
        elif line.startswith(":"):
            tables[table].add(line[1:].split()[0])
    return tables


@pytest.fixture(scope="module", autouse=True)
def host_chains() -> Iterator[None]:
    """Remove the chains (PSP-*, PSD-*, PSF-*) and jumps the module's networks left (a bridge
    still in use when its engine closed keeps them), so the host ends as it started."""
    before = _chains(subprocess.run(["iptables-save"], capture_output=True, text=True).stdout)
    yield
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    after = _chains(dump)
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            new = after[table] - before.get(table, set())
            args = shlex.split(line)
            chain, target = args[1], args[args.index("-j") + 1] if "-j" in args else ""
            if chain not in new and target in new:
                subprocess.run(["iptables", "-t", table, "-D", *args[1:]], check=False)
    for table, chains in after.items():
        for chain in sorted(chains - before.get(table, set())):
            subprocess.run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in sorted(chains - before.get(table, set())):
            subprocess.run(["iptables", "-t", table, "-X", chain], check=False)


class Env:
    """One test's engine root, services and namespaces."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = secrets.token_hex(3)
        self.bridge = f"pst{self.tag}"
        self.services: list[NetworkService] = []
        self.namespaces: list[str] = []

    def service(self) -> NetworkService:
        svc = NetworkService(self.root, default_bridge=self.bridge)
        self.services.append(svc)
        return svc

    async def ns(self, label: str) -> tuple[str, Path]:
        name = f"pst-{self.tag}-{label}"
        path = await netns.create(name)
        self.namespaces.append(name)
        return name, path

    def cid(self, label: str) -> str:
        return f"{self.tag}{label}".ljust(64, "0")

    async def cleanup(self) -> None:
        for s in self.services:
            await s.close()
        svc = NetworkService(self.root, default_bridge=self.bridge, embedded_dns=False)
        await svc.reconcile([])
        bridges = [n.bridge for n in svc._nets.values() if n.driver == "bridge"]
        await svc.prune()
        for name in self.namespaces:
            await netns.delete(name)
        for bridge in bridges:
            await run("ip", "link", "delete", bridge)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "root")
    try:
        yield e
    finally:
        await e.cleanup()


async def ping(ns_name: str, ip: str) -> tuple[int, str]:
    return await run(*netns.exec_args(ns_name, BUSYBOX, "ping", "-c1", "-W3", ip))


async def http_get(url: str, attempts: int = 50) -> str:
    """GET ``url``, retrying while the server in the namespace starts (bounded)."""
    last: Exception | None = None
    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(attempts):
            try:
                async with session.get(url) as resp:
                    assert resp.status == 200, resp.status
                    return await resp.text()
            except (aiohttp.ClientError, TimeoutError) as err:
                last = err
                await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered: {last}")


@pytest.fixture
async def httpd(tmp_path: Path) -> AsyncIterator[Callable[[str, int], Awaitable[str]]]:
    """Start busybox httpd inside a namespace serving a file with a random token."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(ns_name: str, port: int) -> str:
        www = tmp_path / f"www-{ns_name}"
        www.mkdir()
        token = secrets.token_hex(8)
        (www / "token").write_text(token)
        argv = netns.exec_args(ns_name, BUSYBOX, "httpd", "-f", "-p", str(port), "-h", str(www))
        procs.append(
            await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
        )
        return token

    try:
        yield start
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
            await p.wait()


async def test_two_namespaces_on_a_user_network_ping_each_other(env: Env) -> None:
    svc = env.service()
    created = await svc.create("pstnet", labels={"t": "1"})
    info = await svc.inspect("pstnet")
    assert info["Id"] == created["Id"]
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    gateway = info["IPAM"]["Config"][0]["Gateway"]
    a_name, a_path = await env.ns("a")
    b_name, b_path = await env.ns("b")
    a = await svc.attach(env.cid("a"), a_path, "pstnet", name="alpha", aliases=["web"])
    b = await svc.attach(env.cid("b"), b_path, "pstnet", name="beta")

    net = ipaddress.ip_network(subnet)
    assert ipaddress.ip_address(a.ip) in net and ipaddress.ip_address(b.ip) in net
    assert a.ip != b.ip
    assert a.gateway == b.gateway == gateway
    assert a.prefix_len == net.prefixlen
    assert len(a.mac.split(":")) == 6 and a.ifname == "eth0"

    code, out = await ping(a_name, b.ip)
    assert code == 0, out
    code, out = await ping(b_name, a.ip)
    assert code == 0, out
    code, out = await ping(a_name, "127.0.0.1")  # the loopback plugin brought lo up
    assert code == 0, out

    containers = (await svc.inspect("pstnet"))["Containers"]
    assert containers[env.cid("a")]["IPv4Address"] == f"{a.ip}/{a.prefix_len}"
    assert containers[env.cid("a")]["Name"] == "alpha"
    assert {p.ip: p.names for p in svc.peers("pstnet", exclude=env.cid("b"))} == {
        a.ip: ("alpha", "web", env.cid("a")[:12])
    }
    with pytest.raises(Conflict, match="already connected"):
        await svc.attach(env.cid("a"), a_path, "pstnet")
    with pytest.raises(Conflict, match="active endpoints"):
        await svc.remove("pstnet")
    with pytest.raises(InvalidArgument, match="host mode"):
        await svc.attach(env.cid("a"), a_path, "host")


async def test_published_port_reaches_a_server_in_the_namespace(env: Env, httpd) -> None:
    svc = env.service()
    await svc.create("pstweb")
    name, path = await env.ns("web")
    host_port = socket.socket()
    host_port.bind(("127.0.0.1", 0))
    fixed = host_port.getsockname()[1]
    host_port.close()
    specs = parse_port_specs(["127.0.0.1::8000", f"{fixed}:8000"])
    att = await svc.attach(env.cid("web"), path, "pstweb", name="web", ports=specs)
    ephemeral = att.ports[0]
    assert ephemeral.host_ip == "127.0.0.1" and ephemeral.host_port > 0
    assert att.ports[1].host_port == fixed and att.ports[1].host_ip == ""
    token = await httpd(name, 8000)
    # the loopback-only publication, the all-addresses one through loopback, and the same
    # through a host interface (the bridge's gateway address)
    assert await http_get(f"http://127.0.0.1:{ephemeral.host_port}/token") == token
    assert await http_get(f"http://127.0.0.1:{fixed}/token") == token
    assert await http_get(f"http://{att.gateway}:{fixed}/token") == token

    # another container asking for the same host port gets a clear conflict
    _, other = await env.ns("other")
    with pytest.raises(Conflict, match=rf"{fixed}/tcp: port is already allocated by web"):
        await svc.attach(env.cid("other"), other, "pstweb", ports=parse_port_specs([f"{fixed}:80"]))
    assert env.cid("other") not in (await svc.inspect("pstweb"))["Containers"]

    await svc.detach(env.cid("web"), "pstweb")
    with pytest.raises(aiohttp.ClientError):
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s,
            s.get(f"http://127.0.0.1:{fixed}/token") as resp,
        ):
            await resp.read()


async def test_host_listener_conflicts_with_a_published_port(env: Env) -> None:
    svc = env.service()
    await svc.create("pstbusy")
    _, path = await env.ns("busy")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(Conflict, match="already allocated by a process on the host"):
            await svc.attach(
                env.cid("busy"), path, "pstbusy", ports=parse_port_specs([f"{port}:80"])
            )
    # the failed attach left no endpoint and no address behind
    assert (await svc.inspect("pstbusy"))["Containers"] == {}
    assert f"--dport {port} " not in await iptables_dump()


async def test_detach_releases_address_and_iptables_rules(env: Env) -> None:
    svc = env.service()
    await svc.create("pstrel", subnet="10.231.7.0/29", gateway="10.231.7.1")
    _, path = await env.ns("rel")
    cid = env.cid("rel")
    att = await svc.attach(cid, path, "pstrel", ports=parse_port_specs(["127.0.0.1::80"]))
    assert att.ip == "10.231.7.2" and att.gateway == "10.231.7.1"
    assert att.mac == "02:42:0a:e7:07:02"
    host_if = veth_name(cid, svc.get("pstrel").id)
    assert Path(f"/sys/class/net/{host_if}").exists()
    port = att.ports[0].host_port
    dump = await iptables_dump()
    assert f"--dport {port} -j DNAT --to-destination 10.231.7.2:80" in dump

    await svc.detach(cid, "pstrel")
    assert not Path(f"/sys/class/net/{host_if}").exists()
    dump = await iptables_dump()
    assert "10.231.7.2" not in dump and f"--dport {port} " not in dump
    assert (await svc.inspect("pstrel"))["Containers"] == {}
    assert not list(svc.ep_dir.iterdir())

    # the 5 host addresses of the /29 (gateway excluded) can be used again and again
    for _ in range(2):
        ips = []
        for i in range(5):
            _, p = await env.ns(f"r{len(env.namespaces)}")
            ips.append((await svc.attach(env.cid(f"r{i}"), p, "pstrel")).ip)
        assert sorted(ips) == [f"10.231.7.{n}" for n in range(2, 7)]
        _, p = await env.ns(f"r{len(env.namespaces)}")
        with pytest.raises(BridgeError, match=r"no free address left in 10\.231\.7\.0/29"):
            await svc.attach(env.cid("full"), p, "pstrel")
        for i in range(5):
            await svc.detach_all(env.cid(f"r{i}"))
    # removing the network removes its bridge and every rule naming it
    bridge = svc.get("pstrel").bridge
    await svc.remove("pstrel")
    assert not Path(f"/sys/class/net/{bridge}").exists()
    assert bridge not in await iptables_dump()


async def test_state_survives_a_restart_without_leaking_addresses(env: Env) -> None:
    first = env.service()
    await first.create("pstkeep", subnet="10.231.8.0/24")
    _, a_path = await env.ns("ka")
    a = await first.attach(env.cid("ka"), a_path, "pstkeep", name="ka")
    bridge_info = await first.inspect("bridge")

    second = env.service()  # a restarted engine: same root, fresh objects
    assert (await second.inspect("bridge"))["Id"] == bridge_info["Id"]
    info = await second.inspect("pstkeep")
    assert info["Containers"][env.cid("ka")]["IPv4Address"] == f"{a.ip}/24"
    b_name, b_path = await env.ns("kb")
    b = await second.attach(env.cid("kb"), b_path, "pstkeep", name="kb")
    assert b.ip != a.ip
    code, out = await ping(b_name, a.ip)
    assert code == 0, out

    # a container that died while the engine was down is cleaned up by reconcile
    assert await second.reconcile([env.cid("kb")]) == [env.cid("ka")]
    assert env.cid("ka") not in await iptables_dump()
    third = env.service()
    assert list((await third.inspect("pstkeep"))["Containers"]) == [env.cid("kb")]
    c_name, c_path = await env.ns("kc")
    c = await third.attach(env.cid("kc"), c_path, "pstkeep")
    assert c.ip not in (b.ip,)
    code, out = await ping(c_name, b.ip)
    assert code == 0, out


async def test_default_bridge_network_attaches(env: Env) -> None:
    svc = env.service()
    info = await svc.inspect("bridge")
    assert info["Options"]["com.docker.network.bridge.name"] == env.bridge
    a_name, a_path = await env.ns("da")
    _, b_path = await env.ns("db")
    await svc.attach(env.cid("da"), a_path)
    b = await svc.attach(env.cid("db"), b_path)
    code, out = await run("ip", "-br", "link", "show", env.bridge)
    assert code == 0, out
    code, out = await ping(a_name, b.ip)
    assert code == 0, out
    # a container on two networks gets a second interface
    await svc.create("pstsecond")
    second = await svc.attach(env.cid("da"), a_path, "pstsecond")
    assert second.ifname == "eth1"
    code, out = await run(*netns.exec_args(a_name, "ip", "-br", "addr", "show", "eth1"))
    assert second.ip in out, out


async def test_outbound_nat_rules_follow_the_network_kind(env: Env) -> None:
    svc = env.service()
    await svc.create("pstnat", subnet="10.231.9.0/24")
    await svc.create("pstint", subnet="10.231.10.0/24", internal=True)
    n_name, n_path = await env.ns("nat")
    i_name, i_path = await env.ns("int")
    await svc.attach(env.cid("nat"), n_path, "pstnat")
    await svc.attach(env.cid("int"), i_path, "pstint")
    nat_bridge, int_bridge = svc.get("pstnat").bridge, svc.get("pstint").bridge
    code, nat = await run("iptables", "-t", "nat", "-S")
    assert code == 0, nat
    # masquerade for the NAT network's subnet, none for the internal network
    assert f"-A PSP-{nat_bridge} -s 10.231.9.0/24 ! -o {nat_bridge} -j MASQUERADE" in nat
    assert "10.231.10." not in nat
    code, routes = await run(*netns.exec_args(n_name, "ip", "-4", "route"))
    assert "default via 10.231.9.1" in routes, routes
    code, routes = await run(*netns.exec_args(i_name, "ip", "-4", "route"))
    assert "default" not in routes, routes
    code, fwd = await run("iptables", "-S", f"PSF-{int_bridge}")
    assert f"-A PSF-{int_bridge} -i {int_bridge} -j DROP" in fwd, fwd
    with pytest.raises(InvalidArgument, match="internal: ports cannot be published"):
        await svc.attach(env.cid("x"), i_path, "pstint", ports=parse_port_specs(["80"]))
    # the chains are set up once per network, not per container
    await svc.detach_all(env.cid("nat"))
    code, nat = await run("iptables", "-t", "nat", "-S")
    assert nat.count(f"-j PSP-{nat_bridge}") == 1


async def test_a_failed_attach_leaves_nothing_behind(env: Env, tmp_path: Path) -> None:
    svc = env.service()
    await svc.create("pstfail", subnet="10.231.11.0/24")
    missing = tmp_path / "no-such-netns"
    with pytest.raises(NetworkError, match=r"network namespace .*no-such-netns does not exist"):
        await svc.attach(env.cid("f"), missing, "pstfail")
    not_a_netns = tmp_path / "plain-file"
    not_a_netns.write_text("")
    with pytest.raises(BridgeError, match=r"moving pv\w+ into .*plain-file failed"):
        await svc.attach(env.cid("f"), not_a_netns, "pstfail")
    assert not Path(f"/sys/class/net/{veth_name(env.cid('f'), svc.get('pstfail').id)}").exists()
    _, path = await env.ns("ok")
    ok = await svc.attach(env.cid("ok"), path, "pstfail")
    assert ok.ip == "10.231.11.2"  # nothing was reserved by the failed attaches
    assert (await svc.inspect("pstfail"))["Containers"].keys() == {env.cid("ok")}
    assert not list(svc.ep_dir.glob(f"{env.cid('f')}.*"))


async def test_concurrent_attaches_get_their_own_addresses_and_ports(env: Env) -> None:
    svc = env.service()
    await svc.create("pstconc", subnet="10.231.12.0/24")
    paths = [(await env.ns(f"c{i}"))[1] for i in range(8)]
    atts = await asyncio.gather(
        *(svc.attach(env.cid(f"c{i}"), p, "pstconc") for i, p in enumerate(paths))
    )
    assert len({a.ip for a in atts}) == 8 and len({a.mac for a in atts}) == 8
    # two containers asking for one host port at the same time: one gets it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = parse_port_specs([f"127.0.0.1:{port}:80"])
    pa, pb = (await env.ns("pa"))[1], (await env.ns("pb"))[1]
    results = await asyncio.gather(
        svc.attach(env.cid("pa"), pa, "pstconc", name="pa", ports=spec),
        svc.attach(env.cid("pb"), pb, "pstconc", name="pb", ports=spec),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], Conflict), results
    assert "already allocated by p" in str(errors[0])
    dump = await iptables_dump()
    assert dump.count(f"--dport {port} -j DNAT") == 1
