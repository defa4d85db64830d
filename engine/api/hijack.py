"""Hijacked connections: docker's attach and exec streams over the raw HTTP connection.

``hijack(request, tty=...)`` answers with dockerd's exact preamble (``101 UPGRADED`` when the
client asked for ``Upgrade: tcp``, else ``200 OK``), takes the socket over from aiohttp and
returns a ``Hijacked`` connection. Its protocol keeps the socket open when the client
half-closes (EOF on stdin must not cut the output), and ``pump`` runs one session: client
bytes to the attachment's stdin, the process's output back (8-byte multiplexed frames without
a TTY, raw bytes with one), until the process exits, the client detaches or disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import sys
import termios
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.base import compare_versions
from engine.api.streams import SHUTDOWN

if TYPE_CHECKING:
    from engine.runtime.attach import Attachment

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
_FRAME = struct.Struct(">BxxxL")
_STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
_HIGH_WATER = 1 << 20
_PREAMBLE_WAIT = 0.5  # seconds the first output waits for the client to read the headers
_EXIT_GRACE = 10.0  # seconds an exec's exit code may take to be recorded


def stream_content_type(request: web.Request, tty: bool) -> str:
    """The content type dockerd gives a stream: raw with a TTY, multiplexed (API >= 1.42)."""
    version = request.match_info.get("version")
    if tty or (version is not None and compare_versions(version, "1.42") < 0):
        return RAW_STREAM
    return MULTIPLEXED_STREAM


def frame(kind: str, data: bytes) -> bytes:
    """One multiplexed frame: ``[stream, 0, 0, 0, size]`` then the payload."""
    return _FRAME.pack(_STREAM_IDS.get(kind, 1), len(data)) + data


def wants_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and bool(request.headers.get("Upgrade"))


class _Protocol(asyncio.Protocol):
    """The socket's protocol after the hijack: buffers input, remembers EOF and loss."""

    def __init__(self, tail: bytes) -> None:
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        if tail:
            self.chunks.put_nowait(tail)
        self.eof = False
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.previous: asyncio.BaseProtocol | None = None

    def data_received(self, data: bytes) -> None:
        self.chunks.put_nowait(data)

    def eof_received(self) -> bool:
        self.eof = True
        self.chunks.put_nowait(None)
        return True  # keep the socket open: output continues after the client's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.chunks.put_nowait(None)
        self.lost.set()
        self._writable.set()
        if self.previous is not None:  # let aiohttp forget the connection
            with contextlib.suppress(Exception):
                self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()


class Hijacked:
    """The client's connection after the preamble."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol

    async def read(self) -> bytes:
        """The next bytes from the client; b"" at EOF or when the connection is gone."""
        if self.protocol.lost.is_set() and self.protocol.chunks.empty():
            return b""
        data = await self.protocol.chunks.get()
        return data or b""

    @property
    def lost(self) -> bool:
        return self.protocol.lost.is_set()

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        await self.protocol._writable.wait()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    async def preamble_read(self, timeout: float = _PREAMBLE_WAIT) -> None:
        """Wait (briefly) until the client has read what was sent so far.

        Clients that read the ``101`` through a buffered reader and then switch to the raw
        socket (docker-py) lose stream bytes that arrived together with the headers, so the
        first output waits until the socket's send queue is empty (``SIOCOUTQ``: on a unix
        socket, bytes the peer has not read yet).
        """
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        buf = bytearray(4)
        while asyncio.get_running_loop().time() < deadline and not self.lost:
            try:
                fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
            except OSError:
                return
            if (
                int.from_bytes(buf, sys.byteorder) == 0
                and not self.transport.get_write_buffer_size()
            ):
                return
            await asyncio.sleep(0.002)


async def hijack(request: web.Request, *, tty: bool) -> Hijacked:
    """Send the stream preamble and take the connection over from aiohttp."""
    content_type = stream_content_type(request, tty)
    if wants_upgrade(request):
        preamble = (
            "HTTP/1.1 101 UPGRADED\r\n"
            f"Content-Type: {content_type}\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: tcp\r\n\r\n"
        )
    else:
        preamble = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
    transport = request.transport
    old: Any = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away before the stream started")
    tail = bytes(getattr(old, "_message_tail", b"") or b"")
    with contextlib.suppress(AttributeError):
        old._message_tail = b""
    protocol = _Protocol(tail)
    protocol.previous = old
    transport.set_protocol(protocol)
    transport.set_write_buffer_limits(high=_HIGH_WATER)
    transport.write(preamble.encode())
    with contextlib.suppress(Exception):
        transport.resume_reading()
    return Hijacked(transport, protocol)


async def pump(
    request: web.Request,
    conn: Hijacked,
    att: Attachment,
    *,
    tty: bool,
    before_close: Awaitable[Any] | None = None,
) -> None:
    """Run one attach session on ``conn`` until the output ends (exit, detach, disconnect).

    ``before_close`` (an exec's exit being recorded) is awaited, briefly, before the
    connection closes, so a client that asks for the exit code next finds it.
    """

    async def output() -> None:
        await conn.preamble_read()
        async for kind, data in att.output():
            if not data:
                continue
            await conn.write(data if tty else frame(kind, data))

    async def feed_stdin() -> None:
        while True:
            data = await conn.read()
            if not data:
                break
            await att.write(data)
            if att.detached:
                return
        if conn.lost:
            att.close()  # the client is gone: end the session
            return
        await att.close_stdin()  # half-close: output goes on

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(feed_stdin())
    stop = asyncio.ensure_future(request.app[SHUTDOWN].wait())
    lost = asyncio.ensure_future(conn.protocol.lost.wait())
    try:
        await asyncio.wait({out_task, stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        if not out_task.done():
            att.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(out_task), 2.0)
        elif before_close is not None and att.exit is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(before_close, _EXIT_GRACE)
            before_close = None
    finally:
        if before_close is not None and asyncio.iscoroutine(before_close):
            before_close.close()
        for task in (in_task, stop, lost, out_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(in_task, stop, lost, out_task, return_exceptions=True)
        att.close()
        conn.close()


def finished_response() -> web.StreamResponse:
    """What a hijacking handler returns: aiohttp's own reply finds the socket closed."""
    return web.StreamResponse(status=200)
