"""The containers panel: the list of every container and the actions on the selected one.

Actions go to the app, which runs them on the engine in workers; the list itself only
changes when the engine's events say so. ``check_action`` greys out what does not apply
to the selected container (start on a running one, pause on a stopped one, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, cast

from rich.text import Text

from tui import keymap
from tui.humanize import ellipsize, human_age, human_size, short_id
from tui.model import ContainerRow
from tui.widgets.panel import ResourcePanel
from tui.widgets.resource_table import CellContext, Column, ResourceTable

if TYPE_CHECKING:
    from tui.app import PortsideApp

LIVE_STATES = frozenset({"running", "paused", "restarting"})
_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")
_STATE_LOOK: dict[str, tuple[str, str, int]] = {
    # state: (glyph, theme colour, sort rank)
    "running": ("●", "success", 0),
    "restarting": ("↻", "warning", 1),
    "paused": ("‖", "warning", 2),
    "created": ("○", "secondary", 3),
    "exited": ("■", "foreground-muted", 4),
    "removing": ("✕", "warning", 5),
    "dead": ("✕", "error", 6),
}


def exit_code(row: ContainerRow) -> int | None:
    match = _EXIT_CODE.match(row.status)
    return int(match.group(1)) if match else None


def _state_cell(row: ContainerRow, ctx: CellContext) -> Text:
    glyph, colour, _ = _STATE_LOOK.get(row.state, ("?", "warning", 9))
    if row.state == "exited" and exit_code(row) not in (None, 0):
        colour = "error"
    return Text(f"{glyph} {row.state}", style=ctx.style(colour), no_wrap=True)


def _state_rank(row: ContainerRow) -> tuple[int, str]:
    return (_STATE_LOOK.get(row.state, ("", "", 9))[2], row.name)


def _text(value: str, width: int, style: str = "") -> Callable[[ContainerRow, CellContext], Text]:
    """A cell renderer showing attribute ``value`` cut to ``width``, in theme colour ``style``."""

    def cell(row: ContainerRow, ctx: CellContext) -> Text:
        return Text(
            ellipsize(getattr(row, value), width),
            style=ctx.style(style) if style else "",
            no_wrap=True,
        )

    return cell


def _figure(row: ContainerRow, ctx: CellContext, index: int) -> Text:
    """CPU % (``index`` 0) or memory (1) from the last one-shot stats of a running row."""
    if row.state != "running":
        return Text("", no_wrap=True)
    figures = ctx.extra.get("stats", {}).get(row.id)
    if figures is None:
        return Text("…", style=ctx.style("foreground-muted"), no_wrap=True, justify="right")
    value = f"{figures[0]:.1f}%" if index == 0 else human_size(figures[1])
    return Text(value, no_wrap=True, justify="right")


CONTAINER_COLUMNS: list[Column[ContainerRow]] = [
    Column(
        "name",
        "NAME",
        lambda r, c: Text(ellipsize(r.name, 24), style="bold", no_wrap=True),
        lambda r: r.name,
    ),
    Column("image", "IMAGE", _text("image", 28), lambda r: (r.image, r.name)),
    Column(
        "project",
        "PROJECT",
        _text("project", 16, "secondary"),
        lambda r: (r.project or "\uffff", r.name),
    ),
    Column("state", "STATE", _state_cell, _state_rank),
    Column("cpu", "CPU", lambda r, c: _figure(r, c, 0), _state_rank),
    Column("mem", "MEM", lambda r, c: _figure(r, c, 1), _state_rank),
    Column("status", "STATUS", _text("status", 26), lambda r: (r.status, r.name)),
    Column("ports", "PORTS", _text("ports", 28), lambda r: (r.ports, r.name)),
    Column(
        "created",
        "CREATED",
        lambda r, c: Text(human_age(r.created, c.now), no_wrap=True),
        lambda r: -r.created,
    ),
    Column(
        "command",
        "COMMAND",
        _text("command", 32, "foreground-muted"),
        lambda r: (r.command, r.name),
    ),
]


class ContainersTable(ResourceTable[ContainerRow]):
    """Every container the engine knows (``docker ps -a``)."""

    COLUMNS = CONTAINER_COLUMNS
    DEFAULT_SORT = "state"

    def row_key(self, row: ContainerRow) -> str:
        return row.id

    def search_text(self, row: ContainerRow) -> str:
        return row.search_text


class ContainersPanel(ResourcePanel):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.CONTAINERS)

    def make_table(self) -> ContainersTable:
        return ContainersTable(id="containers-table")

    @property
    def dashboard(self) -> PortsideApp:
        return cast("PortsideApp", self.app)

    @property
    def selected(self) -> ContainerRow | None:
        return cast(ContainerRow | None, self.table.selected)

    def binding_state(self) -> Hashable:
        row = self.selected
        return None if row is None else row.state

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("logs_all", "stats_all"):
            return True if self.table.shown_keys else None
        verbs = {"start", "stop", "restart", "kill", "pause", "remove", "inspect", "logs", "stats"}
        if action not in verbs:
            return True
        row = self.selected
        if row is None:
            return None
        live = row.state in LIVE_STATES
        if action == "start":
            return None if live else True
        if action in ("stop", "kill", "stats"):
            return True if live else None
        if action == "pause":
            return True if row.state in ("running", "paused") else None
        return True

    def action_start(self) -> None:
        if row := self.selected:
            self.dashboard.container_action(row, "start")

    def action_stop(self) -> None:
        if row := self.selected:
            self.dashboard.container_action(row, "stop")

    def action_restart(self) -> None:
        if row := self.selected:
            self.dashboard.container_action(row, "restart")

    def action_pause(self) -> None:
        if row := self.selected:
            self.dashboard.container_action(row, "unpause" if row.state == "paused" else "pause")

    def action_kill(self) -> None:
        if row := self.selected:
            self.dashboard.confirm(
                f"Kill container {row.name} ({short_id(row.id)})?",
                "It gets SIGKILL at once, without a chance to clean up.",
                lambda: self.dashboard.container_action(row, "kill"),
            )

    def action_remove(self) -> None:
        if row := self.selected:
            detail = (
                "It is still running: it will be killed first, and its data removed."
                if row.state in LIVE_STATES
                else "Its writable layer and logs are deleted."
            )
            self.dashboard.confirm(
                f"Remove container {row.name} ({short_id(row.id)})?",
                detail,
                lambda: self.dashboard.container_action(row, "remove"),
            )

    def action_inspect(self) -> None:
        if row := self.selected:
            self.dashboard.open_inspect("container", row.id, row.name)

    def listed(self) -> list[ContainerRow]:
        """The rows shown (after the filter), top to bottom."""
        rows = self.table.rows_by_key
        return [rows[key] for key in self.table.shown_keys if key in rows]

    def action_group(self) -> None:
        """Group rows by compose project (again: back to the default order)."""
        table = self.table
        grouped = table.sort_column != "project"
        table.sort_column = "project" if grouped else table.DEFAULT_SORT
        table.sort_reverse = False
        table.redraw(rebuild=True)
        self.notify("Grouped by compose project" if grouped else "Ungrouped", timeout=2)

    def visible_running(self) -> list[str]:
        """Ids of running containers in the rows currently scrolled into view."""
        table = self.table
        top = int(table.scroll_offset.y)
        height = max(0, table.scrollable_content_region.height - 1)  # minus the header
        rows = table.rows_by_key
        return [
            key
            for key in table.shown_keys[top : top + height]
            if key in rows and rows[key].state == "running"
        ]

    def action_logs(self) -> None:
        if row := self.selected:
            self.dashboard.open_logs([(row.id, row.name)])

    def action_logs_all(self) -> None:
        if rows := self.listed():
            self.dashboard.open_logs([(row.id, row.name) for row in rows])

    def action_stats(self) -> None:
        if (row := self.selected) and row.state in LIVE_STATES:
            self.dashboard.open_stats([(row.id, row.name)])

    def action_stats_all(self) -> None:
        rows = [row for row in self.listed() if row.state == "running"]
        if rows:
            self.dashboard.open_stats([(row.id, row.name) for row in rows])
        else:
            self.notify("No running container is listed", severity="warning", timeout=3)

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_inspect()
