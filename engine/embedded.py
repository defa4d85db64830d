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
import os
import socket
import stat
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import EngineConfig

_PING = b"GET /_ping HTTP/1.0\r\nHost: portside\r\n\r\n"
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
    import shutil
    import tempfile
    from pathlib import Path

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
    private = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="portside-", dir=base))
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
