"""Key encoding: a Textual-style key name (plus the character, when known) to the bytes an
xterm sends, honouring application cursor mode (DECCKM), application keypad mode
(DECKPAM/DECKPNM) and modifiers.

Textual names keys like "up", "ctrl+shift+up", "alt+x", "f5", "ctrl+right_square_bracket".
Under the kitty keyboard protocol Textual reports `ctrl+a` with no character, so control and
alt combinations are computed from the name, never taken from `character` alone. Modified
cursor/function keys use xterm's `CSI 1;<mod> X` and `CSI n;<mod> ~` forms with
mod = 1 + shift + 2*alt + 4*ctrl (+ 8*meta). No Textual import.
"""

from __future__ import annotations

import unicodedata

_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_TILDE = {"insert": 2, "delete": 3, "pageup": 5, "page_up": 5, "pagedown": 6, "page_down": 6}
_SS3_F = {1: "P", 2: "Q", 3: "R", 4: "S"}
_TILDE_F = {5: 15, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 23, 12: 24}
_NAMED = {
    "enter": "\r",
    "return": "\r",
    "tab": "\t",
    "escape": "\x1b",
    "space": " ",
    "backspace": "\x7f",
}
_NAME_TO_CHAR = {
    "slash": "/",
    "backslash": "\\",
    "at": "@",
    "minus": "-",
    "plus": "+",
    "underscore": "_",
    "space": " ",
}
_CTRL_SPECIAL = {
    "@": 0,
    " ": 0,
    "2": 0,
    "[": 27,
    "3": 27,
    "\\": 28,
    "4": 28,
    "]": 29,
    "5": 29,
    "^": 30,
    "~": 30,
    "6": 30,
    "_": 31,
    "/": 31,
    "7": 31,
    "-": 31,
    "?": 127,
    "8": 127,
}
_MODIFIERS = ("shift", "alt", "ctrl", "meta", "super", "hyper")
_KEYPAD = {
    # Textual's name: (normal keypad, application keypad final after SS3)
    "decimal": (".", "n"),
    "divide": ("/", "o"),
    "multiply": ("*", "j"),
    "subtract": ("-", "m"),
    "add": ("+", "k"),
    "equal": ("=", "X"),
    "separator": (",", "l"),
    "kp_begin": ("\x1b[E", "E"),
}
"""Keypad keys Textual reports by their own names (under the kitty keyboard protocol).
Keypad digits, arrows and Enter arrive named like the main keys and are sent as those,
which is what xterm sends for them with NumLock on."""


def _char_for(name: str) -> str | None:
    """The character a key name stands for: "a" -> "a", "right_square_bracket" -> "]"."""
    if len(name) == 1:
        return name
    if name in _NAME_TO_CHAR:
        return _NAME_TO_CHAR[name]
    spoken = name.replace("_", " ").upper()
    for candidate in (spoken, spoken.replace(" ", "-")):
        try:
            return unicodedata.lookup(candidate)
        except KeyError:
            continue
    return None


def _ctrl(char: str) -> str:
    lower = char.lower()
    if "a" <= lower <= "z":
        return chr(ord(lower) - 96)
    code = _CTRL_SPECIAL.get(char)
    return char if code is None else chr(code)


def split_key(key: str) -> tuple[frozenset[str], str]:
    """Split "ctrl+shift+up" into ({"ctrl", "shift"}, "up"); "ctrl++" keeps "+"."""
    if key.endswith("++"):
        return frozenset(key[:-2].split("+")) - {""}, "+"
    parts = key.split("+")
    modifiers = frozenset(p for p in parts[:-1] if p in _MODIFIERS)
    return modifiers, parts[-1]


def encode_key(
    key: str,
    character: str | None = None,
    *,
    application_cursor: bool = False,
    application_keypad: bool = False,
) -> bytes | None:
    """Bytes for a key press, or None when the key has no terminal encoding.

    `application_cursor` is DECCKM (cursor keys as SS3), `application_keypad` DECKPAM
    (keypad operator keys as SS3, as a VT100 sends them)."""
    modifiers, base = split_key(key)
    if base in _KEYPAD and not modifiers:
        normal, final = _KEYPAD[base]
        return (f"\x1bO{final}" if application_keypad else normal).encode()
    shift = "shift" in modifiers
    alt = "alt" in modifiers
    ctrl = "ctrl" in modifiers
    meta = "meta" in modifiers
    mod = 1 + shift + 2 * alt + 4 * ctrl + 8 * meta
    if base in _CURSOR:
        final = _CURSOR[base]
        if mod > 1:
            return f"\x1b[1;{mod}{final}".encode()
        return f"\x1b{'O' if application_cursor else '['}{final}".encode()
    if base in _TILDE:
        number = _TILDE[base]
        return (f"\x1b[{number};{mod}~" if mod > 1 else f"\x1b[{number}~").encode()
    if base[:1] == "f" and base[1:].isdigit():
        number = int(base[1:])
        if 13 <= number <= 24:
            number, mod = number - 12, mod + 1
        if number in _SS3_F:
            final = _SS3_F[number]
            return (f"\x1b[1;{mod}{final}" if mod > 1 else f"\x1bO{final}").encode()
        if number in _TILDE_F:
            code = _TILDE_F[number]
            return (f"\x1b[{code};{mod}~" if mod > 1 else f"\x1b[{code}~").encode()
        return None
    if base == "backtab" or (base == "tab" and shift):
        return b"\x1b[Z"
    if base in _NAMED:
        text = _NAMED[base]
        if ctrl and base == "space":
            text = "\x00"
        elif ctrl and base == "backspace":
            text = "\x08"
        return (("\x1b" if alt or meta else "") + text).encode()
    # A printable key: take the character when it is one, else derive it from the name.
    char = character if character and len(character) == 1 and character.isprintable() else None
    if char is None or ctrl:
        named = _char_for(base)
        if named is not None:
            char = named.upper() if shift and not ctrl else named
        elif character:
            char = character
        else:
            return None
    if ctrl and char.isprintable():
        char = _ctrl(char)
    return (("\x1b" if alt or meta else "") + char).encode()


def encode_paste(text: str, bracketed: bool) -> bytes:
    """Pasted text; inside bracketed-paste markers when the program asked (mode 2004).

    A pasted end marker is removed so the paste cannot end early and inject input.
    Line ends become CR, as a terminal sends for Enter.
    """
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    if bracketed:
        text = text.replace("\x1b[201~", "").replace("\x1b[200~", "")
        return b"\x1b[200~" + text.encode() + b"\x1b[201~"
    return text.encode()


def encode_focus(focused: bool) -> bytes:
    """Focus in/out report (mode 1004)."""
    return b"\x1b[I" if focused else b"\x1b[O"
