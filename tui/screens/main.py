"""The main screen: header, the resource panels and the terminals panel (one shown), footer.

It also opens terminal tabs: a shell or an attach in the selected container, a local shell.
The terminal stack (sessions, emulator, pyte) is imported by the first of those, not at
start, as is aiodocker (tui.client.open_client loads it).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from tui import keymap
from tui.sync import one_line
from tui.widgets.containers import ContainersPanel
from tui.widgets.header import EngineHeader
from tui.widgets.images import ImagesPanel
from tui.widgets.panel import ResourcePanel
from tui.widgets.registries import RegistriesPanel
from tui.widgets.terminals import TerminalsChanged, TerminalsPanel
from tui.widgets.volumes import NetworksPanel, VolumesPanel

PANELS = ("containers", "images", "volumes", "networks", "terminals", "registries")


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
            yield TerminalsPanel(id="terminals")
            yield RegistriesPanel(id="registries")
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
    def terminals(self) -> TerminalsPanel:
        return self.query_one(TerminalsPanel)

    @property
    def registries(self) -> RegistriesPanel:
        return self.query_one(RegistriesPanel)

    @property
    def current_panel(self) -> ResourcePanel | TerminalsPanel:
        name = self.query_one(ContentSwitcher).current or "containers"
        if name == "terminals":
            return self.terminals
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
        panel = self.current_panel
        if isinstance(panel, TerminalsPanel):
            panel.focus_panel()
        else:
            panel.focus_table()
        if isinstance(panel, RegistriesPanel):
            panel.reload()

    def on_terminals_changed(self, message: TerminalsChanged) -> None:
        self.header.terminals = message.count

    async def action_local_shell(self) -> None:
        """A tab with the user's shell on this machine."""
        from tui.terminal.session import LocalSession

        self.action_show_panel("terminals")
        await self.terminals.open_session(LocalSession())

    async def action_exec_shell(self) -> None:
        """A tab with bash (sh when bash is missing) in the selected running container."""
        row = self.containers.selected
        docker = getattr(self.app, "docker", None)
        if row is None or docker is None:
            self.notify("Exec: select a container first", severity="warning", timeout=4)
            return
        if row.state != "running":
            self.notify(f"Exec: {row.name} is not running; start it first", severity="warning")
            return
        from tui.terminal.docker_session import DockerExecSession

        self.action_show_panel("terminals")
        await self.terminals.open_session(
            DockerExecSession(docker, row.id, ["bash"], title=f"bash in {row.name}"),
            fallback=DockerExecSession(docker, row.id, ["sh"], title=f"sh in {row.name}"),
        )

    async def action_attach(self) -> None:
        """A tab attached to the selected container's TTY (only when it has one)."""
        row = self.containers.selected
        docker = getattr(self.app, "docker", None)
        if row is None or docker is None:
            self.notify("Attach: select a container first", severity="warning", timeout=4)
            return
        if row.state != "running":
            self.notify(f"Attach: {row.name} is not running; start it first", severity="warning")
            return
        from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

        try:
            info = await docker.containers.container(row.id).show()
        except DockerError as error:
            self.notify(f"Attach: {one_line(error.message)}", severity="error", timeout=6)
            return
        config = info.get("Config") or {}
        if not config.get("Tty") or not config.get("OpenStdin"):
            self.notify(
                f"Attach: {row.name} has no terminal (it was not started with -it); "
                "use e to exec a shell instead",
                severity="warning",
                timeout=6,
            )
            return
        from tui.terminal.docker_session import DockerAttachSession

        self.action_show_panel("terminals")
        await self.terminals.open_session(
            DockerAttachSession(docker, row.id, title=f"attach {row.name}")
        )
