"""Attach sessions as the API layer sees them: output chunks, stdin with docker's detach
keys (``ctrl-p,ctrl-q`` by default), resize, and the exit status at the end.

An ``Attachment`` may be created before its container starts: it connects when the
container's monitor exists (before the process runs, so no output is missed) and buffers
stdin written until then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from engine.errors import InvalidArgument
from engine.runtime.monitorclient import AttachStream

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` -> b"\\x10\\x11"; "" -> the default."""
    text = DEFAULT_DETACH_KEYS if text is None or text == "" else text
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c])
            else:
                raise InvalidArgument(f"invalid detach key {key!r}")
        else:
            raise InvalidArgument(
                f"invalid detach keys {text!r}: use a comma-separated list like ctrl-p,ctrl-q"
            )
    return bytes(out)


class Attachment:
    """One client attached to a container or exec process."""

    def __init__(
        self,
        *,
        stdin: bool,
        detach_keys: bytes,
        stdout: bool = True,
        stderr: bool = True,
        replay: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.detach_keys = detach_keys
        self._stream: asyncio.Future[AttachStream | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._replay = list(replay or [])
        self._matched = b""
        self._pending_stdin: list[bytes] = []
        self._stdin_eof = False
        self.detached = False
        self.closed = False
        self.exit: dict[str, Any] | None = None

    # -- wiring (by the container service) -----------------------------------------------
    def connected(self, stream: AttachStream | None) -> None:
        if not self._stream.done():
            self._stream.set_result(stream)

    def failed(self, err: BaseException) -> None:
        if not self._stream.done():
            self._stream.set_exception(err)

    async def _get(self) -> AttachStream | None:
        return await self._stream

    async def flush_pending(self) -> None:
        stream = await self._get()
        if stream is None:
            return
        for chunk in self._pending_stdin:
            await stream.write(chunk)
        self._pending_stdin.clear()
        if self._stdin_eof:
            await stream.close_stdin()

    # -- API side ---------------------------------------------------------------------------
    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """(stream, data) until the process exits, the client detaches or closes."""
        for item in self._replay:
            yield item
        self._replay.clear()
        stream = await self._get()
        if stream is None:
            return
        while not self.detached and not self.closed:
            item = await stream.read()
            if item is None:
                self.exit = stream.exit
                return
            yield item

    async def write(self, data: bytes) -> None:
        """Client stdin; watches for the detach key sequence."""
        if not self.stdin or self.detached or self.closed or not data:
            return
        out = bytearray()
        keys = self.detach_keys
        for b in data:
            if keys:
                candidate = self._matched + bytes([b])
                if keys.startswith(candidate):
                    self._matched = candidate
                    if candidate == keys:
                        self._matched = b""
                        self.detached = True
                        break
                    continue
                out += self._matched
                self._matched = b""
                if keys.startswith(bytes([b])):
                    self._matched = bytes([b])
                    continue
            out.append(b)
        if out:
            if not self._stream.done():
                self._pending_stdin.append(bytes(out))
            else:
                stream = self._stream.result()
                if stream is not None:
                    with contextlib.suppress(OSError, ConnectionError):
                        await stream.write(bytes(out))
        if self.detached:
            self.close()

    async def close_stdin(self) -> None:
        if not self.stdin:
            return
        if not self._stream.done():
            self._stdin_eof = True
            return
        stream = self._stream.result()
        if stream is not None:
            await stream.close_stdin()

    async def resize(self, height: int, width: int) -> None:
        stream = await self._get()
        if stream is not None:
            await stream.resize(height, width)

    def close(self) -> None:
        self.closed = True
        if self._stream.done() and not self._stream.cancelled():
            with contextlib.suppress(BaseException):
                stream = self._stream.result()
                if stream is not None:
                    stream.close()
        elif not self._stream.done():
            self._stream.set_result(None)
