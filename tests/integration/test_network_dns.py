"""Name resolution: the asyncio DNS responder on 127.0.0.1 with a real client socket, and the
embedded DNS of a user-defined network queried by busybox nslookup from inside namespaces
the test creates (the upstream is another responder on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.network.dns import DNSServer, parse_question
from engine.network.hosts import ResolvConf, hosts_content, resolv_conf_content
from engine.network.networks import NetworkService
from tests.integration.test_network_bridge import BUSYBOX, Env, host_chains, run

__all__ = ["host_chains"]  # the module-scoped cleanup of the networks' chains

NAMES = {"upstream.test": ["10.1.2.3"], "two.test": ["10.1.2.4", "10.1.2.5"]}


def query(name: str, qtype: int = 1) -> bytes:
    qid = secrets.randbits(16)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)


def answers(reply: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a reply whose answers use a name pointer (as ours do)."""
    rcode = reply[3] & 0xF
    q = parse_question(reply[:2] + b"\0\0" + reply[4:])
    ancount = struct.unpack_from(">H", reply, 6)[0]
    pos, out = q.end, []
    for _ in range(ancount):
        _, rtype, _, _, rdlen = struct.unpack_from(">HHHIH", reply, pos)
        pos += 12
        if rtype == 1:
            out.append(str(ipaddress.IPv4Address(reply[pos : pos + rdlen])))
        pos += rdlen
    return rcode, out


async def udp_ask(addr: tuple[str, int], msg: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, _addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=addr)
    try:
        transport.sendto(msg)
        return await asyncio.wait_for(got, 10)
    finally:
        transport.close()


async def tcp_ask(addr: tuple[str, int], msg: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(struct.pack(">H", len(msg)) + msg)
        await writer.drain()
        size = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
        return await asyncio.wait_for(reader.readexactly(size), 10)
    finally:
        writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, int]]:
    server = DNSServer(lambda name: NAMES.get(name, []))
    addr = await server.start("127.0.0.1", 0)
    try:
        yield addr
    finally:
        await server.close()


async def test_responder_answers_forwards_and_refuses(upstream: tuple[str, int]) -> None:
    local = {"web": ["172.30.0.2"], "db": ["172.30.0.3"]}
    server = DNSServer(lambda name: local.get(name, []), [upstream], allowed=["127.0.0.0/8"])
    addr = await server.start("127.0.0.1", 0)
    try:
        msg = query("WEB.")
        reply = await udp_ask(addr, msg)
        assert reply[:2] == msg[:2]
        assert answers(reply) == (0, ["172.30.0.2"])
        assert answers(await tcp_ask(addr, query("db"))) == (0, ["172.30.0.3"])
        # a known name asked for AAAA: no error, no address
        assert answers(await udp_ask(addr, query("web", 28))) == (0, [])
        # other names go upstream, over UDP and TCP alike
        assert answers(await udp_ask(addr, query("two.test"))) == (0, ["10.1.2.4", "10.1.2.5"])
        assert answers(await tcp_ask(addr, query("upstream.test"))) == (0, ["10.1.2.3"])
        # unknown everywhere: the upstream (which has no upstream) fails, and so do we
        assert answers(await udp_ask(addr, query("nowhere.test")))[0] == 2
        # garbage gets FORMERR
        garbage = b"\x12\x34" + b"\x01\x00\x00\x05" + b"\0" * 8
        reply = await udp_ask(addr, garbage)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0xF == 1
    finally:
        await server.close()

    only_ten = DNSServer(lambda name: local.get(name, []), allowed=["10.0.0.0/8"])
    addr = await only_ten.start("127.0.0.1", 0)
    try:
        with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
            await tcp_ask(addr, query("web"))  # 127.0.0.1 is outside: closed, no answer
    finally:
        await only_ten.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "root")
    try:
        yield e
    finally:
        await e.cleanup()


async def nslookup(ns_name: str, name: str, server: str) -> tuple[int, str]:
    return await run("ip", "netns", "exec", ns_name, BUSYBOX, "nslookup", name, server)


async def test_containers_resolve_each_other_on_a_user_network(
    env: Env, upstream: tuple[str, int]
) -> None:
    svc = NetworkService(env.root, default_bridge=env.bridge, dns_upstreams=[upstream])
    env.services.append(svc)
    await svc.create("pstdns")
    a_name, a_path = await env.ns("a")
    _, b_path = await env.ns("b")
    a = await svc.attach(env.cid("a"), a_path, "pstdns", name="alpha")
    b = await svc.attach(env.cid("b"), b_path, "pstdns", name="beta", aliases=["db"])
    assert a.dns == a.gateway and b.dns == b.gateway

    for name in ("beta", "db", "BETA", env.cid("b")[:12]):
        code, out = await nslookup(a_name, name, a.dns)
        assert code == 0 and b.ip in out, out
    code, out = await nslookup(a_name, "upstream.test", a.dns)
    assert code == 0 and "10.1.2.3" in out, out

    # the default bridge network has no embedded DNS
    _, c_path = await env.ns("c")
    c = await svc.attach(env.cid("c"), c_path, "bridge")
    assert c.dns == ""

    # the runtime's files for alpha: resolv.conf names the responder, hosts names the peers
    resolv = resolv_conf_content(ResolvConf(["127.0.0.53"], ["corp"]), dns=[a.dns])
    assert resolv == f"nameserver {a.gateway}\nsearch corp\n"
    hosts = hosts_content(hostname="alpha", ips=[a.ip], peers=svc.peers("pstdns", env.cid("a")))
    assert f"{b.ip}\tbeta db {env.cid('b')[:12]}\n" in hosts

    await svc.detach(env.cid("b"), "pstdns")
    code, out = await nslookup(a_name, "beta", a.dns)
    assert code != 0, out  # gone locally, and the upstream does not know it
    await svc.detach(env.cid("a"), "pstdns")
    assert svc.dns is not None and svc.dns.nameserver(a.network_id) == ""
