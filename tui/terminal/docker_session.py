"""Docker Engine API sessions: attach to a container's TTY, or exec a program with a TTY.

Both run over aiodocker's hijacked streams, so they work against any engine that speaks the
API (the embedded one, dockerd, podman's service). Input is queued and written in order by
one task; output is read by another, which waits while the terminal asks for a pause (the
engine then stops sending, as with a PTY). Resizes go through the API (`/resize`). Docker's
detach keys (default ctrl-p,ctrl-q) end an attach without stopping the container; the
session then reports `detached`. No Textual import.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError
from aiodocker.stream import Stream

from .errors import TerminalError
from .session import TerminalSession

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_SETTLE_TRIES = 20


def detach_sequence(keys: str) -> bytes:
    """Docker's detach-keys notation ("ctrl-p,ctrl-q", "a,ctrl-@") as the bytes typed."""
    out = bytearray()
    for key in keys.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            char = key[5]
            if char == "@":
                out.append(0)
            elif char.isalpha():
                out.append(ord(char.lower()) - 96)
            elif char in "[\\]^_":
                out.append(ord(char) - 64)
            else:
                raise TerminalError(f"invalid detach key {key!r}; use e.g. ctrl-p,ctrl-q")
        elif len(key) == 1:
            out += key.encode()
        else:
            raise TerminalError(f"invalid detach key {key!r}; use e.g. ctrl-p,ctrl-q")
    return bytes(out)


def _message(error: DockerError) -> str:
    message = error.message if isinstance(error.message, str) else str(error.message)
    return message.strip().splitlines()[0] if message.strip() else f"HTTP {error.status}"


class _StreamSession(TerminalSession):
    """What attach and exec share: the stream, the reader and writer tasks, the end."""

    def __init__(self, docker: aiodocker.Docker, container: str, title: str) -> None:
        super().__init__(title)
        self.docker = docker
        self.container_id = container
        self.error: str | None = None
        """Why the stream broke, when it did not end normally."""
        self._stream: Stream | None = None
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._reading = asyncio.Event()
        self._reading.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._detach_bytes = b""
        self._typed = bytearray()
        self._closing = False
        self._size = (0, 0)
        """The latest size asked for (columns, lines)."""
        self._sized = False
        """True once the first resize went through (or was given up)."""

    async def _open(self) -> Stream:
        raise NotImplementedError

    async def _state(self) -> tuple[bool, int | None]:
        """(still running, exit code) of what the session is attached to."""
        raise NotImplementedError

    async def start(self, columns: int, lines: int) -> None:
        self._size = (columns, lines)
        try:
            stream = await self._open()
            await stream.__aenter__()
        except DockerError as error:
            raise TerminalError(f"cannot open {self.title}: {_message(error)}") from None
        except (aiohttp.ClientError, OSError) as error:
            raise TerminalError(f"cannot reach the engine for {self.title}: {error}") from None
        self._stream = stream
        self._tasks = [
            asyncio.create_task(self._read(stream)),
            asyncio.create_task(self._write(stream)),
            asyncio.create_task(self._first_resize()),
        ]

    async def _first_resize(self) -> None:
        """Size the new TTY; the engine may refuse until the process exists, so retry, always
        with the latest size (a resize asked for meanwhile must not be undone)."""
        applied: tuple[int, int] | None = None
        attempts = 0
        try:
            while applied != self._size and attempts < 20:
                size = self._size
                attempts += 1
                try:
                    await self._resize(*size)
                except (DockerError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.1)
                    continue
                applied = size
        finally:
            self._sized = True

    async def _resize(self, columns: int, lines: int) -> None:
        raise NotImplementedError

    async def resize(self, columns: int, lines: int) -> None:
        if self.closed:
            return
        self._size = (columns, lines)
        if not self._sized:
            return  # the first resize, still retrying, applies the latest size
        with contextlib.suppress(DockerError, aiohttp.ClientError, OSError):
            await self._resize(columns, lines)

    async def _read(self, stream: Stream) -> None:
        try:
            while True:
                await self._reading.wait()
                message = await stream.read_out()
                if message is None:
                    break
                self.on_output(message.data)
        except (aiohttp.ClientError, DockerError, OSError) as error:
            self.error = str(error)
        await self._ended()

    async def _write(self, stream: Stream) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
            while True:
                data = await self._inbox.get()
                await stream.write_in(data)

    async def _ended(self) -> None:
        expect_detach = self._closing or (
            bool(self._detach_bytes) and self._typed.endswith(self._detach_bytes)
        )
        running, code = True, None
        try:
            # The engine may report the end a moment after the stream closed.
            for _ in range(1 if expect_detach else _SETTLE_TRIES):
                running, code = await self._state()
                if not running:
                    break
                await asyncio.sleep(0.1)
        except (DockerError, aiohttp.ClientError, OSError, RuntimeError):
            running = False  # RuntimeError: the client was closed under us
        self.returncode = None if running else code
        self.detached = running
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._stream is not None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self._stream.close()
        self._finished()

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self._detach_bytes:
            self._typed += data
            del self._typed[: -len(self._detach_bytes)]
        self._inbox.put_nowait(data)

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def close(self) -> None:
        if self._stream is None:
            return
        self._closing = True
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self._stream.close()
        self._reading.set()
        reader = self._tasks[0] if self._tasks else None
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader


