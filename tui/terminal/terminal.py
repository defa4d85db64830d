"""A running terminal: one session feeding one core, with batched, bounded feeding.

Output is gathered for about one frame and fed in one call (fewer Python steps per byte);
a large backlog is fed in pieces of `slice_bytes` for at most `step_budget` seconds per
turn, so the event loop (and the dashboard's frames, and other sessions) get a turn between
steps whatever the content costs to parse; past `high_water` pending bytes the
session stops reading, so a flooding program blocks on its PTY instead of filling memory.
Nothing is dropped. The program's replies (DSR, DA ...) go straight back to the session.
When the program ends with a backlog, it is still fed in those steps, and the exit is
reported (`exited`, `on_exit`) once all of it is on screen.

Listeners (a widget) are told which screen rows changed after each feed; a `Terminal`
keeps running with no listener, so a hidden session stays current. No Textual import.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .core import TerminalCore, TerminalScreen
from .session import TerminalSession

_log = logging.getLogger(__name__)

ChangeListener = Callable[[set[int]], None]
"""Called with the rows that changed (an empty set: only the cursor, title or modes)."""

_SYNC_TIMEOUT = 1.0


class Terminal:
    """Binds a `TerminalSession` to a `TerminalCore`."""

    def __init__(
        self,
        session: TerminalSession,
        columns: int = 80,
        lines: int = 24,
        *,
        scrollback: int = 10_000,
        frame_interval: float = 1 / 60,
        slice_bytes: int = 1 << 13,
        step_budget: float = 0.002,
        high_water: int = 1 << 20,
    ) -> None:
        self.session = session
        self.core = TerminalCore(columns, lines, scrollback, on_reply=self._reply)
        self.frame_interval = frame_interval
        self.slice_bytes = slice_bytes
        self.step_budget = step_budget
        self.high_water = high_water
        self.on_clipboard: Callable[[str], None] | None = None
        self.on_exit: list[Callable[[Terminal], None]] = []
        self._listeners: list[ChangeListener] = []
        self._pending = bytearray()
        self._paused = False
        self._flush: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._sync_since: float | None = None
        self._held: set[int] = set()
        self.started = False
        self.exited = False
        self._closing = False
        self.bytes_fed = 0
        self.feed_errors = 0
        self.core.parser.on_clipboard = self._clipboard
        session.on_output = self._output
        session.on_closed = self._closed

    @property
    def screen(self) -> TerminalScreen:
        """The core's screen (rows, cursor, modes, scrollback)."""
        return self.core.screen

    @property
    def title(self) -> str:
        """The program's title (OSC 0/2), else the session's own."""
        return self.core.title or self.session.title

    async def start(self) -> None:
        """Start the session at the core's size."""
        await self.session.start(self.core.columns, self.core.lines)
        self.started = True

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)
        listener(set(range(self.core.lines)))

    def remove_listener(self, listener: ChangeListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- input -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send input (keys, paste, mouse reports) to the program."""
        if data and not self.exited and not self._closing:
            self.session.write(data)

    def _reply(self, data: bytes) -> None:
        if not self.exited and not self._closing:
            self.session.write(data)

    def _clipboard(self, text: str) -> None:
        if self.on_clipboard is not None:
            self.on_clipboard(text)

    async def resize(self, columns: int, lines: int) -> None:
        """Resize screen and program (call it debounced: every call reaches the program)."""
        if columns < 1 or lines < 1:
            return
        if (columns, lines) == (self.core.columns, self.core.lines):
            return
        self.feed_pending()
        self.core.resize(columns, lines)
        self._notify()
        if self.started and not self.exited:
            await self.session.resize(columns, lines)

    async def close(self) -> None:
        """End the session; pending output is still shown."""
        await self.session.close()

    # -- output ------------------------------------------------------------------------

    def _output(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= self.high_water and not self._paused:
            self._paused = True
            self.session.pause_reading()
        if self._flush is None:
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self.frame_interval - time.monotonic()
            if delay > 0:
                self._flush = loop.call_later(delay, self._flush_step)
            else:
                self._flush = loop.call_soon(self._flush_step)

    def _flush_step(self) -> None:
        self._flush = None
        now = self._last_flush = time.monotonic()
        deadline = now + self.step_budget
        while self._pending:
            self._feed(self.slice_bytes, notify=False)
            if time.monotonic() >= deadline:
                break
        self._notify()
        if self._pending:
            # More backlog: feed it next turn of the loop, after others had theirs.
            self._flush = asyncio.get_running_loop().call_soon(self._flush_step)
        elif self._closing:
            if not self.exited:
                self._finish()
        elif self._paused:
            self._paused = False
            if not self.exited:
                self.session.resume_reading()

    def _feed(self, limit: int, notify: bool = True) -> None:
        pending = self._pending
        if not pending:
            return
        if len(pending) <= limit:
            data = bytes(pending)
            pending.clear()
        else:
            data = bytes(pending[:limit])
            del pending[:limit]
        try:
            self.core.feed(data)
        except Exception:  # a parser bug must not stop the terminal or the dashboard
            self.feed_errors += 1
            if self.feed_errors == 1:
                _log.exception("terminal output could not be parsed; continuing")
            self.core.parser.pending = ""
        self.bytes_fed += len(data)
        if notify:
            self._notify()

    def feed_pending(self) -> None:
        """Feed everything received so far now (before a resize, at exit, in tests)."""
        while self._pending:
            self._feed(1 << 30)

    def _notify(self) -> None:
        screen = self.core.screen
        dirty = screen.dirty
        if self.core.synchronized:
            # The program asked us to hold the display (mode 2026), at most a second.
            now = time.monotonic()
            if self._sync_since is None:
                self._sync_since = now
            if now - self._sync_since < _SYNC_TIMEOUT:
                self._held |= dirty
                dirty.clear()
                return
        self._sync_since = None
        if self._held:
            dirty |= self._held
            self._held = set()
        changed = set(dirty)
        dirty.clear()
        for listener in list(self._listeners):
            listener(changed)

    def _closed(self, session: TerminalSession) -> None:
        """The session ended: show what is still pending, then report the exit.

        A large backlog is fed in the usual bounded steps (a program that flooded and
        quit must not freeze the dashboard while it is drawn); `exited` turns true, and
        `on_exit` runs, once it is all on screen."""
        self._closing = True
        if len(self._pending) > self.slice_bytes:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                # Now, not at the next frame: nothing more will come to batch with it.
                if self._flush is not None:
                    self._flush.cancel()
                self._flush = loop.call_soon(self._flush_step)
                return
        self._finish()

    def _finish(self) -> None:
        self.feed_pending()
        self.exited = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._notify()
        for callback in list(self.on_exit):
            callback(self)
