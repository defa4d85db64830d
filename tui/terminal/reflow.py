"""Reflow of wrapped lines on a width change, the way tmux does it (`grid_reflow`).

A logical line is a run of screen lines each marked `wrapped` but the last. On a new width
every logical line that is wrapped or too long is joined and cut again at the new width (a
wide character that would straddle the edge moves to the next line whole); other lines move
across untouched, so a long scrollback of short lines costs one cheap check per line.
The cursor keeps its place in the text: its position is taken as (offset in its logical
line, logical line number) before and mapped back after (`grid_wrap_position` and
`grid_unwrap_position` in tmux). A line's used width is its written extent (written spaces
count, erased cells do not), as tmux's `cellused`.

Plain lines (one default-style ASCII run from column 0, the bulk of any scrollback) are cut
as strings; others as cells. No Textual import.

Where it knowingly differs from tmux 3.3 (none of it shows in the tmux-oracle tests):
cells erased with a background colour do not count as used (tmux counts them); tmux's
odd adjustments of `hscrolled` inside a join or split are not copied (the count of lines a
taller screen may pull back is only capped at the new scrollback length).
"""

from __future__ import annotations

from collections.abc import Sequence

from .cells import BLANK, BLANK_KEY, Cell, Compact, Key, Row, expand

WRAP_END = -1
"""Offset meaning "at the end of the logical line" (tmux's UINT_MAX)."""


def _plain(line: Compact) -> str | None:
    """The text of a line that is one default-style ASCII run from column 0, else None."""
    if isinstance(line, str):
        return line
    if isinstance(line, tuple):
        _wrapped, default, runs = line
    elif line or line.default is not BLANK or line.lazy is None:
        return None
    else:
        default, runs = BLANK_KEY, line.lazy  # type: ignore[assignment]
    if default == BLANK_KEY and len(runs) == 1:
        x, text, key = runs[0]
        if x == 0 and key == BLANK_KEY:
            return text
    return None


def line_info(line: Compact) -> tuple[bool, int]:
    """(wrapped, used width) of a screen or scrollback line."""
    if isinstance(line, str):
        return False, len(line)
    if isinstance(line, tuple):
        wrapped, _default, runs = line
        return wrapped, max((x + len(text) for x, text, _ in runs), default=0)
    lazy = line.lazy
    if lazy is not None and not line:
        return line.wrapped, max(x + len(text) for x, text, _ in lazy)
    line.realize()
    return line.wrapped, (max(line) + 1) if line else 0


def _segments(lines: list[Compact], group: range) -> list[tuple[str, Key]] | None:
    """A logical line held as lazy runs (ASCII, one cell per character) as (text, key)
    segments, gaps filled with the line's blank; None when a line has cells or its runs
    overlap (then it is cut as cells)."""
    segments: list[tuple[str, Key]] = []
    for k in group:
        line = lines[k]
        if isinstance(line, str):
            segments.append((line, BLANK_KEY))
            continue
        if isinstance(line, tuple):
            _wrapped, default, runs = line
        elif not line and line.lazy is not None:
            default = BLANK_KEY if line.default is BLANK else tuple(line.default)
            runs = line.lazy  # type: ignore[assignment]
        else:
            return None
        position = 0
        for x, text, key in runs:
            if x < position:
                return None
            if x > position:
                segments.append((" " * (x - position), default))
            segments.append((text, key))
            position = x + len(text)
    return segments


def _cut_segments(
    segments: list[tuple[str, Key]], columns: int
) -> list[list[tuple[int, str, Key]]]:
    """Cut (text, key) segments into lines of `columns` cells, as lazy runs."""
    pieces: list[list[tuple[int, str, Key]]] = []
    current: list[tuple[int, str, Key]] = []
    width = 0
    for text, key in segments:
        while text:
            take = text[: columns - width]
            current.append((width, take, key))
            width += len(take)
            text = text[len(take) :]
            if width == columns:
                pieces.append(current)
                current, width = [], 0
    if current or not pieces:
        pieces.append(current)
    return pieces


def _cells(line: Compact, used: int) -> list[Cell]:
    row = expand(line)
    return [row[x] for x in range(used)]


def _plain_row(text: str, wrapped: bool) -> Compact:
    if not wrapped:
        return text
    return (True, BLANK_KEY, ((0, text, BLANK_KEY),))


