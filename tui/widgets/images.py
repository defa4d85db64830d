"""The images panel: one row per ``repository:tag`` with size, age, in-use and dangling marks.

"In use" means some container (running or not) was created from the image; the app keeps
that set up to date from the container list. Actions: pull (dialog with per-layer progress),
remove (asks first), inspect, history, scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text

from tui import keymap
from tui.humanize import ellipsize, human_age, human_size, short_id
from tui.model import ImageRow
from tui.widgets.panel import ResourcePanel
from tui.widgets.resource_table import CellContext, Column, ResourceTable

if TYPE_CHECKING:
    from tui.app import PortsideApp


def in_use(row: ImageRow, ctx: CellContext) -> bool:
    return row.id in ctx.extra.get("in_use", frozenset())


def _flags_cell(row: ImageRow, ctx: CellContext) -> Text:
    text = Text(no_wrap=True)
    if in_use(row, ctx):
        text.append("● in use", style=ctx.style("success"))
    if row.dangling:
        if text:
            text.append(" ")
        text.append("◌ dangling", style=ctx.style("warning"))
    return text


IMAGE_COLUMNS: list[Column[ImageRow]] = [
    Column(
        "repository",
        "REPOSITORY",
        lambda r, c: Text(ellipsize(r.repository, 32), style="bold", no_wrap=True),
        lambda r: (r.dangling, r.repository, r.tag),
    ),
    Column(
        "tag",
        "TAG",
        lambda r, c: Text(ellipsize(r.tag, 20), no_wrap=True),
        lambda r: (r.tag, r.repository),
    ),
    Column(
        "id",
        "IMAGE ID",
        lambda r, c: Text(short_id(r.id), style=c.style("foreground-muted"), no_wrap=True),
        lambda r: r.id,
    ),
    Column(
        "size",
        "SIZE",
        lambda r, c: Text(human_size(r.size), justify="right", no_wrap=True),
        lambda r: r.size,
    ),
    Column("flags", "USE", _flags_cell, lambda r: r.dangling),
    Column(
        "created",
        "CREATED",
        lambda r, c: Text(human_age(r.created, c.now), no_wrap=True),
        lambda r: -r.created,
    ),
]


class ImagesTable(ResourceTable[ImageRow]):
    """Every image (``docker images``)."""

    COLUMNS = IMAGE_COLUMNS
    DEFAULT_SORT = "repository"

    def row_key(self, row: ImageRow) -> str:
        return row.key

    def search_text(self, row: ImageRow) -> str:
        return row.search_text

    def set_in_use(self, image_ids: frozenset[str]) -> None:
        if self.extra.get("in_use") != image_ids:
            self.extra["in_use"] = image_ids
            self.redraw()


class ImagesPanel(ResourcePanel):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.IMAGES)

    def make_table(self) -> ImagesTable:
        return ImagesTable(id="images-table")

    @property
    def dashboard(self) -> PortsideApp:
        return cast("PortsideApp", self.app)

    @property
    def image_table(self) -> ImagesTable:
        return self.query_one(ImagesTable)

    @property
    def selected(self) -> ImageRow | None:
        return cast(ImageRow | None, self.table.selected)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("remove", "inspect", "history", "scan"):
            return True if self.selected is not None else None
        return True

    def action_pull(self) -> None:
        row = self.selected
        self.dashboard.open_pull(row.repo_tag if row is not None and not row.dangling else "")

    def action_remove(self) -> None:
        row = self.selected
        if row is None:
            return
        users = row.id in self.image_table.extra.get("in_use", frozenset())
        if row.dangling:
            question = f"Remove untagged image {short_id(row.id)}?"
        else:
            question = f"Remove {row.repo_tag}?"
        detail = (
            "Containers use this image: the engine refuses until they are removed."
            if users
            else "Layers no other image shares are deleted; other tags of it stay."
        )
        self.dashboard.confirm(question, detail, lambda: self.dashboard.image_remove(row))

    def action_inspect(self) -> None:
        if row := self.selected:
            self.dashboard.open_inspect("image", row.id, row.reference)

    def action_history(self) -> None:
        if row := self.selected:
            self.dashboard.open_history(row.id, row.reference)

    def action_scan(self) -> None:
        if row := self.selected:
            self.dashboard.open_scan(row.reference if not row.dangling else row.id)

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_inspect()
