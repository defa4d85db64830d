"""The lists' line cache (keyed by row, not by screen line and cursor) draws exactly what a
cold render draws, after cursor moves, scrolling, hovering and updates."""

from __future__ import annotations

from typing import Any

from textual.coordinate import Coordinate

from tests.tui import sample_data
from tui.app import PortsideApp
from tui.messages import ContainersUpdated, EngineConnected
from tui.model import ContainerRow


async def _no_engine() -> Any:
    raise RuntimeError("this test posts the engine's messages itself")


def rows(count: int, status: str = "Created") -> list[ContainerRow]:
    return [
        ContainerRow.from_api(
            {
                "Id": f"{index:064x}",
                "Names": [f"/row-{index:03d}"],
                "Image": "busybox:1",
                "ImageID": "sha256:" + "a" * 64,
                "Command": "true",
                "Created": sample_data.NOW - index * 60,
                "State": "created",
                "Status": status,
                "Ports": [],
                "Labels": {},
            }
        )
        for index in range(count)
    ]


async def cold_equals_cached(pilot: Any, app: PortsideApp) -> None:
    cached = app.export_screenshot()
    table = app.main.containers.table
    table._clear_caches()
    table.refresh()
    await sample_data.settle(pilot)
    assert app.export_screenshot() == cached


async def test_cached_lines_match_a_cold_render() -> None:
    app = PortsideApp(
        _no_engine, "dockerd", "dark", clock=lambda: sample_data.NOW, autoconnect=False
    )
    async with app.run_test(size=(120, 30)) as pilot:
        app.post_message(EngineConnected(sample_data.engine_info()))
        app.post_message(ContainersUpdated(rows(200), complete=True))
        await sample_data.settle(pilot)
        table = app.main.containers.table
        await pilot.press("j", "j", "j", "k")
        await sample_data.settle(pilot)
        assert table.cursor_row == 2
        await cold_equals_cached(pilot, app)
        await pilot.press("pagedown", "j", "pagedown", "k")
        await sample_data.settle(pilot)
        assert table.scroll_offset.y > 0
        await cold_equals_cached(pilot, app)
        table.hover_coordinate = Coordinate(table.cursor_row + 1, 1)
        await sample_data.settle(pilot)
        await cold_equals_cached(pilot, app)
        app.post_message(ContainersUpdated(rows(200, "Exited (0) 1 minute ago"), complete=True))
        await sample_data.settle(pilot)
        await cold_equals_cached(pilot, app)
        await pilot.press("G", "g")
        await sample_data.settle(pilot)
        await cold_equals_cached(pilot, app)
