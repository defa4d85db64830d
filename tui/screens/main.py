"""The main screen: header, the containers and images panels (one shown at a time), footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from tui import keymap
from tui.widgets.containers import ContainersPanel
from tui.widgets.header import EngineHeader
from tui.widgets.images import ImagesPanel
from tui.widgets.panel import ResourcePanel
from tui.widgets.volumes import NetworksPanel, VolumesPanel

PANELS = ("containers", "images", "volumes", "networks")


class MainScreen(Screen[None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.MAIN)

    def compose(self) -> ComposeResult:
        yield EngineHeader()
        with ContentSwitcher(initial="containers", id="panels"):
            yield ContainersPanel(id="containers")
            yield ImagesPanel(id="images")
            yield VolumesPanel(id="volumes")
            yield NetworksPanel(id="networks")
        yield Footer()

    @property
    def header(self) -> EngineHeader:
        return self.query_one(EngineHeader)

    @property
    def containers(self) -> ContainersPanel:
        return self.query_one(ContainersPanel)

    @property
    def images(self) -> ImagesPanel:
        return self.query_one(ImagesPanel)

    @property
    def volumes(self) -> VolumesPanel:
        return self.query_one(VolumesPanel)

    @property
    def networks(self) -> NetworksPanel:
        return self.query_one(NetworksPanel)

    @property
    def current_panel(self) -> ResourcePanel:
        name = self.query_one(ContentSwitcher).current or "containers"
        return self.query_one(f"#{name}", ResourcePanel)

    def on_mount(self) -> None:
        apply_state = getattr(self.app, "apply_state", None)
        if apply_state is not None:
            apply_state(self)
        self.containers.focus_table()

    def action_show_panel(self, name: str) -> None:
        if name not in PANELS:
            return
        self.query_one(ContentSwitcher).current = name
        self.header.panel = name
        self.query_one(f"#{name}", ResourcePanel).focus_table()
