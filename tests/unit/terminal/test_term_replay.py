"""Byte streams exercising one sequence family each, replayed into tmux (the oracle) and
into our core: the final screens (text, colours, attributes, cursor) must be identical.

Left out on purpose, covered by `test_term_core` instead: DEC line-drawing and background
colour erase (tmux keeps both but `capture-pane` cannot show them), LNM and CHT (tmux
ignores them; we follow xterm), and writing over the right half of a wide character
(tmux 3.3 keeps the left half; we blank it, as xterm does).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from term_oracle import TmuxPane, compare, replay_and_resize, replay_in_tmux

from tui.terminal.core import TerminalCore

FILL = "".join(f"{chr(65 + y) * 30}\r\n" for y in range(11)) + "LLLLLLLLLL"

STREAMS: dict[str, str] = {
    "rep": "ab\x1b[5bX\x1b[31m-\x1b[10b\x1b[0m\r\n=\x1b[100b",
    "scroll_up_down": FILL + "\x1b[3S\x1b[H\x1b[2T\x1b[5;1Hmid",
    "region_index": FILL
    + "\x1b[3;8r\x1b[8;1H\n\n\x1bD\x1b[3;1H\x1bM\x1bMtop\x1b[r\x1b[12;1H\nafter",
    "insert_delete_lines": FILL + "\x1b[2;10r\x1b[4;1H\x1b[2L\x1b[7;5H\x1b[3M\x1b[r",
    "insert_delete_chars": FILL
    + "\x1b[2;5H\x1b[3@\x1b[3;5H\x1b[4P\x1b[4;5H\x1b[6X\x1b[5;3H\x1b[4hINS\x1b[4l",
    "erase": FILL
    + "\x1b[2;10H\x1b[K\x1b[3;10H\x1b[1K\x1b[5;1H\x1b[2K\x1b[8;12H\x1b[J"
    + "\x1b[4;6H\x1b[1J",
    "tabs": "a\tb\tc\r\n\x1b[3g\x1b[5GX\x1bH\x1b[12GY\x1bH\r\n\tT1\tT2\x1b[Z<\t>\t!",
    "wide_overwrite": "中文字符测试\r\n中文字符测试\x1b[2;3Hy\x1b[1;12Hz\x1b[3;1H\x1b[?7l"
    + "中文" * 12
    + "\r\n"
    + "ab中文" * 8,
    "autowrap_off": "\x1b[?7l" + "0123456789" * 5 + "\r\n\x1b[?7h" + "abcdefghij" * 5,
    "origin_mode": FILL + "\x1b[4;9r\x1b[?6h\x1b[1;1Horigin\x1b[20;5Hbottom\x1b[?6l\x1b[r",
    "save_restore": "\x1b[3;4H\x1b[1;32m\x1b7\x1b[0m\x1b[10;10Hx\x1b8saved\x1b[s\x1b[1;1Hy\x1b[uz",
    "alternate_screen": "main text\x1b[2;3H\x1b[?1049h\x1b[1;31malt\x1b[5;5Hscreen\x1b[?1049lback",
    "sgr_forms": "\x1b[1;3;4;7mA\x1b[0m\x1b[38;5;202mB\x1b[48;2;10;20;30mC\x1b[0m"
    "\x1b[38:2::255:128:0mD\x1b[4:3mE\x1b[0m\x1b[>4;1mF\x1b[93;101mG\x1b[22;23;24;27;39;49mH",
    "line_feeds": "abc\ndef\x0bghi\x0cjkl\r\nabc\ndef\nx",
    "cursor_moves": "\x1b[5;5HA\x1b[2AB\x1b[3CC\x1b[10DD\x1b[4BE\x1b[2EF\x1b[3FG\x1b[15GH\x1b[9dI",
    "combining": "e\u0301a\u0300 o\u0308\r\nx\u20dd\u20ddy \u0915\u094d\u0937",
    "strings_filtered": "a\x1bPq#0;2;0;0;0~~\x1b\\b\x1b_Gabc\x1b\\c"
    "\x1b]0;title\x07d\x1b]8;;u\x1b\\e",
    "pending_edit": "a" * 40
    + "\x1b[2X"
    + "\r\n"
    + "b" * 40
    + "\x1b[2@"
    + "\r\n"
    + "c" * 40
    + "\x1b[2P"
    + "\r\n"
    + "d" * 40
    + "\x1b[1K"
    + "\r\n"
    + "e" * 40
    + "\x1b[J",
    "pending_wrap": "x" * 40 + "\x1b[K" + "\r\n" + "y" * 40 + "\x08Z" + "\r\n" + "z" * 40 + "\r\nw",
    "backspace_over_the_wrap": "a" * 43 + "\x08" * 5 + "B" + "\r\n" + "c" * 40 + "\r\n\x08\x08D",
    "cursor_shape_and_keypad_modes": "\x1b[5 qbar\x1b[?12l\x1b=keypad\x1b>\x1b[2 q\x1b[?12h!",
}


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_stream_matches_tmux(name: str, tmp_path: Path):
    data = STREAMS[name].encode()
    ours = TerminalCore(40, 12)
    ours.feed(data)
    pane = TmuxPane(tmp_path)
    try:
        oracle = await replay_in_tmux(pane, data, 40, 12, tmp_path)
    finally:
        await pane.close()
    problems = compare(ours, oracle)
    assert not problems, "\n".join(problems)
    await asyncio.sleep(0)


# Resizing after the bytes: tmux reflows wrapped lines of the main screen and its history,
# pushes lines into the history and pulls them back; our screen must end up the same.
LONG = "".join(f"{i}:" + "abcdefghij" * (3 + i % 4) + "\r\n" for i in range(6))
RESIZES: dict[str, tuple[str, tuple[int, int], list[tuple[int, int]]]] = {
    "wrapped_lines_narrower_wider": (LONG + "$ ", (40, 12), [(25, 12), (60, 12), (33, 12)]),
    "prompt_with_long_input": (
        "$ ls\r\nalpha beta\r\n$ echo " + "word " * 20,
        (40, 10),
        [(30, 10), (17, 10), (70, 10), (40, 10)],
    ),
    "cursor_inside_wrapped_line": (
        "x" * 95 + "\x1b[2;7H" + "\x1b[1;33mY\x1b[m",
        (40, 6),
        [(23, 6), (50, 6), (31, 6)],
    ),
    "history_shrink_grow_reflow": (
        "".join(f"line {i} " + "=" * (i * 7 % 50) + "\r\n" for i in range(30)) + "end",
        (40, 10),
        [(40, 5), (30, 5), (30, 12), (55, 14), (20, 8)],
    ),
    "wide_characters_wrap": (
        "wide " + "漢字かな" * 12 + "\r\nab" + "中" * 20 + "\r\n$ ",
        (30, 10),
        [(17, 10), (41, 10), (9, 10)],
    ),
    "colours_across_the_wrap": (
        "\x1b[31m" + "red " * 15 + "\x1b[44mblue " * 6 + "\x1b[0m\r\nplain\r\n",
        (40, 8),
        [(27, 8), (64, 8)],
    ),
    "erase_inside_wrapped_lines": (
        "w" * 70
        + "\x1b[1;5H\x1b[K"
        + "\x1b[2;1H\x1b[2K"
        + "\x1b[4;1H"
        + "v" * 50
        + "\x1b[4;3H\x1b[1K",
        (30, 8),
        [(21, 8), (47, 8)],
    ),
    "clear_then_grow": (
        "".join(f"old {i}\r\n" for i in range(12)) + "\x1b[H\x1b[2Jfresh\r\n$ ",
        (30, 6),
        [(30, 10), (25, 4), (25, 9)],
    ),
    "alternate_screen_resized": (
        "main " * 12 + "\r\n$ \x1b[?1049h\x1b[Halt",
        (30, 8),
        [(20, 6), (44, 9)],
    ),
    "leave_alternate_after_resize": (
        "main " * 12 + "\r\n$ \x1b[?1049h\x1b[Halt\x1b[?1049l",
        (30, 8),
        [(20, 6), (44, 9)],
    ),
}


@pytest.mark.parametrize("name", sorted(RESIZES))
async def test_resize_matches_tmux(name: str, tmp_path: Path):
    text, (columns, lines), sizes = RESIZES[name]
    data = text.encode()
    pane = TmuxPane(tmp_path)
    try:
        oracles = await replay_and_resize(pane, data, columns, lines, sizes, tmp_path)
    finally:
        await pane.close()
    ours = TerminalCore(columns, lines)
    ours.feed(data)
    for (width, height), oracle in zip(sizes, oracles, strict=True):
        ours.resize(width, height)
        problems = compare(ours, oracle)
        assert not problems, f"after resize to {width}x{height}:\n" + "\n".join(problems)
