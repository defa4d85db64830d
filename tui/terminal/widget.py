"""`TerminalView`: the Textual widget that shows a `Terminal` and sends it keys and mouse.

Rendering is line-based: only rows the core reported changed are refreshed, each row's
strip is cached until it changes, equal-style cells are one segment (see `render`). The
cursor is drawn only while focused and visible (DECTCEM), in the shape the program chose
(DECSCUSR: block, underline or bar, blinking when asked). Scrollback: mouse wheel and
shift+pageup/pagedown/home/end (typing returns to the live screen). Selection with the
mouse (when the program does not track it) copies on release; OSC 52 from the program
copies too. Keys go through `keys.encode_key` (DECCKM, modifiers, function keys, kitty
protocol safe); mouse reports, bracketed paste and focus events when the program asks.
Resizes are debounced and passed to the program. Escape twice quickly leaves the terminal
(`Leave` is posted and focus released) - the first escape still reaches the program.
"""

from __future__ import annotations

import time

from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from .cells import Row
from .keys import encode_focus, encode_key, encode_paste
from .mouse import encode_mouse
from .render import StyleCache, render_cells, render_runs
from .screen import DECSCNM
from .terminal import Terminal

_SCROLL_KEYS = {"shift+pageup", "shift+pagedown", "shift+home", "shift+end"}
_WHEEL_LINES = 3


