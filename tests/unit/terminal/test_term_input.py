"""Key, paste, focus and mouse encodings: the bytes an xterm sends for each input."""

from __future__ import annotations

import pytest

from tui.terminal.core import TerminalCore
from tui.terminal.keys import encode_focus, encode_key, encode_paste, split_key
from tui.terminal.mouse import encode_mouse


@pytest.mark.parametrize(
    ("key", "character", "expected"),
    [
        ("a", "a", b"a"),
        ("A", "A", b"A"),
        ("shift+a", "A", b"A"),
        ("é", "é", "é".encode()),
        ("enter", "\r", b"\r"),
        ("tab", "\t", b"\t"),
        ("shift+tab", None, b"\x1b[Z"),
        ("backtab", None, b"\x1b[Z"),
        ("backspace", "\x7f", b"\x7f"),
        ("ctrl+backspace", None, b"\x08"),
        ("escape", "\x1b", b"\x1b"),
        ("space", " ", b" "),
        ("ctrl+space", None, b"\x00"),
        ("ctrl+at", None, b"\x00"),
        # kitty protocol: no character for ctrl/alt combinations
        ("ctrl+a", None, b"\x01"),
        ("ctrl+z", None, b"\x1a"),
        ("ctrl+shift+a", None, b"\x01"),
        ("ctrl+right_square_bracket", None, b"\x1d"),
        ("ctrl+backslash", None, b"\x1c"),
        ("ctrl+underscore", None, b"\x1f"),
        ("alt+x", None, b"\x1bx"),
        ("alt+shift+x", None, b"\x1bX"),
        ("alt+ctrl+c", None, b"\x1b\x03"),
        ("alt+enter", None, b"\x1b\r"),
        ("alt+backspace", None, b"\x1b\x7f"),
        # legacy terminals: the control character comes with the key
        ("ctrl+a", "\x01", b"\x01"),
        ("ctrl+backslash", "\x1c", b"\x1c"),
        ("slash", "/", b"/"),
        ("question_mark", "?", b"?"),
        ("full_stop", ".", b"."),
    ],
)
def test_printable_and_control_keys(key: str, character: str | None, expected: bytes):
    assert encode_key(key, character) == expected


@pytest.mark.parametrize(
    ("key", "normal", "application"),
    [
        ("up", b"\x1b[A", b"\x1bOA"),
        ("down", b"\x1b[B", b"\x1bOB"),
        ("right", b"\x1b[C", b"\x1bOC"),
        ("left", b"\x1b[D", b"\x1bOD"),
        ("home", b"\x1b[H", b"\x1bOH"),
        ("end", b"\x1b[F", b"\x1bOF"),
        ("shift+up", b"\x1b[1;2A", b"\x1b[1;2A"),
        ("alt+left", b"\x1b[1;3D", b"\x1b[1;3D"),
        ("ctrl+right", b"\x1b[1;5C", b"\x1b[1;5C"),
        ("ctrl+shift+home", b"\x1b[1;6H", b"\x1b[1;6H"),
        ("insert", b"\x1b[2~", b"\x1b[2~"),
        ("delete", b"\x1b[3~", b"\x1b[3~"),
        ("ctrl+delete", b"\x1b[3;5~", b"\x1b[3;5~"),
        ("pageup", b"\x1b[5~", b"\x1b[5~"),
        ("shift+pagedown", b"\x1b[6;2~", b"\x1b[6;2~"),
        ("f1", b"\x1bOP", b"\x1bOP"),
        ("f4", b"\x1bOS", b"\x1bOS"),
        ("ctrl+f1", b"\x1b[1;5P", b"\x1b[1;5P"),
        ("f5", b"\x1b[15~", b"\x1b[15~"),
        ("f12", b"\x1b[24~", b"\x1b[24~"),
        ("shift+f5", b"\x1b[15;2~", b"\x1b[15;2~"),
        ("f13", b"\x1b[1;2P", b"\x1b[1;2P"),
    ],
)
def test_cursor_and_function_keys(key: str, normal: bytes, application: bytes):
    assert encode_key(key) == normal
    assert encode_key(key, application_cursor=True) == application


