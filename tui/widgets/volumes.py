"""The volumes and networks panels: lists with create, remove (asks first), prune, inspect.

Like the other panels they only draw rows and hand actions to the app, which runs them on
the engine in workers; the lists change when the engine's events say so.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, cast

from rich.text import Text

from tui import keymap
from tui.humanize import ellipsize, short_id
from tui.model import NetworkRow, VolumeRow
from tui.widgets.panel import ResourcePanel
from tui.widgets.resource_table import Column, ResourceTable

if TYPE_CHECKING:
    from tui.app import PortsideApp


def _cell(text: str, width: int, style: str = "", bold: bool = False) -> Text:
    return Text(ellipsize(text, width), style="bold" if bold else style, no_wrap=True)


VOLUME_COLUMNS: list[Column[VolumeRow]] = [
    Column("name", "NAME", lambda r, c: _cell(r.name, 40, bold=True), lambda r: r.name),
    Column("driver", "DRIVER", lambda r, c: _cell(r.driver, 12), lambda r: (r.driver, r.name)),
    Column("project", "PROJECT", lambda r, c: _cell(r.project, 16), lambda r: (r.project, r.name)),
    Column(
        "created",
        "CREATED",
        lambda r, c: _cell(r.created[:19].replace("T", " "), 19),
        lambda r: (r.created, r.name),
    ),
    Column(
        "mountpoint",
        "MOUNTPOINT",
        lambda r, c: Text(ellipsize(r.mountpoint, 60), style=c.style("foreground-muted")),
        lambda r: r.mountpoint,
    ),
]

NETWORK_COLUMNS: list[Column[NetworkRow]] = [
    Column("name", "NAME", lambda r, c: _cell(r.name, 32, bold=True), lambda r: r.name),
    Column("id", "ID", lambda r, c: _cell(short_id(r.id), 12), lambda r: r.id),
    Column("driver", "DRIVER", lambda r, c: _cell(r.driver, 10), lambda r: (r.driver, r.name)),
    Column("scope", "SCOPE", lambda r, c: _cell(r.scope, 8), lambda r: (r.scope, r.name)),
    Column(
        "subnet",
        "SUBNET",
        lambda r, c: _cell(r.subnet + (" (internal)" if r.internal else ""), 36),
        lambda r: (r.subnet, r.name),
    ),
]


class VolumesTable(ResourceTable[VolumeRow]):
    COLUMNS = VOLUME_COLUMNS
    DEFAULT_SORT = "name"

    def row_key(self, row: VolumeRow) -> str:
        return row.name

    def search_text(self, row: VolumeRow) -> str:
        return row.search_text


class NetworksTable(ResourceTable[NetworkRow]):
    COLUMNS = NETWORK_COLUMNS
    DEFAULT_SORT = "name"

    def row_key(self, row: NetworkRow) -> str:
        return row.id

    def search_text(self, row: NetworkRow) -> str:
        return row.search_text


class _ObjectsPanel(ResourcePanel):
    """What the volumes and networks panels share."""

    KIND = ""

    @property
    def dashboard(self) -> PortsideApp:
        return cast("PortsideApp", self.app)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("remove", "inspect"):
            return True if self.table.selected is not None else None
        return True

    def action_create(self) -> None:
        self.dashboard.ask_create(self.KIND)

    def action_prune(self) -> None:
        what = "volumes" if self.KIND == "volume" else "networks"
        self.dashboard.confirm(
            f"Remove every unused {self.KIND}?",
            f"{what.capitalize()} no container uses are deleted"
            + (", with their data." if self.KIND == "volume" else "."),
            lambda: self.dashboard.object_action(self.KIND, "prune", ""),
        )

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.run_action("inspect")


class VolumesPanel(_ObjectsPanel):
    """Every volume (``docker volume ls``)."""

    BINDINGS = keymap.bindings(keymap.VOLUMES)
    KIND = "volume"

    def make_table(self) -> VolumesTable:
        return VolumesTable(id="volumes-table")

    @property
    def selected(self) -> VolumeRow | None:
        return cast(VolumeRow | None, self.table.selected)

    def action_remove(self) -> None:
        if row := self.selected:
            self.dashboard.confirm(
                f"Remove volume {row.name}?",
                "Its data is deleted; a volume in use cannot be removed.",
                lambda: self.dashboard.object_action("volume", "remove", row.name),
            )

    def action_inspect(self) -> None:
        if row := self.selected:
            self.dashboard.open_inspect("volume", row.name, row.name)


class NetworksPanel(_ObjectsPanel):
    """Every network (``docker network ls``)."""

    BINDINGS = keymap.bindings(keymap.NETWORKS)
    KIND = "network"

    def make_table(self) -> NetworksTable:
        return NetworksTable(id="networks-table")

    @property
    def selected(self) -> NetworkRow | None:
        return cast(NetworkRow | None, self.table.selected)

    def binding_state(self) -> Hashable:
        row = self.selected
        return None if row is None else row.builtin

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.selected
        if action == "remove" and row is not None and row.builtin:
            return None
        return super().check_action(action, parameters)

    def action_remove(self) -> None:
        if (row := self.selected) and not row.builtin:
            self.dashboard.confirm(
                f"Remove network {row.name} ({short_id(row.id)})?",
                "Containers must be disconnected from it first.",
                lambda: self.dashboard.object_action("network", "remove", row.id, row.name),
            )

    def action_inspect(self) -> None:
        if row := self.selected:
            self.dashboard.open_inspect("network", row.id, row.name)
