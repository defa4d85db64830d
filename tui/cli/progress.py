"""Rendering Docker JSON progress streams: per-layer bars on a terminal, plain lines otherwise.

The stream is the one ``POST /images/create`` (and later push) sends: ``{"status", "id",
"progressDetail": {"current", "total"}}`` objects, or ``{"error": ...}``.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tui.humanize import human_size

_BAR_WIDTH = 40


def _bar(current: int, total: int) -> str:
    if total <= 0:
        return ""
    filled = min(_BAR_WIDTH, int(_BAR_WIDTH * current / total))
    arrow = ">" if filled < _BAR_WIDTH else ""
    body = "=" * max(0, filled - (1 if arrow else 0)) + arrow
    return f"[{body.ljust(_BAR_WIDTH)}] {human_size(current):>8}/{human_size(total)}"


class ProgressPrinter:
    """Consumes progress messages and writes them to ``out``."""

    def __init__(self, out: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._last_status: dict[str, str] = {}

    def feed(self, msg: dict[str, Any]) -> None:
        if "error" in msg or "errorDetail" in msg:
            return  # the caller reports errors
        status = str(msg.get("status", ""))
        layer = msg.get("id")
        if not layer:
            self._print_plain(status)
            return
        detail = msg.get("progressDetail") or {}
        current, total = detail.get("current"), detail.get("total")
        line = f"{layer}: {status}"
        if self.tty and isinstance(current, int) and isinstance(total, int):
            line = f"{layer}: {status:<18} {_bar(current, total)}"
        if self.tty:
            self._update_tty(str(layer), line)
        elif self._last_status.get(str(layer)) != status:
            self._last_status[str(layer)] = status
            self.out.write(line + "\n")
            self.out.flush()

    def _print_plain(self, status: str) -> None:
        if not status:
            return
        self.out.write(status + "\n")
        self.out.flush()
        if self.tty:
            # Lines printed after the bars start a new block of bars.
            self._order.clear()
            self._lines.clear()

    def _update_tty(self, layer: str, line: str) -> None:
        if layer not in self._lines:
            self._order.append(layer)
            self._lines[layer] = line
            self.out.write(line + "\n")
        else:
            self._lines[layer] = line
            up = len(self._order) - self._order.index(layer)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        self.out.flush()
