"""Select Graphic Rendition: turn an SGR parameter string into the next cell attributes.

Handles the semicolon and the colon forms (ITU T.416 sub-parameters such as `38:2::r:g:b`,
`38:5:n`, `4:3` curly underline), 16/256/truecolour, bright colours, dim, and ignores what a
cell cannot show (overline, underline colour 58/59, fonts) instead of misreading it.
"""

from __future__ import annotations

from .cells import ANSI_NAMES, BLANK, PALETTE_256, Cell

_FLAGS_ON = {
    1: "bold",
    2: "dim",
    3: "italics",
    4: "underscore",
    5: "blink",
    6: "blink",
    7: "reverse",
    9: "strikethrough",
    21: "underscore",
}
_FLAGS_OFF: dict[int, tuple[str, ...]] = {
    22: ("bold", "dim"),
    23: ("italics",),
    24: ("underscore",),
    25: ("blink",),
    27: ("reverse",),
    29: ("strikethrough",),
}


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _extended_colour(values: list[str]) -> tuple[str | None, int]:
    """Colour from the values after 38/48 (semicolon form); returns (colour, values used)."""
    if not values:
        return None, 0
    kind = values[0]
    if kind == "5":
        if len(values) < 2:
            return None, len(values)
        index = _int(values[1])
        return (PALETTE_256[index] if index < 256 else None), 2
    if kind == "2":
        if len(values) < 4:
            return None, len(values)
        r, g, b = (min(_int(v), 255) for v in values[1:4])
        return f"{r:02x}{g:02x}{b:02x}", 4
    return None, 1


def _colon_colour(sub: list[str]) -> str | None:
    """Colour from a colon form `38:5:n`, `38:2:cs:r:g:b` or `38:2:r:g:b`."""
    if len(sub) >= 3 and sub[1] == "5":
        index = _int(sub[2])
        return PALETTE_256[index] if index < 256 else None
    if len(sub) >= 5 and sub[1] == "2":
        rgb = sub[-3:] if len(sub) >= 6 else sub[2:5]
        r, g, b = (min(_int(v), 255) for v in rgb)
        return f"{r:02x}{g:02x}{b:02x}"
    return None


def apply_sgr(attrs: Cell, params: str) -> Cell:
    """Return `attrs` changed by the SGR parameters `params` (the text between CSI and m)."""
    if not params or params == "0":
        return BLANK
    changes: dict[str, object] = {}
    parts = params.split(";")
    i = 0
    count = len(parts)
    while i < count:
        part = parts[i]
        i += 1
        if ":" in part:
            sub = part.split(":")
            code = _int(sub[0])
            if code in (38, 48):
                colour = _colon_colour(sub)
                if colour is not None:
                    changes["fg" if code == 38 else "bg"] = colour
            elif code == 4:
                changes["underscore"] = _int(sub[1]) != 0 if len(sub) > 1 else True
            continue
        code = _int(part)
        if code == 0:
            changes = dict(zip(Cell._fields[1:], BLANK[1:], strict=True))
        elif 30 <= code <= 37:
            changes["fg"] = ANSI_NAMES[code - 30]
        elif 40 <= code <= 47:
            changes["bg"] = ANSI_NAMES[code - 40]
        elif 90 <= code <= 97:
            changes["fg"] = ANSI_NAMES[code - 82]
        elif 100 <= code <= 107:
            changes["bg"] = ANSI_NAMES[code - 92]
        elif code == 39:
            changes["fg"] = "default"
        elif code == 49:
            changes["bg"] = "default"
        elif code in _FLAGS_ON:
            changes[_FLAGS_ON[code]] = True
        elif code in _FLAGS_OFF:
            for name in _FLAGS_OFF[code]:
                changes[name] = False
        elif code in (38, 48, 58):
            colour, used = _extended_colour(parts[i:])
            i += used
            if colour is not None and code != 58:
                changes["fg" if code == 38 else "bg"] = colour
    if not changes:
        return attrs
    return attrs._replace(**changes)  # type: ignore[arg-type]
