"""Mouse reporting: encode a mouse event the way the program asked (modes 9, 1000, 1002,
1003 with the X10, UTF-8 1005, SGR 1006 or urxvt 1015 encodings). No Textual import.
"""

from __future__ import annotations

from typing import Literal

Action = Literal["press", "release", "motion", "wheel_up", "wheel_down"]


def encode_mouse(
    action: Action,
    x: int,
    y: int,
    *,
    button: int = 0,
    tracking: str | None,
    encoding: str = "x10",
    utf8: bool = False,
    shift: bool = False,
    meta: bool = False,
    ctrl: bool = False,
    held: bool = False,
) -> bytes | None:
    """The report for one event at 0-based cell (x, y), or None when it is not reported.

    `button` is 0 left, 1 middle, 2 right; `held` says whether a button is down during a
    motion event; `tracking` and `encoding` come from `TerminalCore.mouse_tracking` and
    `TerminalCore.mouse_encoding`.
    """
    if tracking is None or x < 0 or y < 0:
        return None
    if tracking == "x10":
        if action != "press":
            return None
        code = button
    elif action == "motion":
        if tracking == "any" or (tracking == "button" and held):
            code = 32 + (button if held else 3)
        else:
            return None
    elif action == "wheel_up":
        code = 64
    elif action == "wheel_down":
        code = 65
    elif action == "release":
        code = button if encoding == "sgr" else 3
    else:
        code = button
    if tracking != "x10":
        code += 4 * shift + 8 * meta + 16 * ctrl
    column, row = x + 1, y + 1
    if encoding == "sgr":
        final = "m" if action == "release" else "M"
        return f"\x1b[<{code};{column};{row}{final}".encode()
    if encoding == "urxvt":
        return f"\x1b[{code + 32};{column};{row}M".encode()
    limit = 2015 if utf8 else 223
    if column > limit or row > limit:
        return None
    if utf8:
        return ("\x1b[M" + chr(32 + code) + chr(32 + column) + chr(32 + row)).encode()
    return b"\x1b[M" + bytes((32 + code, 32 + column, 32 + row))
