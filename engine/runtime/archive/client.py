"""The asyncio side of ``docker cp``: start the helper process and stream through it.

``View`` says what the helper must build (root file system, mounts, read-only root). Each
call starts one helper (``python -S -m engine.runtime.archive.helper``) and reads its JSON
control lines from a private pipe; file data goes through its stdin (``put``) or stdout
(``get``). The helper is killed if the caller goes away half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Forbidden, InvalidArgument, NotFound, PortsideError

_ERRORS: dict[str, type[PortsideError]] = {
    "notfound": NotFound,
    "invalid": InvalidArgument,
    "forbidden": Forbidden,
}
_CHUNK = 1 << 20


@dataclass
class View:
    """A container's file view: its root plus ``{"source", "destination", "ro"}`` mounts."""

    root: Path
    container: str  # the name the client used (dockerd's error messages quote it)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    ro_rootfs: bool = False


def _child_env() -> dict[str, str]:
    """``-S`` skips site (a faster start): hand the helper this process's import path."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    found = [p for p in sys.path if p and os.path.isdir(p)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*found, os.path.realpath(pkg_root)]))
    return env


class _Helper:
    """One running helper process."""

    def __init__(self, proc: asyncio.subprocess.Process, control: asyncio.StreamReader) -> None:
        self.proc = proc
        self.control = control
        assert proc.stderr is not None
        self._stderr = asyncio.ensure_future(proc.stderr.read())

    @classmethod
    async def start(cls, view: View, op: str, *, stdin: int | None, **extra: Any) -> _Helper:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        cfg = {
            "op": op,
            "root": str(view.root),
            "container": view.container,
            "mounts": view.mounts,
            "ro_rootfs": view.ro_rootfs,
            "control": wfd,
            "ppid": os.getpid(),
            **extra,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-S",
                "-P",
                "-m",
                "engine.runtime.archive.helper",
                json.dumps(cfg),
                stdin=stdin,
                stdout=asyncio.subprocess.PIPE if op == "get" else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(wfd,),
                cwd="/",
                env=_child_env(),
                limit=_CHUNK,
            )
            if proc.stdin is not None:
                proc.stdin.transport.set_write_buffer_limits(high=4 * _CHUNK)
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        pipe = open(rfd, "rb", buffering=0)  # noqa: SIM115 - the transport owns and closes it
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        helper = cls(proc, reader)
        helper._transport = transport
        return helper

    _transport: asyncio.ReadTransport

    async def message(self) -> dict[str, Any]:
        """The next control message; a failure becomes the matching engine error."""
        line = await self.control.readline()
        if not line:
            await self.proc.wait()
            tail = (await self._stderr).decode(errors="replace").strip().splitlines()
            detail = tail[-1] if tail else f"exit status {self.proc.returncode}"
            raise PortsideError(f"the copy helper failed: {detail}")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise _ERRORS.get(str(msg.get("kind")), PortsideError)(str(msg["error"]))
        return msg

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.shield(self.proc.wait())
        self._stderr.cancel()
        with contextlib.suppress(BaseException):
            await self._stderr
        self._transport.close()


async def stat_path(view: View, path: str) -> dict[str, Any]:
    """dockerd's ``ContainerStatPath`` (the ``X-Docker-Container-Path-Stat`` object)."""
    helper = await _Helper.start(view, "stat", stdin=asyncio.subprocess.DEVNULL, path=path)
    try:
        msg = await helper.message()
        await helper.message()  # done
        return dict(msg["stat"])
    finally:
        await helper.close()


@contextlib.asynccontextmanager
async def open_get(view: View, path: str) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """``(stat, chunks)``: the path's stat, then its tar stream as an async iterator."""
    helper = await _Helper.start(view, "get", stdin=asyncio.subprocess.DEVNULL, path=path)
    try:
        msg = await helper.message()

        async def chunks() -> AsyncIterator[bytes]:
            assert helper.proc.stdout is not None
            while chunk := await helper.proc.stdout.read(_CHUNK):
                yield chunk
            await helper.message()  # done, or the error that cut the stream short

        yield dict(msg["stat"]), chunks()
    finally:
        await helper.close()


async def put(
    view: View,
    path: str,
    chunks: AsyncIterator[bytes],
    *,
    no_overwrite_dir_non_dir: bool,
    owner: tuple[int, int] | None,
) -> None:
    """Extract the tar ``chunks`` under the directory ``path`` of the container."""
    helper = await _Helper.start(
        view,
        "put",
        stdin=asyncio.subprocess.PIPE,
        path=path,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        owner=list(owner) if owner else None,
    )
    stdin = helper.proc.stdin
    assert stdin is not None
    try:
        await helper.message()  # the destination checked out
        try:
            async for chunk in chunks:
                stdin.write(chunk)
                await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the helper stopped reading: its message says why
        await helper.message()
    finally:
        await helper.close()
