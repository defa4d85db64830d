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
from tui.humanize import ellipsize, human_age, short_id
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


CONTAINER_COLUMNS: list[Column[ContainerRow]] = [
    Column(
        "name",
        "NAME",
        lambda r, c: Text(ellipsize(r.name, 24), style="bold", no_wrap=True),
        lambda r: r.name,
    ),
    Column("image", "IMAGE", _text("image", 28), lambda r: (r.image, r.name)),
    Column("state", "STATE", _state_cell, _state_rank),
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
        verbs = {"start", "stop", "restart", "kill", "pause", "remove", "inspect"}
        if action not in verbs:
            return True
        row = self.selected
        if row is None:
            return None
        live = row.state in LIVE_STATES
        if action == "start":
            return None if live else True
        if action in ("stop", "kill"):
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

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_inspect()
