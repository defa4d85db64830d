"""Deterministic byte streams for the terminal benchmark (same bytes for every emulator).

- plain: prose-like lines of 0-120 characters (some wrap at 80 columns), CRLF ended.
- sgr: the same kind of lines coloured like `ls --color`/compiler output: 16 and 256
  colours, bold, resets every few words.
- cursor: a full-screen program redrawing: per frame a home, a status bar in reverse video,
  then every row painted as several absolutely positioned, coloured fields with erase to
  end of line, a scroll region that scrolls, and a final cursor park (like top or htop).
"""

from __future__ import annotations

import random

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
]


def plain(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 20)))
        out.append(line)
        total += len(line) + 2
    return ("\r\n".join(out) + "\r\n").encode()


def sgr(size: int, seed: int = 2) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    total = 0
    while total < size:
        parts = []
        for _ in range(rng.randint(1, 8)):
            word = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
            style = rng.random()
            if style < 0.35:
                parts.append(f"\x1b[{rng.randint(31, 37)}m{word}\x1b[0m")
            elif style < 0.55:
                parts.append(f"\x1b[1;{rng.randint(90, 97)}m{word}\x1b[m")
            elif style < 0.75:
                parts.append(f"\x1b[38;5;{rng.randint(16, 255)}m{word}\x1b[39m")
            else:
                parts.append(word)
        line = " ".join(parts)
        out.append(line)
        total += len(line) + 2
    return ("\r\n".join(out) + "\r\n").encode()


def cursor(size: int, columns: int = 80, lines: int = 24, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    out: list[str] = ["\x1b[?1049h\x1b[?25l"]
    total = 0
    frame = 0
    while total < size:
        parts = [f"\x1b[H\x1b[7m portside top - frame {frame:6d} \x1b[K\x1b[0m"]
        for y in range(2, lines - 3):
            x = 1
            while x < columns - 12:
                width = rng.randint(3, 12)
                text = "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(width)
                )
                colour = rng.choice(("31", "32", "1;33", "34", "0", "38;5;208", "2"))
                parts.append(f"\x1b[{y};{x}H\x1b[{colour}m{text}")
                x += width + rng.randint(1, 4)
            parts.append("\x1b[0m\x1b[K")
        # a scrolling log area at the bottom, as in a program with a status pane
        parts.append(f"\x1b[{lines - 2};{lines}r\x1b[{lines};1H\r\n\x1b[32mlog line {frame}\x1b[0m")
        parts.append("\x1b[r")
        parts.append(f"\x1b[{rng.randint(1, lines)};{rng.randint(1, columns)}H")
        chunk = "".join(parts)
        out.append(chunk)
        total += len(chunk)
        frame += 1
    return "".join(out).encode()


STREAMS = {"plain": plain, "sgr": sgr, "cursor": cursor}
