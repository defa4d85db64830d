"""A program on a new pseudo-terminal, driven from asyncio without blocking the loop.

The child gets the PTY as stdin/stdout/stderr and as its controlling terminal in a new
session, the size before it starts, and the caller's environment with `TERM=xterm-256color`
and `COLORTERM=truecolor`. The master side is non-blocking: output is read in the loop's
reader callback (until EAGAIN or a byte budget), input is written with a queue for partial
writes. `TIOCSWINSZ` resizes it (the kernel sends SIGWINCH).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Callable, Mapping, Sequence

from .errors import TerminalError

_READ_SIZE = 1 << 16
_READ_BUDGET = 1 << 18
_TIOCSCTTY = termios.TIOCSCTTY


def _take_terminal() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, _TIOCSCTTY, 0)


def set_size(fd: int, columns: int, lines: int) -> None:
    """Set a terminal's window size."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))


def terminal_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a program in the terminal."""
    env = dict(os.environ if base is None else base)
    env["TERM"] = "xterm-256color"
    env["COLORTERM"] = "truecolor"
    for name in ("LINES", "COLUMNS", "TEXTUAL", "TEXTUAL_DRIVER"):
        env.pop(name, None)
    return env


class PtyProcess:
    """A child process on a PTY; output goes to `on_output` as it arrives."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        master: int,
        on_output: Callable[[bytes], None],
    ) -> None:
        self.process = process
        self.master = master
        self.on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._outbox = bytearray()
        self._reading = False
        self._eof = asyncio.Event()
        self._closed = False
        self.resume_reading()

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        columns: int,
        lines: int,
        on_output: Callable[[bytes], None],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> PtyProcess:
        """Start `argv` on a new PTY of the given size."""
        if not argv:
            raise TerminalError("no command given for the terminal")
        master, slave = os.openpty()
        try:
            set_size(slave, columns, lines)
            os.set_blocking(master, False)
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=terminal_env(env),
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_take_terminal,
                )
            except FileNotFoundError:
                raise TerminalError(
                    f"cannot start {argv[0]!r}: no such program; give a command on the PATH"
                ) from None
            except PermissionError:
                raise TerminalError(
                    f"cannot start {argv[0]!r}: permission denied; check it is executable"
                ) from None
            except OSError as error:
                raise TerminalError(f"cannot start {argv[0]!r}: {error.strerror}") from None
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(process, master, on_output)

    @property
    def pid(self) -> int:
        return self.process.pid

    # -- output ------------------------------------------------------------------------

    def _readable(self) -> None:
        chunks: list[bytes] = []
        total = 0
        eof = False
        while total < _READ_BUDGET:
            try:
                data = os.read(self.master, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError:  # EIO: every slave end is closed, the program is gone
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            total += len(data)
        if chunks:
            self.on_output(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if eof:
            self.pause_reading()
            self._eof.set()

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.master)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and not self._closed and not self._eof.is_set():
            self._loop.add_reader(self.master, self._readable)
            self._reading = True

    # -- input -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue input for the program; never blocks."""
        if self._closed or not data:
            return
        if self._outbox:
            self._outbox += data
            return
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            written = 0
        except OSError:
            return  # the program has gone; its exit is reported by wait()
        if written < len(data):
            self._outbox += data[written:]
            self._loop.add_writer(self.master, self._writable)

    def _writable(self) -> None:
        try:
            written = os.write(self.master, self._outbox)
        except BlockingIOError:
            return
        except OSError:
            written = len(self._outbox)
        del self._outbox[:written]
        if not self._outbox:
            self._loop.remove_writer(self.master)

    def resize(self, columns: int, lines: int) -> None:
        if not self._closed:
            set_size(self.master, columns, lines)

    # -- end ---------------------------------------------------------------------------

    async def wait(self) -> int:
        """Wait for the program to end and its output to be read; returns its status."""
        code = await self.process.wait()
        # Output written just before exit is still in the PTY: read it before closing.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._eof.wait(), 2.0)
        self._close()
        return code

    async def terminate(self) -> None:
        """Hang up: SIGHUP to the program's session, SIGKILL if it lingers."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(self.process.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        self._eof.set()
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self.pause_reading()
        if self._outbox:
            self._loop.remove_writer(self.master)
            self._outbox.clear()
        self._closed = True
        os.close(self.master)
