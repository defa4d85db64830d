"""The registries panel: every registry the user's docker config, the engine and the local
images name, with its login state. Actions: log in (dialog), log out (asks first), browse
(catalog, tags, manifest), open a repository by name, push a local image.

The list is read (``tui.registries.list_registries``) in a worker when the panel is shown
and after each login or logout; the dialogs and browse screens live in ``tui.screens``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from rich.text import Text

from tui import keymap
from tui.humanize import ellipsize
from tui.registries import RegistryProblem, RegistryRow, list_registries, logout
from tui.screens.registry_browse import RepositoriesScreen, ask_repository
from tui.screens.registry_login import LoginScreen
from tui.screens.registry_push import PushScreen
from tui.widgets.panel import ResourcePanel
from tui.widgets.resource_table import CellContext, Column, ResourceTable

if TYPE_CHECKING:
    from tui.app import PortsideApp


def _login_cell(row: RegistryRow, ctx: CellContext) -> Text:
    if row.problem:
        return Text(f"✕ {ellipsize(row.problem, 40)}", style=ctx.style("error"), no_wrap=True)
    if row.logged_in:
        return Text(f"● {ellipsize(row.username, 24)}", style=ctx.style("success"), no_wrap=True)
    return Text("○ not logged in", style=ctx.style("foreground-muted"), no_wrap=True)


def _engine_cell(row: RegistryRow, ctx: CellContext) -> Text:
    text = Text(no_wrap=True)
    if row.secure is False:
        text.append("insecure", style=ctx.style("warning"))
    elif row.secure:
        text.append("tls")
    if row.mirrors:
        if text:
            text.append(" ")
        text.append(f"{len(row.mirrors)} mirror{'s' if len(row.mirrors) > 1 else ''}")
    return text


REGISTRY_COLUMNS: list[Column[RegistryRow]] = [
    Column(
        "host",
        "REGISTRY",
        lambda r, c: Text(ellipsize(r.host, 40), style="bold", no_wrap=True),
        lambda r: r.host,
    ),
    Column("login", "LOGIN", _login_cell, lambda r: (not r.logged_in, r.host)),
    Column(
        "store",
        "KEPT IN",
        lambda r, c: Text(r.store, style=c.style("foreground-muted"), no_wrap=True),
        lambda r: (r.store, r.host),
    ),
    Column(
        "images",
        "IMAGES",
        lambda r, c: Text(str(r.images) if r.images else "", justify="right", no_wrap=True),
        lambda r: (-r.images, r.host),
    ),
    Column("engine", "ENGINE", _engine_cell, lambda r: (r.secure is not False, r.host)),
    Column(
        "sources",
        "KNOWN FROM",
        lambda r, c: Text(", ".join(r.sources), style=c.style("foreground-muted"), no_wrap=True),
        lambda r: (r.sources, r.host),
    ),
]


class RegistriesTable(ResourceTable[RegistryRow]):
    """One row per registry."""

    COLUMNS = REGISTRY_COLUMNS
    DEFAULT_SORT = "host"

    def row_key(self, row: RegistryRow) -> str:
        return row.host

    def search_text(self, row: RegistryRow) -> str:
        return row.search_text


class RegistriesPanel(ResourcePanel):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.REGISTRIES)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loads = 0  # finished list reads (tests wait on it)

    def make_table(self) -> RegistriesTable:
        return RegistriesTable(id="registries-table")

    @property
    def dashboard(self) -> PortsideApp:
        return cast("PortsideApp", self.app)

    @property
    def selected(self) -> RegistryRow | None:
        return cast(RegistryRow | None, self.table.selected)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("logout", "browse"):
            return True if self.selected is not None else None
        return True

    def show_rows(self, rows: Iterable[RegistryRow]) -> None:
        self.table.replace_rows(rows)
        self.rows_changed()

    def reload(self) -> None:
        """Read the list again in a worker (nothing happens while the engine is away)."""
        docker = self.dashboard.docker
        if docker is None:
            return
        refs = [row.repository for row in self.dashboard.images if not row.dangling]
        self.run_worker(self._reload(docker, refs), group="registries", exclusive=True)

    async def _reload(self, docker: object, refs: list[str]) -> None:
        rows, problem = await list_registries(docker, refs)  # type: ignore[arg-type]
        if problem:
            self.notify(f"Registries: {problem}", severity="warning", timeout=8)
        self.show_rows(rows)
        self.loads += 1

    def _host(self) -> str:
        row = self.selected
        return row.host if row is not None else ""

    def action_login(self) -> None:
        def done(summary: str | None) -> None:
            if summary:
                self.notify(summary, timeout=4)
                self.reload()

        row = self.selected
        self.app.push_screen(LoginScreen(self._host(), row.username if row else ""), done)

    def action_logout(self) -> None:
        row = self.selected
        if row is None:
            return
        self.dashboard.confirm(
            f"Log out of {row.host}?",
            "The stored credentials are erased (config.json or the credential helper).",
            lambda: self.run_worker(self._logout(row.host), group="registries-logout"),
        )

    async def _logout(self, host: str) -> None:
        try:
            summary = await logout(host)
        except RegistryProblem as err:
            self.notify(f"Log out of {host} failed: {err.message}", severity="error", timeout=8)
            return
        self.notify(summary, timeout=4)
        self.reload()

    def action_browse(self) -> None:
        if row := self.selected:
            self.app.push_screen(RepositoriesScreen(row.host))

    def action_open_repository(self) -> None:
        ask_repository(self.app, self._host())

    def action_push(self) -> None:
        image = self.dashboard.main.images.selected
        source = image.repo_tag if image is not None and not image.dangling else ""
        host = self._host()
        self.app.push_screen(PushScreen(source, f"{host}/" if host else ""))

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_browse()
