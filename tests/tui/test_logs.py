"""The logs view: live follow from a real dockerd, pause, search, filter, timestamps, merged
logs of several containers, save to file, and a bounded buffer however long the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiodocker
import pytest
from textual.widgets import Input

from tests.tui.helpers import cli, dashboard, wait_for
from tui import keymap
from tui.app import PortsideApp
from tui.screens.logs import LogsScreen
from tui.widgets.log_buffer import LogBuffer, short_stamp
from tui.widgets.log_view import LogView

LOOP = "i=0; while true; do echo {tag} line $i; i=$((i+1)); sleep 0.05; done"


async def run_logger(dockerd: Any, image: str, name: str, tag: str) -> str:
    return await cli(
        dockerd, "run", "-d", "--init", "--name", name, image, "sh", "-c", LOOP.format(tag=tag)
    )


def logs_screen(app: PortsideApp) -> LogsScreen:
    screen = app.screen
    assert isinstance(screen, LogsScreen), f"expected the logs view, got {screen!r}"
    return screen


def texts(view: LogView) -> list[str]:
    return [line.text for line in view.buffer.lines]


async def filter_list(pilot: Any, app: PortsideApp, text: str, ids: set[str]) -> None:
    table = app.main.containers.table
    await wait_for(pilot, lambda: ids <= set(table.rows_by_key), "containers listed")
    await pilot.press("slash", *text, "enter")
    await wait_for(pilot, lambda: set(table.shown_keys) == ids, f"list filtered to {text}")


async def test_follow_pause_search_filter_timestamps_save(
    dockerd: Any, busybox: str, scratch: str, tmp_path: Path
) -> None:
    cid = await run_logger(dockerd, busybox, f"{scratch}log", "alpha")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await filter_list(pilot, app, f"{scratch}log", {cid})
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen), "logs view")
        view = logs_screen(app).view
        await wait_for(pilot, lambda: len(view.buffer) >= 20, "20 lines followed")
        assert texts(view)[:3] == ["alpha line 0", "alpha line 1", "alpha line 2"]
        assert view.follow
        assert view.scroll_offset.y == view.max_scroll_y  # following: the end is in view

        # Timestamps come from the engine and are shown on demand.
        plain = view.plain(view.buffer.lines[0])
        assert plain == "alpha line 0"
        await pilot.press("t")
        stamped = view.plain(view.buffer.lines[0])
        assert stamped.endswith(" alpha line 0") and stamped[:2] == "20"

        # Pause holds new lines aside; resuming shows them all, in order.
        await pilot.press("space")
        assert view.paused
        kept = len(view.buffer)
        await wait_for(pilot, lambda: len(view.pending) >= 5, "lines held while paused")
        assert len(view.buffer) == kept
        await pilot.press("space")
        assert not view.pending and len(view.buffer) > kept
        numbers = [int(text.split()[-1]) for text in texts(view)]
        assert numbers == list(range(len(numbers)))

        # Search highlights and jumps; the follow mode stops at the match.
        await pilot.press("slash", *"line 1", "enter")
        assert view.current_match is not None and not view.follow
        seq, _ = view.buffer.rows[view.current_match]
        line = view.buffer.line(seq)
        assert line is not None and "line 1" in line.text
        first = view.current_match
        await pilot.press("n")
        assert view.current_match is not None and view.current_match != first
        await pilot.press("N")
        assert view.current_match == first

        # The filter keeps only matching lines, and keeps applying to new ones.
        await pilot.press("ampersand", *"line 1", "enter")
        await wait_for(pilot, lambda: len(view.buffer.rows) >= 2, "filtered rows")
        shown = [view.buffer.line(seq) for seq, _ in view.buffer.rows]
        assert all(line is not None and "line 1" in line.text for line in shown)
        assert len(view.buffer.rows) < len(view.buffer)

        # Save writes exactly the shown lines, as shown.
        target = tmp_path / "saved.log"
        await pilot.press("S")
        field = app.screen.query_one("#log-input", Input)
        assert field.value.endswith(".log")  # a default name is offered
        field.value = str(target)  # typing 60 characters one by one is only slower
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists(), "the saved file")
        saved = target.read_text().splitlines()
        assert saved and all("line 1" in text for text in saved)
        assert saved[0].endswith("alpha line 1") and saved[0][:2] == "20"
        assert not list(tmp_path.glob("*.part"))

        # A path that cannot be written is a one-line error, not a crash.
        bad = tmp_path / "missing-dir" / "x.log"
        await pilot.press("S")
        app.screen.query_one("#log-input", Input).value = str(bad)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("Cannot save" in n.message for n in app._notifications),
            "save error",
        )
        assert not bad.exists()
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)


async def test_merged_logs_of_listed_containers(dockerd: Any, busybox: str, scratch: str) -> None:
    one = await run_logger(dockerd, busybox, f"{scratch}m1", "one")
    two = await run_logger(dockerd, busybox, f"{scratch}m2", "two")
    app = dashboard(dockerd.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await filter_list(pilot, app, f"{scratch}m", {one, two})
        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen), "logs view")
        screen = logs_screen(app)
        view = screen.view
        assert sorted(screen.names) == [f"{scratch}m1", f"{scratch}m2"]
        sources = lambda: {line.source for line in view.buffer.lines}  # noqa: E731
        await wait_for(pilot, lambda: sources() == {0, 1}, "lines of both containers")
        by_source: dict[int, Any] = {}
        for line in view.buffer.lines:
            by_source.setdefault(line.source, line)
            expected = "one" if screen.names[line.source].endswith("m1") else "two"
            assert line.text.startswith(expected)
        # Each line says where it comes from, each source in its own colour.
        looks = []
        for source, line in sorted(by_source.items()):
            text = view.line_text(line)
            assert text.plain.startswith(screen.names[source])
            looks.append(text.get_style_at_offset(app.console, 0))
        assert looks[0] != looks[1]

        # Stopping one container ends its stream; the view says so and goes on with the other.
        await cli(dockerd, "rm", "-f", one)
        index = screen.names.index(f"{scratch}m1")
        await wait_for(pilot, lambda: index in screen.ended, "the stream of the removed one")
        count = sum(1 for line in view.buffer.lines if line.source != index)
        await wait_for(
            pilot,
            lambda: sum(1 for line in view.buffer.lines if line.source != index) > count + 3,
            "the other one goes on",
        )


async def _no_engine() -> aiodocker.Docker:
    raise AssertionError("this test never connects")


class CountingView(LogView):
    """Counts which rows are drawn (a real LogView; only the bookkeeping is added)."""

    drawn: list[int]

    def render_line(self, y: int) -> Any:
        self.drawn.append(int(self.scroll_offset.y) + y)
        return super().render_line(y)


async def test_memory_stays_bounded_and_only_visible_rows_render() -> None:
    app = PortsideApp(_no_engine, "none", "dark", autoconnect=False)
    cap = 5000
    async with app.run_test(size=(100, 30)) as pilot:
        screen = LogsScreen([("x" * 64, "solo")], autoload=False, cap=cap)
        await app.push_screen(screen)
        await pilot.pause()
        old = screen.view
        view = CountingView(["solo"], cap=cap, id="counting")
        view.drawn = []
        await screen.mount(view, after=old)
        await old.remove()
        view.focus()
        await pilot.pause()
        total = 200_000
        batch = 2_000
        for start in range(0, total, batch):
            view.add_lines(0, [f"line {i}" for i in range(start, start + batch)])
        view.drawn.clear()
        view.refresh()
        await pilot.pause()
        await pilot.pause()

        assert len(view.buffer) == cap
        assert len(view.buffer.rows) == cap
        assert view.buffer.lines[0].text == f"line {total - cap}"
        assert view.buffer.lines[-1].text == f"line {total - 1}"
        height = view.scrollable_content_region.height
        assert 0 < len(set(view.drawn)) <= height
        assert min(view.drawn) >= cap - height  # only the rows at the end, where it follows
        # The last visible row shows the last line.
        strip = view.render_line(height - 1)
        assert strip.text.rstrip() == f"line {total - 1}"

        # Not following: lines falling off the front do not move what the user looks at.
        view.follow = False
        view.scroll_to(y=100, animate=False, immediate=True, force=True)
        top_seq = view.buffer.rows[100][0]
        view.add_lines(0, [f"more {i}" for i in range(50)])
        assert int(view.scroll_offset.y) == 50
        assert view.buffer.rows[50][0] == top_seq
        view.follow = True

        # Paused: new lines are held aside, and the hold is bounded too.
        view.paused = True
        view.add_lines(0, [f"held {i}" for i in range(cap * 2)])
        assert len(view.pending) == cap
        view.paused = False
        assert not view.pending and len(view.buffer) == cap
        assert view.buffer.lines[-1].text == f"held {cap * 2 - 1}"

        # Wrapping splits long lines into rows of the view's width, still bounded.
        view.add_lines(0, ["w" * 250 for _ in range(10)])
        view.set_wrap(True)
        await pilot.pause()
        width = view.scrollable_content_region.width
        assert len(view.buffer.rows) == cap - 10 + 10 * -(-250 // width)
        view.drawn.clear()
        view.refresh()
        await pilot.pause()
        assert 0 < len(set(view.drawn)) <= height
        assert view.render_line(height - 1).text.strip("w ") == ""


def test_buffer_stamps_filter_and_search() -> None:
    buffer = LogBuffer(cap=3)
    buffer.append(0, ["2026-01-01T00:00:00.000000001Z hello world", "no stamp here"])
    first = buffer.lines[0]
    assert (first.stamp, first.text) == ("2026-01-01T00:00:00.000000001Z", "hello world")
    assert short_stamp(first.stamp) == "2026-01-01 00:00:00"
    assert buffer.lines[1].stamp == "" and buffer.lines[1].text == "no stamp here"
    buffer.append(1, ["Hello again", "bye"])
    assert [line.text for line in buffer.lines] == ["no stamp here", "Hello again", "bye"]
    assert [seq for seq, _ in buffer.rows] == [1, 2, 3]
    assert buffer.find("HELLO", -1) == 1
    assert buffer.find("hello", 1) is None  # the only match is the current one
    buffer.relayout(filter_text="E")
    assert [seq for seq, _ in buffer.rows] == [1, 2, 3]
    buffer.relayout(filter_text="again")
    assert [seq for seq, _ in buffer.rows] == [2]
    buffer.append(0, ["again and again"])
    assert [seq for seq, _ in buffer.rows] == [2, 4]
    buffer.relayout(filter_text="", wrap_width=5, prefix=0)
    assert list(buffer.rows) == [(2, 0), (2, 5), (2, 10), (3, 0), (4, 0), (4, 5), (4, 10)]
    assert buffer.find("and", 0) == 4
    with pytest.raises(ValueError, match="at least one line"):
        LogBuffer(cap=0)


async def test_palette_offers_log_commands() -> None:
    app = PortsideApp(_no_engine, "none", "dark", autoconnect=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = LogsScreen([("x" * 64, "solo")], autoload=False)
        await app.push_screen(screen)
        await pilot.pause()
        titles = {command.title for command in app.get_system_commands(screen)}
        assert {"Logs: Follow", "Logs: Wrap", "Logs: Save"} <= titles
        follow = next(c for c in keymap.COMMANDS if c.id == "logs.follow")
        app._run_command(follow)
        await pilot.pause()
        assert screen.view.follow is False
