"""The client side of an attached session (``run -it``, ``attach``, ``exec -it``).

``raw_terminal()`` puts the local terminal in raw mode (so ctrl-c reaches the container)
and restores it afterwards; ``stdin_chunks()`` reads stdin without blocking the event loop;
``DetachKeys`` spots docker's detach sequence (``ctrl-p,ctrl-q`` by default) in typed input;
``watch_resize()`` sends the terminal size at once and again on every SIGWINCH;
``pump_session()`` copies stdin to a hijacked aiodocker stream and its output to stdout and
stderr, half-closing the stream at stdin's EOF so the output still arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

_CHUNK = 65536
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


class DetachKeyError(ValueError):
    """The --detach-keys value is not a docker key sequence."""


def parse_detach_keys(text: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` -> ``b"\\x10\\x11"`` (docker's syntax)."""
    text = text or DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        if key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            if c in _CTRL_SPECIAL:
                out.append(_CTRL_SPECIAL[c])
                continue
        raise DetachKeyError(
            f"invalid detach keys {text!r}: use a comma-separated list like ctrl-p,ctrl-q"
        )
    return bytes(out)


class DetachKeys:
    """Filters typed input: passes bytes on, holds a partial match, reports a full one."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            candidate = self._held + bytes([b])
            if self.keys and self.keys.startswith(candidate):
                self._held = candidate
                if candidate == self.keys:
                    self.detached = True
                    self._held = b""
                    return bytes(out)
                continue
            out += self._held
            self._held = b""
            if self.keys and self.keys.startswith(bytes([b])):
                self._held = bytes([b])
            else:
                out.append(b)
        return bytes(out)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on ``fd`` when it is a terminal, restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    if size.lines <= 0 or size.columns <= 0:
        return None
    return size.lines, size.columns


async def stdin_chunks(fd: int) -> AsyncIterator[bytes]:
    """What arrives on ``fd`` until EOF; pipes and terminals through the event loop, regular
    files (which never block) in a thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
        queue.put_nowait(data)

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, ValueError, OSError):
        while data := await asyncio.to_thread(os.read, fd, _CHUNK):
            yield data
        return
    try:
        while data := await queue.get():
            yield data
    finally:
        loop.remove_reader(fd)


@contextlib.asynccontextmanager
async def watch_resize(
    resize: Callable[[int, int], Awaitable[Any]], fd: int
) -> AsyncIterator[None]:
    """Send the size of the terminal on ``fd`` now and on every SIGWINCH."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    async def send() -> None:
        size = terminal_size(fd)
        if size is not None:
            with contextlib.suppress(Exception):
                await resize(*size)

    def on_winch() -> None:
        task = loop.create_task(send())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await send()
    loop.add_signal_handler(signal.SIGWINCH, on_winch)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        for task in list(tasks):
            task.cancel()


def half_close(stream: Any) -> None:
    """EOF on the hijacked stream's write side; its read side stays open (docker's
    CloseWrite)."""
    resp = getattr(stream, "_resp", None)
    conn = getattr(resp, "connection", None)
    transport = getattr(conn, "transport", None)
    if transport is not None and transport.can_write_eof() and not transport.is_closing():
        transport.write_eof()


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]


async def pump_session(
    stream: Any,
    *,
    stdin: bool,
    detach_keys: bytes | None,
    stdout_fd: int | None = None,
    stderr_fd: int | None = None,
    stdin_fd: int | None = None,
) -> bool:
    """Copy stdin to ``stream`` and its output to stdout/stderr until the output ends.

    Returns True when the user typed the detach keys (the process goes on running).
    """
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    err_fd = sys.stderr.fileno() if stderr_fd is None else stderr_fd
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    keys = DetachKeys(detach_keys) if detach_keys else None

    async def feed() -> bool:
        async for data in stdin_chunks(in_fd):
            if keys is not None:
                data = keys.feed(data)
                if data:
                    await stream.write_in(data)
                if keys.detached:
                    return True
            else:
                await stream.write_in(data)
        half_close(stream)
        return False

    async def output() -> None:
        while True:
            msg = await stream.read_out()
            if msg is None:
                return
            _write(err_fd if msg.stream == 2 else out_fd, msg.data)

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(feed()) if stdin else None
    try:
        waiting: set[asyncio.Future[Any]] = {out_task}
        if in_task is not None:
            waiting.add(in_task)
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if out_task in done:
                out_task.result()
                return False
            if in_task is not None and in_task in done:
                waiting.discard(in_task)
                if in_task.result():
                    return True
    finally:
        for task in (out_task, in_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
