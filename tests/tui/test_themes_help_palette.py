"""Themes (four of ours, --theme, config, in-app switching, NO_COLOR), the help screen and the
command palette. No engine is needed: data comes as the engine worker's messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from textual.color import Color
from textual.command import CommandPalette

import themes
from tests.tui import sample_data
from tests.tui.helpers import wait_for
from tui.app import PortsideApp, run_dashboard
from tui.config import DashboardConfig
from tui.screens.help import HelpScreen


async def _no_engine() -> aiodocker.Docker:
    raise AssertionError("these apps never connect")


def make_app(theme: str | None = None, config: DashboardConfig | None = None) -> PortsideApp:
    return PortsideApp(
        _no_engine,
        "dockerd",
        theme,
        config=config or DashboardConfig(),
        clock=lambda: sample_data.NOW,
        autoconnect=False,
    )


@pytest.fixture(autouse=True)
def _colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


def test_four_themes_and_their_names() -> None:
    assert set(themes.THEMES) == {
        "portside-dark",
        "portside-light",
        "portside-high-contrast",
        "portside-colorblind",
    }
    assert themes.resolve_theme_name("light") == "portside-light"
    assert themes.resolve_theme_name("High_Contrast") == "portside-high-contrast"
    assert themes.resolve_theme_name("colourblind") == "portside-colorblind"
    assert themes.resolve_theme_name("nord") == "nord"
    with pytest.raises(themes.UnknownTheme, match="dark, light, high-contrast, colorblind"):
        themes.resolve_theme_name("neon")
    assert not themes.THEMES["portside-light"].dark


def test_theme_choice_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_app().theme == "portside-dark"
    assert make_app(config=DashboardConfig(theme="light")).theme == "portside-light"
    assert make_app("colorblind", DashboardConfig(theme="light")).theme == "portside-colorblind"
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_app().theme == "portside-high-contrast"
    assert make_app("light").theme == "portside-light"  # an explicit choice still wins


def test_run_dashboard_refuses_bad_theme_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert run_dashboard("unix:///nowhere.sock", engine_name="x", theme="neon", env=env) == 2
    assert "unknown theme 'neon'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[dashboard]\nrefresh_interval = -1\n")
    code = run_dashboard(
        "unix:///nowhere.sock", engine_name="x", theme=None, env={"PORTSIDE_CONFIG": str(bad)}
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("portside: ") and "refresh_interval" in err and err.count("\n") == 1


def running_colour(app: PortsideApp) -> Any:
    row = next(r for r in sample_data.container_rows() if r.state == "running")
    return app.main.containers.table.get_cell(row.id, "state").style.color


async def test_switching_theme_in_app_recolours_cells() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await sample_data.load(pilot)
        dark_success = Color.parse(themes.THEMES["portside-dark"].success).rich_color
        assert running_colour(app) == dark_success
        await pilot.press("T")
        assert app.theme == "portside-light"
        await sample_data.settle(pilot)
        assert (
            running_colour(app) == Color.parse(themes.THEMES["portside-light"].success).rich_color
        )
        for expected in ("portside-high-contrast", "portside-colorblind", "portside-dark"):
            await pilot.press("T")
            assert app.theme == expected


async def test_no_color_renders_without_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await sample_data.load(pilot)
        svg = app.export_screenshot()
    # c5c8c6 is the SVG exporter's own default foreground (text without a colour).
    colours = set(re.findall(r"(?:fill|color): ?#([0-9a-fA-F]{6})", svg)) - {"c5c8c6"}
    assert colours, "the screenshot carries colours to check"
    greys = {c for c in colours if c[0:2] == c[2:4] == c[4:6]}
    assert colours == greys, f"non-grey colours with NO_COLOR: {sorted(colours - greys)}"


async def test_help_lists_every_binding_with_overrides() -> None:
    app = make_app(config=DashboardConfig(keymap={"container.stop": "x"}))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help screen")
        table = app.screen.query_one("#help-table")
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        by_id = {row[2]: row for row in rows}
        from tui import keymap

        assert set(by_id) >= {c.id for c in keymap.COMMANDS}
        assert by_id["container.stop"][0] == "x"
        assert by_id["app.help"][0] == "?"
        await pilot.press("escape")
        assert app.screen is app.main


async def test_palette_offers_every_panel_action() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await sample_data.load(pilot)
        titles = {c.title for c in app.get_system_commands(app.main)}
        assert {
            "Container: Stop",
            "Container: Remove",
            "Image: Pull",
            "Image: History",
            "Show the images panel",
            "List: Filter",
        } <= titles
        # Run one through the palette UI, as a user would.
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
        await pilot.press(*"images panel")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.main, "palette closed")
        await wait_for(pilot, lambda: app.main.current_panel is app.main.images, "images shown")


async def test_palette_action_without_engine_reports_it() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await sample_data.load(pilot)
        stop = next(c for c in app.get_system_commands(app.main) if c.title == "Container: Stop")
        stop.callback()
        await wait_for(pilot, lambda: app.action_results, "action result")
        assert app.action_results[-1].error == "the engine is not connected"
