"""Pilot tests of `TerminalView` in a small app driving real programs on real PTYs:
keys in, screen out; resize, colours, cursor, scrollback, selection and copy, mouse
reporting, bracketed paste, focus events, titles, the escape hatch, hidden sessions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.pilot import Pilot

from tui.terminal.session import LocalSession
from tui.terminal.tabs import TerminalTabs
from tui.terminal.terminal import Terminal
from tui.terminal.widget import TerminalView

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PS1": "$ ", "LANG": "C.UTF-8"}
SHELL = ["/bin/busybox", "sh"]


class TermApp(App[None]):
    """Two terminals side by side (the second optional), nothing else."""

    CSS = "TerminalView { border: none; }"

    def __init__(self, *terminals: Terminal) -> None:
        super().__init__()
        self.terminals = terminals
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        with Horizontal():
            for index, terminal in enumerate(self.terminals):
                yield TerminalView(terminal, id=f"t{index}")

    async def on_mount(self) -> None:
        for terminal in self.terminals:
            await terminal.start()
        self.query_one("#t0", TerminalView).focus()

    def on_terminal_view_leave(self, message: TerminalView.Leave) -> None:
        self.messages.append(message)

    def on_terminal_view_title_changed(self, message: TerminalView.TitleChanged) -> None:
        self.messages.append(message)

    def on_terminal_view_exited(self, message: TerminalView.Exited) -> None:
        self.messages.append(message)

    async def on_unmount(self) -> None:
        for terminal in self.terminals:
            await terminal.close()


def shell(argv: list[str] | None = None) -> Terminal:
    return Terminal(LocalSession(argv or SHELL, env=ENV))


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], what: str) -> None:
    """Let the app run until `predicate()` holds (bounded: a hang guard, not a timing test)."""
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await pilot.pause(0.05)


def shown(view: TerminalView) -> list[str]:
    """What the widget renders, line by line."""
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


def prompt(view: TerminalView) -> bool:
    return any(line.startswith("$") for line in shown(view))


async def type_text(pilot: Pilot[Any], text: str) -> None:
    keys = {" ": "space", "|": "vertical_line", "$": "dollar_sign", "'": "apostrophe"}
    keys |= {"\\": "backslash", ";": "semicolon", "-": "minus", "/": "slash", "=": "equals_sign"}
    keys |= {
        "(": "left_parenthesis",
        ")": "right_parenthesis",
        "*": "asterisk",
        '"': "quotation_mark",
    }
    keys |= {".": "full_stop", "?": "question_mark", "[": "left_square_bracket", ",": "comma"}
    keys |= {"]": "right_square_bracket"}
    await pilot.press(*[keys.get(char, char) for char in text])


async def test_keys_in_screen_out_and_ctrl_c(tmp_path):
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        await type_text(pilot, "echo $((6*7))")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "42" in shown(view), "the answer on screen")
        # ctrl+c goes to the program (not to the app's help_quit binding)
        await type_text(pilot, "sleep 30")
        await pilot.press("enter", "ctrl+c")
        await wait_for(pilot, lambda: "^C" in "\n".join(shown(view)), "the interrupt")
        # history recall with the up arrow, line editing with left
        await pilot.press("up")
        await wait_for(pilot, lambda: shown(view).count("$ sleep 30") == 2, "the recalled line")


async def test_resize_is_passed_to_the_program():
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(70, 14)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: terminal.core.columns == 70, "the first size")
        await pilot.resize_terminal(90, 20)
        await wait_for(pilot, lambda: terminal.core.columns == 90, "the debounced resize")
        await type_text(pilot, "stty size")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "20 90" in shown(view), "stty to report 20 90")
        assert view.render_line(0).cell_length == 90


async def test_colours_cursor_and_title():
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(60, 10)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        await type_text(pilot, r"printf '\033]0;my title\007\033[1;31mred\033[0m\n'")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "red" in shown(view), "the red line")
        y = shown(view).index("red")
        segments = list(view.render_line(y))
        red = next(s for s in segments if s.text.startswith("red"))
        assert red.style is not None and red.style.bold
        assert red.style.color is not None and red.style.color.name == "red"
        await wait_for(
            pilot,
            lambda: any(isinstance(m, TerminalView.TitleChanged) for m in app.messages),
            "the title message",
        )
        assert terminal.title == "my title"
        # the cursor is drawn (inverted) on its cell while focused, and not when blurred
        cursor = terminal.screen.cursor

        def cursor_style():
            x = 0
            for segment in view.render_line(cursor.y):
                if x <= cursor.x < x + segment.cell_length:
                    return segment.style
                x += segment.cell_length
            return None

        base = view.rich_style
        assert cursor_style().bgcolor == base.color
        view.blur()
        await pilot.pause()
        assert cursor_style().bgcolor == base.bgcolor


async def test_cursor_shapes_and_blinking():
    """DECSCUSR from a real program: underline, bar, blinking bar, back to a steady block."""
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(40, 16)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        cursor = terminal.screen.cursor
        base = view.rich_style

        def at_cursor():
            x = 0
            for segment in view.render_line(cursor.y):
                if x <= cursor.x < x + segment.cell_length:
                    return segment.text[cursor.x - x], segment.style
                x += segment.cell_length
            raise AssertionError("no cell under the cursor")

        async def run(command: str, shape: str) -> None:
            row = cursor.y
            await type_text(pilot, f"printf '{command}'")
            await pilot.press("enter")
            await wait_for(pilot, lambda: terminal.core.cursor_shape == shape, shape)
            await wait_for(
                pilot,
                lambda: cursor.y > row and terminal.core.text()[cursor.y] == "$",
                "the next prompt",
            )

        char, style = at_cursor()  # a steady block: the cell inverted
        assert char == " " and style.bgcolor == base.color
        await run(r"\033[4 q", "underline")
        char, style = at_cursor()
        assert style.underline and style.bgcolor == base.bgcolor
        await run(r"\033[6 q", "bar")
        assert at_cursor()[0] == "\u258f" and not terminal.core.cursor_blink
        await run(r"\033[5 q", "bar")
        assert terminal.core.cursor_blink
        seen = set()
        for _ in range(2):  # one blink step hides the bar, the next shows it again
            view.blink_cursor()
            seen.add(at_cursor()[0])
        assert seen == {" ", "\u258f"}
        await run(r"\033[2 q", "block")
        view.blink_cursor()
        char, style = at_cursor()
        assert style.bgcolor == base.color, "a steady cursor never hides"


async def test_scrollback_with_wheel_and_keys():
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        await type_text(pilot, "seq 1 100")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "100" in shown(view), "the end of seq")
        assert "50" not in shown(view)
        view.post_message(events.MouseScrollUp(view, 1, 1, 0, 0, 0, False, False, False))
        await wait_for(pilot, lambda: view.history_offset == 3, "the wheel")
        await pilot.press("shift+pageup", "shift+pageup", "shift+pageup", "shift+pageup")
        await wait_for(pilot, lambda: "60" in shown(view), "older lines")
        assert "70" not in shown(view)
        await pilot.press("shift+home")
        await wait_for(pilot, lambda: "1" in shown(view), "the top of the scrollback")
        # typing returns to the live screen
        await pilot.press("x")
        await wait_for(pilot, lambda: view.history_offset == 0, "the live screen")
        assert "100" in shown(view)


async def test_mouse_selection_copies_text():
    terminal = shell()
    app = TermApp(terminal)
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        await type_text(pilot, "echo alpha beta gamma")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "alpha beta gamma" in shown(view), "the output")
        y = shown(view).index("alpha beta gamma")
        assert shown(view)[y - 1] == "$ echo alpha beta gamma"
        await pilot.mouse_down(view, offset=(7, y - 1))
        view.post_message(events.MouseMove(view, 9, y, 0, 0, 1, False, False, False))
        await pilot.pause()
        await pilot.mouse_up(view, offset=(9, y))
        await wait_for(pilot, lambda: app.clipboard, "the copy")
        assert app.clipboard == "alpha beta gamma\nalpha beta"
        # the selection is shown inverted
        inverted = [
            seg
            for seg in view.render_line(y)
            if seg.style and seg.style.bgcolor == view.rich_style.color
        ]
        assert "".join(seg.text for seg in inverted) == "alpha beta"


async def test_mouse_reports_paste_and_focus_events_reach_the_program():
    script = (
        r"printf '\033[?1000h\033[?1006h\033[?2004h\033[?1004h'; stty raw -echo; "
        "head -c 38 | od -An -c; stty sane; sleep 30"
    )
    terminal = shell(["/bin/busybox", "sh", "-c", script])
    other = shell()
    app = TermApp(terminal, other)
    async with app.run_test(size=(80, 12)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: terminal.core.bracketed_paste, "the modes")
        await pilot.mouse_down(view, offset=(4, 2))
        await pilot.mouse_up(view, offset=(4, 2))
        view.post_message(events.Paste("hi"))
        await pilot.pause()
        app.query_one("#t1", TerminalView).focus()
        await pilot.pause()
        view.focus()

        def dump() -> str:
            return " ".join(" ".join(shown(view)).split())

        await wait_for(pilot, lambda: "[ I" in dump(), "od's dump of all 38 bytes")
        dump = dump()
        # press and release at column 5, row 3 (1-based), paste markers, focus out and in
        assert "033 [ < 0 ; 5 ; 3 M 033 [ < 0 ; 5 ; 3 m" in dump
        assert "033 [ 2 0 0 ~ h i 033 [ 2 0 1 ~" in dump
        assert "033 [ O 033 [ I" in dump, shown(view)


async def test_double_escape_leaves_and_single_escape_reaches_the_program():
    terminal = shell(
        ["/bin/busybox", "sh", "-c", "stty raw -echo; head -c 1 | od -An -c; sleep 30"]
    )
    app = TermApp(terminal)
    async with app.run_test(size=(40, 8)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await pilot.pause(0.3)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "033" in "".join(shown(view)), "escape to reach od")
        assert view.has_focus
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: not view.has_focus, "focus to leave")
        assert any(isinstance(m, TerminalView.Leave) for m in app.messages)


async def test_hidden_session_keeps_running_and_exit_is_reported():
    shown_terminal = shell()
    hidden = shell(["/bin/busybox", "sh", "-c", "sleep 0.5; echo from-the-background; exit 4"])
    app = TermApp(shown_terminal)
    async with app.run_test(size=(50, 8)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await hidden.start()
        await wait_for(pilot, lambda: hidden.exited, "the hidden program to end")
        assert "from-the-background" in hidden.core.text()
        view.attach(hidden)
        await pilot.pause()
        assert "from-the-background" in shown(view)
        assert hidden.session.returncode == 4
        view.attach(shown_terminal)
        shown_terminal.write(b"exit\r")
        await wait_for(
            pilot,
            lambda: any(isinstance(m, TerminalView.Exited) for m in app.messages),
            "the exit message",
        )
        await asyncio.sleep(0)


class TabsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TerminalTabs()


async def test_tabs_keep_hidden_sessions_running():
    app = TabsApp()
    async with app.run_test(size=(60, 12)) as pilot:
        tabs = app.query_one(TerminalTabs)
        first = shell(["/bin/busybox", "sh", "-c", r"printf '\033]2;first\007'; exec cat"])
        second = shell()
        await tabs.open_terminal(first)
        await wait_for(pilot, lambda: tabs.get_tab(tabs.active).label_text == "first", "title")
        await tabs.open_terminal(second)
        assert tabs.terminals == [first, second]
        # type into the hidden first tab's program: it keeps running and echoing
        first.write(b"typed while hidden\r")
        await wait_for(pilot, lambda: "typed while hidden" in first.core.text(), "hidden echo")
        first_view = tabs.view_for(first)
        assert not first_view.display or tabs.active != first_view.parent.id
        tabs.active = first_view.parent.id
        await pilot.pause()
        assert "typed while hidden" in shown(first_view)
        second.write(b"exit 2\r")
        pane = tabs.view_for(second).parent.id
        await wait_for(pilot, lambda: tabs.get_tab(pane).label_text.endswith("[exited 2]"), "end")
        await tabs.close_terminal(first)
        assert tabs.terminals == [second]
        assert first.exited


async def test_scrolled_back_view_stays_put_while_output_arrives():
    terminal = Terminal(LocalSession(SHELL, env=ENV), scrollback=120)
    app = TermApp(terminal)
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one("#t0", TerminalView)
        await wait_for(pilot, lambda: prompt(view), "the prompt")
        await type_text(pilot, "seq 1 100; read x; seq 101 160")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "100" in shown(view), "the first run")
        await pilot.press("shift+pageup", "shift+pageup")
        await wait_for(pilot, lambda: "83" in shown(view), "older lines")
        before = shown(view)
        terminal.write(b"\r")  # straight to the program: the view is not touched
        await wait_for(pilot, lambda: "160" in terminal.core.text(), "the second run")
        await pilot.pause()
        # the scrollback filled up (120 lines) and kept moving; the view shows the same lines
        assert len(terminal.screen.history) == 120
        assert shown(view) == before
        await pilot.press("shift+end")
        await wait_for(pilot, lambda: "160" in shown(view), "the live screen")
