"""The escape-sequence parser: decoded text in, calls on a `TerminalScreen` out.

One compiled regular expression cuts the input into tokens (a whole run of printable text is
one token, so plain output costs a few Python steps per line, not per byte): CSI with any
private marker (`?`, `>`, `<`, `=`) and intermediates, OSC (titles 0/1/2, clipboard 52,
colour queries 10/11), DCS/SOS/PM/APC strings (dropped whole, never drawn), two- and
three-byte ESC sequences and C0 controls. Unknown sequences are ignored without raising.
A sequence cut by the end of a read is kept until the next `feed`; string payloads that
nobody reads are not buffered, so a huge DCS (sixel) costs no memory.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from .screen import TerminalScreen

# Printable runs swallow a following CRLF, and a CSI (SGR first, the commonest) swallows the
# run after it, so a line of text is one token and a "colour + word" pair is one token; a
# full-screen program's "move + colour + field" is one token too.
_TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)(?P<line>\r\n)?"
    r"|\x1b\[(?P<sgr>[0-9;:]*)m(?P<styled>[^\x00-\x1f\x7f-\x9f]*)"
    r"|\x1b\[(?P<cup>[0-9]*(?:;[0-9]*)?)H(?:\x1b\[(?P<cup_sgr>[0-9;:]*)m)?"
    r"(?P<placed>[^\x00-\x1f\x7f-\x9f]*)"
    r"|\x1b\[(?P<csi>[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e])(?P<after>[^\x00-\x1f\x7f-\x9f]*)"
    r"|(?P<crlf>\r\n)"
    r"|\x1b\](?P<osc>[^\x07\x1b]*)(?:\x07|\x1b\\|(?=\x1b[^\\]))"
    r"|\x1b[PX^_](?P<string>[^\x1b]*)(?:\x1b\\|(?=\x1b[^\\]))"
    r"|\x1b(?P<esc>[\x20-\x2f]*[\x30-\x4f\x51-\x57\x59\x5a\x5c\x60-\x7e])"
    r"|(?P<ctrl>[\x00-\x1f\x7f-\x9f])"
)
_INCOMPLETE = re.compile(
    r"\x1b(?:"
    r"\[[\x30-\x3f]*[\x20-\x2f]*"
    r"|(?P<osc>\][^\x07\x1b]*\x1b?)"
    r"|(?P<string>[PX^_][^\x1b]*\x1b?)"
    r"|[\x20-\x2f]*"
    r")\Z"
)
_PARAMS = re.compile(r"([\x30-\x3f]*)([\x20-\x2f]*)")
_MAX_OSC = 1 << 20
_INTERMEDIATES = frozenset(" !\"#$%&'()*+,-./")


def _ints(params: str) -> list[int]:
    """Integer parameters; empty ones are 0, colon sub-parameters are dropped."""
    values = []
    for part in params.split(";"):
        if ":" in part:
            part = part.split(":", 1)[0]
        values.append(int(part) if part.isdigit() else 0)
    return values


def _first(params: str) -> int:
    if params.isdigit():
        return int(params)
    return _ints(params)[0] if params else 0


class Parser:
    """Feeds decoded text to a screen, keeping an incomplete sequence between calls."""

    def __init__(self, screen: TerminalScreen) -> None:
        self.screen = screen
        self.pending = ""
        self.on_clipboard: Callable[[str], None] | None = None
        """Called with the text a program copies through OSC 52."""
        self.foreground_rgb = (0xE5, 0xE5, 0xE5)
        self.background_rgb = (0x00, 0x00, 0x00)
        self._cup_cache: dict[str, tuple[int, int]] = {}
        s = screen
        self._controls: dict[str, Callable[[], None]] = {
            "\r": s.carriage_return,
            "\n": s.linefeed,
            "\x0b": s.linefeed,
            "\x0c": s.linefeed,
            "\x08": s.backspace,
            "\t": s.tab,
            "\x07": s.bell,
            "\x0e": s.shift_out,
            "\x0f": s.shift_in,
            "\x84": s.index,
            "\x85": s.next_line,
            "\x8d": s.reverse_index,
        }
        self._csi: dict[str, Callable[[str], None]] = {
            "m": s.select_pen,
            "H": self._cup,
            "f": self._cup,
            "A": lambda p: s.cursor_up(_first(p)),
            "B": lambda p: s.cursor_down(_first(p)),
            "e": lambda p: s.cursor_down(_first(p)),
            "C": lambda p: s.cursor_forward(_first(p)),
            "a": lambda p: s.cursor_forward(_first(p)),
            "D": lambda p: s.cursor_back(_first(p)),
            "E": lambda p: s.cursor_next_line(_first(p)),
            "F": lambda p: s.cursor_previous_line(_first(p)),
            "G": lambda p: s.cursor_to_column(_first(p)),
            "`": lambda p: s.cursor_to_column(_first(p)),
            "d": lambda p: s.cursor_to_line(_first(p)),
            "K": lambda p: s.erase_in_line(_first(p)),
            "J": lambda p: s.erase_in_display(_first(p)),
            "X": lambda p: s.erase_characters(_first(p)),
            "@": lambda p: s.insert_characters(_first(p)),
            "P": lambda p: s.delete_characters(_first(p)),
            "L": lambda p: s.insert_lines(_first(p)),
            "M": lambda p: s.delete_lines(_first(p)),
            "S": lambda p: s.scroll_up(_first(p)),
            "T": self._sd,
            "b": lambda p: s.repeat_last(_first(p)),
            "I": lambda p: s.tab(_first(p)),
            "Z": lambda p: s.back_tab(_first(p)),
            "g": lambda p: s.clear_tab_stop(_first(p)),
            "r": self._decstbm,
            "h": lambda p: s.set_mode(*_ints(p)),
            "l": lambda p: s.reset_mode(*_ints(p)),
            "?h": lambda p: s.set_mode(*_ints(p), private=True),
            "?l": lambda p: s.reset_mode(*_ints(p), private=True),
            "n": lambda p: s.report_device_status(_first(p)),
            "?n": lambda p: s.report_device_status(_first(p), private=True),
            "c": lambda p: s.report_device_attributes(_first(p)),
            ">c": lambda p: s.report_device_attributes(_first(p), secondary=True),
            "s": lambda p: s.save_cursor(),
            "u": lambda p: s.restore_cursor(),
            "t": self._window_ops,
            "!p": lambda p: s.soft_reset(),
            " q": self._cursor_style,
            "$p": lambda p: self._decrqm(p, private=False),
            "?$p": lambda p: self._decrqm(p, private=True),
            ">q": lambda p: s.write_process_input("\x1bP>|portside\x1b\\"),
        }
        self._esc: dict[str, Callable[[], None]] = {
            "7": s.save_cursor,
            "8": s.restore_cursor,
            "D": s.index,
            "E": s.next_line,
            "M": s.reverse_index,
            "H": s.set_tab_stop,
            "c": self._full_reset,
            "=": self._keypad_on,
            ">": self._keypad_off,
            "#8": s.alignment_display,
        }

    # -- feeding -----------------------------------------------------------------------

    def feed(self, text: str) -> None:
        """Parse `text` (decoded) and apply it to the screen."""
        if self.pending:
            text = self.pending + text
            self.pending = ""
        screen = self.screen
        draw = screen.draw
        cursor = screen.cursor
        linefeed = screen.linefeed
        csi = self._csi_dispatch
        controls = self._controls
        draw_styled = screen.draw_styled
        cup_cache = self._cup_cache
        cursor_position = screen.cursor_position
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind == "styled":
                draw_styled(match["sgr"], match["styled"])
            elif kind == "placed":
                position = cup_cache.get(match["cup"])
                if position is None:
                    position = self._cup_position(match["cup"])
                cursor_position(*position)
                placed = match["placed"]
                params = match["cup_sgr"]
                if params is not None:
                    draw_styled(params, placed)
                elif placed:
                    draw(placed)
            elif kind == "after":
                csi(match["csi"])
                after = match["after"]
                if after:
                    draw(after)
            elif kind == "line":
                draw(match["text"])
                cursor.x = 0
                linefeed()
            elif kind == "text":
                draw(match["text"])
            elif kind == "crlf":
                cursor.x = 0
                linefeed()
            elif kind == "ctrl":
                char = match["ctrl"]
                if char == "\x1b":
                    if self._keep_incomplete(text, match.start()):
                        return
                    continue
                handler = controls.get(char)
                if handler is not None:
                    handler()
            elif kind == "esc":
                self._esc_dispatch(match["esc"])
            elif kind == "osc":
                self._osc(match["osc"])
            # "string": DCS, SOS, PM and APC payloads are dropped.

    def _keep_incomplete(self, text: str, start: int) -> bool:
        """Keep a sequence cut by the end of the input; False when it is just malformed."""
        match = _INCOMPLETE.match(text, start)
        if match is None:
            return False
        if match["string"] is not None:
            # Nobody reads these payloads: keep only the introducer (and a trailing ESC).
            self.pending = text[start : start + 2] + ("\x1b" if text.endswith("\x1b") else "")
        elif match["osc"] is not None and len(text) - start > _MAX_OSC:
            self.pending = "\x1bX"  # too long to be useful: discard it like an SOS string
        else:
            self.pending = text[start:]
        return True

    # -- CSI ---------------------------------------------------------------------------

    def _csi_dispatch(self, body: str) -> None:
        final = body[-1]
        params = body[:-1]
        if not params:
            key = final
        elif params[-1] in _INTERMEDIATES or params[0] in "<=>?":
            match = _PARAMS.fullmatch(params)
            if match is None:
                return
            params, inter = match.groups()
            prefix = ""
            if params and params[0] in "<=>?":
                prefix, params = params[0], params[1:]
            key = prefix + inter + final
        else:
            key = final
        handler = self._csi.get(key)
        if handler is not None:
            handler(params)

    def _cup(self, params: str) -> None:
        position = self._cup_cache.get(params)
        if position is None:
            position = self._cup_position(params)
        self.screen.cursor_position(*position)

    def _cup_position(self, params: str) -> tuple[int, int]:
        """CUP parameters as (line, column), cached by their text."""
        values = _ints(params) if params else [0]
        position = (values[0], values[1] if len(values) > 1 else 0)
        if len(self._cup_cache) > 8192:
            self._cup_cache.clear()
        self._cup_cache[params] = position
        return position

    def _decstbm(self, params: str) -> None:
        values = _ints(params) if params else []
        top = values[0] if values else 0
        bottom = values[1] if len(values) > 1 else 0
        self.screen.set_margins(top, bottom)

    def _sd(self, params: str) -> None:
        values = _ints(params) if params else [0]
        if len(values) == 1:  # more parameters is xterm's mouse highlight tracking
            self.screen.scroll_down(values[0])

    def _window_ops(self, params: str) -> None:
        values = _ints(params) if params else [0]
        screen = self.screen
        if values[0] == 18:
            screen.write_process_input(f"\x1b[8;{screen.lines};{screen.columns}t")

    def _cursor_style(self, params: str) -> None:
        self.screen.set_cursor_style(_first(params))

    def _decrqm(self, params: str, private: bool) -> None:
        mode = _first(params)
        state = self.screen.mode_state(mode, private)
        mark = "?" if private else ""
        self.screen.write_process_input(f"\x1b[{mark}{mode};{state}$y")

    # -- ESC and OSC -------------------------------------------------------------------

    def _esc_dispatch(self, body: str) -> None:
        handler = self._esc.get(body)
        if handler is not None:
            handler()
        elif len(body) == 2 and body[0] in "()":
            self.screen.define_charset(body[1], body[0])

    def _full_reset(self) -> None:
        self.screen.reset()

    def _keypad_on(self) -> None:
        self.screen.keypad_application = True

    def _keypad_off(self) -> None:
        self.screen.keypad_application = False

    def _osc(self, body: str) -> None:
        command, _, value = body.partition(";")
        screen = self.screen
        if command in ("0", "2"):
            screen.set_title(value)
            if command == "0":
                screen.set_icon_name(value)
        elif command == "1":
            screen.set_icon_name(value)
        elif command == "52":
            self._clipboard(value)
        elif command in ("10", "11") and value == "?":
            r, g, b = self.foreground_rgb if command == "10" else self.background_rgb
            screen.write_process_input(
                f"\x1b]{command};rgb:{r:02x}{r:02x}/{g:02x}{g:02x}/{b:02x}{b:02x}\x1b\\"
            )

    def _clipboard(self, value: str) -> None:
        _targets, _, payload = value.partition(";")
        if payload == "?" or self.on_clipboard is None:
            return  # never answer clipboard reads: a program must not see the user's copy
        try:
            text = base64.b64decode(payload, validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return
        self.on_clipboard(text)
