"""The images panel against a real dockerd and registry: marks, history, remove, pull dialog."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.humanize import human_size, short_id
from tui.screens.confirm import ConfirmScreen
from tui.screens.history import HistoryScreen
from tui.screens.inspect import InspectScreen
from tui.screens.pull import PullScreen
from tui.widgets.layer_progress import LayerList


def table(app: PortsideApp) -> Any:
    return app.main.images.table


def keys_for(app: PortsideApp, image_id: str) -> list[str]:
    return [k for k, row in table(app).rows_by_key.items() if row.id == image_id]


async def image_id(dockerd: Any, ref: str) -> str:
    return await cli(dockerd, "image", "inspect", "--format", "{{.Id}}", ref)


async def open_images(pilot: Any, app: PortsideApp) -> None:
    await pilot.press("2")
    await wait_for(pilot, lambda: app.focused is table(app), "images panel focused")


async def select(pilot: Any, app: PortsideApp, text: str, key: str) -> None:
    await wait_for(pilot, lambda: key in table(app).rows_by_key, f"{key} listed")
    await pilot.press("slash", *text, "enter")
    await wait_for(pilot, lambda: table(app).shown_keys == [key], f"filter down to {text}")


async def test_rows_marks_and_sizes(dockerd: Any, busybox: str, scratch: str) -> None:
    cid = await cli(dockerd, "create", "--name", f"{scratch}user", busybox, "/bin/sleep", "1")
    # An untagged image: commit a container without naming the result.
    dangling = await cli(dockerd, "commit", cid)
    busy_id = await image_id(dockerd, busybox)
    app = dashboard(dockerd.host)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_images(pilot, app)
        await wait_for(pilot, lambda: keys_for(app, dangling) and keys_for(app, busy_id), "rows")
        t = table(app)
        (busy_key,) = [k for k in keys_for(app, busy_id) if t.rows_by_key[k].repo_tag == busybox]
        (dangling_key,) = keys_for(app, dangling)
        assert "in use" in str(t.get_cell(busy_key, "flags"))
        assert str(t.get_cell(dangling_key, "flags")) == "◌ dangling"
        assert str(t.get_cell(dangling_key, "repository")) == "<none>"
        assert str(t.get_cell(busy_key, "id")) == short_id(busy_id)
        size = int(await cli(dockerd, "image", "inspect", "--format", "{{.Size}}", busybox))
        assert str(t.get_cell(busy_key, "size")) == human_size(size)
        # The dangling image becomes "in use" as soon as a container is made from it.
        await cli(dockerd, "create", "--name", f"{scratch}user2", dangling, "/bin/sleep", "1")
        await wait_for(
            pilot, lambda: "in use" in str(t.get_cell(dangling_key, "flags")), "in-use mark"
        )
        await cli(dockerd, "rm", "-f", f"{scratch}user2")
        await cli(dockerd, "rmi", dangling)
        await wait_for(pilot, lambda: not keys_for(app, dangling), "dangling image gone")


async def test_history_and_inspect(dockerd: Any, busybox: str, scratch: str) -> None:
    busy_id = await image_id(dockerd, busybox)
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_images(pilot, app)
        await select(pilot, app, busybox, f"{busy_id}|{busybox}")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "history screen")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_for(pilot, lambda: screen.data is not None, "history loaded")
        lines = (
            await cli(dockerd, "image", "history", "--no-trunc", "--format", "{{json .}}", busybox)
        ).splitlines()
        expected = [json.loads(line) for line in lines]
        history = screen.query_one("#history-table")
        assert history.row_count == len(expected) == len(screen.data)
        assert all("CreatedBy" in layer for layer in screen.data)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back")
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect screen")
        inspect = app.screen
        assert isinstance(inspect, InspectScreen)
        await wait_for(pilot, lambda: inspect.data is not None, "inspect loaded")
        assert inspect.data["Id"] == busy_id
        assert busybox in inspect.data["RepoTags"]


async def test_remove_tag_asks_first(dockerd: Any, busybox: str, scratch: str) -> None:
    alias = f"{scratch}alias:1"
    await cli(dockerd, "tag", busybox, alias)
    busy_id = await image_id(dockerd, busybox)
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_images(pilot, app)
        await select(pilot, app, scratch, f"{busy_id}|{alias}")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "question")
        assert alias in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("y")
        await wait_for(pilot, lambda: f"{busy_id}|{alias}" not in table(app).rows_by_key, "gone")
        tags = (await cli(dockerd, "images", "--format", "{{.Repository}}:{{.Tag}}")).split()
        assert alias not in tags and busybox in tags


async def test_pull_dialog_shows_layers(
    dockerd: Any, registry: Any, test_images: dict[str, Any], scratch: str
) -> None:
    # A repository no other test uses, so the pull is never "Image is up to date"; and the
    # image itself must be absent (dockerd skips the layers of an image it already has).
    image = test_images["test/layered-docker:1"]
    ref = await asyncio.to_thread(registry.push, image.skopeo_source, f"{scratch}/layered:1")
    await cli(dockerd, "rmi", "-f", image.config_digest, check=False)
    app = dashboard(dockerd.host)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await open_images(pilot, app)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, PullScreen), "pull dialog")
            dialog = app.screen
            assert isinstance(dialog, PullScreen)
            await pilot.press("ctrl+u", *ref, "enter")
            await wait_for(pilot, lambda: dialog.progress is not None, "pull started")
            await wait_for(pilot, lambda: not dialog.running, "pull finished", timeout=120)
            assert dialog.finished_error is None
            progress = dialog.progress
            assert progress is not None
            layers = int(
                await cli(dockerd, "image", "inspect", "--format", "{{len .RootFS.Layers}}", ref)
            )
            assert (
                len(progress.layers)
                == layers
                == len(dialog.query_one("#pull-layers", LayerList).rows)
            )
            assert all(layer.done for layer in progress.layers.values())
            assert progress.summary.startswith("Downloaded newer image for")
            pulled = await image_id(dockerd, ref)
            await wait_for(pilot, lambda: keys_for(app, pulled), "pulled image listed")
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is app.main, "dialog closed")
    finally:
        await cli(dockerd, "rmi", ref, check=False)


async def test_pull_errors_are_shown(dockerd: Any, pushed_images: dict[str, str]) -> None:
    missing = pushed_images["test/busybox:1"].rsplit(":", 1)[0] + ":no-such-tag"
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_images(pilot, app)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PullScreen), "pull dialog")
        dialog = app.screen
        assert isinstance(dialog, PullScreen)
        await pilot.press("ctrl+u", *"bad ref", "enter")
        assert dialog.progress is None  # refused before asking the engine
        await pilot.press("ctrl+u", *missing, "enter")
        await wait_for(pilot, lambda: dialog.finished_error is not None, "pull failed")
        assert "not found" in dialog.finished_error or "unknown" in dialog.finished_error
        assert "\n" not in dialog.finished_error
