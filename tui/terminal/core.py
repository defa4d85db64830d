"""The Textual-free terminal core: bytes from a program in, screen state and replies out.

`TerminalCore` owns a `TerminalScreen` and a `Parser`, decodes UTF-8 incrementally (a
character split across two reads is joined, invalid bytes become U+FFFD), and hands the
program's replies (DSR, DA, DECRQM, colour queries) to `on_reply`. It never imports Textual,
so it can run in tests, benchmarks and other front ends.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from .cells import Cell, Row
from .parser import Parser
from .screen import (
    BLINKING_CURSOR,
    BRACKETED_PASTE,
    DECCKM,
    FOCUS_EVENTS,
    MOUSE_ANY,
    MOUSE_BUTTON,
    MOUSE_NORMAL,
    MOUSE_SGR,
    MOUSE_URXVT,
    MOUSE_X10,
    SYNCHRONIZED_OUTPUT,
    TerminalScreen,
)

__all__ = ["Cell", "Row", "TerminalCore", "TerminalScreen"]

_SHAPES = ("block", "block", "block", "underline", "underline", "bar", "bar")


class TerminalCore:
    """A terminal emulator without a display: feed it bytes, read `screen`."""

    def __init__(
        self,
        columns: int = 80,
        lines: int = 24,
        scrollback: int = 10_000,
        on_reply: Callable[[bytes], None] | None = None,
        on_clipboard: Callable[[str], None] | None = None,
    ) -> None:
        self.screen = TerminalScreen(columns, lines, scrollback)
        self.parser = Parser(self.screen)
        self.parser.on_clipboard = on_clipboard
        self.on_reply = on_reply
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    # -- input -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Process bytes the program wrote; replies go to `on_reply`."""
        text = self._decoder.decode(data)
        if text:
            self.feed_text(text)

    def feed_text(self, text: str) -> None:
        """Process already-decoded text."""
        self.parser.feed(text)
        replies = self.screen.replies
        if replies:
            data = "".join(replies).encode()
            replies.clear()
            if self.on_reply is not None:
                self.on_reply(data)

    def resize(self, columns: int, lines: int) -> None:
        """Change the screen size (columns first, unlike pyte)."""
        self.screen.resize(lines, columns)

    # -- state the front end needs -------------------------------------------------------

    @property
    def columns(self) -> int:
        return self.screen.columns

    @property
    def lines(self) -> int:
        return self.screen.lines

    @property
    def title(self) -> str:
        return self.screen.title

    @property
    def application_cursor(self) -> bool:
        return DECCKM in self.screen.mode

    @property
    def cursor_shape(self) -> str:
        """The cursor shape the program chose (DECSCUSR): "block", "underline" or "bar"."""
        return _SHAPES[self.screen.cursor_style]

    @property
    def cursor_blink(self) -> bool:
        """True when the program asked for a blinking cursor (DECSCUSR odd, or mode 12)."""
        return BLINKING_CURSOR in self.screen.mode

    @property
    def application_keypad(self) -> bool:
        return self.screen.keypad_application

    @property
    def bracketed_paste(self) -> bool:
        return BRACKETED_PASTE in self.screen.mode

    @property
    def focus_events(self) -> bool:
        return FOCUS_EVENTS in self.screen.mode

    @property
    def synchronized(self) -> bool:
        """True while the program holds output back (mode 2026)."""
        return SYNCHRONIZED_OUTPUT in self.screen.mode

    @property
    def mouse_tracking(self) -> str | None:
        """The mouse reporting the program asked for: "x10", "normal", "button", "any"."""
        mode = self.screen.mode
        if MOUSE_ANY in mode:
            return "any"
        if MOUSE_BUTTON in mode:
            return "button"
        if MOUSE_NORMAL in mode:
            return "normal"
        if MOUSE_X10 in mode:
            return "x10"
        return None

    @property
    def mouse_encoding(self) -> str:
        """How mouse reports are encoded: "sgr", "urxvt" or "x10"."""
        mode = self.screen.mode
        if MOUSE_SGR in mode:
            return "sgr"
        if MOUSE_URXVT in mode:
            return "urxvt"
        return "x10"

    def text(self) -> list[str]:
        """The visible screen, one string per line, trailing blanks removed."""
        return [line.rstrip() for line in self.screen.display]