def _cut_cells(cells: list[Cell], columns: int) -> list[list[Cell]]:
    """Cut cells into lines of at most `columns`; a wide character and its stub stay
    together (a stub is a cell with empty data after its wide character)."""
    out: list[list[Cell]] = []
    current: list[Cell] = []
    width = 0
    count = len(cells)
    i = 0
    while i < count:
        cell = cells[i]
        unit = 2 if i + 1 < count and cells[i + 1].data == "" and cell.data != "" else 1
        if cell.data == "" and (i == 0 or cells[i - 1].data == ""):
            unit = 1  # an orphan stub: a plain cell
        if width + unit > columns and current:
            out.append(current)
            current, width = [], 0
        if unit > columns:
            i += unit  # a wide character on a one-column screen: dropped, as on output
            continue
        current.extend(cells[i : i + unit])
        width += unit
        i += unit
    out.append(current)
    return out


def _cells_row(cells: list[Cell], wrapped: bool) -> Row:
    row = Row()
    row.update(enumerate(cells))
    if wrapped:
        row.wrapped = True
    return row


def wrap_position(info: Sequence[tuple[bool, int]], x: int, y: int) -> tuple[int, int]:
    """(offset in its logical line, logical line number) of the cell at (x, y)."""
    offset = 0
    logical = 0
    for wrapped, used in info[:y]:
        if wrapped:
            offset += used
        else:
            offset = 0
            logical += 1
    if x >= info[y][1]:
        return WRAP_END, logical
    return offset + x, logical


def unwrap_position(info: Sequence[tuple[bool, int]], offset: int, logical: int) -> tuple[int, int]:
    """The (x, y) of a `wrap_position` on (possibly reflowed) lines."""
    y = 0
    seen = 0
    last = len(info) - 1
    while y < last and seen != logical:
        if not info[y][0]:
            seen += 1
        y += 1
    if offset == WRAP_END:
        while y < last and info[y][0]:
            y += 1
        return info[y][1], y
    while y < last and info[y][0] and offset >= info[y][1]:
        offset -= info[y][1]
        y += 1
    return offset, y


def reflow(
    lines: list[Compact], columns: int, x: int, y: int
) -> tuple[list[Compact], list[tuple[bool, int]], int, int]:
    """Reflow `lines` (scrollback then screen) to `columns`; (x, y) is the cursor.

    Returns the new lines, their (wrapped, used) and the cursor's new (x, y) in them.
    """
    info = [line_info(line) for line in lines]
    offset, logical = wrap_position(info, x, y)
    out: list[Compact] = []
    out_info: list[tuple[bool, int]] = []
    count = len(lines)
    i = 0
    while i < count:
        wrapped, used = info[i]
        if used == columns or (not wrapped and used < columns):
            out.append(lines[i])
            out_info.append(info[i])
            i += 1
            continue
        # A logical line (or a line too long for the new width): join it, cut it again.
        end = i
        while info[end][0] and end + 1 < count:
            end += 1
        if end > i and info[end] == (False, 0):
            end -= 1  # an empty last line stays a line of its own (as tmux)
        last_wrapped = info[end][0]
        group = range(i, end + 1)
        texts = [_plain(lines[k]) for k in group]
        if all(text is not None for text in texts):
            text = "".join(t[: info[k][1]] for t, k in zip(texts, group, strict=True))  # type: ignore[index]
            pieces = [text[p : p + columns] for p in range(0, len(text), columns)] or [""]
            for n, piece in enumerate(pieces):
                flag = last_wrapped if n == len(pieces) - 1 else True
                out.append(_plain_row(piece, flag))
                out_info.append((flag, len(piece)))
        elif (segments := _segments(lines, group)) is not None:
            cut_runs = _cut_segments(segments, columns)
            for n, runs in enumerate(cut_runs):
                flag = last_wrapped if n == len(cut_runs) - 1 else True
                out.append((flag, BLANK_KEY, tuple(runs)))
                out_info.append((flag, sum(len(text) for _, text, _ in runs)))
        else:
            cells: list[Cell] = []
            for k in group:
                cells.extend(_cells(lines[k], info[k][1]))
            cut = _cut_cells(cells, columns)
            for n, part in enumerate(cut):
                flag = last_wrapped if n == len(cut) - 1 else True
                out.append(_cells_row(part, flag))
                out_info.append((flag, len(part)))
        i = end + 1
    new_x, new_y = unwrap_position(out_info, offset, logical) if out else (0, 0)
    return out, out_info, new_x, new_y