@pytest.mark.parametrize(
    ("key", "normal", "application"),
    [
        ("decimal", b".", b"\x1bOn"),
        ("divide", b"/", b"\x1bOo"),
        ("multiply", b"*", b"\x1bOj"),
        ("subtract", b"-", b"\x1bOm"),
        ("add", b"+", b"\x1bOk"),
        ("equal", b"=", b"\x1bOX"),
        ("separator", b",", b"\x1bOl"),
        ("kp_begin", b"\x1b[E", b"\x1bOE"),
    ],
)
def test_keypad_keys_follow_deckpam(key: str, normal: bytes, application: bytes):
    """Textual's keypad key names; the mode comes from the core, set by ESC = / ESC >."""
    core = TerminalCore(10, 2)
    core.feed(b"\x1b=")
    assert encode_key(key, application_keypad=core.application_keypad) == application
    core.feed(b"\x1b>")
    assert encode_key(key, application_keypad=core.application_keypad) == normal
    # the main keyboard's keys of the same characters never change with the mode
    main = {"decimal": "full_stop", "divide": "slash", "subtract": "minus", "add": "plus"}
    if key in main:
        assert encode_key(main[key], normal.decode(), application_keypad=True) == normal


def test_keys_without_encoding():
    assert encode_key("f30") is None
    assert encode_key("some_unknown_key_name") is None
    assert split_key("ctrl++") == (frozenset({"ctrl"}), "+")


def test_paste_bracketed_and_sanitised():
    assert encode_paste("a\nb", bracketed=False) == b"a\rb"
    assert encode_paste("x", bracketed=True) == b"\x1b[200~x\x1b[201~"
    # an end marker inside the paste must not end it early (command injection)
    evil = "ls\x1b[201~rm -rf /\n"
    assert encode_paste(evil, bracketed=True) == b"\x1b[200~lsrm -rf /\r\x1b[201~"


def test_focus_reports():
    assert encode_focus(True) == b"\x1b[I" and encode_focus(False) == b"\x1b[O"


def test_mouse_sgr_encoding():
    press = encode_mouse("press", 4, 2, tracking="normal", encoding="sgr")
    assert press == b"\x1b[<0;5;3M"
    release = encode_mouse("release", 4, 2, button=2, tracking="normal", encoding="sgr")
    assert release == b"\x1b[<2;5;3m"
    wheel = encode_mouse("wheel_down", 0, 0, tracking="normal", encoding="sgr", ctrl=True)
    assert wheel == b"\x1b[<81;1;1M"
    drag = encode_mouse("motion", 9, 9, tracking="button", encoding="sgr", held=True)
    assert drag == b"\x1b[<32;10;10M"
    assert encode_mouse("press", 300, 2, tracking="any", encoding="sgr") == b"\x1b[<0;301;3M"


def test_mouse_x10_and_urxvt_encoding():
    assert encode_mouse("press", 0, 0, tracking="normal") == b"\x1b[M !!"
    assert encode_mouse("release", 1, 1, tracking="normal") == b'\x1b[M#""'
    assert encode_mouse("press", 0, 0, tracking="normal", shift=True, meta=True) == b"\x1b[M,!!"
    assert encode_mouse("press", 250, 0, tracking="normal") is None  # beyond X10's range
    utf8 = encode_mouse("press", 250, 0, tracking="normal", utf8=True)
    assert utf8 == ("\x1b[M " + chr(32 + 251) + "!").encode()
    assert encode_mouse("press", 4, 2, tracking="normal", encoding="urxvt") == b"\x1b[32;5;3M"


def test_mouse_reports_only_what_was_asked_for():
    assert encode_mouse("press", 1, 1, tracking=None) is None
    assert encode_mouse("motion", 1, 1, tracking="normal", held=True) is None
    assert encode_mouse("motion", 1, 1, tracking="button", held=False) is None
    assert encode_mouse("motion", 1, 1, tracking="any", encoding="sgr") == b"\x1b[<35;2;2M"
    # X10 compatibility mode (9): presses only, no modifiers
    assert encode_mouse("release", 1, 1, tracking="x10") is None
    assert encode_mouse("press", 1, 1, tracking="x10", ctrl=True) == b'\x1b[M ""'
