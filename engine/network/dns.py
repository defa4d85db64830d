"""A small asyncio DNS responder for one user-defined network (docker's embedded DNS).

It listens (UDP and TCP) on the network's gateway address, answers A queries for the names
of the network's containers (name, ``--network-alias``, short id) from a lookup callable,
and forwards every other query to the host's upstream nameservers. Only clients inside the
network's subnet are answered. Containers get ``nameserver <gateway>`` in resolv.conf; their
/etc/hosts still names their peers, so resolution keeps working while the engine is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
TTL = 600
MAX_UDP = 4096
FORWARD_TIMEOUT = 2.0
MAX_FORWARDS = 64

Lookup = Callable[[str], Sequence[str]]


class DNSFormatError(ValueError):
    """A query that is not a well-formed single-question DNS message."""


@dataclass(frozen=True)
class Question:
    """The one question of a query: lower-cased name without the final dot, type, class."""

    name: str
    qtype: int
    qclass: int
    end: int  # offset just after the question in the message


def parse_question(msg: bytes) -> Question:
    """The question of a standard query (QR=0, opcode 0, QDCOUNT=1); DNSFormatError if not."""
    if len(msg) < 12:
        raise DNSFormatError("short header")
    flags, qdcount = struct.unpack_from(">HH", msg, 2)
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount != 1:
        raise DNSFormatError("not a single-question standard query")
    pos, labels = 12, []
    while True:
        if pos >= len(msg):
            raise DNSFormatError("truncated name")
        length = msg[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(msg):
            raise DNSFormatError("bad label")
        labels.append(msg[pos : pos + length].decode("ascii", "replace").lower())
        pos += length
        if pos > 12 + 255:
            raise DNSFormatError("name too long")
    if pos + 4 > len(msg):
        raise DNSFormatError("truncated question")
    qtype, qclass = struct.unpack_from(">HH", msg, pos)
    return Question(".".join(labels), qtype, qclass, pos + 4)


def build_reply(query: bytes, q: Question, addresses: Sequence[str], rcode: int = 0) -> bytes:
    """An authoritative answer to ``query`` with one A record per IPv4 address."""
    (qid, flags) = struct.unpack_from(">HH", query, 0)
    rd = flags & 0x0100
    answers = [a for a in addresses if ":" not in a] if q.qtype == TYPE_A else []
    out = bytearray(
        struct.pack(">HHHHHH", qid, 0x8400 | rd | 0x0080 | rcode, 1, len(answers), 0, 0)
    )
    out += query[12 : q.end]
    for addr in answers:
        out += struct.pack(">HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4)
        out += ipaddress.IPv4Address(addr).packed
    return bytes(out)


def error_reply(query: bytes, rcode: int) -> bytes:
    """A header-only reply carrying ``rcode`` (for queries we cannot or will not parse)."""
    qid = struct.unpack_from(">H", query, 0)[0] if len(query) >= 2 else 0
    return struct.pack(">HHHHHH", qid, 0x8080 | rcode, 0, 0, 0, 0)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.server.allowed(addr[0]):
            return
        self.server._spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.server.answer(data)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class DNSServer:
    """The responder of one network: ``lookup(name)`` gives the local addresses of a name."""

    def __init__(
        self,
        lookup: Lookup,
        upstreams: Sequence[str | tuple[str, int]] = (),
        allowed: Sequence[str] = (),
    ) -> None:
        self.lookup = lookup
        self.upstreams = [u if isinstance(u, tuple) else (u, 53) for u in upstreams]
        self.allowed_nets = [ipaddress.ip_network(n, strict=False) for n in allowed]
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwards = asyncio.Semaphore(MAX_FORWARDS)
        self.address: tuple[str, int] = ("", 0)

    def allowed(self, ip: str) -> bool:
        """Whether a client address may ask (any, when no networks were given)."""
        if not self.allowed_nets:
            return True
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(ip)
            return any(addr in n for n in self.allowed_nets)
        return False

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int = 53) -> tuple[str, int]:
        """Listen on ``host:port`` (UDP and TCP; port 0 = any); the address bound."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self), local_addr=(host, port), reuse_port=False
        )
        self._udp = transport
        bound = transport.get_extra_info("sockname")[:2]
        try:
            self._tcp = await asyncio.start_server(self._tcp_client, host, bound[1])
        except OSError:
            transport.close()
            raise
        self.address = (bound[0], bound[1])
        return self.address

    async def close(self) -> None:
        """Stop listening and cancel queries in flight."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def answer(self, query: bytes) -> bytes | None:
        """The reply to one query: local names answered, others forwarded upstream."""
        try:
            q = parse_question(query)
        except DNSFormatError:
            return error_reply(query, RCODE_FORMERR) if len(query) >= 12 else None
        if q.qclass == CLASS_IN:
            local = list(self.lookup(q.name))
            if local:
                return build_reply(query, q, local)
        forwarded = await self._forward(query)
        return forwarded or build_reply(query, q, [], RCODE_SERVFAIL)

    async def _forward(self, query: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        async with self._forwards:
            for host, port in self.upstreams:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    try:
                        await loop.sock_connect(sock, (host, port))
                        await loop.sock_sendall(sock, query)
                        reply = await asyncio.wait_for(
                            loop.sock_recv(sock, MAX_UDP), FORWARD_TIMEOUT
                        )
                    except (OSError, TimeoutError):
                        continue
                if len(reply) >= 12 and reply[:2] == query[:2]:
                    return reply
        return None

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            if not peer or not self.allowed(peer[0]):
                return
            while True:
                try:
                    size = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
                    query = await asyncio.wait_for(reader.readexactly(size), 10)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = await self.answer(query)
                if reply is None:
                    return
                writer.write(struct.pack(">H", len(reply)) + reply)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
