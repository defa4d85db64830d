"""The Terminals panel: exec a shell and attach from the containers panel (real dockerd),
local shell tabs on real PTYs, sessions alive across panel switches, closing tabs, and a
snapshot of the panel with a fixed-content terminal."""

from __future__ import annotations

from typing import Any

import aiodocker
import pytest
from textual.pilot import Pilot
from textual.widgets import Tabs

from tests.tui import sample_data
from tests.tui.helpers import cli, dashboard, wait_for
from tests.tui.test_containers_panel import select
from tui.app import PortsideApp
from tui.config import DashboardConfig
from tui.terminal.session import LocalSession
from tui.terminal.terminal import Terminal
from tui.terminal.widget import TerminalView


def screen_text(terminal: Terminal) -> str:
    return "\n".join(terminal.core.text())


def shown_panel(app: PortsideApp) -> str | None:
    return app.main.query_one("#panels").current


def tab_labels(app: PortsideApp) -> list[str]:
    tabs = app.main.terminals.tabs.query_one(Tabs)
    return [str(tab.label) for tab in tabs.query("Tab")]


async def leave_terminal(pilot: Pilot[Any]) -> None:
    """The terminal's escape hatch: escape twice quickly."""
    await pilot.press("escape", "escape")
    await wait_for(pilot, lambda: isinstance(pilot.app.focused, Tabs), "the tab bar focused")


async def test_exec_shell_survives_panel_switches(dockerd: Any, busybox: str, scratch: str):
    name = f"{scratch}ex"
    cid = await cli(dockerd, "run", "-d", "--name", name, busybox, "sleep", "300")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(100, 30)) as pilot:
        await select(pilot, app, name, cid)
        await pilot.press("e")
        panel = app.main.terminals
        await wait_for(pilot, lambda: shown_panel(app) == "terminals", "the terminals panel")
        await wait_for(pilot, lambda: panel.active_terminal is not None, "a terminal tab")
        await wait_for(pilot, lambda: isinstance(app.focused, TerminalView), "terminal focus")
        terminal = panel.active_terminal
        assert terminal is not None
        await wait_for(pilot, lambda: "#" in screen_text(panel.active_terminal), "a prompt")
        terminal = panel.active_terminal
        await pilot.press(*"echo hi-$((1+2))", "enter")
        await wait_for(pilot, lambda: "hi-3" in screen_text(terminal), "the shell's answer")
        assert " 5 Term" in app.main.header.render().plain
        await leave_terminal(pilot)
        await pilot.press("1")
        assert shown_panel(app) == "containers"
        assert not terminal.exited
        await pilot.press("5")
        assert shown_panel(app) == "terminals"
        view = panel.tabs.view_for(terminal)
        await wait_for(pilot, lambda: app.focused is view, "the terminal focused again")
        await pilot.press(*"echo again-$((2*3))", "enter")
        await wait_for(pilot, lambda: "again-6" in screen_text(terminal), "the same shell")
        await pilot.press(*"exit 3", "enter")
        await wait_for(pilot, lambda: terminal.exited, "the shell to exit")
        await wait_for(
            pilot, lambda: any("[exited 3]" in label for label in tab_labels(app)), "label"
        )
        await pilot.press("ctrl+w")
        await wait_for(pilot, lambda: not panel.terminals, "the tab to close")
        assert panel.has_class("-empty")


async def test_attach_needs_a_tty(dockerd: Any, busybox: str, scratch: str):
    plain = f"{scratch}plain"
    tty = f"{scratch}tty"
    plain_id = await cli(dockerd, "run", "-d", "--name", plain, busybox, "sleep", "300")
    tty_id = await cli(dockerd, "run", "-d", "-it", "--name", tty, busybox, "sh")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(100, 30)) as pilot:
        await select(pilot, app, plain, plain_id)
        await pilot.press("a")
        await wait_for(
            pilot,
            lambda: any("has no terminal" in n.message for n in app._notifications),
            "a notification",
        )
        assert shown_panel(app) == "containers"
        assert not app.main.terminals.terminals
        app.main.containers.clear_filter()
        await select(pilot, app, tty, tty_id)
        await pilot.press("a")
        panel = app.main.terminals
        await wait_for(pilot, lambda: panel.active_terminal is not None, "an attach tab")
        terminal = panel.active_terminal
        await pilot.press(*"echo att-$((4+4))", "enter")
        await wait_for(pilot, lambda: "att-8" in screen_text(terminal), "the attached shell")
        await leave_terminal(pilot)
        await pilot.press("ctrl+w")
        await wait_for(pilot, lambda: not panel.terminals, "the tab to close")
    state = await cli(dockerd, "inspect", "--format", "{{.State.Running}}", tty_id)
    assert state == "true"  # closing an attach tab detaches, it does not stop the container


