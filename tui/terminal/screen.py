"""The terminal screen state: a pyte `Screen` subclass that fixes pyte's gaps and is fast.

It keeps pyte's public shape (`buffer[y][x]` is a `Cell`, `cursor`, `mode`, `margins`,
`dirty`, `title`, `display`, `resize(lines, columns)`) and adds what pyte lacks: the alternate
screen (47, 1047, 1049), a bounded scrollback of its own, DECSET modes that programs query
(mouse, bracketed paste, focus, synchronized output), REP, SU/SD, CBT/CHT, DECSTR, DECSCUSR,
background-colour erase, correct wide-character overwrite, and DSR/DA/DECRQM replies.
Replies to the program are queued in `replies` for the owner to write back. Where xterm
and tmux differ, it follows tmux (the tests' oracle): resizing reflows wrapped lines (see
`reflow`), clearing the whole screen first moves it into the scrollback, backspace from
column 0 returns onto a line that wrapped.

Speed comes from plain-text runs kept as lazy runs on empty lines (see `Row`) or written
with one `dict.update`, cells interned per attribute set, and lines held in a Python list so
scrolling is a slice move.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import pyte
from pyte.charsets import VT100_MAP
from wcwidth import wcwidth

from .cells import BLANK, Cell, Compact, Pen, Row, compact, expand
from .reflow import reflow
from .sgr import apply_sgr

# Modes, pyte style: ANSI modes as is, DEC private modes shifted left by 5.
IRM = 4
LNM = 20
DECCKM = 1 << 5
DECCOLM = 3 << 5
DECSCNM = 5 << 5
DECOM = 6 << 5
DECAWM = 7 << 5
BLINKING_CURSOR = 12 << 5
DECTCEM = 25 << 5
MOUSE_X10 = 9 << 5
MOUSE_NORMAL = 1000 << 5
MOUSE_BUTTON = 1002 << 5
MOUSE_ANY = 1003 << 5
FOCUS_EVENTS = 1004 << 5
MOUSE_UTF8 = 1005 << 5
MOUSE_SGR = 1006 << 5
ALT_SCROLL = 1007 << 5
MOUSE_URXVT = 1015 << 5
BRACKETED_PASTE = 2004 << 5
SYNCHRONIZED_OUTPUT = 2026 << 5

_DEFAULT_MODES = frozenset({DECAWM, DECTCEM})
_KNOWN_PRIVATE = frozenset(
    {1, 3, 5, 6, 7, 9, 12, 25, 47, 1000, 1002, 1003, 1004, 1005, 1006, 1007, 1015, 1047}
    | {1048, 1049, 2004, 2026}
)
_KNOWN_ANSI = frozenset({IRM, LNM})

_DEC_GRAPHICS = {i: VT100_MAP[i] for i in range(0x20, 0x7F) if VT100_MAP[i] != chr(i)}
_UK = {ord("#"): "£"}
_CHARSETS: dict[str, dict[int, str] | None] = {"0": _DEC_GRAPHICS, "A": _UK, "B": None}

_WIDTHS: dict[str, int] = {}


def char_width(char: str) -> int:
    """Cells taken by `char`: 0 (combining), 1, 2 (wide) or -1 (not printable)."""
    width = _WIDTHS.get(char)
    if width is None:
        width = wcwidth(char)
        if len(_WIDTHS) < 65536:
            _WIDTHS[char] = width
    return width


class Savepoint:
    """What DECSC saves: position, attributes, charsets, origin and wrap modes."""

    __slots__ = ("attrs", "charset", "g0", "g1", "origin", "wrap", "x", "y")

    def __init__(self, screen: TerminalScreen) -> None:
        cursor = screen.cursor
        self.x, self.y, self.attrs = min(cursor.x, screen.columns - 1), cursor.y, cursor.attrs
        self.g0, self.g1, self.charset = screen.g0, screen.g1, screen.charset
        self.origin = DECOM in screen.mode
        self.wrap = DECAWM in screen.mode


class TerminalScreen(pyte.Screen):
    """A fast, xterm-compatible screen with scrollback and an alternate buffer."""

    buffer: list[Row]  # type: ignore[assignment]

    def __init__(self, columns: int, lines: int, scrollback: int = 10_000) -> None:
        if columns < 1 or lines < 1:
            raise ValueError(f"terminal size must be positive, got {columns}x{lines}")
        self.columns = columns
        self.lines = lines
        self.history: deque[Compact] = deque(maxlen=max(0, scrollback))
        """Lines scrolled off the top, oldest first, in `cells.compact` form: read them
        with `history_row(i)`."""
        self.scrolled_off = 0
        """Lines pushed into the scrollback so far (keeps counting when it is full)."""
        self.pullable = 0
        """Scrollback lines a taller screen pulls back: those that scrolled off, not those
        a clear pushed there (tmux's `hscrolled`)."""
        self.dirty: set[int] = set()
        self.replies: list[str] = []
        self.title = ""
        self.icon_name = ""
        self.bells = 0
        self.wide = False
        """True once a wide character was drawn: until then writes skip the check for
        halves of wide characters they cut."""
        self.reset()

    # -- state -------------------------------------------------------------------------

    @property
    def default_char(self) -> Cell:  # type: ignore[override]
        return BLANK

    def reset(self) -> None:
        """Full reset (RIS): clear both buffers, modes, margins, charsets and tab stops."""
        self.buffer = [Row() for _ in range(self.lines)]
        self.alternate = False
        self._main: list[Row] | None = None
        self._main_size = (self.lines, self.columns)
        self._saved: Savepoint | None = None
        self._saved_main: Savepoint | None = None
        self.mode: set[int] = set(_DEFAULT_MODES)
        self.margins: pyte.screens.Margins | None = None
        self.cursor = pyte.screens.Cursor(0, 0, BLANK)
        self.cursor_style = 0
        self.g0: str = "B"
        self.g1: str = "0"
        self.charset = 0
        self._translate: dict[int, str] | None = None
        self.tabstops = set(range(8, self.columns, 8))
        self.savepoints = []
        self.saved_columns = None
        self._pens: dict[Cell, Pen] = {}
        self.pen = self.pen_for(BLANK)
        self._last_char = ""
        self.keypad_application = False
        self.dirty.update(range(self.lines))

    def pen_for(self, attrs: Cell) -> Pen:
        """The interned pen for `attrs` (made current when it is the cursor's)."""
        pen = self._pens.get(attrs)
        if pen is None:
            if len(self._pens) > 512:
                self._pens.clear()
            pen = self._pens[attrs] = Pen(attrs)
        if attrs is self.cursor.attrs:
            self.pen = pen
        return pen

    def select_pen(self, params: str) -> None:
        """SGR with the parameter string as sent (`1;31`, `38:2::1:2:3` ...)."""
        pen = self.pen
        if pen.attrs is not self.cursor.attrs:
            pen = self.pen_for(self.cursor.attrs)
        following = pen.transitions.get(params)
        if following is None:
            following = self.pen_for(apply_sgr(pen.attrs, params))
            pen.transitions[params] = following
        self.pen = following
        self.cursor.attrs = following.attrs

    def draw_styled(self, params: str, data: str) -> None:
        """SGR `params` then `data` drawn with it: the parser's commonest token in
        coloured output, done in one call (the plain-ASCII fit-on-the-line case inline)."""
        cursor = self.cursor
        pen = self.pen
        if pen.attrs is not cursor.attrs:
            pen = self.pen_for(cursor.attrs)
        cells = pen.transitions.get(params)
        if cells is None:
            cells = self.pen_for(apply_sgr(pen.attrs, params))
            pen.transitions[params] = cells
        self.pen = cells
        cursor.attrs = cells.attrs
        if not data:
            return
        x = cursor.x
        end = x + len(data)
        if (
            end < self.columns
            and self._translate is None
            and data.isascii()
            and IRM not in self.mode
        ):
            self._last_char = data[-1]
            y = cursor.y
            line = self.buffer[y]
            if line:
                if self.wide:
                    self._unsplit(line, x, end)
                line.update(zip(range(x, end), map(cells.__getitem__, data), strict=True))
            elif line.lazy is None:
                line.lazy = [(x, data, cells.key)]
            else:
                line.lazy.append((x, data, cells.key))
            cursor.x = end
            self.dirty.add(y)
            return
        self.draw(data)

    def _blank(self) -> Cell:
        """The cell erase operations write: a space with the current background only."""
        bg = self.cursor.attrs.bg
        return BLANK if bg == "default" else Cell(" ", bg=bg)

    def _region(self) -> tuple[int, int]:
        margins = self.margins
        return (0, self.lines - 1) if margins is None else (margins[0], margins[1])

    @property
    def display(self) -> list[str]:  # type: ignore[override]
        """The screen as one string per line."""
        return [row.text(self.columns) for row in self.buffer]

    def history_text(self) -> list[str]:
        """The scrollback as one string per line, oldest first."""
        return [expand(line).text(self.columns).rstrip() for line in self.history]

    def history_row(self, index: int) -> Row:
        """Scrollback line `index` (0 is the oldest) as a row."""
        line = self.history[index]
        return line if isinstance(line, Row) else expand(line)

    # -- text --------------------------------------------------------------------------

    def draw(self, data: str) -> None:
        """Write printable text at the cursor, wrapping at the right margin (DECAWM)."""
        if not data:
            return
        if self._translate is not None:
            data = data.translate(self._translate)
        cursor = self.cursor
        cells = self.pen
        if cells.attrs is not cursor.attrs:
            cells = self.pen_for(cursor.attrs)
        self._last_char = data[-1]
        if not data.isascii():
            self._draw_unicode(data, cells)
            return
        x = cursor.x
        end = x + len(data)
        if end < self.columns and IRM not in self.mode:
            # The common case: the run fits on the cursor line.
            y = cursor.y
            line = self.buffer[y]
            if line:
                if self.wide:
                    self._unsplit(line, x, end)
                line.update(zip(range(x, end), map(cells.__getitem__, data), strict=True))
            elif line.lazy is None:
                line.lazy = [(x, data, cells.key)]
            else:
                line.lazy.append((x, data, cells.key))
            cursor.x = end
            self.dirty.add(y)
            return
        self._draw_narrow(data, cells)

    def _draw_narrow(self, data: str, cells: Pen) -> None:
        cursor = self.cursor
        columns = self.columns
        autowrap = DECAWM in self.mode
        insert = IRM in self.mode
        buffer = self.buffer
        dirty = self.dirty
        x = cursor.x
        pos = 0
        count = len(data)
        while pos < count:
            if x >= columns:
                if autowrap:
                    buffer[cursor.y].wrapped = True
                    self.index()
                    x = 0
                else:
                    x = columns - 1
            room = columns - x
            if count - pos <= room:
                segment = data[pos:] if pos else data
                pos = count
            elif autowrap:
                segment = data[pos : pos + room]
                pos += room
            else:
                # Without autowrap everything past the margin lands on the last column.
                segment = data[pos : pos + room - 1] + data[-1]
                pos = count
            take = len(segment)
            y = cursor.y
            line = buffer[y]
            end = x + take
            if insert:
                self._shift_right(line, x, take)
            if line:
                if self.wide:
                    self._unsplit(line, x, end)
                line.update(zip(range(x, end), map(cells.__getitem__, segment), strict=True))
            elif line.lazy is None:
                line.lazy = [(x, segment, cells.key)]
            else:
                line.lazy.append((x, segment, cells.key))
            dirty.add(y)
            x = end
        cursor.x = x if autowrap or x < columns else columns - 1

    def _unsplit(self, line: Row, start: int, end: int) -> None:
        """Blank the halves of wide characters cut by writing over columns [start, end)."""
        cell = line.get(start)
        if cell is not None and cell.data == "" and start > 0:
            line[start - 1] = line[start - 1]._replace(data=" ")
        cell = line.get(end)
        if cell is not None and cell.data == "":
            line[end] = cell._replace(data=" ")

    def _draw_unicode(self, data: str, cells: Pen) -> None:
        cursor = self.cursor
        columns = self.columns
        autowrap = DECAWM in self.mode
        insert = IRM in self.mode
        buffer = self.buffer
        for char in data:
            width = char_width(char)
            if width <= 0:
                if width == 0 and char != "\u200b":
                    self._combine(char)
                continue
            if cursor.x + width > columns:
                if autowrap:
                    buffer[cursor.y].wrapped = True
                    self.index()
                    cursor.x = 0
                elif width == 1:
                    cursor.x = columns - 1
                else:
                    continue  # a wide character that does not fit is dropped (as tmux)
                if width > columns:
                    continue
            x = cursor.x
            line = buffer[cursor.y].realize()
            if insert:
                self._shift_right(line, x, width)
            if line:
                self._unsplit(line, x, x + width)
            line[x] = cells[char]
            if width == 2:
                line[x + 1] = cells[""]
                self.wide = True
            self.dirty.add(cursor.y)
            x += width
            cursor.x = x if autowrap or x < columns else columns - 1

    def _combine(self, char: str) -> None:
        """Attach a zero-width character to the cell before the cursor."""
        cursor = self.cursor
        x, y = cursor.x - 1, cursor.y
        if x < 0:
            if y == 0:
                return
            x, y = self.columns - 1, y - 1
        line = self.buffer[y].realize()
        cell = line[x]
        if cell.data == "" and x > 0:
            x -= 1
            cell = line[x]
        line[x] = cell._replace(data=cell.data + char)
        self.dirty.add(y)

    def repeat_last(self, count: int) -> None:
        """REP: draw the last graphic character `count` more times, up to the end of the
        line (as tmux does; programs only use REP within a line)."""
        if self._last_char:
            room = max(self.columns - self.cursor.x, 1)
            self.draw(self._last_char * min(max(count, 1), room))

    # -- line feeds and scrolling ---------------------------------------------------------

    def carriage_return(self) -> None:
        self.cursor.x = 0

    def index(self) -> None:
        """Move down one line, scrolling the region when on its bottom line."""
        cursor = self.cursor
        margins = self.margins
        if margins is None:
            last = self.lines - 1
            if cursor.y < last:
                cursor.y += 1
                return
            # Full-screen scroll, the hot path of any flood of output.
            buffer = self.buffer
            if not self.alternate:
                self.history.append(compact(buffer[0]))
                self.scrolled_off += 1
                self.pullable += 1
            del buffer[0]
            bg = cursor.attrs.bg
            buffer.append(Row() if bg == "default" else Row.filled(Cell(" ", bg=bg)))
            dirty = self.dirty
            if len(dirty) <= last:
                dirty.update(range(last + 1))
        elif cursor.y == margins[1]:
            self._scroll_up(margins[0], margins[1], 1)
        elif cursor.y < self.lines - 1:
            cursor.y += 1

    def linefeed(self) -> None:
        self.index()
        if LNM in self.mode:
            self.cursor.x = 0

    def reverse_index(self) -> None:
        """Move up one line, scrolling the region down when on its top line."""
        top, bottom = self._region()
        if self.cursor.y == top:
            self._scroll_down(top, bottom, 1)
        elif self.cursor.y > 0:
            self.cursor.y -= 1

    def next_line(self) -> None:
        self.index()
        self.cursor.x = 0

    def _new_rows(self, count: int) -> list[Row]:
        blank = self._blank()
        return [Row.filled(blank) for _ in range(count)]

    def _scroll_up(self, top: int, bottom: int, count: int) -> None:
        buffer = self.buffer
        count = min(count, bottom - top + 1)
        if top == 0 and bottom == self.lines - 1:
            if not self.alternate:
                self.history.extend(map(compact, buffer[:count]))
                self.scrolled_off += count
                self.pullable += count
            del buffer[:count]
            buffer.extend(self._new_rows(count))
        else:
            del buffer[top : top + count]
            buffer[bottom + 1 - count : bottom + 1 - count] = self._new_rows(count)
        self.dirty.update(range(top, bottom + 1))

    def _scroll_down(self, top: int, bottom: int, count: int) -> None:
        buffer = self.buffer
        count = min(count, bottom - top + 1)
        del buffer[bottom + 1 - count : bottom + 1]
        buffer[top:top] = self._new_rows(count)
        self.dirty.update(range(top, bottom + 1))

    def scroll_up(self, count: int = 1) -> None:
        """SU: scroll the region up `count` lines (into scrollback when full-screen)."""
        top, bottom = self._region()
        self._scroll_up(top, bottom, max(count, 1))

    def scroll_down(self, count: int = 1) -> None:
        """SD: scroll the region down `count` lines."""
        top, bottom = self._region()
        self._scroll_down(top, bottom, max(count, 1))

    def insert_lines(self, count: int | None = None) -> None:
        top, bottom = self._region()
        if top <= self.cursor.y <= bottom:
            self._scroll_down(self.cursor.y, bottom, count or 1)
            self.cursor.x = 0

    def delete_lines(self, count: int | None = None) -> None:
        top, bottom = self._region()
        y = self.cursor.y
        if top <= y <= bottom:
            buffer = self.buffer
            count = min(count or 1, bottom - y + 1)
            del buffer[y : y + count]
            buffer[bottom + 1 - count : bottom + 1 - count] = self._new_rows(count)
            self.dirty.update(range(y, bottom + 1))
            self.cursor.x = 0

    def set_margins(self, top: int | None = None, bottom: int | None = None) -> None:
        """DECSTBM: set the scrolling region (1-based, inclusive) and home the cursor."""
        if not top and not bottom:
            self.margins = None
        else:
            top = max(0, min((top or 1) - 1, self.lines - 1))
            bottom = max(0, min((bottom or self.lines) - 1, self.lines - 1))
            if bottom <= top:
                return
            if top == 0 and bottom == self.lines - 1:
                self.margins = None
            else:
                self.margins = pyte.screens.Margins(top, bottom)
        self.cursor_position()

    # -- cursor ------------------------------------------------------------------------

    def ensure_hbounds(self) -> None:
        self.cursor.x = min(max(0, self.cursor.x), self.columns - 1)

    def ensure_vbounds(self, use_margins: bool | None = None) -> None:
        if (use_margins or DECOM in self.mode) and self.margins is not None:
            top, bottom = self.margins
        else:
            top, bottom = 0, self.lines - 1
        self.cursor.y = min(max(top, self.cursor.y), bottom)

    def cursor_position(self, line: int | None = None, column: int | None = None) -> None:
        """CUP: move to (line, column), 1-based, relative to the region under DECOM."""
        y = (line or 1) - 1
        x = (column or 1) - 1
        if DECOM in self.mode and self.margins is not None:
            top, bottom = self.margins
            y = min(y + top, bottom)
        cursor = self.cursor
        cursor.x = x if x < self.columns else self.columns - 1
        cursor.y = y if y < self.lines else self.lines - 1

    def cursor_to_column(self, column: int | None = None) -> None:
        self.cursor.x = min(max((column or 1) - 1, 0), self.columns - 1)

    def cursor_to_line(self, line: int | None = None) -> None:
        y = (line or 1) - 1
        if DECOM in self.mode and self.margins is not None:
            y += self.margins.top
        self.cursor.y = y
        self.ensure_vbounds()

    def cursor_up(self, count: int | None = None) -> None:
        top = self.margins.top if self.margins and self.cursor.y >= self.margins.top else 0
        self.cursor.y = max(self.cursor.y - (count or 1), top)
        self.ensure_hbounds()

    def cursor_down(self, count: int | None = None) -> None:
        margins = self.margins
        bottom = margins.bottom if margins and self.cursor.y <= margins.bottom else self.lines - 1
        self.cursor.y = min(self.cursor.y + (count or 1), bottom)
        self.ensure_hbounds()

    def cursor_next_line(self, count: int | None = None) -> None:
        """CNL: down `count` lines, to column 0."""
        self.cursor_down(count)
        self.cursor.x = 0

    def cursor_previous_line(self, count: int | None = None) -> None:
        """CPL: up `count` lines, to column 0."""
        self.cursor_up(count)
        self.cursor.x = 0

    def cursor_back(self, count: int | None = None) -> None:
        """CUB/BS: left `count` columns; from the pending-wrap position the first step
        lands on the last column (tmux's behaviour)."""
        self.cursor.x = min(max(self.cursor.x - (count or 1), 0), self.columns - 1)

    def cursor_forward(self, count: int | None = None) -> None:
        x = min(self.cursor.x, self.columns - 1)
        self.cursor.x = min(x + (count or 1), self.columns - 1)

    def backspace(self) -> None:
        """BS: one column left; from column 0 onto the end of the line above when that line
        wrapped into this one (as tmux)."""
        cursor = self.cursor
        if cursor.x == 0 and cursor.y > 0 and self.buffer[cursor.y - 1].wrapped:
            cursor.y -= 1
            cursor.x = self.columns - 1
        else:
            self.cursor_back(1)

    def tab(self, count: int = 1) -> None:
        """HT/CHT: move to the next tab stop (`count` times), or the last column; nothing
        at the pending-wrap position (as tmux)."""
        x = self.cursor.x
        if x >= self.columns:
            return
        for _ in range(min(max(count, 1), self.columns)):
            stops = [stop for stop in self.tabstops if stop > x]
            x = min(stops) if stops else self.columns - 1
        self.cursor.x = x

    def back_tab(self, count: int = 1) -> None:
        """CBT: move back to the previous tab stop (`count` times), or column 0."""
        x = min(self.cursor.x, self.columns - 1)
        for _ in range(min(max(count, 1), self.columns)):
            stops = [stop for stop in self.tabstops if stop < x]
            x = max(stops) if stops else 0
        self.cursor.x = x

    def set_tab_stop(self) -> None:
        self.tabstops.add(min(self.cursor.x, self.columns - 1))

    def clear_tab_stop(self, how: int = 0) -> None:
        if how == 0:
            self.tabstops.discard(self.cursor.x)
        elif how == 3:
            self.tabstops = set()

    def save_cursor(self) -> None:
        """DECSC."""
        self._saved = Savepoint(self)

    def restore_cursor(self) -> None:
        """DECRC: restore what DECSC saved, or home the cursor when nothing was."""
        saved = self._saved
        if saved is None:
            self.mode.discard(DECOM)
            self.cursor.attrs = BLANK
            self.cursor_position()
            return
        self.cursor.x = min(saved.x, self.columns - 1)
        self.cursor.y = min(saved.y, self.lines - 1)
        self.cursor.attrs = saved.attrs
        self.g0, self.g1, self.charset = saved.g0, saved.g1, saved.charset
        self._update_translate()
        for flag, mode in ((saved.origin, DECOM), (saved.wrap, DECAWM)):
            if flag:
                self.mode.add(mode)
            else:
                self.mode.discard(mode)

    # -- erasing and editing -----------------------------------------------------------

    def _fill(self, line: Row, start: int, end: int) -> None:
        line.realize()
        blank = self._blank()
        if blank is BLANK:
            for x in range(start, end):
                line.pop(x, None)
            if line.default is not BLANK:
                line.update(dict.fromkeys(range(start, end), BLANK))
        else:
            line.update(dict.fromkeys(range(start, end), blank))

    def erase_in_line(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """EL: erase to the end (0), from the start (1) or all (2) of the cursor line.

        Erasing a whole line empties it (and ends a wrap into it from the line above), as
        in tmux; a partial erase keeps the line's wrap mark."""
        y = self.cursor.y
        x = self.cursor.x  # at the pending-wrap position EL 0 erases nothing, as in tmux
        columns = self.columns
        if how == 2 or (how == 0 and x == 0) or (how == 1 and x >= columns - 1):
            self._clear_lines(y, y + 1)
            return
        line = self.buffer[y].realize()
        if how == 0:
            if line:
                self._unsplit(line, x, columns)
            self._fill(line, x, columns)
        elif how == 1:
            end = min(x + 1, columns)
            if line:
                self._unsplit(line, 0, end)
            self._fill(line, 0, end)
        self.dirty.add(y)

    def _clear_lines(self, start: int, end: int) -> None:
        """Empty whole lines [start, end) with the current background."""
        if start >= end:
            return
        buffer = self.buffer
        blank = self._blank()
        for y in range(start, end):
            buffer[y] = Row.filled(blank)
        if start > 0:
            buffer[start - 1].wrapped = False
        self.dirty.update(range(start, end))

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """ED: erase below (0), above (1) or all (2) of the screen; 3 clears the scrollback.

        Clearing the whole main screen (ED 2, or ED 0 from the home position) first moves
        its lines into the scrollback, as tmux does (`scroll-on-clear`)."""
        cursor = self.cursor
        y = cursor.y
        if how == 2 or (how == 0 and y == 0 and cursor.x == 0):
            self._clear_into_history()
        elif how == 0:
            self._clear_lines(y + 1, self.lines)
            self.erase_in_line(0)
        elif how == 1:
            self._clear_lines(0, y)
            self.erase_in_line(1)
        elif how == 3:
            self.history.clear()
            self.pullable = 0
            self.dirty.update(range(self.lines))

    def _clear_into_history(self) -> None:
        buffer = self.buffer
        last = 0
        if not self.alternate:
            for y in range(self.lines - 1, -1, -1):
                if not buffer[y].is_blank():
                    last = y + 1
                    break
        if last:
            self.history.extend(map(compact, buffer[:last]))
            self.scrolled_off += last
            self.pullable = 0
        self._clear_lines(0, self.lines)

    def erase_characters(self, count: int | None = None) -> None:
        """ECH: blank `count` cells from the cursor without moving it."""
        if self.cursor.x >= self.columns:
            return  # at the pending-wrap position: nothing to edit (as tmux)
        x = self.cursor.x
        end = min(x + (count or 1), self.columns)
        line = self.buffer[self.cursor.y].realize()
        if line:
            self._unsplit(line, x, end)
        self._fill(line, x, end)
        self.dirty.add(self.cursor.y)

    def _shift_right(self, line: Row, x: int, count: int) -> None:
        line.realize()
        columns = self.columns
        moved = {c + count: cell for c, cell in line.items() if x <= c < columns - count}
        for c in [c for c in line if c >= x]:
            del line[c]
        line.update(moved)

    def insert_characters(self, count: int | None = None) -> None:
        """ICH: insert `count` blanks at the cursor, pushing the rest of the line right."""
        if self.cursor.x >= self.columns:
            return  # at the pending-wrap position: nothing to edit (as tmux)
        x = self.cursor.x
        count = min(count or 1, self.columns - x)
        line = self.buffer[self.cursor.y]
        self._shift_right(line, x, count)
        self._fill(line, x, x + count)
        self.dirty.add(self.cursor.y)

    def delete_characters(self, count: int | None = None) -> None:
        """DCH: delete `count` cells at the cursor, pulling the rest of the line left."""
        if self.cursor.x >= self.columns:
            return  # at the pending-wrap position: nothing to edit (as tmux)
        x = self.cursor.x
        columns = self.columns
        count = min(count or 1, columns - x)
        line = self.buffer[self.cursor.y].realize()
        moved = {c - count: cell for c, cell in line.items() if c >= x + count and c < columns}
        for c in [c for c in line if c >= x]:
            del line[c]
        if line.default is not BLANK:
            line.update(dict.fromkeys(range(x, columns), line.default))
        line.update(moved)
        self._fill(line, columns - count, columns)
        self.dirty.add(self.cursor.y)

    def alignment_display(self) -> None:
        """DECALN: fill the screen with E."""
        self.buffer = [Row() for _ in range(self.lines)]
        for line in self.buffer:
            line.update(dict.fromkeys(range(self.columns), Cell("E")))
        self.margins = None
        self.cursor_position()
        self.dirty.update(range(self.lines))

    # -- modes -------------------------------------------------------------------------

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        """SM / DECSET (with `private=True`)."""
        private = kwargs.get("private", False)
        for mode in modes:
            self._set(mode << 5 if private else mode, True)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        """RM / DECRST (with `private=True`)."""
        private = kwargs.get("private", False)
        for mode in modes:
            self._set(mode << 5 if private else mode, False)

    def _set(self, mode: int, on: bool) -> None:
        if mode in (47 << 5, 1047 << 5, 1049 << 5):
            if on:
                self._enter_alternate(save_cursor=mode == 1049 << 5)
            else:
                self._leave_alternate(restore_cursor=mode == 1049 << 5)
            return
        if mode == 1048 << 5:
            if on:
                self.save_cursor()
            else:
                self.restore_cursor()
            return
        if on:
            self.mode.add(mode)
        else:
            self.mode.discard(mode)
        if mode == DECTCEM:
            self.cursor.hidden = not on
        elif mode == DECOM:
            self.cursor_position()
        elif mode == DECSCNM:
            self.dirty.update(range(self.lines))
        elif mode == DECCOLM:
            self.margins = None
            self.erase_in_display(2)
            self.cursor_position()

    def _enter_alternate(self, save_cursor: bool) -> None:
        if self.alternate:
            return
        if save_cursor:
            self.save_cursor()
        self._saved_main = self._saved
        self._main = self.buffer
        self._main_size = (self.lines, self.columns)
        self.buffer = [Row() for _ in range(self.lines)]
        self.alternate = True
        self.dirty.update(range(self.lines))

    def _leave_alternate(self, restore_cursor: bool) -> None:
        if not self.alternate or self._main is None:
            return
        lines, columns = self.lines, self.columns
        self.buffer = self._main
        self._main = None
        self.alternate = False
        self._saved = self._saved_main
        # Back at the size the main screen had, then resized to the current one (as tmux).
        self._set_size(*self._main_size)
        if restore_cursor:
            self.restore_cursor()
        if (lines, columns) != self._main_size:
            self.resize(lines, columns)
        self.dirty.update(range(self.lines))

    def mode_state(self, mode: int, private: bool) -> int:
        """DECRQM answer for a mode: 1 set, 2 reset, 0 unknown."""
        if private:
            if mode not in _KNOWN_PRIVATE:
                return 0
            if mode in (47, 1047, 1049):
                return 1 if self.alternate else 2
            return 1 if (mode << 5) in self.mode else 2
        if mode not in _KNOWN_ANSI:
            return 0
        return 1 if mode in self.mode else 2

    def soft_reset(self) -> None:
        """DECSTR: reset modes, margins, attributes and charsets; keep the screen."""
        self.mode -= {IRM, DECOM, DECCKM}
        self.mode |= {DECAWM, DECTCEM}
        self.cursor.hidden = False
        self.cursor.attrs = BLANK
        self.margins = None
        self.g0, self.g1, self.charset = "B", "0", 0
        self._update_translate()
        self._saved = None
        self.keypad_application = False

    # -- charsets ----------------------------------------------------------------------

    def define_charset(self, code: str, mode: str) -> None:
        """SCS: designate G0 (`(`) or G1 (`)`) as DEC graphics `0`, UK `A` or ASCII `B`."""
        if code not in _CHARSETS:
            return
        if mode == "(":
            self.g0 = code
        elif mode == ")":
            self.g1 = code
        self._update_translate()

    def shift_in(self) -> None:
        self.charset = 0
        self._update_translate()

    def shift_out(self) -> None:
        self.charset = 1
        self._update_translate()

    def _update_translate(self) -> None:
        self._translate = _CHARSETS.get(self.g1 if self.charset else self.g0)

    # -- graphic rendition and reports ---------------------------------------------------

    def select_graphic_rendition(self, *attrs: int, **kwargs: Any) -> None:
        """SGR from integers (pyte's signature); the parser uses `apply_sgr` directly."""
        self.cursor.attrs = apply_sgr(self.cursor.attrs, ";".join(map(str, attrs)))

    def set_cursor_style(self, style: int) -> None:
        """DECSCUSR: 0 the default (a steady block), 1/2 block, 3/4 underline, 5/6 bar; odd
        numbers blink. Blinking is mode 12, so `CSI ? 12 h/l` can change it afterwards."""
        if not 0 <= style <= 6:
            return
        self.cursor_style = style
        if style % 2:
            self.mode.add(BLINKING_CURSOR)
        else:
            self.mode.discard(BLINKING_CURSOR)

    def write_process_input(self, data: str) -> None:
        """Queue a reply for the program (DSR, DA ...); the owner writes `replies` out."""
        self.replies.append(data)

    def report_device_attributes(self, mode: int = 0, **kwargs: Any) -> None:
        """DA1 (`CSI c`) and DA2 (`CSI > c`)."""
        if mode != 0:
            return
        if kwargs.get("secondary"):
            self.write_process_input("\x1b[>1;10;0c")
        elif not kwargs.get("private"):
            self.write_process_input("\x1b[?62;22c")

    def report_device_status(self, mode: int = 0, **kwargs: Any) -> None:
        """DSR: status (5) and cursor position (6, or DECXCPR with `private=True`)."""
        if mode == 5:
            self.write_process_input("\x1b[0n")
        elif mode == 6:
            x = min(self.cursor.x, self.columns - 1) + 1
            y = self.cursor.y + 1
            if DECOM in self.mode and self.margins is not None:
                y -= self.margins.top
            mark = "?" if kwargs.get("private") else ""
            self.write_process_input(f"\x1b[{mark}{y};{x}R")

    def bell(self, *args: Any) -> None:
        self.bells += 1

    def set_title(self, param: str) -> None:
        self.title = param

    def set_icon_name(self, param: str) -> None:
        self.icon_name = param

    # -- resizing ----------------------------------------------------------------------

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Change the size (pyte's argument order), as tmux does: shrinking drops the lines
        below the cursor, then pushes top lines into the scrollback; growing pulls back
        lines that scrolled off (not those cleared away); a width change reflows wrapped
        lines of the main screen and its scrollback (see `reflow`). The alternate screen is
        cut or padded, never reflowed; the main one is resized when the program leaves it."""
        lines = lines or self.lines
        columns = columns or self.columns
        if lines < 1 or columns < 1:
            raise ValueError(f"terminal size must be positive, got {columns}x{lines}")
        if lines == self.lines and columns == self.columns:
            return
        if self.alternate:
            self._resize_alternate(lines, columns)
        else:
            self._resize_main(lines, columns)
        self.margins = None
        self.dirty.clear()
        self.dirty.update(range(lines))

    def _set_size(self, lines: int, columns: int) -> None:
        if columns != self.columns:
            self.tabstops = set(range(8, columns, 8))  # tmux resets tab stops too
        self.lines, self.columns = lines, columns

    def _resize_alternate(self, lines: int, columns: int) -> None:
        buffer = self.buffer
        cursor = self.cursor
        old = len(buffer)
        if lines < old:
            below = min(old - 1 - cursor.y, old - lines)
            if below > 0:
                del buffer[old - below :]
            excess = len(buffer) - lines
            if excess > 0:
                del buffer[:excess]
                cursor.y = max(cursor.y - excess, 0)
        elif lines > old:
            buffer.extend(Row() for _ in range(lines - old))
        if columns < self.columns:
            for line in buffer:
                for x in [x for x in line.realize() if x >= columns]:
                    del line[x]
        self._set_size(lines, columns)
        cursor.x = min(cursor.x, columns - 1)
        cursor.y = min(cursor.y, lines - 1)

    def _resize_main(self, lines: int, columns: int) -> None:
        cursor = self.cursor
        buffer = list(self.buffer)
        history = self.history
        old = len(buffer)
        y = min(cursor.y, old - 1)
        if lines < old:
            needed = old - lines
            below = min(old - 1 - y, needed)
            if below > 0:
                del buffer[old - below :]
                needed -= below
            if needed > 0:
                history.extend(map(compact, buffer[:needed]))
                self.scrolled_off += needed
                self.pullable += needed
                del buffer[:needed]
                y -= needed
        elif lines > old:
            needed = lines - old
            pull = min(self.pullable, len(history), needed)
            pulled = [expand(history.pop()) for _ in range(pull)]
            pulled.reverse()
            self.pullable -= pull
            y += pull
            buffer = pulled + buffer + [Row() for _ in range(needed - pull)]
        x = cursor.x
        if columns != self.columns:
            combined: list[Compact] = [*history, *buffer]
            top = len(history)
            rows, _info, x, y = reflow(combined, columns, x, top + y)
            if len(rows) < lines:
                rows.extend(Row() for _ in range(lines - len(rows)))
            top = len(rows) - lines
            history.clear()
            history.extend(compact(row) if isinstance(row, Row) else row for row in rows[:top])
            self.pullable = min(self.pullable, len(history))
            buffer = [expand(row) for row in rows[top:]]
            if y >= top:
                y -= top
            else:
                x = y = 0
        self.buffer = buffer
        self._set_size(lines, columns)
        cursor.x = min(x, columns)
        cursor.y = max(0, min(y, lines - 1))

    # -- pyte compatibility ----------------------------------------------------------------

    def erase_lines(self, rows: Iterable[int]) -> None:
        """Blank whole lines (used by tests and by the widget's clear action)."""
        for y in rows:
            self.buffer[y] = Row()
            self.dirty.add(y)
