"""The dashboard application: wiring of engine worker, store, panels, themes and keys.

``PortsideApp`` receives an async factory that returns a connected ``aiodocker.Docker``;
its single engine worker (``tui.sync.EngineSync``) posts typed messages that the handlers
here turn into table, header and screen updates. User actions run in their own workers, so
the UI never waits on the network. ``switch_engine`` (the ``E`` picker) replaces the engine
worker and its client, and resets the panels. ``run_dashboard`` is the entry point
``portside`` calls.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.message import Message
from textual.screen import Screen

import themes
from tui import keymap
from tui.client import EngineChoice, EngineSelectionError, normalise_url, open_client
from tui.commands import palette_commands
from tui.config import ConfigError, DashboardConfig, load_dashboard_config
from tui.messages import (
    ActionFinished,
    ContainersUpdated,
    EngineConnected,
    EngineConnecting,
    EngineSwitched,
    EngineUnreachable,
    ImagesUpdated,
    NetworksUpdated,
    RowStatsSampled,
    VolumesUpdated,
)
from tui.model import ContainerRow, EngineInfo, ImageRow, NetworkRow, VolumeRow
from tui.problems import Problem
from tui.screens.confirm import ConfirmScreen
from tui.screens.engines import EnginesScreen
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.inspect import InspectScreen
from tui.screens.logs import LogsScreen
from tui.screens.main import MainScreen
from tui.screens.prompt import PromptScreen
from tui.screens.pull import PullScreen
from tui.screens.registry_browse import BrowseScreen
from tui.screens.scan import ScanScreen
from tui.screens.stats import StatsScreen, one_shot
from tui.screens.unreachable import UnreachableScreen
from tui.sync import DEFAULT_RETRY_DELAYS, EngineSync, one_line
from tui.widgets.containers import LIVE_STATES
from tui.widgets.header import CONNECTED, CONNECTING, UNREACHABLE, Counts
from tui.widgets.stats_sample import Sample
from tui.widgets.terminals import TerminalsPanel

if TYPE_CHECKING:
    import aiodocker

Connector = Callable[[], Awaitable["aiodocker.Docker"]]
EmbeddedStarter = Callable[[], AbstractAsyncContextManager[str]]  # yields the engine's URL
ROW_STATS_INTERVAL = 5.0  # seconds between one-shot stats of the visible running rows
EMBEDDED_STOP_TIMEOUT = 30.0  # seconds an embedded engine gets to shut down on quit

_PAST = {
    "start": "Started",
    "stop": "Stopped",
    "restart": "Restarted",
    "kill": "Killed",
    "pause": "Paused",
    "unpause": "Unpaused",
    "remove": "Removed",
}
_SLOW = {"stop": "Stopping", "restart": "Restarting"}


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return ()


def default_engine_url() -> str:
    """Where an engine is when nothing was chosen: ``DOCKER_HOST`` or the usual socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def choose_theme(requested: str | None, config: DashboardConfig, no_color: bool) -> str:
    """``--theme`` wins, then the config file, then NO_COLOR's high contrast, then dark."""
    if requested:
        return themes.resolve_theme_name(requested)
    if config.theme:
        return themes.resolve_theme_name(config.theme)
    return themes.NO_COLOR_THEME if no_color else themes.DEFAULT_THEME