class DockerAttachSession(_StreamSession):
    """The TTY of a running container (created with a TTY and open stdin)."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        container: str,
        *,
        detach_keys: str = DEFAULT_DETACH_KEYS,
        title: str | None = None,
    ) -> None:
        super().__init__(docker, container, title or f"attach {container}")
        self.detach_keys = detach_keys
        self._detach_bytes = detach_sequence(detach_keys) if detach_keys else b""
        self._container: Any = None

    async def _open(self) -> Stream:
        try:
            container = await self.docker.containers.get(self.container_id)
        except DockerError as error:
            raise TerminalError(
                f"cannot attach to {self.container_id}: {_message(error)}"
            ) from None
        state = container["State"]
        config = container["Config"]
        if not state.get("Running"):
            raise TerminalError(f"cannot attach to {self.container_id}: it is not running")
        if not config.get("Tty") or not config.get("OpenStdin"):
            raise TerminalError(
                f"cannot attach to {self.container_id}: it has no terminal; "
                "start it with a TTY and open stdin (docker run -it) or use exec"
            )
        self._container = container
        return container.attach(
            stdin=True, stdout=True, stderr=True, detach_keys=self.detach_keys or None
        )

    async def _resize(self, columns: int, lines: int) -> None:
        if self._container is not None:
            await self._container.resize(h=lines, w=columns)

    async def _state(self) -> tuple[bool, int | None]:
        info = await self._container.show()
        state = info["State"]
        return bool(state.get("Running")), state.get("ExitCode")


class DockerExecSession(_StreamSession):
    """A program (a shell by default) started in a running container with a TTY."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        container: str,
        command: Sequence[str] = ("/bin/sh",),
        *,
        user: str = "",
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        detach_keys: str = DEFAULT_DETACH_KEYS,
        title: str | None = None,
    ) -> None:
        if not command:
            raise TerminalError("no command given for exec; give e.g. /bin/sh")
        super().__init__(docker, container, title or f"{' '.join(command)} in {container}")
        self.command = list(command)
        self.user = user
        self.workdir = workdir
        self.env = {"TERM": "xterm-256color", "COLORTERM": "truecolor", **(env or {})}
        self.detach_keys = detach_keys
        self._detach_bytes = detach_sequence(detach_keys) if detach_keys else b""
        self._exec: Any = None

    async def _open(self) -> Stream:
        try:
            container = await self.docker.containers.get(self.container_id)
            self._exec = await container.exec(
                self.command,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=True,
                user=self.user,
                environment=self.env,
                workdir=self.workdir,
                detach_keys=self.detach_keys or None,
            )
        except DockerError as error:
            raise TerminalError(
                f"cannot exec {self.command[0]} in {self.container_id}: {_message(error)}"
            ) from None
        return self._exec.start(detach=False)

    async def _resize(self, columns: int, lines: int) -> None:
        if self._exec is not None:
            await self._exec.resize(h=lines, w=columns)

    async def _state(self) -> tuple[bool, int | None]:
        info = await self._exec.inspect()
        return bool(info.get("Running")), info.get("ExitCode")
