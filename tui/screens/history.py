"""An image's layers (``docker history``): what created each one, its size and age."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from tui.humanize import ellipsize, human_age, human_size
from tui.screens.detail import DetailScreen

if TYPE_CHECKING:
    import aiodocker

_NOP = "/bin/sh -c #(nop) "
_SHELL = "/bin/sh -c "


def created_by(command: str) -> str:
    """The Dockerfile-ish instruction behind a history entry."""
    command = " ".join(command.split())
    if command.startswith(_NOP.strip()):
        return command[len(_NOP.strip()) :].strip()
    if command.startswith(_SHELL):
        return "RUN " + command[len(_SHELL) :]
    return command or "-"


class HistoryScreen(DetailScreen):
    """Layers of the image ``target``, newest first as the engine lists them."""

    DEFAULT_CSS = """
    HistoryScreen > DataTable { height: 1fr; }
    """

    def __init__(self, target: str, title: str, *, autoload: bool = True) -> None:
        super().__init__(f"History of {title}", autoload=autoload)
        self.target = target

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        return await docker.images.history(self.target)

    def show(self, data: Any, prepared: Any = None) -> None:
        now = cast(Any, self.app).clock()
        table = self.query_one("#history-table", DataTable)
        table.clear(columns=True)
        table.add_column(Text("SIZE", style="bold"), key="size")
        table.add_column(Text("CREATED", style="bold"), key="created")
        table.add_column(Text("CREATED BY", style="bold"), key="created_by")
        table.add_column(Text("COMMENT", style="bold"), key="comment")
        total = 0
        for index, layer in enumerate(data or []):
            size = int(layer.get("Size") or 0)
            total += size
            table.add_row(
                Text(human_size(size), justify="right"),
                Text(human_age(float(layer.get("Created") or 0), now)),
                Text(ellipsize(created_by(str(layer.get("CreatedBy") or "")), 100)),
                Text(str(layer.get("Comment") or "")),
                key=str(index),
            )
        self.set_summary(f"{len(data or [])} layers, {human_size(total)}")
        table.focus()
