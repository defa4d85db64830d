"""A DataTable of engine objects that diffs updates, sorts by column and filters as you type.

Subclasses declare ``COLUMNS`` (label, how to draw a cell, how to sort) and feed rows with
``replace_rows`` / ``merge_rows``. When the visible order is unchanged only changed cells
are touched; otherwise the table is rebuilt in one go and the cursor stays on the same
object. Cells are ``rich.text.Text`` (never markup, so names cannot inject styles) with
colours taken from the current theme.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.color import Color, ColorParseError
from textual.coordinate import Coordinate
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from tui import keymap
from tui.copy import preview, row_id, row_name

RowT = TypeVar("RowT")

_NOWHERE = Coordinate(-2, -2)  # matches no row, not even the header (-1)
STYLE_NAMES = ("success", "warning", "error", "primary", "secondary", "accent", "foreground-muted")


@dataclass(frozen=True, slots=True)
class CellContext:
    """What cell renderers may depend on besides the row: time, theme styles, extras."""

    now: float
    styles: Mapping[str, Style]
    extra: Mapping[str, Any]

    def style(self, name: str) -> Style:
        return self.styles.get(name, Style())


@dataclass(frozen=True, slots=True)
class Column(Generic[RowT]):
    """One column: its key, header label, cell renderer and sort key."""

    key: str
    label: str
    cell: Callable[[RowT, CellContext], Text]
    sort_key: Callable[[RowT], Any]


def theme_styles(variables: Mapping[str, str]) -> dict[str, Style]:
    """Rich styles for the named theme colours (unknown or unparsable ones are skipped)."""
    styles: dict[str, Style] = {}
    for name in STYLE_NAMES:
        value = variables.get(name)
        if not value:
            continue
        try:
            styles[name] = Style(color=Color.parse(value).rich_color)
        except ColorParseError:
            continue
    return styles


_JOIN = Text("\n")


def _one_line(cell: object, width: int) -> Text | None:
    """``cell`` laid out in ``width`` cells as Rich would (no wrap: justified and
    truncated); None when it is not a one-line Text this can lay out."""
    if not isinstance(cell, Text) or width < 1 or "\n" in cell.plain or "\t" in cell.plain:
        return None
    justify = cell.justify or "default"
    overflow = cell.overflow or "fold"
    if justify not in ("default", "left", "right") or overflow == "ignore":
        return None
    if justify == "default" and cell.cell_len <= width:
        return cell  # nothing to change: no copy
    line = cell.copy()
    if justify == "left":
        line.truncate(width, overflow=overflow, pad=True)
    elif justify == "right":
        line.rstrip()
        line.truncate(width, overflow=overflow)
        line.pad_left(width - line.cell_len)
    line.truncate(width, overflow=overflow)
    return line


def _segments(line: Text, console: Console) -> Iterable[Segment]:
    """``line``'s segments as ``Text.__rich_console__`` makes them (its style joined in as
    a span); a plain one-style line, most cells, is one segment without Rich's span walk."""
    if line._spans or not line.plain:
        return _JOIN.join([line]).render(console)
    if not line.style:
        return (Segment(line.plain),)
    return (Segment(line.plain, console.get_style(line.style, default=Style.null())),)


