"""ResourceTable behaviour with fixed engine data: header-click sorting, the cursor staying on
the same object across updates, partial updates and removals, 80x24 layout."""

from __future__ import annotations

import dataclasses

import aiodocker
import pytest

from tests.tui import sample_data
from tui.app import PortsideApp
from tui.config import DashboardConfig
from tui.messages import ContainersUpdated


async def _no_engine() -> aiodocker.Docker:
    raise AssertionError("these apps never connect")


def make_app() -> PortsideApp:
    return PortsideApp(
        _no_engine,
        "dockerd",
        "dark",
        config=DashboardConfig(),
        clock=lambda: sample_data.NOW,
        autoconnect=False,
    )


@pytest.fixture(autouse=True)
def _colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


def names(app: PortsideApp) -> list[str]:
    table = app.main.containers.table
    return [table.rows_by_key[key].name for key in table.shown_keys]


async def test_default_order_is_running_first() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await sample_data.load(pilot)
        assert names(app) == [
            "db",
            "web",
            "worker-1",
            "cache",
            "scratchpad",
            "migrate",
            "smoke-test",
        ]


async def test_clicking_a_header_sorts_and_again_reverses() -> None:
    app = make_app()
    async with app.run_test(size=(200, 30)) as pilot:
        await sample_data.load(pilot)
        await pilot.click("#containers-table", offset=(2, 0))  # the NAME header
        assert names(app) == sorted(names(app))
        await pilot.click("#containers-table", offset=(2, 0))
        assert names(app) == sorted(names(app), reverse=True)
        table = app.main.containers.table
        created = table.columns["created"]  # type: ignore[index]
        before = [c.key for c in table.ordered_columns].index(created.key)
        offset = sum(c.get_render_width(table) for c in table.ordered_columns[:before]) + 2
        await pilot.click("#containers-table", offset=(offset, 0))
        assert table.sort_column == created.key.value
        ages = [table.rows_by_key[k].created for k in table.shown_keys]
        assert ages == sorted(ages, reverse=True)  # newest first


async def test_cursor_follows_its_container_through_updates() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await sample_data.load(pilot)
        table = app.main.containers.table
        rows = {row.name: row for row in sample_data.container_rows()}
        assert table.select_key(rows["cache"].id)
        # "cache" is unpaused and "db" stops: the order changes, the cursor stays on "cache".
        changed = [
            dataclasses.replace(rows["cache"], state="running", status="Up 41 minutes"),
            dataclasses.replace(rows["db"], state="exited", status="Exited (0) 1 second ago"),
        ]
        app.post_message(ContainersUpdated(changed, complete=False))
        await sample_data.settle(pilot)
        assert table.selected_key == rows["cache"].id
        assert names(app)[:4] == ["cache", "web", "worker-1", "scratchpad"]
        assert str(table.get_cell(rows["cache"].id, "state")) == "● running"
        assert app.main.header.counts.paused == 0
        # Removing the selected container moves the cursor to a neighbour, not to the top.
        app.post_message(ContainersUpdated([], complete=False, removed=[rows["cache"].id]))
        await sample_data.settle(pilot)
        assert rows["cache"].id not in table.rows_by_key
        assert table.selected_key == rows["web"].id
        assert app.main.header.counts.containers == 6


async def test_images_panel_in_use_follows_containers() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await sample_data.load(pilot)
        await pilot.press("2")
        images = app.main.images.table
        pg_key = next(k for k, r in images.rows_by_key.items() if r.id == sample_data.PG_ID)
        assert "in use" in str(images.get_cell(pg_key, "flags"))
        db = next(r for r in sample_data.container_rows() if r.name == "db")
        app.post_message(ContainersUpdated([], complete=False, removed=[db.id]))
        await sample_data.settle(pilot)
        assert str(images.get_cell(pg_key, "flags")) == ""
