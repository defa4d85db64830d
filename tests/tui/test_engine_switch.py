"""Switching engines in the running dashboard: the picker lists the embedded engine,
DOCKER_HOST, named hosts and docker contexts; a switch closes the old client, resets the
panels and follows the new engine; an unreachable choice shows the unreachable screen,
from which another switch is possible. Two real engines: dockerd and ``portside serve``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import OptionList

from tests.fixtures.terminal import Terminal
from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.client import (
    EngineOptions,
    EngineSelectionError,
    docker_contexts,
    engine_choices,
    resolve_target,
)
from tui.config import ConfigError, DashboardConfig, load_dashboard_config
from tui.screens.engines import EnginesScreen
from tui.screens.unreachable import UnreachableScreen
from tui.widgets.header import CONNECTED


def write_context(config_dir: Path, name: str, host: str) -> None:
    """A docker context as ``docker context create`` stores it."""
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    body = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}
    (meta / "meta.json").write_text(json.dumps(body))


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return config_dir


async def pick(pilot: Any, app: PortsideApp, name: str) -> None:
    """Open the picker with its key and choose ``name`` with the keyboard."""
    await pilot.press("E")
    await wait_for(pilot, lambda: isinstance(app.screen, EnginesScreen), "the engine picker")
    picker = app.screen
    assert isinstance(picker, EnginesScreen)
    await wait_for(pilot, lambda: picker.option_list.option_count > 0, "engines listed")
    names = [choice.name for choice in picker.choices]
    options = picker.query_one(OptionList)
    steps = names.index(name) - (options.highlighted or 0)
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, EnginesScreen), "picker closed")


@pytest.mark.parametrize("dockerd", ["dockerd"], indirect=True)
async def test_switch_between_two_engines_and_an_unreachable_one(
    dockerd: Any,
    portside_engine: Any,
    busybox: str,
    scratch: str,
    docker_config: Path,
) -> None:
    write_context(docker_config, "side", portside_engine.host)
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "side"}))
    cid = await cli(dockerd, "create", "--name", f"{scratch}only-here", busybox, "true")
    hosts = {"main": dockerd.host, "gone": f"unix://{docker_config}/nothing.sock"}
    app = dashboard(dockerd.host, config=DashboardConfig(hosts=hosts))
    app.engine_name = "main"
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.containers.table
        await wait_for(pilot, lambda: cid in table.rows_by_key, "dockerd's container")
        old_client = app.sync.docker
        assert old_client is not None and app.info is not None
        server = "{{.Server.Version}}"
        ps_version = await cli(portside_engine, "version", "--format", server)
        assert app.info.version == await cli(dockerd, "version", "--format", server)
        assert app.info.version != ps_version

        # The picker: embedded first, then named hosts, then docker contexts.
        await pilot.press("E")
        await wait_for(pilot, lambda: isinstance(app.screen, EnginesScreen), "picker")
        picker = app.screen
        assert isinstance(picker, EnginesScreen)
        await wait_for(pilot, lambda: picker.option_list.option_count > 0, "engines listed")
        listed = [(c.name, c.source) for c in picker.choices]
        assert listed[0] == ("embedded", "embedded")
        assert ("main", "config") in listed and ("gone", "config") in listed
        assert ("side", "context") in listed and ("default", "context") in listed
        side = next(c for c in picker.choices if c.name == "side")
        assert side.note == "docker's current context"
        marked = [c.name for c in picker.choices if picker.is_current(c)]
        assert marked == ["main"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "picker closed by escape")
        assert app.sync.docker is old_client  # nothing changed

        # Switch to the portside context: old client closed, panels reset, new header.
        await pick(pilot, app, "side")
        await wait_for(
            pilot,
            lambda: app.status == CONNECTED and app.info is not None and app.info.name == "side",
            "connected to portside serve",
        )
        assert old_client.session.closed
        assert app.main.header.engine_name == "side"
        assert app.engine_url == portside_engine.host
        assert app.info is not None and app.info.version == ps_version
        ps_ids = set((await cli(portside_engine, "ps", "-aq", "--no-trunc")).split())
        await wait_for(pilot, lambda: set(table.rows_by_key) == ps_ids, "portside's list")
        assert cid not in table.rows_by_key

        # An unreachable choice: the unreachable screen, which keeps retrying by itself.
        await pick(pilot, app, "gone")
        await wait_for(
            pilot, lambda: isinstance(app.screen, UnreachableScreen), "unreachable screen"
        )
        screen = app.screen
        assert isinstance(screen, UnreachableScreen)
        assert screen.engine == "gone" and "no engine socket" in screen.problem.reason
        assert not table.rows_by_key  # nothing of the previous engine is left
        await wait_for(pilot, lambda: screen.attempt >= 2, "a retry by itself")

        # From the unreachable screen, E switches back to dockerd.
        await pick(pilot, app, "main")
        await wait_for(pilot, lambda: app.status == CONNECTED, "connected to dockerd again")
        await wait_for(pilot, lambda: cid in table.rows_by_key, "dockerd's container again")
        assert app.screen is app.main


@pytest.mark.parametrize("dockerd", ["dockerd"], indirect=True)
async def test_palette_offers_the_engine_picker(dockerd: Any, docker_config: Path) -> None:
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.status == CONNECTED, "connected")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
        await pilot.press(*"switch to another engine")

        def first_match() -> str:
            found = app.screen.query_one(CommandList)
            if found.highlighted is None:
                return ""
            return str(found.get_option_at_index(found.highlighted).prompt)

        await wait_for(pilot, lambda: "another engine" in first_match(), "the match highlighted")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EnginesScreen), "picker by palette")


def test_context_option_and_named_hosts(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_context(docker_config, "lab", "unix:///run/lab.sock")
    config = tmp_path / "config.toml"
    config.write_text('[hosts]\nbox = "tcp://127.0.0.1:2375"\nsock = { url = "/run/box.sock" }\n')
    monkeypatch.setenv("PORTSIDE_CONFIG", str(config))
    assert resolve_target(EngineOptions(context="lab")).url == "unix:///run/lab.sock"
    assert resolve_target(EngineOptions(context="box")).url == "tcp://127.0.0.1:2375"
    assert resolve_target(EngineOptions(context="sock")).url == "unix:///run/box.sock"
    with pytest.raises(EngineSelectionError, match="no docker context or configured host"):
        resolve_target(EngineOptions(context="nope"))
    assert load_dashboard_config().hosts == {
        "box": "tcp://127.0.0.1:2375",
        "sock": "unix:///run/box.sock",
    }
    assert [name for name, _, current in docker_contexts() if current] == ["default"]
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    names = [(c.name, c.source) for c in engine_choices({"box": "tcp://x:1"})]
    assert names == [
        ("embedded", "embedded"),
        ("DOCKER_HOST", "DOCKER_HOST"),
        ("box", "config"),
        ("default", "context"),
        ("lab", "context"),
    ]
    config.write_text('[hosts]\nbad = "ftp://x"\n')
    with pytest.raises(ConfigError, match="host 'bad' needs a URL"):
        load_dashboard_config()


@pytest.mark.parametrize("dockerd", ["dockerd"], indirect=True)
async def test_switching_to_embedded_starts_it_once(
    dockerd: Any, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.embedded import embedded_engine

    monkeypatch.setenv("PORTSIDE_CONFIG", str(tmp_path / "none.toml"))
    starts: list[str] = []

    def start() -> Any:
        starts.append("start")
        return embedded_engine(root=str(tmp_path / "root"))

    app = dashboard(dockerd.host, embedded=start)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.status == CONNECTED, "connected to dockerd")
        await pick(pilot, app, "embedded")
        await wait_for(
            pilot,
            lambda: app.status == CONNECTED and app.engine_name == "embedded",
            "connected to the embedded engine",
        )
        assert app.embedded_url.startswith("unix://") and app.engine_url == app.embedded_url
        assert app.docker is not None
        assert await app.docker.containers.list(all=True) == []
        await pick(pilot, app, "default")  # /var/run/docker.sock: not running here
        await wait_for(pilot, lambda: isinstance(app.screen, UnreachableScreen), "unreachable")
        await pick(pilot, app, "embedded")  # back, without a second engine
        await wait_for(pilot, lambda: app.status == CONNECTED, "embedded again")
        assert starts == ["start"]
    socket_path = Path(app.embedded_url.removeprefix("unix://"))
    assert not socket_path.exists()  # the engine stopped with the dashboard


@pytest.mark.parametrize("dockerd", ["dockerd"], indirect=True)
def test_context_option_opens_the_dashboard_on_it(
    dockerd: Any, busybox: str, scratch: str, docker_config: Path, tmp_path: Path
) -> None:
    """``portside --context NAME`` as typed, on a real PTY: the context's engine is shown."""
    name = f"{scratch}ctx"
    dockerd.docker("create", "--name", name, busybox, "true")
    write_context(docker_config, "reference", dockerd.host)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PORTSIDE_CONFIG")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path))
    portside = Path(sys.executable).with_name("portside")
    with Terminal([str(portside), "--context", "reference"], env, rows=30, cols=110) as term:
        screen = term.expect_text(name.encode())
        assert b"reference" in screen
        term.send(b"q")
        assert term.exit_code(timeout=30) == 0
    missing = subprocess.run(
        [str(portside), "--context", "nowhere"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 125
    assert missing.stderr.startswith(
        "portside: no docker context or configured host named 'nowhere'"
    )
    assert missing.stderr.count("\n") == 1
