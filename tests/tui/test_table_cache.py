"""The lists' line cache (keyed by row, not by screen line and cursor) draws exactly what a
cold render draws, after cursor moves, scrolling, hovering and updates."""

from __future__ import annotations

from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

import themes
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


def offline_app() -> PortsideApp:
    """The dashboard with no engine (the test posts the engine's messages), frozen clock."""
    return PortsideApp(
        _no_engine, "dockerd", "dark", clock=lambda: sample_data.NOW, autoconnect=False
    )


async def show_rows(pilot: Any, app: PortsideApp, count: int = 200) -> None:
    app.post_message(EngineConnected(sample_data.engine_info()))
    app.post_message(ContainersUpdated(rows(count), complete=True))
    await sample_data.settle(pilot)


async def cold_equals_cached(pilot: Any, app: PortsideApp) -> None:
    cached = app.export_screenshot()
    table = app.main.containers.table
    table._clear_caches()
    table.refresh()
    await sample_data.settle(pilot)
    assert app.export_screenshot() == cached


async def test_cached_lines_match_a_cold_render() -> None:
    app = offline_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await show_rows(pilot, app)
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


async def test_cells_are_drawn_as_datatable_draws_them() -> None:
    # ResourceTable lays out one-line Text cells itself (DataTable's Rich path was most of a
    # page's frame time): every cell of every list, in every cursor and hover state, in
    # both themes, must come out as DataTable's own _render_cell makes it.
    app = offline_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await sample_data.load(pilot)
        main = app.main
        tables = [main.containers.table, main.images.table]
        for theme in themes.THEMES:
            app.theme = theme
            await sample_data.settle(pilot)
            compared = 0
            for table in tables:
                assert table.row_count > 3
                base = table.rich_style
                for row in range(table.row_count):
                    for column in range(len(table.columns)):
                        width = table.ordered_columns[column].get_render_width(table)
                        for cursor, hover in ((False, False), (True, False), (False, True)):
                            table._cell_render_cache.clear()
                            ours = table._render_cell(row, column, base, width, cursor, hover)
                            table._cell_render_cache.clear()
                            rich = DataTable._render_cell(
                                table, row, column, base, width, cursor, hover
                            )
                            assert ours == rich, (table.id, row, column, cursor, hover)
                            compared += 1
            assert compared > 200


async def test_filtering_reuses_cells_only_of_unchanged_rows() -> None:
    app = offline_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await show_rows(pilot, app)
        table = app.main.containers.table
        await pilot.press("slash", *"row-01")
        await sample_data.settle(pilot)
        assert len(table.shown_keys) == 10
        # Rows change while filtered (hidden ones too): the filter must not bring old cells.
        app.post_message(ContainersUpdated(rows(200, "Exited (3) 2 minutes ago"), complete=True))
        await sample_data.settle(pilot)
        await pilot.press(*["backspace"] * 6, "enter")  # enter: back to the list
        await sample_data.settle(pilot)
        assert len(table.shown_keys) == 200
        await cold_equals_cached(pilot, app)
        for key in table.shown_keys:  # hidden or shown then, every row shows the new state
            assert any("Exited (3)" in str(cell) for cell in table.get_row(key)), key


async def test_the_next_pages_are_drawn_ahead_while_idle() -> None:
    app = offline_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await show_rows(pilot, app)
        table = app.main.containers.table
        await pilot.press("pagedown")  # a page in: there are pages above and below
        await sample_data.settle(pilot)
        width, height = table.size
        scroll_x, scroll_y = table.scroll_offset
        top = scroll_y + table.header_height
        body = height - table.header_height
        assert scroll_y > 0
        cached = len(table._strips)
        for y in (*range(top - body, top), *range(top + body, top + 2 * body)):
            table._render_line(y, scroll_x, scroll_x + width, table.rich_style)
        assert len(table._strips) == cached  # every line of both pages was there already
        await pilot.press("pagedown")
        await sample_data.settle(pilot)
        await cold_equals_cached(pilot, app)  # and drawn ahead exactly as drawn now