async def _no_engine() -> aiodocker.Docker:
    raise AssertionError("these apps never connect")


def offline_app() -> PortsideApp:
    return PortsideApp(
        _no_engine,
        "dockerd",
        "dark",
        engine_url="unix:///var/run/docker.sock",
        config=DashboardConfig(),
        clock=lambda: sample_data.NOW,
        autoconnect=False,
    )


async def test_local_shell_tabs_and_close(tmp_path: Any):
    app = offline_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+t")
        panel = app.main.terminals
        await wait_for(pilot, lambda: len(panel.terminals) == 1, "a local shell tab")
        assert shown_panel(app) == "terminals"
        first = panel.terminals[0]
        await wait_for(pilot, lambda: isinstance(app.focused, TerminalView), "terminal focus")
        await pilot.press(*f"cd {tmp_path} && touch made-here", "enter")
        await wait_for(pilot, lambda: (tmp_path / "made-here").exists(), "the shell to run")
        await leave_terminal(pilot)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(panel.terminals) == 2, "a second tab")
        await wait_for(pilot, lambda: app.main.header.terminals == 2, "the header count")
        second = panel.terminals[1]
        await wait_for(pilot, lambda: panel.active_terminal is second, "the new tab shown")
        view = panel.tabs.view_for(second)
        await wait_for(pilot, lambda: app.focused is view, "the new tab focused")
        await pilot.press(*"exit 0", "enter")
        await wait_for(pilot, lambda: second.exited, "the second shell to exit")
        await wait_for(
            pilot, lambda: any("[exited 0]" in label for label in tab_labels(app)), "label"
        )
        await pilot.press("ctrl+w")
        await wait_for(pilot, lambda: panel.terminals == [first], "the exited tab closed")
        await pilot.pause()
        assert not first.exited
        panel.focus_panel()
        view = panel.tabs.view_for(first)
        await wait_for(pilot, lambda: app.focused is view, "the remaining tab focused")
        await leave_terminal(pilot)
        await pilot.press("ctrl+w")
        await wait_for(pilot, lambda: not panel.terminals, "the running tab closed")
        await wait_for(pilot, lambda: first.exited or first.session.closed, "its shell ended")
        await wait_for(pilot, lambda: app.main.header.terminals == 0, "the header count")


FIXED = "printf 'portside terminal\\n\\033[1;32mgreen\\033[0m and \\033[7mreverse\\033[0m\\n'"


async def open_fixed_terminal(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, PortsideApp)
    app.main.action_show_panel("terminals")
    session = LocalSession(["sh", "-c", f"{FIXED}; exec sleep 300"], title="fixed")
    await app.main.terminals.open_session(session)
    terminal = app.main.terminals.active_terminal
    assert terminal is not None
    await wait_for(pilot, lambda: "reverse" in screen_text(terminal), "the fixed text")
    app.main.terminals.tabs.query_one(Tabs).focus()  # as after escape twice, without the echo
    await sample_data.settle(pilot)


@pytest.fixture(autouse=False)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


def test_terminals_panel_snapshot(snap_compare: Any, _plain_environment: None) -> None:
    async def steps(pilot: Pilot[Any]) -> None:
        await sample_data.load(pilot)
        await open_fixed_terminal(pilot)

    assert snap_compare(offline_app(), terminal_size=(100, 24), run_before=steps)


async def test_exec_shell_on_the_embedded_engine(tmp_path: Any, pushed_images: dict[str, str]):
    from engine.embedded import embedded_engine

    ref = pushed_images["test/busybox:1"]
    host = ref.split("/", 1)[0]
    async with embedded_engine(root=str(tmp_path / "root"), insecure_registries=[host]) as url:
        docker = aiodocker.Docker(url=url)
        try:
            await docker.images.pull(ref)
            container = await docker.containers.create(
                {"Image": ref, "Cmd": ["sleep", "300"]}, name="emb-sleeper"
            )
            try:
                await container.start()
                await _exec_hi_3(dashboard(url), container.id)
            finally:
                await container.delete(force=True)
        finally:
            await docker.close()


async def _exec_hi_3(app: PortsideApp, cid: str) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await select(pilot, app, "emb-sleeper", cid)
        await pilot.press("e")
        panel = app.main.terminals
        await wait_for(pilot, lambda: panel.active_terminal is not None, "a tab")
        await wait_for(pilot, lambda: "#" in screen_text(panel.active_terminal), "a prompt")
        terminal = panel.active_terminal
        await pilot.press(*"echo hi-$((1+2))", "enter")
        await wait_for(pilot, lambda: "hi-3" in screen_text(terminal), "the answer")
        await pilot.press(*"exit", "enter")
        await wait_for(pilot, lambda: terminal.exited, "the shell to exit")
