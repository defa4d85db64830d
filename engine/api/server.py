"""Serving the API application: unix sockets with safe permissions, TCP with mutual TLS.

``ApiServer`` runs one aiohttp application on any number of listeners inside the current
event loop. A unix socket is bound under a temporary name, given its mode and group, then
renamed into place, so it is never reachable with looser permissions. Client disconnects
cancel their handler (a pull stops when ``docker pull`` is interrupted, as with dockerd).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from engine.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

# Seconds shutdown waits for handlers that are still answering.
_SHUTDOWN_GRACE = 10.0


class _AccessLogger(AbstractAccessLogger):
    """Method, path and status at debug level; never query strings or headers."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s -> %s (%.3fs)", request.method, request.path, response.status, time
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


def _bind_unix(path: Path, mode: int, gid: int | None) -> tuple[socket.socket, int]:
    """Bind a listening socket at ``path`` with ``mode``/``gid``; return it and its inode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        try:
            os.chmod(tmp, mode)
            if gid is not None:
                os.chown(tmp, -1, gid)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        sock.listen(128)
        sock.setblocking(False)
        return sock, os.stat(path).st_ino
    except BaseException:
        sock.close()
        raise


async def socket_answers(path: Path, timeout: float = 2.0) -> bool:
    """True when something accepts connections on the unix socket ``path``."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def claim_socket_path(path: Path) -> None:
    """Make ``path`` usable for a new socket: refuse a live one, remove a stale one."""

    def inspect() -> bool:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISSOCK(st.st_mode):
            raise InvalidArgument(
                f"{path} exists and is not a socket; remove it or choose another --socket"
            )
        return True

    if not await asyncio.to_thread(inspect):
        return
    if await socket_answers(path):
        raise Conflict(
            f"another engine is already listening on {path}; stop it or use another --socket"
        )
    log.info("removing stale socket %s", path)
    await asyncio.to_thread(_unlink_quietly, path)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ApiServer:
    """One API application served on unix sockets and/or TLS TCP ports."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log_class=_AccessLogger,
            access_log=logging.getLogger("portside.access"),
            shutdown_timeout=_SHUTDOWN_GRACE,
        )
        self._sockets: list[tuple[Path, int]] = []
        self._started = False

    async def start(self) -> None:
        await self._runner.setup()
        self._started = True

    async def listen_unix(self, path: Path, *, mode: int = 0o600, group: int | None = None) -> str:
        """Listen on ``path`` (parent created 0711 if missing); returns ``unix://PATH``."""

        def prepare() -> tuple[socket.socket, int]:
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, mode=0o711)
            return _bind_unix(path, mode, group)

        sock, inode = await asyncio.to_thread(prepare)
        site = web.SockSite(self._runner, sock)
        try:
            await site.start()
        except BaseException:
            sock.close()
            raise
        self._sockets.append((path, inode))
        return f"unix://{path}"

    async def listen_tcp(self, host: str, port: int, ssl_context: ssl.SSLContext) -> str:
        """Listen on ``host:port`` with TLS (the caller requires client certificates)."""
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        return f"tcp://{host}:{port}"

    async def stop(self) -> None:
        """Stop accepting, end open streams, wait for handlers, remove our sockets."""
        if self._started:
            self._started = False
            await self._runner.cleanup()

        def remove() -> None:
            for path, inode in self._sockets:
                with contextlib.suppress(OSError):
                    if os.stat(path).st_ino == inode:  # still ours, not a successor's
                        path.unlink()
            self._sockets.clear()

        await asyncio.to_thread(remove)


def server_ssl_context(cacert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context that requires client certificates signed by ``cacert``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(cafile=str(cacert))
    except (OSError, ssl.SSLError) as err:
        raise InvalidArgument(f"cannot load TLS files ({cacert}, {cert}, {key}): {err}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
