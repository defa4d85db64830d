"""Screen cells and colours: the `Cell` tuple stored in every screen position.

`Cell` extends pyte's `Char` field for field (so `cell.fg`, `cell.bold` ... read the same) with
`dim`. Colours are "default", one of pyte's 16 ANSI names ("red", "brown" for yellow,
"brightred" ...) so a theme can recolour them, or a 6-digit hex string.
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias


class Cell(NamedTuple):
    """One character cell: the text it shows and its graphic rendition."""

    data: str
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False


BLANK = Cell(" ")
"""An empty cell with default colours: what an untouched position holds."""

ANSI_NAMES: tuple[str, ...] = (
    "black",
    "red",
    "green",
    "brown",
    "blue",
    "magenta",
    "cyan",
    "white",
    "brightblack",
    "brightred",
    "brightgreen",
    "brightbrown",
    "brightblue",
    "brightmagenta",
    "brightcyan",
    "brightwhite",
)
"""pyte's names for the 16 ANSI colours, index = colour number."""


def _palette_256() -> tuple[str, ...]:
    """The xterm 256-colour palette: 0-15 as ANSI names, 16-255 as hex."""
    colours: list[str] = list(ANSI_NAMES)
    steps = (0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF)
    for i in range(216):
        r, g, b = steps[(i // 36) % 6], steps[(i // 6) % 6], steps[i % 6]
        colours.append(f"{r:02x}{g:02x}{b:02x}")
    for i in range(24):
        v = 8 + i * 10
        colours.append(f"{v:02x}{v:02x}{v:02x}")
    return tuple(colours)


PALETTE_256 = _palette_256()
"""Colour value for each 256-colour index."""

ANSI_RGB: dict[str, tuple[int, int, int]] = {
    "black": (0x00, 0x00, 0x00),
    "red": (0xCD, 0x00, 0x00),
    "green": (0x00, 0xCD, 0x00),
    "brown": (0xCD, 0xCD, 0x00),
    "blue": (0x00, 0x00, 0xEE),
    "magenta": (0xCD, 0x00, 0xCD),
    "cyan": (0x00, 0xCD, 0xCD),
    "white": (0xE5, 0xE5, 0xE5),
    "brightblack": (0x7F, 0x7F, 0x7F),
    "brightred": (0xFF, 0x00, 0x00),
    "brightgreen": (0x00, 0xFF, 0x00),
    "brightbrown": (0xFF, 0xFF, 0x00),
    "brightblue": (0x5C, 0x5C, 0xFF),
    "brightmagenta": (0xFF, 0x00, 0xFF),
    "brightcyan": (0x00, 0xFF, 0xFF),
    "brightwhite": (0xFF, 0xFF, 0xFF),
}
"""xterm's default RGB for each ANSI name (used where a name must become a colour)."""


Key: TypeAlias = tuple[object, ...]
"""A cell's attributes as a plain tuple (`tuple(cell)`): what lazy runs and the scrollback
hold, so they contain no object the garbage collector must keep tracking."""
Runs: TypeAlias = tuple[tuple[int, str, Key], ...]
Compact: TypeAlias = "str | tuple[bool, Key, Runs] | Row"
"""A scrollback line as stored: see `compact` and `expand`."""

BLANK_KEY: Key = tuple(BLANK)


class Row(dict[int, Cell]):
    """One screen line: a sparse map column -> `Cell` with a default for empty columns.

    Like pyte's `StaticDefaultDict`: reading a missing column returns `default` without
    storing it. A line erased with a background colour gets a `default` carrying that
    colour, so erasing costs O(1). `default`, `wrapped` and `lazy` are class attributes
    until set, so `Row()` costs no more than a `dict()`.

    Plain ASCII text written into an empty line is kept as `lazy` runs and only turned into
    cells when a column is first read with `row[x]` (or `realize()` is called): a flood of
    output that scrolls away never pays for per-cell storage. Read cells with `row[x]` or
    `cells()`, not `dict.get`/`items`, which do not see lazy runs.
    """

    default: Cell = BLANK
    wrapped: bool = False
    lazy: list[tuple[int, str, Key]] | None = None

    def __missing__(self, key: int) -> Cell:
        if self.lazy is not None:
            self.realize()
            return self.get(key, self.default)
        return self.default

    def realize(self) -> Row:
        """Turn pending lazy runs into cells; returns the row."""
        lazy = self.lazy
        if lazy is not None:
            self.lazy = None
            for x, text, key in lazy:
                cells = pen_of(key)
                self.update(zip(range(x, x + len(text)), map(cells.__getitem__, text), strict=True))
        return self

    def is_blank(self) -> bool:
        """True when nothing was written on this line."""
        return not self and self.lazy is None

    @classmethod
    def filled(cls, default: Cell) -> Row:
        """An empty line whose unset columns read as `default` (an erase with a colour)."""
        row = cls()
        if default is not BLANK:
            row.default = default
        return row

    def cells(self, columns: int) -> list[Cell]:
        """The first `columns` cells."""
        if self.lazy is not None:
            self.realize()
        return [self[x] for x in range(columns)]

    def text(self, columns: int) -> str:
        """The characters of the first `columns` cells (wide-character stubs skipped)."""
        return "".join([cell.data for cell in self.cells(columns)])


def compact(row: Row) -> Compact:
    """A line leaving the screen for the scrollback, in the smallest form that keeps it.

    A plain line (one default-style run from column 0) becomes its text; other lines still
    held as lazy runs become a tuple `(wrapped, default key, runs)` (one C-level copy, no
    per-run work). Both hold only strings, numbers and tuples of them, so the garbage
    collector stops tracking them and a long scrollback adds nothing to its full
    collections. Lines with cells stay rows.
    """
    lazy = row.lazy
    if lazy is None or row:
        return row
    default = row.default
    if len(lazy) == 1 and not row.wrapped and default is BLANK:
        x, text, key = lazy[0]
        if x == 0 and key == BLANK_KEY:
            return text
    return (row.wrapped, BLANK_KEY if default is BLANK else tuple(default), tuple(lazy))


def expand(line: Compact) -> Row:
    """A scrollback line back as a `Row` (lazy again: no cells made yet)."""
    if isinstance(line, Row):
        return line
    row = Row()
    if isinstance(line, str):
        row.lazy = [(0, line, BLANK_KEY)]
        return row
    wrapped, default, runs = line
    if wrapped:
        row.wrapped = True
    if default != BLANK_KEY:
        row.default = Cell._make(default)
    row.lazy = list(runs)
    return row


class Pen(dict[str, Cell]):
    """One attribute set with its interned cells: `pen[char]` is `attrs` showing `char`.

    `key` is `attrs` as a plain tuple (what lazy runs store); `transitions` caches where an
    SGR parameter string leads from this pen, so a repeated colour change costs one lookup.
    """

    __slots__ = ("attrs", "key", "transitions")

    def __init__(self, attrs: Cell) -> None:
        super().__init__()
        self.attrs = attrs
        self.key: Key = tuple(attrs)
        self.transitions: dict[str, Pen] = {}

    def __missing__(self, char: str) -> Cell:
        cell = self.attrs._replace(data=char)
        self[char] = cell
        return cell


_PENS: dict[Key, Pen] = {}


def pen_of(key: Key) -> Pen:
    """A pen for an attribute key (cached, so cells of one style are shared)."""
    pen = _PENS.get(key)
    if pen is None:
        if len(_PENS) > 1024:
            _PENS.clear()
        pen = _PENS[key] = Pen(Cell._make(key))
    return pen