class ResourceTable(DataTable, Generic[RowT]):
    """Base of the containers and images tables (see the module docstring)."""

    BINDINGS = keymap.bindings(keymap.TABLE)
    COLUMNS: ClassVar[list[Column[Any]]] = []
    WARM_LINES: ClassVar[int] = 8  # lines drawn ahead per idle turn (~1 ms each)
    DEFAULT_SORT: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: dict[str, RowT] = {}
        self._shown: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._drawn: dict[str, tuple[RowT, tuple[Text, ...]]] = {}  # by key: row, its cells
        self.filter_text = ""
        self.sort_column = self.DEFAULT_SORT or self.COLUMNS[0].key
        self.sort_reverse = False
        self.extra: dict[str, Any] = {}
        self._styles: dict[str, Style] = {}
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(1000)
        self._ready = False

    # -- hooks -------------------------------------------------------------------------

    def row_key(self, row: RowT) -> str:
        raise NotImplementedError

    def search_text(self, row: RowT) -> str:
        raise NotImplementedError

    def now(self) -> float:
        clock: Callable[[], float] = getattr(self.app, "clock", None) or (lambda: 0.0)
        return clock()

    # -- lifecycle ---------------------------------------------------------------------

    def on_mount(self) -> None:
        self._styles = theme_styles(self.app.get_css_variables())
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self._add_columns()
        self._ready = True
        self.redraw()

    def _theme_changed(self) -> None:
        self._styles = theme_styles(self.app.get_css_variables())
        self._cells.clear()
        self._drawn.clear()
        self.redraw(rebuild=True)

    def _add_columns(self) -> None:
        for column in self.COLUMNS:
            label = Text(column.label, style="bold")
            if column.key == self.sort_column:
                label.append(" ▼" if self.sort_reverse else " ▲")
            self.add_column(label, key=column.key)

    # -- data --------------------------------------------------------------------------

    @property
    def rows_by_key(self) -> Mapping[str, RowT]:
        return self._rows

    @property
    def shown_keys(self) -> list[str]:
        """Keys of the rows on screen, top to bottom."""
        return list(self._shown)

    def replace_rows(self, rows: Iterable[RowT]) -> None:
        """Show exactly ``rows``."""
        self._rows = {self.row_key(row): row for row in rows}
        self.redraw()

    def merge_rows(self, rows: Iterable[RowT], removed: Iterable[Hashable] = ()) -> None:
        """Add or replace ``rows`` and drop the ``removed`` keys."""
        for key in removed:
            self._rows.pop(str(key), None)
        for row in rows:
            self._rows[self.row_key(row)] = row
        self.redraw()

    def set_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self.redraw(same_rows=True)

    @property
    def selected_key(self) -> str | None:
        if not self._shown or not 0 <= self.cursor_row < len(self._shown):
            return None
        return self._shown[self.cursor_row]

    @property
    def selected(self) -> RowT | None:
        key = self.selected_key
        return self._rows.get(key) if key is not None else None

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row with ``key``; False if it is not shown."""
        try:
            index = self._shown.index(key)
        except ValueError:
            return False
        self.move_cursor(row=index)
        return True

    # -- drawing -----------------------------------------------------------------------

    def _visible(self) -> list[str]:
        terms = self.filter_text.lower().split()
        rows = [
            (key, row)
            for key, row in self._rows.items()
            if all(term in self.search_text(row) for term in terms)
        ]
        column = next((c for c in self.COLUMNS if c.key == self.sort_column), self.COLUMNS[0])
        rows.sort(key=lambda item: (column.sort_key(item[1]), item[0]), reverse=self.sort_reverse)
        return [key for key, _ in rows]

    def redraw(self, *, rebuild: bool = False, same_rows: bool = False) -> None:
        """Bring the table in line with the rows, filter and sort order. ``same_rows``: only
        which rows show changed (the filter), so cells drawn before for the same row objects
        are reused: typing a filter does not redraw 500 rows' cells per key."""
        if not self._ready:
            return
        context = CellContext(self.now(), self._styles, self.extra)
        visible = self._visible()
        drawn = self._drawn if same_rows else {}
        cells = {}
        for key in visible:
            row = self._rows[key]
            before = drawn.get(key)
            if before is not None and before[0] is row:
                cells[key] = before[1]
            else:
                cells[key] = self._render_row(row, context)
                self._drawn[key] = (row, cells[key])
        if not same_rows:
            self._drawn = {key: (self._rows[key], value) for key, value in cells.items()}
        if not rebuild and visible == self._shown:
            columns = [c.key for c in self.COLUMNS]
            for key in visible:
                old = self._cells.get(key)
                new = cells[key]
                if old == new:
                    continue
                for index, value in enumerate(new):
                    if old is None or old[index] != value:
                        column = self.columns[columns[index]]  # type: ignore[index]
                        wider = value.cell_len > column.content_width
                        self.update_cell(key, columns[index], value, update_width=wider)
            self._cells = cells
            return
        selected = self.selected_key
        cursor = self.cursor_row
        self.clear(columns=rebuild)
        if rebuild:
            self._add_columns()
        self.add_rows_with_keys(visible, cells)
        self._shown = visible
        self._cells = cells
        if visible:
            if selected in cells:
                self.move_cursor(row=visible.index(selected), animate=False)
            else:
                self.move_cursor(row=min(max(cursor, 0), len(visible) - 1), animate=False)

    def add_rows_with_keys(self, keys: list[str], cells: Mapping[str, tuple[Text, ...]]) -> None:
        for key in keys:
            self.add_row(*cells[key], key=key)

    def _render_row(self, row: RowT, context: CellContext) -> tuple[Text, ...]:
        return tuple(column.cell(row, context) for column in self.COLUMNS)

    # -- actions -----------------------------------------------------------------------

    def _clear_caches(self) -> None:
        super()._clear_caches()
        strips = getattr(self, "_strips", None)  # DataTable.__init__ calls this before ours
        if strips is not None:
            strips.clear()

    def on_idle(self) -> None:
        self._warm_ahead()

    def _warm_ahead(self) -> None:
        """Draw the pages below and above the shown one (then the last and the first) into
        the line cache, ``WARM_LINES`` lines per turn of the message loop, while nothing
        else happens: a page key then finds its rows drawn (a page of never-drawn rows was
        the slowest frame there is).
        Stops when both pages are cached, so an idle dashboard does no work."""
        width, height = self.size
        body = height - (self.header_height if self.show_header else 0)
        if self.cursor_type != "row" or not self.row_count or body <= 0 or not self.region:
            return
        if self._require_update_dimensions or self._updated_cells or self._new_rows:
            return  # column widths not measured yet: DataTable does it when idle
        scroll_x, scroll_y = self.scroll_offset
        header = height - body
        top = scroll_y + header  # the first body line's y, as render_line makes it
        end = self.virtual_size.height  # past the last row's line
        wanted = [
            y
            for y in (
                *range(top + body, top + 2 * body),  # page down
                *range(top - body, top),  # page up
                *range(end - body, end),  # end
                *range(header, header + body),  # home
            )
            if header <= y < end
        ]
        self._pseudo_class_state = self.get_pseudo_class_state()
        base_style = self.rich_style
        drawn = 0
        for y in wanted:
            before = len(self._strips)
            self._render_line(y, scroll_x, scroll_x + width, base_style)
            drawn += len(self._strips) != before
            if drawn >= self.WARM_LINES:
                self.call_later(self._warm_ahead)  # the rest after whatever is queued
                return

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # DataTable caches whole lines by screen position and cursor, so scrolling one row
        # rebuilds every line. Key them by row instead, with only whether the cursor or the
        # hover is on that row: a scroll then builds one new line.
        if self.cursor_type != "row":
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row = self._row_locations.get(row_key) if row_key in self._row_locations else -1
        key = (
            row_key,
            line_no,
            x1,
            x2,
            self.size.width,
            self.cursor_coordinate.row == row,
            self.hover_coordinate.row == row,
            base_style,
            self.show_cursor,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
            tuple(column.get_render_width(self) for column in self.ordered_columns),
        )
        strip = self._strips.get(key)
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            self._strips[key] = strip
        return strip

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        # DataTable caches rendered rows under the cursor and hover locations, so moving the
        # cursor one row re-renders every row on the page (tens of ms with 40 rows of 10
        # cells). With a row cursor, a row only depends on whether the cursor or the hover
        # is on it: key the others to a location no row has, and they come from the cache.
        if self.cursor_type == "row":
            row = self._row_locations.get(row_key) if row_key in self._row_locations else -1
            if cursor_location.row != row:
                cursor_location = _NOWHERE
            if hover_location.row != row:
                hover_location = _NOWHERE
        return super()._render_line_in_row(
            row_key, line_no, base_style, cursor_location, hover_location
        )

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        # DataTable draws every cell through Rich's render_lines(Styled(Padding(cell))):
        # ~0.3 ms a cell, so a page of never-drawn rows (40 x 10 cells) cost 100+ ms. Our
        # body cells are one-line Texts: the same segments are made here directly (a test
        # compares both ways cell by cell); anything else still goes the long way.
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        cache_key = (
            row_key,
            self._column_locations.get_key(column_index),
            width,  # DataTable measures columns when idle, after rows are added
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        row = self.rows.get(row_key) if row_key is not None else None
        cells = self._get_row_renderables(row_index).cells
        cell = cells[column_index] if column_index < len(cells) else None
        line = _one_line(cell, width - 2 * self.cell_padding) if row else None
        if row is None or row.height != 1 or line is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            fixed,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index})
        pad = Segment(" " * self.cell_padding)
        segments = [pad, *_segments(line, self.app.console)]
        inner = width - 2 * self.cell_padding
        if line.cell_len < inner:
            segments.append(Segment(" " * (inner - line.cell_len)))  # as render_lines pads
        segments.append(pad)
        lines = [list(Segment.apply_style(segments, pre_style + component_style, post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines

    def action_copy_id(self) -> None:
        self._copy(row_id)

    def action_copy_name(self) -> None:
        self._copy(row_name)

    def _copy(self, pick: Callable[[Any], str]) -> None:
        row = self.selected
        if row is None:
            self.notify("Copy: no row selected", severity="warning", timeout=3)
            return
        text = pick(row)
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {preview(text)}", timeout=2)

    def action_sort_next(self) -> None:
        keys = [c.key for c in self.COLUMNS]
        index = keys.index(self.sort_column) if self.sort_column in keys else -1
        self.sort_column = keys[(index + 1) % len(keys)]
        self.redraw(rebuild=True)
        self.notify(f"Sorted by {self._label(self.sort_column)}", timeout=2)

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.redraw(rebuild=True)

    def sort_by(self, column_key: str) -> None:
        """Sort by ``column_key``; sorting by the current column again reverses the order."""
        if column_key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column_key, False
        self.redraw(rebuild=True)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def _label(self, key: str) -> str:
        return next((c.label for c in self.COLUMNS if c.key == key), key)
