"""Local PTY sessions through `Terminal`: output, input, replies to the program, resize,
exit codes, hang-up, back-pressure under a flood (nothing dropped) and clear errors."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from tui.terminal.errors import TerminalError
from tui.terminal.session import LocalSession
from tui.terminal.terminal import Terminal

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


async def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Bounded wait (a guard against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def run(argv: list[str], columns: int = 40, lines: int = 10, **kwargs) -> Terminal:
    terminal = Terminal(LocalSession(argv, env=ENV), columns, lines, **kwargs)
    await terminal.start()
    return terminal


async def test_output_exit_code_and_environment():
    terminal = await run(["sh", "-c", 'echo "$TERM $COLORTERM"; tty; exit 7'])
    await wait_until(lambda: terminal.exited, "the program to end")
    text = terminal.core.text()
    assert text[0] == "xterm-256color truecolor"
    assert text[1].startswith("/dev/pts/")  # a real terminal, as its controlling tty
    assert terminal.session.returncode == 7


async def test_size_before_start_and_resize_reaches_the_program():
    terminal = await run(["sh", "-c", "stty size; trap 'stty size' WINCH; read x"], 50, 12)
    await wait_until(lambda: "12 50" in terminal.core.text(), "the initial size")
    await terminal.resize(70, 20)
    await wait_until(lambda: "20 70" in terminal.core.text(), "the size after SIGWINCH")
    terminal.write(b"\r")
    await wait_until(lambda: terminal.exited, "the program to end")


async def test_replies_reach_the_program():
    # the program asks for the cursor position and reads the answer from its input
    script = (
        "stty raw -echo; printf 'abc\\033[6n'; reply=$(dd bs=1 count=6 2>/dev/null);"
        " stty sane; printf '\\r\\n%s' \"$reply\" | od -An -c"
    )
    terminal = await run(["sh", "-c", script])
    await wait_until(lambda: terminal.exited, "the program to end")
    assert "033   [   1   ;   4   R" in "\n".join(terminal.core.text())


async def test_flood_is_complete_with_back_pressure():
    count = 200_000
    terminal = await run(["seq", "1", str(count)], 20, 5, scrollback=count + 10, high_water=1 << 16)
    paused = []
    session = terminal.session
    original = session.pause_reading

    def pause() -> None:
        paused.append(True)
        original()

    session.pause_reading = pause  # type: ignore[method-assign]
    await wait_until(lambda: terminal.exited, "seq to end", timeout=120)
    history = terminal.screen.history_text() + terminal.core.text()
    numbers = [line for line in history if line]
    assert numbers == [str(n) for n in range(1, count + 1)]
    assert terminal.bytes_fed == sum(len(str(n)) + 2 for n in range(1, count + 1))
    assert paused, "the reader never paused: no back-pressure was exercised"


async def _flood_and_quit(count: int) -> tuple[dict[str, int], Terminal]:
    """Run ``seq 1 COUNT`` to its end; what was pending when it closed, what was fed when
    the exit was reported, and the loop turns in between."""
    terminal = Terminal(
        LocalSession(["seq", "1", str(count)], env=ENV),
        20,
        5,
        slice_bytes=4096,
        step_budget=0.0,
        high_water=1 << 24,
        frame_interval=3600.0,  # no frame after the first but the ones the backlog needs
    )
    seen: dict[str, int] = {}
    turns = 0
    session = terminal.session
    closed = session.on_closed

    def on_closed(s: object) -> None:
        seen["backlog"] = len(terminal._pending)
        seen["turns"] = turns
        closed(s)  # type: ignore[arg-type]

    session.on_closed = on_closed  # type: ignore[assignment]
    terminal.on_exit.append(
        lambda t: seen.update(fed=t.bytes_fed, turns_after=turns - seen["turns"])
    )
    await terminal.start()
    while not terminal.exited:  # counts loop turns; bounded by the timeout of the test
        await asyncio.sleep(0)
        turns += 1
    return seen, terminal


async def test_exit_after_a_flood_is_reported_once_all_output_is_shown():
    """A program that floods and quits leaves a backlog: it is fed in bounded steps (the
    loop keeps turning) and the exit is reported only when all of it is on screen.

    Whether a backlog is left when the program ends depends on how the machine schedules
    the program against this loop (a loaded machine may read slower than the screen is
    fed); the run is repeated, a few times at most, until one leaves a backlog."""
    count = 150_000
    total = sum(len(str(n)) + 2 for n in range(1, count + 1))
    for _attempt in range(5):
        seen, terminal = await _flood_and_quit(count)
        assert seen["fed"] == total, "the exit was reported before all output was shown"
        assert terminal.core.text()[-2:] == [str(count), ""]
        if seen["backlog"] > 4096:
            break
    assert seen["backlog"] > 4096, "no run ended with a backlog: nothing was exercised"
    assert seen["turns_after"] > 1, "the backlog was fed in one blocking call"


async def test_close_hangs_up_the_program():
    terminal = await run(["sh", "-c", "trap 'exit 9' HUP; while :; do sleep 1; done"])
    await asyncio.sleep(0.2)
    await terminal.close()
    assert terminal.exited
    assert terminal.session.returncode in (9, -1)


async def test_no_file_descriptor_leak():
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        terminal = await run(["true"])
        await wait_until(lambda t=terminal: t.exited, "true to end")
    assert len(os.listdir("/proc/self/fd")) == before


async def test_bad_commands_give_one_line_errors(tmp_path):
    with pytest.raises(TerminalError, match="no such program") as error:
        await run(["/nonexistent/program"])
    assert "\n" not in str(error.value)
    script = tmp_path / "not-executable"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    with pytest.raises(TerminalError, match="permission denied"):
        await run([str(script)])
    binary = tmp_path / "garbage"
    binary.write_bytes(b"\x00\x01\x02")
    binary.chmod(0o755)
    with pytest.raises(TerminalError, match="cannot start"):
        await run([str(binary)])
    assert len(os.listdir("/proc/self/fd")) < 200


async def test_synchronized_output_holds_the_display_until_the_frame_ends():
    script = r"printf '\033[?2026hheld'; read x; printf '\033[?2026l'; read y"
    terminal = await run(["sh", "-c", script])
    told: list[set[int]] = []
    terminal.add_listener(told.append)
    told.clear()
    await wait_until(lambda: terminal.core.text()[0] == "held", "the held frame")
    await wait_until(lambda: terminal.core.synchronized, "mode 2026")
    assert not any(0 in rows for rows in told)  # fed, but not shown yet
    terminal.write(b"\r")
    await wait_until(lambda: any(0 in rows for rows in told), "the frame to be released")
    assert not terminal.core.synchronized
    await terminal.close()
