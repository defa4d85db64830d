"""Screen rows to Textual strips: equal-style cells merged into one segment, styles cached.

ANSI colours keep their names (Rich "red", "bright_red" ...) so Textual's ANSI theme can
recolour them; "default" resolves to the widget's own colours, and reverse video is resolved
here against those colours (never left to the outer terminal). Wide characters take their
two cells; where Rich measures a glyph narrower than the screen did, it is padded so the
row keeps its width.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from .cells import BLANK, Cell, Row

_RICH_NAMES = {
    "brown": "yellow",
    "brightblack": "bright_black",
    "brightred": "bright_red",
    "brightgreen": "bright_green",
    "brightbrown": "bright_yellow",
    "brightblue": "bright_blue",
    "brightmagenta": "bright_magenta",
    "brightcyan": "bright_cyan",
    "brightwhite": "bright_white",
}


def rich_color(value: str) -> Color | None:
    """A cell colour as a Rich colour; None for "default"."""
    if value == "default":
        return None
    if len(value) == 6 and value[0] not in "bcgmrwy":
        try:
            return Color.parse("#" + value)
        except Exception:
            return None
    try:
        return Color.parse(_RICH_NAMES.get(value, value))
    except Exception:
        return None


class StyleCache:
    """Rich styles per cell attribute set, resolved against the widget's base style."""

    def __init__(self, base: Style) -> None:
        self.base = base
        self._styles: dict[tuple[object, ...], Style] = {}

    def style(self, attrs: tuple[object, ...], inverse: bool = False) -> Style:
        """Style for `Cell[1:]` attributes; `inverse` flips it (cursor, selection)."""
        key = (*attrs, inverse)
        style = self._styles.get(key)
        if style is None:
            if len(self._styles) > 4096:
                self._styles.clear()
            style = self._styles[key] = self._make(attrs, inverse)
        return style

    def _make(self, attrs: tuple[object, ...], inverse: bool) -> Style:
        fg, bg, bold, italics, underscore, strike, reverse, blink, dim = attrs
        base = self.base
        foreground = rich_color(fg) or base.color  # type: ignore[arg-type]
        background = rich_color(bg) or base.bgcolor  # type: ignore[arg-type]
        if bool(reverse) != inverse:
            foreground, background = (
                background or Color.parse("black"),
                foreground or Color.parse("white"),
            )
        return Style(
            color=foreground,
            bgcolor=background,
            bold=bool(bold),
            dim=bool(dim),
            italic=bool(italics),
            underline=bool(underscore),
            strike=bool(strike),
            blink=bool(blink),
        )


_PAD: dict[str, str] = {}


def _wide(text: str) -> str:
    padded = _PAD.get(text)
    if padded is None:
        padded = text if cell_len(text) >= 2 else text + " "
        if len(_PAD) < 4096:
            _PAD[text] = padded
    return padded


_ATTRS = itemgetter(slice(1, None))
_DATA = itemgetter(0)


def render_cells(
    cells: list[Cell],
    styles: StyleCache,
    width: int,
    *,
    inverse: tuple[int, int] | None = None,
    cursor: int | None = None,
    cursor_shape: str = "block",
) -> Strip:
    """One row as a strip of exactly `width` cells.

    `inverse` is a column range [start, end) shown inverted (the selection), `cursor` the
    column of the cursor, drawn as `cursor_shape`: "block" inverts the cell, "underline"
    underlines it, "bar" draws a thin bar (▏) on a blank cell and underlines a character
    (a cell cannot show a character and a bar beside it).
    """
    if inverse is None and cursor is None:
        # Grouping and joining run in C; used unless a glyph measures differently in Rich.
        style = styles.style
        strip = Strip(
            [
                Segment("".join(map(_DATA, group)), style(attrs))
                for attrs, group in groupby(cells, _ATTRS)
            ]
        )
        if strip.cell_length == len(cells):
            return strip if len(cells) == width else strip.adjust_cell_length(width, styles.base)
    return _render_each(cells, styles, width, inverse, cursor, cursor_shape)


def _render_each(
    cells: list[Cell],
    styles: StyleCache,
    width: int,
    inverse: tuple[int, int] | None,
    cursor: int | None,
    cursor_shape: str = "block",
) -> Strip:
    """The cell-by-cell path: cursor, selection, and wide glyphs Rich measures narrower."""
    segments: list[Segment] = []
    append = segments.append
    text: list[str] = []
    key: tuple[object, ...] | None = None
    flip = False
    start, end = inverse if inverse is not None else (-1, -1)
    block = cursor if cursor_shape == "block" else None
    columns = len(cells)
    for x in range(columns):
        cell = cells[x]
        data = cell[0]
        if not data:
            continue  # the second half of a wide character
        attrs = cell[1:]
        flipped = (start <= x < end) != (x == block)
        if x == cursor and block is None:
            if cursor_shape == "bar" and data == " ":
                data = "\u258f"
            else:
                attrs = (*attrs[:4], True, *attrs[5:])  # underscore on
        if attrs != key or flipped != flip:
            if text:
                append(Segment("".join(text), styles.style(key, flip)))  # type: ignore[arg-type]
            text = []
            key = attrs
            flip = flipped
        if x + 1 < columns and cells[x + 1][0] == "":
            data = _wide(data)
        text.append(data)
    if text:
        append(Segment("".join(text), styles.style(key, flip)))  # type: ignore[arg-type]
    strip = Strip(segments)
    if strip.cell_length != width:
        strip = strip.adjust_cell_length(width, styles.base)
    return strip


def render_runs(row: Row, columns: int, styles: StyleCache, width: int) -> Strip | None:
    """A lazy row (plain text runs, no cells yet) as a strip without making its cells.

    Returns None when the runs overlap or are out of order (then render its cells).
    """
    runs = row.lazy
    if runs is None or row:
        return None
    segments: list[Segment] = []
    blank_style = styles.style(row.default[1:])
    position = 0
    for x, text, key in runs:
        if x < position:
            return None
        if x > position:
            segments.append(Segment(row.default[0] * (x - position), blank_style))
        end = min(x + len(text), columns)
        if end <= x:
            continue
        segments.append(Segment(text[: end - x], styles.style(key[1:])))
        position = end
    if position < columns:
        segments.append(Segment(row.default[0] * (columns - position), blank_style))
    strip = Strip(segments, columns)
    if columns != width:
        strip = strip.adjust_cell_length(width, styles.base)
    return strip


__all__ = ["BLANK", "StyleCache", "render_cells", "render_runs", "rich_color"]
