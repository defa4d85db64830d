"""SVG snapshots of every panel and screen, in two themes and two sizes, from fixed data.

The app runs without an engine worker (``autoconnect=False``); the messages the worker would
post are posted with fixed content from ``sample_data`` and the clock is frozen, so each
snapshot is byte-for-byte stable. Update them with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiodocker
import pytest
from textual.pilot import Pilot

from tests.tui import sample_data
from tui.app import PortsideApp
from tui.config import DashboardConfig

SIZES = [(80, 24), (160, 48)]
THEMES = ["dark", "light"]


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


async def _no_engine() -> aiodocker.Docker:
    raise AssertionError("snapshot apps never connect")


def make_app(theme: str = "dark") -> PortsideApp:
    return PortsideApp(
        _no_engine,
        "dockerd",
        theme,
        engine_url="unix:///var/run/docker.sock",
        config=DashboardConfig(),
        clock=lambda: sample_data.NOW,
        autoconnect=False,
    )


def then(*steps: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        for step in steps:
            await step(pilot)

    return run


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_containers_panel(snap_compare: Any, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(theme), terminal_size=size, run_before=sample_data.load)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_images_panel(snap_compare: Any, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(
        make_app(theme), press=["2"], terminal_size=size, run_before=sample_data.load
    )


def test_filtered_containers(snap_compare: Any) -> None:
    assert snap_compare(make_app(), press=["slash", *"web", "enter"], run_before=sample_data.load)


def test_confirm_remove(snap_compare: Any) -> None:
    assert snap_compare(make_app(), press=["d"], run_before=sample_data.load)


def test_unreachable_engine(snap_compare: Any) -> None:
    assert snap_compare(make_app(), run_before=then(sample_data.load, sample_data.unreachable))


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(), press=["question_mark"], run_before=sample_data.load)


def test_pull_dialog(snap_compare: Any) -> None:
    assert snap_compare(
        make_app(),
        terminal_size=(100, 30),
        run_before=then(sample_data.load, sample_data.open_pull),
    )


def test_inspect_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(), run_before=then(sample_data.load, sample_data.open_inspect))


def test_history_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(), run_before=then(sample_data.load, sample_data.open_history))
