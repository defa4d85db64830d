"""Copy keys: a row's id or name, log lines, an inspect value, put on the clipboard and
written to the terminal as OSC 52 (checked on a real PTY)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from tests.tui.helpers import cli, dashboard, wait_for
from tests.tui.test_entry_point import read_until, start
from tests.tui.test_logs import filter_list, logs_screen, run_logger
from tui.copy import inspect_value, preview, row_name
from tui.model import ImageRow
from tui.screens.inspect import InspectScreen
from tui.screens.logs import LogsScreen


def osc52(text: str) -> bytes:
    return b"\x1b]52;c;" + base64.b64encode(text.encode()) + b"\x07"


async def test_copy_ids_names_inspect_values_and_log_lines(
    dockerd: Any, busybox: str, scratch: str
) -> None:
    cid = await run_logger(dockerd, busybox, f"{scratch}cp", "copy")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await filter_list(pilot, app, f"{scratch}cp", {cid})
        await pilot.press("y")
        assert app.clipboard == cid
        await pilot.press("Y")
        assert app.clipboard == f"{scratch}cp"

        # Inspect: a scalar is copied as it reads, an object as JSON.
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_for(pilot, lambda: screen.data is not None, "inspect data")
        await pilot.pause()  # tree lines are laid out on the next refresh
        tree = screen.tree
        nodes = {str(node.data).split(":")[0]: node for node in tree.root.children}
        tree.move_cursor(nodes["Name"])
        assert tree.cursor_node is nodes["Name"]
        await pilot.press("y")
        assert app.clipboard == screen.data["Name"]
        tree.move_cursor(nodes["State"])
        await pilot.press("y")
        assert json.loads(app.clipboard) == screen.data["State"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back to the list")

        # Logs: the lines in view, the matched line, every shown line.
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen), "logs view")
        view = logs_screen(app).view
        await wait_for(pilot, lambda: len(view.buffer) >= 40, "40 lines followed")
        await pilot.press("space")  # hold new lines: what is in view stays put
        await pilot.press("g")
        await pilot.press("y")
        copied = app.clipboard.splitlines()
        assert copied[:2] == ["copy line 0", "copy line 1"]
        assert len(copied) == view.scrollable_content_region.height
        await pilot.press("slash", *"line 7", "enter")
        await pilot.press("y")
        assert app.clipboard == "copy line 7\n"
        await pilot.press("Y")
        every = app.clipboard.splitlines()
        assert every == [f"copy line {i}" for i in range(len(view.buffer))]


async def test_copy_image_rows(dockerd: Any, busybox: str) -> None:
    app = dashboard(dockerd.host)
    image_id = await cli(dockerd, "image", "inspect", "--format", "{{.Id}}", busybox)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        table = app.main.images.table
        key = f"{image_id}|{busybox}"
        await wait_for(pilot, lambda: key in table.rows_by_key, "busybox listed")
        assert table.select_key(key)
        await pilot.press("y")
        assert app.clipboard == image_id
        await pilot.press("Y")
        assert app.clipboard == busybox


def test_copy_texts() -> None:
    dangling = ImageRow("sha256:ab|", "sha256:ab", "<none>", "<none>", 1, 0.0, True)
    assert row_name(dangling) == "sha256:ab"
    assert inspect_value(None) == "null" and inspect_value(3) == "3"
    assert inspect_value("a b") == "a b"
    assert preview("x" * 50, 10) == "x" * 10 + "…"
    assert preview("one\ntwo") == "one…"


async def test_copy_reaches_the_terminal_as_osc52(
    dockerd: Any, busybox: str, scratch: str, tmp_path: Path
) -> None:
    name = f"{scratch}osc"
    cid = await cli(dockerd, "run", "-d", "--init", "--name", name, busybox, "sleep", "3600")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PORTSIDE_CONFIG")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path))
    proc, master = start([dockerd.host, "dark"], env)
    try:
        read_until(master, name.encode(), proc, timeout=60)
        os.write(master, b"/")
        read_until(master, b"Clear filter", proc, timeout=30)  # the filter input has focus
        os.write(master, name.encode())
        read_until(master, b"1 of ", proc, timeout=30)  # one row left
        os.write(master, b"\r")
        read_until(master, b"/ Filter  u Start", proc, timeout=30)  # the list has focus again
        os.write(master, b"y")
        read_until(master, osc52(cid), proc, timeout=30)
        os.write(master, b"Y")
        read_until(master, osc52(name), proc, timeout=30)
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