class PortsideApp(App[int]):
    """The dashboard (see the module docstring)."""

    TITLE = "portside"
    CSS_PATH = str(themes.STYLESHEET)
    BINDINGS = keymap.bindings(keymap.APP)

    def __init__(
        self,
        connector: Connector | None,
        engine_name: str,
        theme: str | None = None,
        *,
        engine_url: str = "",
        config: DashboardConfig | None = None,
        clock: Callable[[], float] = time.time,
        autoconnect: bool = True,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        refresh_interval: float | None = None,
        row_stats_interval: float = ROW_STATS_INTERVAL,
        embedded_url: str = "",
        embedded: EmbeddedStarter | None = None,
        freeze_heap: bool = False,
    ) -> None:
        super().__init__()
        self.config = config or DashboardConfig()
        for registered in themes.THEMES.values():
            self.register_theme(registered)
        self.theme = choose_theme(theme, self.config, bool(os.environ.get("NO_COLOR")))
        self.keymap_overrides, self.startup_problems = keymap.check_keymap(self.config.keymap)
        self.startup_problems = [*self.config.problems, *self.startup_problems]
        self.set_keymap(self.keymap_overrides)
        self.clock = clock
        self.engine_name = engine_name
        self.engine_url = engine_url
        self.autoconnect = autoconnect
        self.refresh_interval = refresh_interval or self.config.refresh_interval
        self.retry_delays = retry_delays
        self.embedded_url = embedded_url  # the embedded engine, once it runs
        self._embedded_starter = embedded
        self._embedded_ready: asyncio.Future[str] | None = None
        self._embedded_task: asyncio.Task[None] | None = None
        self._embedded_stop = asyncio.Event()
        self._generation = 0  # bumped by every switch: older workers' messages are dropped
        self._freeze_heap = freeze_heap
        # No connector: the embedded engine, started in this loop once the first frame is
        # up (``_connect_embedded``), so the dashboard paints before the engine's imports.
        self.sync = self._make_sync(connector or self._connect_embedded, engine_name, engine_url)
        self.status = CONNECTING
        self.info: EngineInfo | None = None
        self.containers: dict[str, ContainerRow] = {}
        self.images: tuple[ImageRow, ...] = ()
        self.volumes: tuple[VolumeRow, ...] = ()
        self.networks: tuple[NetworkRow, ...] = ()
        self._unreachable: UnreachableScreen | None = None
        self._was_lost = False
        self.action_results: deque[ActionFinished] = deque(maxlen=100)
        self._list_errors: dict[str, str] = {}
        self.row_stats_interval = row_stats_interval
        self.row_stats: dict[str, tuple[float, float]] = {}
        self.row_stats_requested: list[list[str]] = []  # ids asked for, per round (tests)

    # -- startup -------------------------------------------------------------------------

    def _make_sync(self, connector: Connector, name: str, url: str) -> EngineSync:
        generation = self._generation

        def emit(message: Message) -> None:
            if generation == self._generation:
                self.post_message(message)

        return EngineSync(
            connector,
            emit,
            name=name,
            url=url or name,
            refresh_interval=self.refresh_interval,
            retry_delays=self.retry_delays,
        )

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    def on_mount(self) -> None:
        for problem in self.startup_problems:
            self.notify(problem, severity="warning", timeout=10)
        if self.autoconnect:
            self._start_sync()
            self.run_worker(
                self._sample_rows(), name="row-stats", group="row-stats", exit_on_error=False
            )

    def _start_sync(self) -> None:
        self.run_worker(
            self.sync.run(),
            name="engine",
            group="engine",
            exclusive=True,
            exit_on_error=False,
        )

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def _ready_main(self) -> MainScreen | None:
        """The main screen once its widgets exist (it pulls the state itself on mount)."""
        if not self.is_running or not self.screen_stack:
            return None  # shutting down: widgets are being removed
        screen = self.screen_stack[0]
        if isinstance(screen, MainScreen) and screen.is_mounted:
            return screen
        return None

    def apply_state(self, main: MainScreen) -> None:
        """Show everything known so far on ``main`` (called when it mounts)."""
        header = main.header
        header.engine_name = self.engine_name
        header.info = self.info
        header.status = self.status
        main.containers.table.replace_rows(self.containers.values())
        main.images.table.replace_rows(self.images)
        main.volumes.table.replace_rows(self.volumes)
        main.networks.table.replace_rows(self.networks)
        self._update_in_use(main)
        self._update_counts(main)

    @property
    def docker(self) -> aiodocker.Docker | None:
        """The connected client, or None while the engine is unreachable."""
        return self.sync.docker if self.status == CONNECTED else None

    # -- switching engines ---------------------------------------------------------------

    def action_pick_engine(self) -> None:
        if isinstance(self.screen, EnginesScreen):
            return

        def chosen(choice: EngineChoice | None) -> None:
            if choice is not None:
                self.switch_engine(choice)

        picker = EnginesScreen(self.engine_url, self.config.hosts, self.embedded_url)
        self.push_screen(picker, chosen)

    def switch_engine(self, choice: EngineChoice) -> None:
        """Leave the current engine for ``choice`` (the embedded one is started if needed)."""
        if choice.url is None and not self.embedded_url:
            if self._embedded_starter is None:
                self.notify("The embedded engine is not available here", severity="error")
                return
            self.run_worker(self._switch_to_embedded(), group="switch", exclusive=True)
            return
        try:
            url = normalise_url(choice.url or self.embedded_url)
        except EngineSelectionError as err:
            self.notify(f"Cannot switch to {choice.name}: {err}", severity="error", timeout=8)
            return
        self.connect_to(choice.name, url)

    def connect_to(self, name: str, url: str, connector: Connector | None = None) -> None:
        """Drop the current engine (its worker closes its client) and connect to ``url``."""
        self._generation += 1
        self.workers.cancel_group(self, "engine")
        self.engine_name, self.engine_url = name, url

        async def connect() -> aiodocker.Docker:
            return await open_client(url)

        self.sync = self._make_sync(connector or connect, name, url)
        # Queued behind whatever the old worker posted, so stale rows never come back.
        self.post_message(EngineSwitched(name, url))

    async def _switch_to_embedded(self) -> None:
        starting = self._embedded_ready is None
        if starting:
            self.notify("Starting the embedded engine…", timeout=3)
        try:
            url = await self._start_embedded()
        except Exception as err:  # the engine could not start: say why, stay where we are
            self.notify(
                f"Cannot start the embedded engine: {one_line(str(err))}",
                severity="error",
                timeout=10,
            )
            return
        self.connect_to("embedded", url)

    async def _start_embedded(self) -> str:
        """Start the embedded engine unless it runs; its URL once it listens. A start that
        fails raises its error, and the next call tries again."""
        if self._embedded_starter is None:
            raise Problem("the embedded engine is not available here")
        if self._embedded_ready is None:
            loop = asyncio.get_running_loop()
            self._embedded_ready = loop.create_future()
            self._embedded_stop = asyncio.Event()
            # A task of its own (not a worker): it must outlive the message loop until
            # on_unmount has shut the engine down.
            self._embedded_task = loop.create_task(
                self._run_embedded(self._embedded_ready, self._embedded_stop),
                name="portside-embedded-engine",
            )
        try:
            url = await asyncio.shield(self._embedded_ready)
        except Exception:
            self._embedded_ready = None
            raise
        self.embedded_url = url
        return url

    async def _connect_embedded(self) -> aiodocker.Docker:
        """The first engine when none was chosen: the embedded one, started here."""
        try:
            url = await self._start_embedded()
        except Exception as err:
            raise Problem(f"the embedded engine did not start: {one_line(str(err))}") from err
        self.engine_url = url
        return await open_client(url)

    async def _run_embedded(self, ready: asyncio.Future[str], stop: asyncio.Event) -> None:
        """Run the embedded engine until ``stop`` is set (when the dashboard quits)."""
        assert self._embedded_starter is not None
        try:
            async with self._embedded_starter() as url:
                ready.set_result(url)
                await stop.wait()
        except Exception as err:
            if not ready.done():
                ready.set_exception(err)

    async def on_unmount(self) -> None:
        """Shut down an embedded engine this dashboard started."""
        task, self._embedded_task = self._embedded_task, None
        if task is None:
            return
        self._embedded_stop.set()
        try:
            await asyncio.wait_for(task, EMBEDDED_STOP_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()

    def on_engine_switched(self, message: EngineSwitched) -> None:
        self.status = CONNECTING
        self.info = None
        self.containers = {}
        self.images = ()
        self.volumes = ()
        self.networks = ()
        self.row_stats = {}
        self._list_errors = {}
        self._was_lost = False
        self._unreachable = None
        while len(self.screen_stack) > 1:  # views of the old engine's objects
            self.pop_screen()
        if main := self._ready_main():
            main.header.engine_name = message.name
            main.header.info = None
            main.header.status = CONNECTING
            main.containers.table.extra["stats"] = {}
            self.apply_state(main)
        self._start_sync()
        self.notify(f"Switching to {message.name}", timeout=3)

    # -- engine messages -----------------------------------------------------------------

    def on_engine_connecting(self, message: EngineConnecting) -> None:
        if self.status != UNREACHABLE:
            self.status = CONNECTING
            if main := self._ready_main():
                main.header.status = CONNECTING

    def on_engine_connected(self, message: EngineConnected) -> None:
        if not self.is_running:
            return
        self.status = CONNECTED
        self.info = message.info
        if main := self._ready_main():
            main.header.info = message.info
            main.header.status = CONNECTED
        if self._unreachable is not None:
            screen, self._unreachable = self._unreachable, None
            if self.screen is screen:
                screen.dismiss()
            elif screen in self.screen_stack:
                screen.resolved = True  # a dialog is above it: it leaves when uncovered
        if self._was_lost:
            self.notify(f"Reconnected to {message.info.name}", timeout=4)
        self._was_lost = False

    def on_engine_unreachable(self, message: EngineUnreachable) -> None:
        if not self.is_running:
            return
        if self.status == CONNECTED:
            self._was_lost = True
        self.status = UNREACHABLE
        if main := self._ready_main():
            main.header.status = UNREACHABLE
        if self._unreachable is None:
            self._unreachable = UnreachableScreen(
                self.engine_name,
                self.engine_url,
                message.problem,
                message.attempt,
                message.retry_in,
            )
            self.push_screen(self._unreachable)
        else:
            self._unreachable.update_problem(message.problem, message.attempt, message.retry_in)

    def on_containers_updated(self, message: ContainersUpdated) -> None:
        if message.complete and self._freeze_heap:
            self._freeze_heap = False
            self.call_after_refresh(gc.freeze)
        if message.complete:
            self.containers = {row.id: row for row in message.rows}
        else:
            for cid in message.removed:
                self.containers.pop(cid, None)
            for row in message.rows:
                self.containers[row.id] = row
        main = self._ready_main()
        if main is None:
            return
        if message.complete:
            main.containers.table.replace_rows(message.rows)
        else:
            main.containers.table.merge_rows(message.rows, message.removed)
        main.containers.rows_changed()
        self._update_in_use(main)
        self._update_counts(main)

    def on_images_updated(self, message: ImagesUpdated) -> None:
        self.images = message.rows
        main = self._ready_main()
        if main is None:
            return
        main.images.table.replace_rows(message.rows)
        main.images.rows_changed()
        self._update_counts(main)

    def on_volumes_updated(self, message: VolumesUpdated) -> None:
        self.volumes = message.rows
        if message.error and not self._list_errors.get("volume"):
            self.notify(f"Volumes: {message.error}", severity="warning", timeout=6)
        self._list_errors["volume"] = message.error
        if main := self._ready_main():
            main.volumes.table.replace_rows(message.rows)
            main.volumes.rows_changed()
            self._update_counts(main)

    def on_networks_updated(self, message: NetworksUpdated) -> None:
        self.networks = message.rows
        if message.error and not self._list_errors.get("network"):
            self.notify(f"Networks: {message.error}", severity="warning", timeout=6)
        self._list_errors["network"] = message.error
        if main := self._ready_main():
            main.networks.table.replace_rows(message.rows)
            main.networks.rows_changed()
            self._update_counts(main)

    def on_action_finished(self, message: ActionFinished) -> None:
        self.action_results.append(message)
        if message.error:
            self.notify(f"{message.summary} failed: {message.error}", severity="error", timeout=8)
        else:
            self.notify(message.summary, timeout=3)

    def _update_in_use(self, main: MainScreen) -> None:
        used = frozenset(row.image_id for row in self.containers.values() if row.image_id)
        main.images.image_table.set_in_use(used)

    def _update_counts(self, main: MainScreen) -> None:
        rows = self.containers.values()
        main.header.counts = Counts(
            containers=len(self.containers),
            running=sum(1 for row in rows if row.state == "running"),
            paused=sum(1 for row in rows if row.state == "paused"),
            images=len({row.id for row in self.images}),
            volumes=len(self.volumes),
            networks=len(self.networks),
        )

    async def _sample_rows(self) -> None:
        """Every few seconds, one-shot stats of the running rows in view (nothing else)."""
        while True:
            await asyncio.sleep(self.row_stats_interval)
            docker = self.docker
            main = self._ready_main()
            if docker is None or main is None or self.screen is not main:
                continue
            if main.current_panel is not main.containers:
                continue
            ids = main.containers.visible_running()
            if not ids:
                continue
            self.row_stats_requested.append(ids)
            answers = await asyncio.gather(
                *(one_shot(docker, cid) for cid in ids), return_exceptions=True
            )
            figures = {}
            for cid, answer in zip(ids, answers, strict=True):
                if isinstance(answer, dict):
                    sample = Sample.from_api(answer, 0.0)
                    figures[cid] = (sample.cpu_percent, sample.memory)
            self.post_message(RowStatsSampled(figures))

    def on_row_stats_sampled(self, message: RowStatsSampled) -> None:
        live = {cid for cid, row in self.containers.items() if row.state == "running"}
        self.row_stats = {
            cid: value
            for cid, value in {**self.row_stats, **message.figures}.items()
            if cid in live
        }
        if main := self._ready_main():
            table = main.containers.table
            table.extra["stats"] = self.row_stats
            table.redraw()

    # -- actions on the engine (workers) -------------------------------------------------

    def container_action(self, row: ContainerRow, verb: str) -> None:
        """Start/stop/restart/kill/pause/unpause/remove ``row`` in a worker."""
        if verb in _SLOW:
            self.notify(f"{_SLOW[verb]} {row.name}…", timeout=2)
        self.run_worker(self._container_action(row, verb), group="actions")

    async def _container_action(self, row: ContainerRow, verb: str) -> None:
        summary = f"{_PAST.get(verb, verb)} {row.name}"
        docker = self.docker
        if docker is None:
            self.post_message(ActionFinished(summary, error="the engine is not connected"))
            return
        from aiodocker import DockerError  # loaded with the client it made

        container = docker.containers.container(row.id)
        try:
            if verb == "remove":
                await container.delete(force=row.state in LIVE_STATES)
            elif verb in ("start", "stop", "restart", "kill", "pause", "unpause"):
                await getattr(container, verb)()
            else:
                raise ValueError(f"unknown container action {verb!r}")
        except DockerError as err:
            self.post_message(
                ActionFinished(f"{verb.capitalize()} {row.name}", error=one_line(err.message))
            )
            return
        self.post_message(ActionFinished(summary))

    def image_remove(self, row: ImageRow) -> None:
        self.run_worker(self._image_remove(row), group="actions")

    async def _image_remove(self, row: ImageRow) -> None:
        name = row.reference if not row.dangling else row.id
        docker = self.docker
        if docker is None:
            self.post_message(ActionFinished(f"Remove {name}", error="the engine is not connected"))
            return
        from aiodocker import DockerError  # loaded with the client it made

        try:
            await docker.images.delete(name)
        except DockerError as err:
            self.post_message(
                ActionFinished(f"Remove {row.reference}", error=one_line(err.message))
            )
            return
        self.post_message(ActionFinished(f"Removed {row.reference}"))

    def ask_create(self, kind: str) -> None:
        """Ask for the name of a new volume or network, then create it in a worker."""

        def answered(name: str | None) -> None:
            if name:
                self.object_action(kind, "create", name)

        detail = (
            "A local volume; leave empty and press escape to cancel."
            if kind == "volume"
            else "A bridge network; leave empty and press escape to cancel."
        )
        self.push_screen(PromptScreen(f"Name of the new {kind}", detail, "name"), answered)

    def object_action(self, kind: str, verb: str, target: str, label: str = "") -> None:
        """Create/remove/prune a volume or network (``kind``) in a worker."""
        self.run_worker(self._object_action(kind, verb, target, label or target), group="actions")

    async def _object_action(self, kind: str, verb: str, target: str, label: str) -> None:
        plural = f"{kind}s"
        what = f"{kind} {label}" if target else f"unused {plural}"
        docker = self.docker
        if docker is None:
            self.post_message(
                ActionFinished(f"{verb.capitalize()} {what}", error="the engine is not connected")
            )
            return
        from aiodocker import DockerError  # loaded with the client it made

        try:
            if verb == "create":
                body = {"Name": target}
                if kind == "network":
                    body["Driver"] = "bridge"
                await docker._query_json(f"{plural}/create", method="POST", data=body)
                summary = f"Created {what}"
            elif verb == "remove":
                await docker._query_json(f"{plural}/{target}", method="DELETE")
                summary = f"Removed {what}"
            elif verb == "prune":
                answer = await docker._query_json(
                    f"{plural}/prune", method="POST", params=self._prune_params(kind)
                )
                gone = (answer or {}).get(
                    "VolumesDeleted" if kind == "volume" else "NetworksDeleted"
                )
                summary = f"Pruned {len(gone or [])} {plural}"
            else:
                raise ValueError(f"unknown {kind} action {verb!r}")
        except DockerError as err:
            self.post_message(
                ActionFinished(f"{verb.capitalize()} {what}", error=one_line(err.message))
            )
            return
        self.post_message(ActionFinished(summary))
        self.sync.request_refresh()

    def _prune_params(self, kind: str) -> dict[str, str]:
        """Since API 1.42 a volume prune spares named volumes unless ``all`` is set; the
        dashboard's prune means every unused volume, as it did before."""
        version = self.info.api_version if self.info else ""
        if kind != "volume" or _version_tuple(version) < (1, 42):
            return {}
        return {"filters": json.dumps({"all": ["true"]})}

    def retry_now(self) -> None:
        self.sync.retry_now()

    # -- screens -------------------------------------------------------------------------

    def confirm(self, question: str, detail: str, on_yes: Callable[[], None]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                on_yes()

        self.push_screen(ConfirmScreen(question, detail), answered)

    def open_inspect(self, kind: str, target: str, title: str) -> None:
        self.push_screen(InspectScreen(kind, target, title))

    def open_logs(self, targets: list[tuple[str, str]]) -> None:
        """Follow the logs of ``targets`` ((id, name) pairs), merged when there are several."""
        self.push_screen(LogsScreen(targets))

    def open_stats(self, targets: list[tuple[str, str]]) -> None:
        """Graphs of CPU, memory, network and block I/O for ``targets`` ((id, name) pairs)."""
        self.push_screen(StatsScreen(targets))

    def open_history(self, target: str, title: str) -> None:
        self.push_screen(HistoryScreen(target, title))

    def open_pull(self, reference: str = "") -> None:
        self.push_screen(PullScreen(reference))

    def open_scan(self, image: str) -> None:
        """The engine's scan of the local image ``image`` (packages, findings)."""
        self.push_screen(ScanScreen(image))

    # -- app-wide keys -------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap_overrides))

    def action_next_theme(self) -> None:
        order = themes.cycle_order()
        index = order.index(self.theme) if self.theme in order else -1
        self.theme = order[(index + 1) % len(order)]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def action_refresh(self) -> None:
        if self.status == CONNECTED:
            self.sync.request_refresh()
        else:
            self.sync.retry_now()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        scopes = [keymap.APP]
        if isinstance(screen, MainScreen):
            scopes += [
                keymap.MAIN,
                keymap.PANEL,
                keymap.TABLE,
                keymap.CONTAINERS,
                keymap.IMAGES,
                keymap.VOLUMES,
                keymap.NETWORKS,
                keymap.TERMINALS,
                keymap.REGISTRIES,
            ]
        elif isinstance(screen, BrowseScreen):
            scopes.append(keymap.BROWSE)
        elif isinstance(screen, LogsScreen):
            scopes.append(keymap.LOGS)
        elif isinstance(screen, InspectScreen):
            scopes.append(keymap.INSPECT)
        yield from palette_commands(self.keymap_overrides, self._run_command, scopes=scopes)

    def _run_command(self, command: keymap.Command) -> None:
        """Perform a palette choice as if its key had been pressed in the right place."""
        if command.scope == keymap.APP:
            self.call_later(self.run_action, command.action)
            return
        if command.scope in (keymap.LOGS, keymap.INSPECT, keymap.BROWSE):
            self.call_later(self.screen.run_action, command.action)
            return
        main = self.main
        if command.scope == keymap.MAIN:
            self.call_later(main.run_action, command.action)
            return
        if command.scope in (
            keymap.CONTAINERS,
            keymap.IMAGES,
            keymap.VOLUMES,
            keymap.NETWORKS,
            keymap.TERMINALS,
            keymap.REGISTRIES,
        ):
            main.action_show_panel(command.scope)
        panel = main.current_panel
        if isinstance(panel, TerminalsPanel):
            if command.scope == keymap.TERMINALS:
                self.call_later(panel.run_action, command.action)
            else:
                self.notify(f"{command.description}: show a list panel first", severity="warning")
            return
        target = panel.table if command.scope == keymap.TABLE else panel
        if target.check_action(command.action, ()) is not True:
            what = command.scope.removesuffix("s") if command.scope != keymap.TABLE else "row"
            self.notify(
                f"{command.description}: select a {what} it applies to first", severity="warning"
            )
            return
        self.call_later(target.run_action, command.action)


def build_dashboard(
    docker_url: str | None,
    *,
    engine_name: str,
    theme: str | None,
    connector: Connector | None = None,
    env: Mapping[str, str] | None = None,
    embedded_url: str = "",
    embedded: EmbeddedStarter | None = None,
    start_embedded: bool = False,
) -> PortsideApp:
    """A configured dashboard (config file read, theme checked) for the engine at ``docker_url``.

    ``connector`` (an async factory of connected clients) replaces the default one, which
    connects to ``docker_url`` (or ``DOCKER_HOST``, or /var/run/docker.sock);
    ``start_embedded`` connects to the engine ``embedded`` starts instead, started by the
    dashboard itself after its first frame. Raises ``ConfigError`` or
    ``themes.UnknownTheme`` with a one-line message.
    """
    config = load_dashboard_config(env)
    url = "" if start_embedded else docker_url or default_engine_url()

    async def connect() -> aiodocker.Docker:
        return await open_client(url)

    # After the first full render, everything alive (Textual, the widgets, the first rows)
    # stays alive: freezing it spares every later full GC from walking it, which took
    # 150-200 ms (dropped frames while scrolling) with 500 containers.
    return PortsideApp(
        None if start_embedded else connector or connect,
        engine_name,
        theme,
        engine_url=url,
        config=config,
        embedded_url=embedded_url,
        embedded=embedded,
        freeze_heap=True,
    )


def run_dashboard(
    docker_url: str | None,
    *,
    engine_name: str,
    theme: str | None,
    connector: Connector | None = None,
    env: Mapping[str, str] | None = None,
    embedded_url: str = "",
    embedded: EmbeddedStarter | None = None,
    start_embedded: bool = False,
) -> int:
    """Open the dashboard (blocking, with its own event loop); return the exit code."""
    try:
        app = build_dashboard(
            docker_url,
            engine_name=engine_name,
            theme=theme,
            connector=connector,
            env=env,
            embedded_url=embedded_url,
            embedded=embedded,
            start_embedded=start_embedded,
        )
    except (ConfigError, themes.UnknownTheme) as err:
        print(f"portside: {err}", file=sys.stderr)
        return 2
    result = app.run()
    return int(result or app.return_code or 0)
