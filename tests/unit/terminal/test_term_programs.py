"""Real programs on a real PTY, each compared with the same program under tmux (the oracle):
text, colours and attributes of every cell, and the cursor position."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from term_oracle import LocalTerm, TmuxPane, compare, replay_in_tmux, wait_until

BUSYBOX = "/bin/busybox"

UNICODE_TEXT = (
    "ASCII line, then accents: café naïve résumé\n"
    "Combining: e\u0301 a\u0300 o\u0308 n\u0303\n"
    "CJK wide: 中文字符 日本語 한국어 全角ＡＢＣ\n"
    "Mixed: a中b文c字d 12３45\n"
    "Box: ┌──┬──┐ │ab│cd│ └──┴──┘\n"
    "Greek Ωμέγα, Cyrillic Привет, arrows ←↑→↓\n" + "wide wrap: " + "漢字" * 40 + "\n"
)


async def run_both(
    local_term: LocalTerm,
    tmux_pane: TmuxPane,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    columns: int = 80,
    lines: int = 24,
) -> None:
    await tmux_pane.start(argv, columns, lines, env, cwd)
    await local_term.start(argv, columns, lines, env, cwd)


async def send_both(local_term: LocalTerm, tmux_pane: TmuxPane, data: bytes) -> None:
    assert local_term.terminal is not None
    local_term.terminal.write(data)
    await tmux_pane.send(data)


async def assert_same(local_term: LocalTerm, tmux_pane: TmuxPane, attributes: bool = True):
    """Both screens, once settled, must match; a program that paused mid-redraw on a busy
    machine gets a few more chances (a lasting difference still fails)."""
    problems: list[str] = []
    for _attempt in range(5):
        ours = await local_term.settled()
        theirs = await tmux_pane.settled()
        problems = compare(ours, theirs, attributes)
        if not problems:
            return ours
        await asyncio.sleep(1.0)
    raise AssertionError("\n".join(problems))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "unicode.txt").write_text(UNICODE_TEXT)
    (work / "notes.txt").write_text(
        "".join(f"line {i:03d}: the quick brown fox jumps over the lazy dog\n" for i in range(200))
    )
    for name in ("alpha", "beta", "gamma"):
        (work / name).mkdir()
    for name in ("run.sh", "tool"):
        path = work / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (work / "link").symlink_to("notes.txt")
    (work / "broken").symlink_to("missing")
    (work / "archive.tar.gz").write_bytes(b"")
    return work


async def test_ls_color(local_term, tmux_pane, program_env, files):
    argv = ["ls", "--color=always", "-F", "-w", "60", "/usr/lib", str(files)]
    await run_both(local_term, tmux_pane, argv, program_env, files, 70, 20)
    ours = await assert_same(local_term, tmux_pane)
    # colours really were compared: ls painted directories blue
    assert any(cell.fg == "blue" for row in ours.screen.buffer for cell in row.cells(70))


async def test_unicode_and_wide_file(local_term, tmux_pane, program_env, files):
    argv = [BUSYBOX, "cat", "unicode.txt"]
    await run_both(local_term, tmux_pane, argv, program_env, files, 60, 16)
    ours = await assert_same(local_term, tmux_pane)
    assert "中文字符" in "\n".join(ours.text())


async def test_shell_line_editing(local_term, tmux_pane, program_env, files):
    await run_both(local_term, tmux_pane, [BUSYBOX, "sh"], program_env, files, 60, 12)
    await assert_same(local_term, tmux_pane)
    await send_both(local_term, tmux_pane, b"echo one two three\x1b[D\x1b[D\x1b[DXY\r")
    await send_both(local_term, tmux_pane, b"printf '\\033[1;31mbold red\\033[0m plain\\n'\r")
    await send_both(local_term, tmux_pane, b"echo abc\x7f\x7fZ\r")
    ours = await assert_same(local_term, tmux_pane)
    assert "one two thXYree" in "\n".join(ours.text())


async def test_shell_prompt_and_wrapped_lines_across_resizes(
    local_term, tmux_pane, program_env, files
):
    """Resize mid-program with wrapped output above and a wrapped command line being typed:
    both reflow the screen, then the shell redraws its line on SIGWINCH."""
    await run_both(local_term, tmux_pane, [BUSYBOX, "sh"], program_env, files, 50, 12)
    await assert_same(local_term, tmux_pane)
    await send_both(local_term, tmux_pane, b"echo " + b"wrapped-output-" * 7 + b"\r")
    await send_both(local_term, tmux_pane, b"echo still typing " + b"x" * 45)
    await assert_same(local_term, tmux_pane)
    assert local_term.terminal is not None
    for columns, lines in ((31, 12), (73, 9), (44, 14)):
        await local_term.terminal.resize(columns, lines)
        await tmux_pane.resize(columns, lines)
        ours = await assert_same(local_term, tmux_pane)
        assert (ours.columns, ours.lines) == (columns, lines)
    await send_both(local_term, tmux_pane, b"\r")
    ours = await assert_same(local_term, tmux_pane)
    assert "still typing" in "".join(ours.text())


async def test_busybox_vi_edit_and_resize(local_term, tmux_pane, program_env, files):
    await run_both(local_term, tmux_pane, [BUSYBOX, "vi", "notes.txt"], program_env, files, 80, 24)
    await assert_same(local_term, tmux_pane)
    # move, insert, open a line, page down, search; each ESC alone, as a person types it
    for keys in (b"5jwiINSERTED ", b"\x1b", b"oa new line with \xe4\xb8\xad\xe6\x96\x87", b"\x1b"):
        await send_both(local_term, tmux_pane, keys)
        await assert_same(local_term, tmux_pane)
    await send_both(local_term, tmux_pane, b"\x06/line 050\r")
    ours = await assert_same(local_term, tmux_pane)
    assert any("line 050" in line for line in ours.text()), "\n".join(ours.text())
    # resize mid-program: both get SIGWINCH and vi redraws
    assert local_term.terminal is not None
    await local_term.terminal.resize(60, 15)
    await tmux_pane.resize(60, 15)
    await send_both(local_term, tmux_pane, b"\x0c")  # ^L: redraw, as after any resize
    ours = await assert_same(local_term, tmux_pane)
    assert ours.columns == 60 and ours.lines == 15
    await send_both(local_term, tmux_pane, b":q!\r")


async def test_less_scrolling_and_search(local_term, tmux_pane, program_env, files):
    env = dict(program_env, LESS="", LESSHISTFILE="-")
    await run_both(local_term, tmux_pane, ["less", "notes.txt"], env, files, 72, 20)
    await assert_same(local_term, tmux_pane)
    await send_both(local_term, tmux_pane, b"jjj \x1b[6~")  # lines, a page, PageDown
    await send_both(local_term, tmux_pane, b"/fox 12\r")  # search highlights in reverse
    ours = await assert_same(local_term, tmux_pane)
    assert any(cell.reverse for row in ours.screen.buffer for cell in row.cells(72))
    await send_both(local_term, tmux_pane, b"G")
    await assert_same(local_term, tmux_pane)
    await send_both(local_term, tmux_pane, b"q")
    # back on the main screen after the alternate one
    assert local_term.terminal is not None
    await wait_until(lambda: not local_term.terminal.screen.alternate, "less to quit")


async def test_busybox_top_replayed(local_term, tmux_pane, program_env, files, tmp_path):
    """top's output changes every run, so its recorded bytes are replayed into tmux."""
    await local_term.start([BUSYBOX, "top", "-d", "1"], 80, 24, program_env, files)
    assert local_term.terminal is not None
    terminal = local_term.terminal
    await wait_until(lambda: "PID" in "\n".join(terminal.core.text()), "top to draw")
    await wait_until(lambda: local_term.recorded.count(b"\x1b[H") >= 2, "a second refresh")
    terminal.write(b"q")
    await wait_until(lambda: terminal.exited, "top to quit")
    terminal.feed_pending()
    oracle = await replay_in_tmux(tmux_pane, bytes(local_term.recorded), 80, 24, tmp_path)
    problems = compare(terminal.core, oracle)
    assert not problems, "\n".join(problems)