class TerminalView(Widget, can_focus=True):
    """Shows one `Terminal`; `attach` switches to another (sessions keep running)."""

    DEFAULT_CSS = """
    TerminalView {
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $foreground;
    }
    """
    ALLOW_SELECT = False

    class Leave(Message):
        """The user pressed the escape hatch: the dashboard should take focus."""

        def __init__(self, view: TerminalView) -> None:
            super().__init__()
            self.view = view

        @property
        def control(self) -> TerminalView:
            return self.view

    class TitleChanged(Message):
        """The program set a new title (OSC 0/2)."""

        def __init__(self, view: TerminalView, title: str) -> None:
            super().__init__()
            self.view = view
            self.title = title

        @property
        def control(self) -> TerminalView:
            return self.view

    class Exited(Message):
        """The program of the shown terminal ended (or the session detached)."""

        def __init__(self, view: TerminalView, terminal: Terminal) -> None:
            super().__init__()
            self.view = view
            self.terminal = terminal

        @property
        def control(self) -> TerminalView:
            return self.view

    def __init__(
        self,
        terminal: Terminal | None = None,
        *,
        leave_timeout: float = 0.4,
        resize_delay: float = 0.075,
        cursor_blink: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.terminal: Terminal | None = None
        self.leave_timeout = leave_timeout
        self.resize_delay = resize_delay
        self.history_offset = 0
        """Lines scrolled back into history (0: the live screen)."""
        self.cursor_blink = cursor_blink
        """Blink the cursor when the program asks (DECSCUSR 1/3/5, mode 12)."""
        self.cursor_phase = True
        """False while a blinking cursor is in its hidden half."""
        self._strips: dict[int, Strip] = {}
        self._styles = StyleCache(Style())
        self._base: Style | None = None
        self._cursor_row: int | None = None
        self._last_escape = 0.0
        self._resize_timer: Timer | None = None
        self._title = ""
        self._selecting = False
        self._anchor: tuple[int, int] | None = None
        self._selection: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._buttons: set[int] = set()
        if terminal is not None:
            self.attach(terminal)

    # -- terminal binding ----------------------------------------------------------------

    def attach(self, terminal: Terminal) -> None:
        """Show `terminal` (the previous one keeps running)."""
        if self.terminal is terminal:
            return
        self.detach()
        self.terminal = terminal
        self.history_offset = 0
        self._selection = None
        self._strips.clear()
        terminal.add_listener(self._changed)
        terminal.on_exit.append(self._exited)
        terminal.on_clipboard = self._copy
        if self.is_mounted:
            self._schedule_resize()
            self.refresh()

    def detach(self) -> None:
        """Stop showing the current terminal."""
        terminal = self.terminal
        if terminal is None:
            return
        terminal.remove_listener(self._changed)
        if self._exited in terminal.on_exit:
            terminal.on_exit.remove(self._exited)
        if terminal.on_clipboard == self._copy:
            terminal.on_clipboard = None
        self.terminal = None

    def _changed(self, rows: set[int]) -> None:
        """Called by the terminal after each feed with the rows that changed."""
        terminal = self.terminal
        if terminal is None or not self.is_mounted:
            self._strips.clear()
            return
        strips = self._strips
        screen = terminal.screen
        width = self._width
        regions: list[Region] = []
        if self.history_offset:
            # Scrolled back: keep the view on the same history lines as output arrives.
            pushed = screen.scrolled_off
            if pushed != self._history_seen:
                self.history_offset = min(
                    self.history_offset + pushed - self._history_seen, len(screen.history)
                )
            self._history_seen = pushed
            strips.clear()
            self.refresh()
        elif len(rows) >= screen.lines // 2:
            strips.clear()
            self.refresh()
        else:
            for y in rows:
                strips.pop(y, None)
                regions.append(Region(0, y, width, 1))
        cursor = screen.cursor
        row = cursor.y
        if row != self._cursor_row or rows:
            for y in (self._cursor_row, row):
                if y is not None:
                    regions.append(Region(0, y, width, 1))
            self._cursor_row = row
        if regions:
            self.refresh(*regions)
        title = terminal.title
        if title != self._title:
            self._title = title
            self.post_message(self.TitleChanged(self, title))

    _history_seen = 0

    def _exited(self, terminal: Terminal) -> None:
        if terminal is self.terminal and self.is_mounted:
            self.post_message(self.Exited(self, terminal))

    def _copy(self, text: str) -> None:
        if self.is_mounted:
            self.app.copy_to_clipboard(text)

    # -- rendering ---------------------------------------------------------------------

    def _style_cache(self) -> StyleCache:
        if self._base is None:
            base = self.rich_style  # costly: computed again only when styles change
            self._base = base
            self._styles = StyleCache(Style(color=base.color, bgcolor=base.bgcolor))
            self._strips.clear()
        return self._styles

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None

    def _row_at(self, y: int) -> tuple[Row | None, int]:
        """The row shown on view line `y` and its absolute index (history first)."""
        terminal = self.terminal
        if terminal is None:
            return None, y
        screen = terminal.screen
        history = screen.history
        index = len(history) - self.history_offset + y
        if index < len(history):
            return (screen.history_row(index) if index >= 0 else None), index
        screen_y = index - len(history)
        if screen_y < screen.lines:
            return screen.buffer[screen_y], index
        return None, index

    def render_line(self, y: int) -> Strip:
        styles = self._style_cache()
        width = self._width
        terminal = self.terminal
        if terminal is None:
            return Strip.blank(width, styles.base)
        screen = terminal.screen
        row, index = self._row_at(y)
        if row is None:
            return Strip.blank(width, styles.base)
        cursor_x = None
        cursor = screen.cursor
        if (
            self.history_offset == 0
            and y == cursor.y
            and self.has_focus
            and not cursor.hidden
            and not terminal.exited
            and self.cursor_phase
        ):
            cursor_x = min(cursor.x, screen.columns - 1)
        selected = self._selected_columns(index, screen.columns)
        if DECSCNM in screen.mode:  # reverse-video screen: everything inverted
            selected = (0, screen.columns) if selected is None else None
        cacheable = cursor_x is None and selected is None and self.history_offset == 0
        if cacheable:
            strip = self._strips.get(y)
            if strip is not None and strip.cell_length == width:
                return strip
        strip = None
        if cacheable and row.lazy is not None:
            strip = render_runs(row, screen.columns, styles, width)
        if strip is None:
            strip = render_cells(
                row.cells(screen.columns),
                styles,
                width,
                inverse=selected,
                cursor=cursor_x,
                cursor_shape=terminal.core.cursor_shape,
            )
        if cacheable:
            self._strips[y] = strip
        return strip

    # -- size --------------------------------------------------------------------------

    _width = 0

    def on_mount(self) -> None:
        self._width = self.size.width
        self._schedule_resize()
        self.set_interval(0.5, self.blink_cursor)

    def blink_cursor(self) -> None:
        """One blink step (called twice a second): toggle a blinking cursor's visibility;
        a steady cursor stays shown."""
        terminal = self.terminal
        if terminal is None:
            return
        phase = not self.cursor_phase if self.cursor_blink and terminal.core.cursor_blink else True
        if phase != self.cursor_phase and self.has_focus:
            self.cursor_phase = phase
            y = terminal.screen.cursor.y
            self._strips.pop(y, None)
            self.refresh(Region(0, y, self._width, 1))
        else:
            self.cursor_phase = phase

    def on_resize(self, event: events.Resize) -> None:
        self._width = self.size.width  # read once: `size` is costly on the render path
        self._strips.clear()
        self._schedule_resize()

    def _schedule_resize(self) -> None:
        if self._resize_timer is not None:
            self._resize_timer.stop()
        self._resize_timer = self.set_timer(self.resize_delay, self._apply_resize)

    async def _apply_resize(self) -> None:
        self._resize_timer = None
        terminal = self.terminal
        width, height = self.size.width, self.size.height
        if terminal is None or width < 1 or height < 1:
            return
        self._strips.clear()
        await terminal.resize(width, height)
        # A reflow changes how many scrollback lines there are: stay inside them.
        self.history_offset = min(self.history_offset, len(terminal.screen.history))
        self._history_seen = terminal.screen.scrolled_off
        self.refresh()

    # -- keyboard ----------------------------------------------------------------------

    async def on_key(self, event: events.Key) -> None:
        terminal = self.terminal
        if terminal is None or terminal.exited:
            return  # nothing to type into: let the dashboard have the key
        event.stop()
        event.prevent_default()
        key = event.key
        if key == "escape":
            now = time.monotonic()
            if now - self._last_escape <= self.leave_timeout:
                self._last_escape = 0.0
                self.post_message(self.Leave(self))
                self.blur()
                return
            self._last_escape = now
        if key in _SCROLL_KEYS:
            self._scroll_keys(key)
            return
        self.cursor_phase = True  # typing shows a blinking cursor at once
        core = terminal.core
        data = encode_key(
            key,
            event.character,
            application_cursor=core.application_cursor,
            application_keypad=core.application_keypad,
        )
        if data:
            self._to_live()
            terminal.write(data)

    def _scroll_keys(self, key: str) -> None:
        page = max(self.size.height - 1, 1)
        if key == "shift+pageup":
            self.scroll_history(page)
        elif key == "shift+pagedown":
            self.scroll_history(-page)
        elif key == "shift+home":
            self.scroll_history(1 << 30)
        else:
            self._to_live()

    def scroll_history(self, lines: int) -> None:
        """Scroll back (positive) or forward (negative) through the scrollback."""
        terminal = self.terminal
        if terminal is None:
            return
        history = len(terminal.screen.history)
        offset = max(0, min(self.history_offset + lines, history))
        if offset != self.history_offset:
            self.history_offset = offset
            self._history_seen = terminal.screen.scrolled_off
            self._strips.clear()
            self.refresh()

    def _to_live(self) -> None:
        if self.history_offset:
            self.scroll_history(-self.history_offset)

    def on_paste(self, event: events.Paste) -> None:
        terminal = self.terminal
        if terminal is None:
            return
        event.stop()
        self._to_live()
        terminal.write(encode_paste(event.text, terminal.core.bracketed_paste))

    def on_focus(self, event: events.Focus) -> None:
        self._focus_changed(True)

    def on_blur(self, event: events.Blur) -> None:
        self._focus_changed(False)

    def _focus_changed(self, focused: bool) -> None:
        terminal = self.terminal
        if terminal is None:
            return
        if terminal.core.focus_events:
            terminal.write(encode_focus(focused))
        y = terminal.screen.cursor.y
        self._strips.pop(y, None)
        self.refresh(Region(0, y, self.size.width, 1))

    # -- mouse -------------------------------------------------------------------------

    def _report(self, action: str, event: events.MouseEvent, button: int = 0) -> bool:
        """Send a mouse report when the program tracks the mouse; True if it does."""
        terminal = self.terminal
        if terminal is None:
            return False
        core = terminal.core
        tracking = core.mouse_tracking
        if tracking is None or event.shift:  # shift: select even when tracked, as xterm
            return False
        data = encode_mouse(
            action,  # type: ignore[arg-type]
            event.x,
            event.y,
            button=button,
            tracking=tracking,
            encoding=core.mouse_encoding,
            meta=event.meta,
            ctrl=event.ctrl,
            held=bool(self._buttons),
        )
        if data:
            terminal.write(data)
        return True

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        if self._report("wheel_up", event):
            return
        if self._wheel_as_keys("up"):
            return
        self.scroll_history(_WHEEL_LINES)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        if self._report("wheel_down", event):
            return
        if self._wheel_as_keys("down"):
            return
        self.scroll_history(-_WHEEL_LINES)

    def _wheel_as_keys(self, direction: str) -> bool:
        """In the alternate screen (less, vi) the wheel sends cursor keys, as xterm does."""
        terminal = self.terminal
        if terminal is None or not terminal.screen.alternate:
            return False
        data = encode_key(direction, application_cursor=terminal.core.application_cursor)
        terminal.write((data or b"") * _WHEEL_LINES)
        return True

    def on_mouse_down(self, event: events.MouseDown) -> None:
        event.stop()
        button = max(event.button - 1, 0)
        self._buttons.add(button)
        if self._report("press", event, button):
            return
        self.capture_mouse()
        self._selecting = True
        self._anchor = self._point(event)
        if self._selection is not None:
            self._selection = None
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._selecting and self._anchor is not None:
            event.stop()
            self._selection = (self._anchor, self._point(event))
            self.refresh()
            return
        if self.terminal is not None and self.terminal.core.mouse_tracking in ("button", "any"):
            event.stop()
            held = min(self._buttons) if self._buttons else 0
            self._report("motion", event, held)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        event.stop()
        button = max(event.button - 1, 0)
        self._buttons.discard(button)
        if self._selecting:
            self._selecting = False
            self.release_mouse()
            text = self.selected_text()
            if text:
                self.app.copy_to_clipboard(text)
            return
        self._report("release", event, button)

    def _point(self, event: events.MouseEvent) -> tuple[int, int]:
        """A mouse position as (absolute row including history, column)."""
        _row, index = self._row_at(max(0, min(event.y, self.size.height - 1)))
        return index, max(0, event.x)

    def _ordered_selection(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if self._selection is None:
            return None
        start, end = sorted(self._selection)
        if start == end:
            return None
        return start, end

    def _selected_columns(self, index: int, columns: int) -> tuple[int, int] | None:
        selection = self._ordered_selection()
        if selection is None:
            return None
        (row0, col0), (row1, col1) = selection
        if index < row0 or index > row1:
            return None
        start = col0 if index == row0 else 0
        end = col1 + 1 if index == row1 else columns
        return start, end

    def selected_text(self) -> str:
        """The selected text, lines joined with newlines (wrapped lines joined)."""
        terminal = self.terminal
        selection = self._ordered_selection()
        if terminal is None or selection is None:
            return ""
        screen = terminal.screen
        history = screen.history
        (row0, _), (row1, _) = selection
        parts: list[str] = []
        for index in range(row0, row1 + 1):
            if index < len(history):
                row = screen.history_row(index)
            elif index - len(history) < screen.lines:
                row = screen.buffer[index - len(history)]
            else:
                break
            columns = self._selected_columns(index, screen.columns)
            if columns is None:
                continue
            cells = row.cells(screen.columns)[columns[0] : columns[1]]
            text = "".join(cell.data for cell in cells)
            parts.append(text if row.wrapped and index != row1 else text.rstrip() + "\n")
        return "".join(parts).rstrip("\n")

    def select(self, start: tuple[int, int], end: tuple[int, int]) -> None:
        """Select from `start` to `end`, (view line, column) each, inclusive."""
        self._selection = (self._row_at(start[0])[1], start[1]), (self._row_at(end[0])[1], end[1])
        self.refresh()
