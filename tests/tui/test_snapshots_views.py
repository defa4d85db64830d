"""SVG snapshots of the logs, stats, volumes and networks views and the inspect tree, in two
themes and two sizes, from fixed data (``sample_views``) with a frozen clock. Update them
with ``pytest --snapshot-update``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui import sample_views
from tests.tui.test_snapshots import SIZES, THEMES, make_app, then


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


VIEWS = {
    "logs": ([], sample_views.open_logs),
    "stats": ([], sample_views.open_stats),
    "volumes": (["3"], None),
    "networks": (["4"], None),
}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", list(VIEWS))
def test_view(snap_compare: Any, view: str, theme: str, size: tuple[int, int]) -> None:
    keys, step = VIEWS[view]
    steps = [sample_views.load] + ([step] if step else [])
    assert snap_compare(make_app(theme), press=keys, terminal_size=size, run_before=then(*steps))


def test_containers_with_stats_grouped(snap_compare: Any) -> None:
    assert snap_compare(
        make_app(), press=["b"], terminal_size=(160, 30), run_before=sample_views.load
    )


def test_inspect_tree_search(snap_compare: Any) -> None:
    assert snap_compare(make_app(), run_before=then(sample_views.load, sample_views.inspect_search))
