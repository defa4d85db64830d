"""SVG snapshots of the registries panel, the registry browser (catalog, tags, manifest),
the login and push dialogs and the scan view, from fixed data (``sample_registries``) with a
frozen clock, in two themes and two sizes. Update them with ``pytest --snapshot-update``."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui import sample_registries
from tests.tui.test_snapshots import SIZES, THEMES, make_app, then
from tui.screens.registry_login import LoginScreen


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", "/home/user/.docker")  # shown in the login dialog


VIEWS = {
    "registries": [],
    "manifest": [sample_registries.open_manifest],
    "scan": [sample_registries.open_scan],
}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", list(VIEWS))
def test_view(snap_compare: Any, view: str, theme: str, size: tuple[int, int]) -> None:
    steps = [sample_registries.load, *VIEWS[view]]
    assert snap_compare(make_app(theme), terminal_size=size, run_before=then(*steps))


async def _login(pilot: Pilot[Any]) -> None:
    await pilot.app.push_screen(LoginScreen("registry.local:5000", "alice"))
    await pilot.press(*"not-the-password")


@pytest.mark.parametrize(
    "step",
    [
        sample_registries.open_catalog,
        sample_registries.open_catalog_forbidden,
        sample_registries.open_tags,
        sample_registries.open_push,
        _login,
    ],
    ids=["catalog", "catalog-forbidden", "tags", "push", "login"],
)
def test_dialog(snap_compare: Any, step: Any) -> None:
    assert snap_compare(make_app(), run_before=then(sample_registries.load, step))
