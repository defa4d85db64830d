"""A virtual log view: a Line API ScrollView over a bounded ``LogBuffer``.

Only the rows on screen are ever turned into text (``render_line``), so a log of any length
costs the same per frame and at most ``cap`` lines of memory. Lines of several sources are
told apart by a coloured ``name │`` prefix; search terms are highlighted in every visible
row and the current match stands out. Following keeps the last line in view; pausing holds
new lines aside (bounded too) until resumed.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.widgets.log_buffer import DEFAULT_CAP, LogBuffer, LogLine, short_stamp
from tui.widgets.resource_table import theme_styles

SOURCE_COLOURS = ("primary", "success", "warning", "accent", "secondary", "error")
STAMP_WIDTH = 20  # "2026-01-01 00:00:00 "


class LogView(ScrollView, can_focus=True):
    """See the module docstring."""

    DEFAULT_CSS = """
    LogView { height: 1fr; background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    paused: reactive[bool] = reactive(False)

    def __init__(
        self, sources: Sequence[str], *, cap: int = DEFAULT_CAP, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.sources = list(sources)
        self.buffer = LogBuffer(cap)
        self.pending: deque[tuple[int, str]] = deque(maxlen=cap)
        self.show_timestamps = False
        self.wrap = False
        self.search = ""
        self.current_match: int | None = None
        self.rows_rendered = 0  # rows turned into text since mount (tests read it)
        self._styles: dict[str, Style] = {}
        self._search_re: re.Pattern[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def on_mount(self) -> None:
        self._styles = theme_styles(self.app.get_css_variables())
        self.watch(self.app, "theme", self._theme_changed, init=False)
        self._relayout()

    def _theme_changed(self) -> None:
        self._styles = theme_styles(self.app.get_css_variables())
        self.refresh()

    def on_resize(self) -> None:
        if self.wrap:
            self._relayout()

    # -- feeding -----------------------------------------------------------------------

    @property
    def prefix_width(self) -> int:
        width = STAMP_WIDTH if self.show_timestamps else 0
        if len(self.sources) > 1:
            width += max(len(name) for name in self.sources) + 3
        return width

    def add_lines(self, source: int, lines: Iterable[str]) -> None:
        """Append lines of ``source`` (raw, each possibly starting with a stamp)."""
        if self.paused:
            self.pending.extend((source, line) for line in lines)
            return
        self._append(source, lines)
        self._update_size()

    def _append(self, source: int, lines: Iterable[str]) -> None:
        dropped = self.buffer.append(source, lines)
        if not dropped:
            return
        # Rows left at the front: keep the match and (when not following) the view in place.
        if self.current_match is not None:
            self.current_match -= dropped
            if self.current_match < 0:
                self.current_match = None
        if not self.follow:
            y = max(0, int(self.scroll_offset.y) - dropped)
            self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def _update_size(self) -> None:
        width = 0 if self.wrap else self.prefix_width + self.buffer.longest
        self.virtual_size = Size(width, len(self.buffer.rows))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self.refresh()

    def _relayout(self) -> None:
        wrap_width = self.scrollable_content_region.width if self.wrap else 0
        if self.wrap and wrap_width <= 0:
            wrap_width = max(20, self.size.width)
        self.buffer.relayout(wrap_width=wrap_width, prefix=self.prefix_width)
        self.current_match = None
        self._update_size()

    # -- toggles -----------------------------------------------------------------------

    def watch_paused(self, paused: bool) -> None:
        if not paused and self.pending:
            held = list(self.pending)
            self.pending.clear()
            for source, line in held:
                self._append(source, (line,))
            self._update_size()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def set_filter(self, text: str) -> None:
        self.buffer.relayout(filter_text=text)
        self.current_match = None
        self._update_size()

    def set_timestamps(self, on: bool) -> None:
        self.show_timestamps = on
        self._relayout()

    def set_wrap(self, on: bool) -> None:
        self.wrap = on
        self.scroll_to(x=0, animate=False, immediate=True, force=True)
        self._relayout()

    def set_search(self, text: str) -> None:
        self.search = text
        self._search_re = re.compile(re.escape(text), re.IGNORECASE) if text else None
        self.current_match = None
        self.refresh()

    def jump(self, backwards: bool = False) -> bool:
        """Move to the next (previous) row matching the search; False when none does."""
        start = self.current_match
        if start is None:
            start = int(self.scroll_offset.y) - (0 if backwards else 1)
            if backwards:
                start = int(self.scroll_offset.y) + self.scrollable_content_region.height
        row = self.buffer.find(self.search, start, backwards)
        if row is None:
            return False
        self.follow = False
        self.current_match = row
        top = int(self.scroll_offset.y)
        height = self.scrollable_content_region.height
        if not top <= row < top + height:
            self.scroll_to(y=max(0, row - height // 2), animate=False, immediate=True, force=True)
        self.refresh()
        return True

    # -- drawing -----------------------------------------------------------------------

    def line_text(self, line: LogLine) -> Text:
        """The whole (unwrapped) text of ``line`` as shown: stamp, source, text."""
        text = Text(no_wrap=True, end="")
        muted = self._styles.get("foreground-muted", Style(dim=True))
        if self.show_timestamps:
            text.append(f"{short_stamp(line.stamp)} ", style=muted)
        if len(self.sources) > 1:
            name_width = max(len(name) for name in self.sources)
            colour = SOURCE_COLOURS[line.source % len(SOURCE_COLOURS)]
            style = self._styles.get(colour, Style()) + Style(bold=True)
            text.append(self.sources[line.source].ljust(name_width), style=style)
            text.append(" │ ", style=muted)
        start = len(text)
        text.append(line.text)
        if self._search_re is not None:
            for found in self._search_re.finditer(line.text):
                text.stylize(
                    Style(reverse=True, bold=True), start + found.start(), start + found.end()
                )
        return text

    def plain(self, line: LogLine) -> str:
        return self.line_text(line).plain

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        rows = self.buffer.rows
        if not 0 <= index < len(rows):
            return Strip.blank(width, self.rich_style)
        seq, start = rows[index]
        line = self.buffer.line(seq)
        if line is None:
            return Strip.blank(width, self.rich_style)
        self.rows_rendered += 1
        text = self.line_text(line)
        if self.wrap:
            text = text[start : start + width]
        if index == self.current_match:
            text.stylize(self._styles.get("accent", Style()) + Style(underline=True))
        segments = [Segment(seg.text, seg.style) for seg in text.render(self.app.console, "")]
        strip = Strip(segments).apply_style(self.rich_style)
        if not self.wrap:
            strip = strip.crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, self.rich_style)

    def lines_in_view(self) -> list[str]:
        """The lines on screen (a wrapped line once), as shown and unwrapped."""
        rows = self.buffer.rows
        top = self.scroll_offset.y
        seqs: list[int] = []
        for index in range(top, min(len(rows), top + self.scrollable_content_region.height)):
            seq = rows[index][0]
            if not seqs or seqs[-1] != seq:
                seqs.append(seq)
        found = (self.buffer.line(seq) for seq in seqs)
        return [self.plain(line) for line in found if line is not None]

    def match_line(self) -> str | None:
        """The line of the current search match, if there is one."""
        rows = self.buffer.rows
        if self.current_match is None or not 0 <= self.current_match < len(rows):
            return None
        line = self.buffer.line(rows[self.current_match][0])
        return None if line is None else self.plain(line)

    def saved_text(self) -> str:
        """Every line that passes the filter, as shown (unwrapped), one per line."""
        return "".join(f"{self.plain(line)}\n" for line in self.buffer.shown_lines())
