"""The containers panel against a real dockerd: listing, live updates, every action by key."""

from __future__ import annotations

import json
from typing import Any

from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.humanize import ellipsize
from tui.screens.confirm import ConfirmScreen
from tui.screens.inspect import InspectScreen
from tui.widgets.header import CONNECTED


def table(app: PortsideApp) -> Any:
    return app.main.containers.table


def state_of(app: PortsideApp, cid: str) -> str | None:
    row = table(app).rows_by_key.get(cid)
    return row.state if row is not None else None


async def run_sleeper(dockerd: Any, image: str, name: str) -> str:
    return await cli(dockerd, "run", "-d", "--init", "--name", name, image, "/bin/sleep", "3600")


async def inspect_state(dockerd: Any, cid: str) -> dict[str, Any]:
    return json.loads(await cli(dockerd, "inspect", "--format", "{{json .State}}", cid))


async def select(pilot: Any, app: PortsideApp, name: str, cid: str) -> None:
    """Select a container the way a user does: filter by its name, then back to the list."""
    await wait_for(pilot, lambda: cid in table(app).rows_by_key, f"{name} listed")
    await pilot.press("slash", *name, "enter")
    await wait_for(pilot, lambda: table(app).shown_keys == [cid], f"filter down to {name}")
    assert table(app).selected_key == cid
    assert app.focused is table(app)


async def test_lists_every_state_and_real_header(dockerd: Any, busybox: str, scratch: str) -> None:
    running = await run_sleeper(dockerd, busybox, f"{scratch}run")
    created = await cli(dockerd, "create", "--name", f"{scratch}new", busybox, "/bin/sleep", "9")
    await cli(dockerd, "run", "--name", f"{scratch}bad", busybox, "sh", "-c", "exit 3", check=False)
    exited = await cli(dockerd, "inspect", "--format", "{{.Id}}", f"{scratch}bad")
    paused = await run_sleeper(dockerd, busybox, f"{scratch}zzz")
    await cli(dockerd, "pause", paused)
    ids = (running, created, exited, paused)

    app = dashboard(dockerd.host)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: all(i in table(app).rows_by_key for i in ids), "4 rows")
        t = table(app)
        assert str(t.get_cell(running, "state")) == "● running"
        assert str(t.get_cell(created, "state")) == "○ created"
        assert str(t.get_cell(exited, "state")) == "■ exited"
        assert str(t.get_cell(paused, "state")) == "‖ paused"
        assert str(t.get_cell(exited, "status")).startswith("Exited (3)")
        assert str(t.get_cell(running, "name")) == f"{scratch}run"
        assert t.rows_by_key[running].image == busybox
        assert str(t.get_cell(running, "image")) == ellipsize(busybox, 28)
        assert "/bin/sleep 3600" in str(t.get_cell(running, "command"))
        assert str(t.get_cell(running, "created")).endswith("ago")

        # The header shows what the engine says, not what we assume.
        header = app.main.header
        assert header.status == CONNECTED
        version = await cli(dockerd, "version", "--format", "{{.Server.Version}}")
        assert header.info is not None and header.info.version == version
        all_ids = (await cli(dockerd, "ps", "-aq", "--no-trunc")).split()
        running_ids = (await cli(dockerd, "ps", "-q", "--no-trunc")).split()
        await wait_for(pilot, lambda: header.counts.containers == len(all_ids), "counts")
        paused_ids = (
            await cli(dockerd, "ps", "-q", "--no-trunc", "--filter", "status=paused")
        ).split()
        assert header.counts.paused == len(paused_ids)
        assert header.counts.running == len(running_ids) - len(paused_ids)
        image_ids = set((await cli(dockerd, "images", "-q", "--no-trunc")).split())
        assert header.counts.images == len(image_ids)


async def test_events_add_and_remove_rows(dockerd: Any, busybox: str, scratch: str) -> None:
    app = dashboard(dockerd.host)  # reconciliation every 600 s: only events can do this
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.status == CONNECTED, "connected")
        await wait_for(pilot, lambda: app.main.header.counts.images > 0, "first listing")
        cid = await run_sleeper(dockerd, busybox, f"{scratch}live")
        await wait_for(pilot, lambda: state_of(app, cid) == "running", "new container shown")
        await cli(dockerd, "pause", cid)
        await wait_for(pilot, lambda: state_of(app, cid) == "paused", "pause seen")
        await cli(dockerd, "rm", "-f", cid)
        await wait_for(pilot, lambda: cid not in table(app).rows_by_key, "removal seen")


