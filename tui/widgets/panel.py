"""A list panel: a ResourceTable plus its filter-as-you-type bar.

``/`` opens the bar and every keystroke narrows the table; enter returns to the list keeping
the filter (the bar stays visible so a filtered list never passes for a complete one);
escape clears it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label

from tui import keymap
from tui.widgets.resource_table import ResourceTable


class FilterBar(Horizontal):
    """The one-line filter input under a list."""

    DEFAULT_CSS = """
    FilterBar {
        height: 1;
        display: none;
        background: $panel;
    }
    FilterBar.-active { display: block; }
    FilterBar > .filter-prompt { width: auto; padding: 0 1; color: $accent; text-style: bold; }
    FilterBar > Input { width: 1fr; height: 1; border: none; padding: 0; }
    FilterBar > .filter-count { width: auto; padding: 0 1; color: $foreground-muted; }
    """

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=True, id="filter.clear")]

    def compose(self) -> ComposeResult:
        yield Label("filter", classes="filter-prompt")
        yield Input(placeholder="words to match; enter keeps, escape clears", compact=True)
        yield Label("", classes="filter-count")

    def action_clear(self) -> None:
        panel = self.query_ancestor(ResourcePanel)
        panel.clear_filter()


class ResourcePanel(Vertical):
    """Base of the containers and images panels."""

    DEFAULT_CSS = """
    ResourcePanel { height: 1fr; }
    ResourcePanel > ResourceTable { height: 1fr; }
    """

    BINDINGS = keymap.bindings(keymap.PANEL)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._binding_state: Hashable = object()

    def make_table(self) -> ResourceTable[Any]:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield self.make_table()
        yield FilterBar()

    @property
    def table(self) -> ResourceTable[Any]:
        return self.query_one(ResourceTable)

    @property
    def filter_bar(self) -> FilterBar:
        return self.query_one(FilterBar)

    def focus_table(self) -> None:
        self.table.focus()

    def action_filter(self) -> None:
        self.filter_bar.add_class("-active")
        self.filter_bar.query_one(Input).focus()
        self._update_count()

    def clear_filter(self) -> None:
        self.filter_bar.query_one(Input).value = ""
        self.table.set_filter("")
        self.filter_bar.remove_class("-active")
        self.table.focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value)
        self._update_count()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.filter_bar.remove_class("-active")
        self.table.focus()

    def _update_count(self) -> None:
        shown = len(self.table.shown_keys)
        total = len(self.table.rows_by_key)
        self.filter_bar.query_one(".filter-count", Label).update(f"{shown} of {total}")

    def binding_state(self) -> Hashable:
        """What decides which actions are enabled; the footer is rebuilt only when it changes
        (rebuilding it costs tens of milliseconds, far too much for every update)."""
        return self.table.selected_key is not None

    def _refresh_footer_if_needed(self) -> None:
        state = self.binding_state()
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def rows_changed(self) -> None:
        """Called after new data: refresh the filter count and, if needed, the footer."""
        if self.filter_bar.has_class("-active"):
            self._update_count()
        self._refresh_footer_if_needed()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._refresh_footer_if_needed()
