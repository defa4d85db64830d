"""The one entry point the dashboard and the CLI use to reach portside's own engine.

- ``embedded_engine(config)`` opens the engine inside the current event loop and serves
  its Docker Engine API on a private unix socket (in a 0700 temporary directory), yielding
  the ``unix://`` URL to hand to aiodocker; everything is shut down on exit.
- ``running_engine_socket()`` finds a live ``portside serve`` on the default socket.
- ``serve_main(argv)`` runs ``portside serve``.

This module is the only thing ``tui/`` imports from ``engine/``: it imports nothing heavy
at module level (the engine and aiohttp are loaded inside the functions) and never Textual.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import EngineConfig

_PING = b"GET /_ping HTTP/1.0\r\nHost: portside\r\n\r\n"
_PRIVATE_PREFIX = "portside-"
_PRIVATE_NAME = re.compile(r"portside-[a-z0-9_]{8}")
_LOCK_NAME = "engine.lock"
_PROBE_TIMEOUT = 1.0


@contextlib.asynccontextmanager
async def embedded_engine(
    config: EngineConfig | None = None, **overrides: object
) -> AsyncIterator[str]:
    """Run an engine and its API in this event loop; yield ``unix:///.../engine.sock``.

    Without ``config``, the engine config is loaded from the config file with
    ``overrides`` applied (``root=``, ``insecure_registries=[...]``, ...).
    """
    import asyncio

    # The engine's modules take a few hundred ms to import: in a thread, so a dashboard
    # sharing this loop keeps drawing meanwhile.
    await asyncio.to_thread(_import_engine)
    from engine.api.app import create_app
    from engine.api.server import ApiServer
    from engine.config import load_config
    from engine.engine import Engine

    if config is None:
        config = await asyncio.to_thread(load_config, None, **overrides)
    elif overrides:
        raise TypeError("give either an EngineConfig or keyword overrides, not both")
    base = os.environ.get("XDG_RUNTIME_DIR") or None
    if base is not None and not os.access(base, os.W_OK):
        base = None
    await asyncio.to_thread(sweep_private_dirs, Path(base or tempfile.gettempdir()))
    private = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=_PRIVATE_PREFIX, dir=base))
    lock_fd = await asyncio.to_thread(_hold_lock, private)
    try:
        engine = await Engine.open(config)
        try:
            server = ApiServer(create_app(engine))
            await server.start()
            try:
                yield await server.listen_unix(private / "engine.sock", mode=0o600)
            finally:
                await server.stop()
        finally:
            await engine.close()
    finally:
        await asyncio.to_thread(shutil.rmtree, private, True)
        os.close(lock_fd)


def _import_engine() -> None:
    import engine.api.app
    import engine.api.server
    import engine.config
    import engine.engine  # noqa: F401


def _hold_lock(private: Path) -> int:
    """Lock held for as long as this engine lives: a sweeper that can take it knows the
    directory's engine is gone (even after SIGKILL, which skips our cleanup)."""
    fd = os.open(private / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def sweep_private_dirs(base: Path) -> list[Path]:
    """Remove the private socket directories of embedded engines that died without cleaning
    up; returns what was removed. Only this user's ``portside-XXXXXXXX`` directories whose
    lock nobody holds (or, from before the lock existed, that hold nothing but a socket
    nobody answers on) are touched."""
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not _PRIVATE_NAME.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        path = Path(entry.path)
        if _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    try:
        fd = os.open(path / _LOCK_NAME, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        try:
            names = set(os.listdir(path))
        except OSError:
            return False
        sock = path / "engine.sock"
        return names <= {"engine.sock"} and (not names or not _answers_ping(str(sock)))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _answers_ping(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_PROBE_TIMEOUT)
        try:
            sock.connect(path)
            sock.sendall(_PING)
            reply = b""
            while len(reply) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            return False
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    status = head.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[1] == b"200" and b"\r\napi-version:" in head


def running_engine_socket() -> str | None:
    """``unix://<default socket>`` when a live ``portside serve`` answers there, else None.

    A quick blocking probe (a ``/_ping`` on a local unix socket, at most a second): call it
    before starting an event loop, or from a thread.
    """
    from engine.paths import default_socket

    path = default_socket()
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    return f"unix://{path}" if _answers_ping(str(path)) else None


def serve_main(argv: list[str] | None = None) -> int:
    """``portside serve``: run the engine daemon in the foreground; returns the exit code."""
    from engine.daemon import main

    return main(argv)
