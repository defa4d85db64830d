"""Shared output helpers for CLI verbs: tables and error lines like docker's.

Sizes and ages come from :mod:`tui.humanize`, shared with the dashboard.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded like docker's tabwriter (three spaces between columns)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def error(message: str) -> None:
    print(message, file=sys.stderr)
