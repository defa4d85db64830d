"""Terminal sessions: the byte pipe between a terminal and a program.

`TerminalSession` is what a `Terminal` drives: start at a size, deliver output through
`on_output`, accept input with `write`, `resize`, pause/resume reading (back-pressure while
the screen catches up) and report the end through `on_closed`. Implementations: a local
shell on a PTY (`LocalSession`, here) and the Docker API ones in `docker_session`.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

from .pty import PtyProcess

OutputCallback = Callable[[bytes], None]
ClosedCallback = Callable[["TerminalSession"], None]


def _discard_output(data: bytes) -> None:
    """Default output sink until a terminal connects."""


def _discard_closed(session: TerminalSession) -> None:
    """Default end-of-session sink until a terminal connects."""


class TerminalSession(ABC):
    """One program's terminal I/O; output arrives through `on_output`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.on_output: OutputCallback = _discard_output
        self.on_closed: ClosedCallback = _discard_closed
        self.returncode: int | None = None
        """The program's exit status once it ended (None while running or unknown)."""
        self.detached = False
        """True when the session ended by detaching while the program runs on."""
        self.closed = False

    @abstractmethod
    async def start(self, columns: int, lines: int) -> None:
        """Start (or attach to) the program with a terminal of this size."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send input to the program without blocking; order is preserved."""

    @abstractmethod
    async def resize(self, columns: int, lines: int) -> None:
        """Tell the program its terminal has a new size."""

    @abstractmethod
    def pause_reading(self) -> None:
        """Stop taking output until `resume_reading` (the program blocks when it fills)."""

    @abstractmethod
    def resume_reading(self) -> None:
        """Take output again."""

    @abstractmethod
    async def close(self) -> None:
        """End the session (hang up a local program, close the stream of a remote one)."""

    def _finished(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed(self)


class LocalSession(TerminalSession):
    """A program (by default the user's shell) on a PTY of the machine running portside."""

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        title: str | None = None,
    ) -> None:
        argv = list(argv) if argv else [os.environ.get("SHELL") or "/bin/sh"]
        super().__init__(title or os.path.basename(argv[0]))
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.process: PtyProcess | None = None
        self._waiter: asyncio.Task[None] | None = None

    async def start(self, columns: int, lines: int) -> None:
        self.process = await PtyProcess.spawn(
            self.argv,
            columns=columns,
            lines=lines,
            env=self.env,
            cwd=self.cwd,
            on_output=lambda data: self.on_output(data),
        )
        self._waiter = asyncio.create_task(self._wait())

    async def _wait(self) -> None:
        assert self.process is not None
        self.returncode = await self.process.wait()
        self._finished()

    def write(self, data: bytes) -> None:
        if self.process is not None and not self.closed:
            self.process.write(data)

    async def resize(self, columns: int, lines: int) -> None:
        if self.process is not None and not self.closed:
            self.process.resize(columns, lines)

    def pause_reading(self) -> None:
        if self.process is not None:
            self.process.pause_reading()

    def resume_reading(self) -> None:
        if self.process is not None:
            self.process.resume_reading()

    async def close(self) -> None:
        if self.process is None:
            return
        await self.process.terminate()
        if self._waiter is not None:
            await self._waiter