async def test_stop_start_restart_by_key(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await run_sleeper(dockerd, busybox, f"{scratch}svc")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}svc", cid)
        before = (await inspect_state(dockerd, cid))["StartedAt"]

        await pilot.press("s")
        await wait_for(pilot, lambda: state_of(app, cid) == "exited", "stopped")
        assert (await inspect_state(dockerd, cid))["Running"] is False

        await pilot.press("u")
        await wait_for(pilot, lambda: state_of(app, cid) == "running", "started")
        started = (await inspect_state(dockerd, cid))["StartedAt"]
        assert started != before

        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any(r.summary == f"Restarted {scratch}svc" for r in app.action_results),
            "restart finished",
        )
        state = await inspect_state(dockerd, cid)
        assert state["Running"] is True and state["StartedAt"] != started
        assert all(r.error is None for r in app.action_results)


async def test_pause_toggle_and_kill_asks_first(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await run_sleeper(dockerd, busybox, f"{scratch}pk")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}pk", cid)
        await pilot.press("p")
        await wait_for(pilot, lambda: state_of(app, cid) == "paused", "paused")
        assert (await inspect_state(dockerd, cid))["Paused"] is True
        await pilot.press("p")
        await wait_for(pilot, lambda: state_of(app, cid) == "running", "unpaused")

        await pilot.press("K")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "kill question")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "declined")
        assert (await inspect_state(dockerd, cid))["Running"] is True

        await pilot.press("K")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "kill question")
        await pilot.press("y")
        await wait_for(pilot, lambda: state_of(app, cid) == "exited", "killed")
        state = await inspect_state(dockerd, cid)
        assert state["Running"] is False and state["ExitCode"] == 137


async def test_remove_asks_then_removes(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await run_sleeper(dockerd, busybox, f"{scratch}gone")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}gone", cid)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "remove question")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        assert f"{scratch}gone" in question.question and "running" in question.detail
        await pilot.press("y")
        await wait_for(pilot, lambda: cid not in table(app).rows_by_key, "row removed")
        listed = (await cli(dockerd, "ps", "-aq", "--no-trunc")).split()
        assert cid not in listed


async def test_inspect_shows_the_engine_json(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await run_sleeper(dockerd, busybox, f"{scratch}ins")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}ins", cid)
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect screen")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_for(pilot, lambda: screen.data is not None, "inspect data")
        assert screen.data["Id"] == cid
        assert screen.data["Config"]["Cmd"] == ["/bin/sleep", "3600"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back to the list")
        # enter on a row opens the same view
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect by enter")


async def test_filter_and_sort(dockerd: Any, busybox: str, scratch: str) -> None:
    ids = {}
    for name in ("b", "c", "a"):
        ids[name] = await run_sleeper(dockerd, busybox, f"{scratch}{name}")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        t = table(app)
        await wait_for(pilot, lambda: all(i in t.rows_by_key for i in ids.values()), "listed")
        await pilot.press("slash", *scratch)
        await wait_for(pilot, lambda: len(t.shown_keys) == 3, "filtered to the three")
        assert set(t.shown_keys) == set(ids.values())
        await pilot.press("enter")
        while t.sort_column != "name":
            await pilot.press("o")
        assert t.shown_keys == [ids["a"], ids["b"], ids["c"]]
        assert str(t.columns["name"].label) == "NAME ▲"  # type: ignore[index]
        await pilot.press("O")
        assert t.shown_keys == [ids["c"], ids["b"], ids["a"]]
        # j/k/g/G move the cursor
        await pilot.press("g")
        assert t.selected_key == ids["c"]
        await pilot.press("j")
        assert t.selected_key == ids["b"]
        await pilot.press("G")
        assert t.selected_key == ids["a"]
        await pilot.press("k")
        assert t.selected_key == ids["b"]
        # escape in the filter bar clears the filter
        await pilot.press("slash", "escape")
        assert t.filter_text == "" and len(t.shown_keys) >= 3
        assert app.focused is t


async def test_engine_errors_are_reported(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await cli(dockerd, "create", "--name", f"{scratch}broken", busybox, "/no/such/binary")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}broken", cid)
        await pilot.press("u")
        await wait_for(pilot, lambda: any(r.error for r in app.action_results), "error reported")
        result = next(r for r in app.action_results if r.error)
        assert result.summary == f"Start {scratch}broken"
        assert "no such file" in result.error.lower()
        assert "\n" not in result.error


async def test_keymap_override_from_config(dockerd: Any, busybox: str, scratch: str) -> None:
    from tui.config import DashboardConfig

    cid = await run_sleeper(dockerd, busybox, f"{scratch}km")
    config = DashboardConfig(keymap={"container.stop": "x"})
    app = dashboard(dockerd.host, config=config)
    async with app.run_test(size=(120, 30)) as pilot:
        await select(pilot, app, f"{scratch}km", cid)
        active = app.screen.active_bindings
        assert active["x"].binding.id == "container.stop"
        assert "s" not in active
        await pilot.press("x")
        await wait_for(pilot, lambda: state_of(app, cid) == "exited", "stopped with x")
