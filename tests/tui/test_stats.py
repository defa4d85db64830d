"""Stats against a real dockerd: sparklines from one-shot stats, fetched only for what is on
screen, and live CPU/memory in the containers panel for the visible running rows."""

from __future__ import annotations

import json
from typing import Any

from tests.tui.helpers import cli, dashboard, wait_for
from tui.screens.stats import StatsBlock, StatsScreen
from tui.widgets.stats_sample import History, Sample

BUSY = "i=0; while true; do i=$((i+1)); done"


async def run(dockerd: Any, image: str, name: str, script: str = "sleep 3600") -> str:
    return await cli(dockerd, "run", "-d", "--init", "--name", name, image, "sh", "-c", script)


async def test_stats_screen_samples_only_visible_blocks(
    dockerd: Any, busybox: str, scratch: str
) -> None:
    ids = [
        await run(dockerd, busybox, f"{scratch}s{i}", BUSY if i == 0 else "sleep 3600")
        for i in range(3)
    ]
    app = dashboard(dockerd.host)
    async with app.run_test(size=(100, 12)) as pilot:
        table = app.main.containers.table
        await wait_for(pilot, lambda: set(ids) <= set(table.rows_by_key), "listed")
        await pilot.press("slash", *f"{scratch}s", "enter")
        await wait_for(pilot, lambda: set(table.shown_keys) == set(ids), "filtered")
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, StatsScreen), "stats view")
        screen = app.screen
        assert isinstance(screen, StatsScreen)
        screen.interval = 0.2
        names = [name for _, name in screen.targets]
        busy = names.index(f"{scratch}s0")
        block = screen.block(busy)
        await wait_for(pilot, lambda: len(block.history.cpu) >= 2, "two samples")
        assert block.history.last is not None
        assert block.history.last.memory > 0
        assert max(block.history.cpu) > 1.0  # a shell spinning in a loop uses CPU
        assert "%" in str(block.query_one("#value-cpu").render())

        # Only the blocks on screen were asked for: the third is below the fold.
        visible = screen.visible_indexes()
        assert visible and len(visible) < 3
        assert all(round_ <= visible for round_ in screen.requested)
        await pilot.press("escape")
        assert not isinstance(app.screen, StatsScreen)


async def test_containers_panel_shows_cpu_and_memory_of_visible_running_rows(
    dockerd: Any, busybox: str, scratch: str
) -> None:
    running = await run(dockerd, busybox, f"{scratch}up")
    stopped = await cli(dockerd, "create", "--name", f"{scratch}off", busybox, "true")
    app = dashboard(dockerd.host, row_stats_interval=0.2)
    async with app.run_test(size=(200, 30)) as pilot:
        table = app.main.containers.table
        await wait_for(pilot, lambda: {running, stopped} <= set(table.rows_by_key), "listed")
        await wait_for(pilot, lambda: running in app.row_stats, "stats of the running row")
        await pilot.pause()
        assert str(table.get_cell(running, "mem")).endswith("B")
        assert str(table.get_cell(running, "cpu")).endswith("%")
        assert str(table.get_cell(stopped, "cpu")) == ""
        visible = set(app.main.containers.visible_running())
        assert all(set(round_) <= visible for round_ in app.row_stats_requested)
        assert stopped not in {cid for round_ in app.row_stats_requested for cid in round_}
        raw = json.loads(
            await cli(dockerd, "stats", "--no-stream", "--format", "{{json .}}", running)
        )
        assert raw["ID"].startswith(running[:12])

        # Away from the containers panel, nothing is sampled.
        await pilot.press("2")
        await pilot.pause(0.3)
        rounds = len(app.row_stats_requested)
        await pilot.pause(1.0)
        assert len(app.row_stats_requested) == rounds


def test_sample_figures_follow_dockers_formulas() -> None:
    answer = {
        "read": "2026-01-01T00:00:02.000000000Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 10e9},
        "memory_stats": {"usage": 50_000_000, "limit": 1e9, "stats": {"inactive_file": 10e6}},
        "networks": {"eth0": {"rx_bytes": 4000, "tx_bytes": 1000}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"op": "Read", "value": 8192},
                {"op": "Write", "value": 4096},
            ]
        },
    }
    first = Sample.from_api(answer, 0.0)
    assert first.cpu_percent == 20.0  # 1e9 / 10e9 * 2 cpus * 100
    assert first.memory == 40_000_000
    history = History()
    history.add(first)
    later = dict(answer, read="2026-01-01T00:00:04.000000000Z")
    later["networks"] = {"eth0": {"rx_bytes": 8000, "tx_bytes": 1000}}
    history.add(Sample.from_api(later, 0.0))
    assert list(history.net) == [0.0, 2000.0]
    assert list(history.block) == [0.0, 0.0]
    assert isinstance(StatsBlock(0, "x").history, History)


async def test_group_by_compose_project(dockerd: Any, busybox: str, scratch: str) -> None:
    label = "com.docker.compose.project"
    made = {}
    for name, project in (("a", "zeta"), ("b", "alpha"), ("c", "zeta"), ("d", "")):
        extra = ["--label", f"{label}={project}"] if project else []
        made[name] = await cli(
            dockerd, "create", "--name", f"{scratch}{name}", *extra, busybox, "true"
        )
    app = dashboard(dockerd.host)
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.main.containers.table
        await pilot.press("slash", *scratch, "enter")
        await wait_for(pilot, lambda: set(table.shown_keys) == set(made.values()), "listed")
        assert table.rows_by_key[made["a"]].project == "zeta"
        assert str(table.get_cell(made["b"], "project")) == "alpha"
        await pilot.press("b")
        order = [table.rows_by_key[key].name.removeprefix(scratch) for key in table.shown_keys]
        assert order == ["b", "a", "c", "d"]  # alpha, then zeta, then no project
        await pilot.press("b")
        assert table.sort_column == table.DEFAULT_SORT
