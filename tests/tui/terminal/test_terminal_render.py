"""Rows to strips: exact widths, merged segments, lazy runs rendered like their cells."""

from __future__ import annotations

import random

from rich.style import Style

from tui.terminal.core import TerminalCore
from tui.terminal.render import StyleCache, render_cells, render_runs

PIECES = ["abc ", "中文", "e\u0301", "\x1b[31m", "\x1b[1;44m", "\x1b[0m", "\x1b[7m", "\r\n", "\t"]
PIECES += ["\x1b[38;5;200m", "\x1b[2;5H", "\x1b[K", "\x1b[3@", "\x1b[2P", "😀", "x" * 30]


def per_cell(strip) -> list[tuple[str, Style | None]]:
    return [(char, segment.style) for segment in strip for char in segment.text]


def test_strips_have_the_exact_width_and_runs_match_cells():
    rng = random.Random(99)
    styles = StyleCache(Style(color="white", bgcolor="black"))
    for _ in range(300):
        columns, lines = rng.randint(4, 40), rng.randint(2, 8)
        core = TerminalCore(columns, lines)
        core.feed_text("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))))
        for row in core.screen.buffer:
            fast = render_runs(row, columns, styles, columns + 3) if row.lazy else None
            cells = row.cells(columns)
            strip = render_cells(cells, styles, columns + 3)
            assert strip.cell_length == columns + 3
            assert strip.text.startswith("".join(cell.data for cell in cells).rstrip())
            if fast is not None:
                assert fast.cell_length == columns + 3
                assert per_cell(fast) == per_cell(strip)


def test_equal_styles_merge_into_one_segment_and_cursor_inverts_one_cell():
    styles = StyleCache(Style(color="white", bgcolor="black"))
    core = TerminalCore(20, 2)
    core.feed(b"plain \x1b[31mred red\x1b[0m plain")
    cells = core.screen.buffer[0].cells(20)
    strip = render_cells(cells, styles, 20)
    texts = [segment.text for segment in strip]
    assert texts == ["plain ", "red red", " plain "]
    with_cursor = render_cells(cells, styles, 20, cursor=2)
    inverted = [s for s in with_cursor if s.style.bgcolor == styles.base.color]
    assert [s.text for s in inverted] == ["a"]
