"""A bounded ring of log lines and the filtered, optionally wrapped rows shown from it.

No Textual here: ``LogBuffer`` keeps at most ``cap`` lines (the oldest drop out), numbers
each with a sequence number that never repeats, and maintains ``rows``: for every line that
passes the filter, one ``(seq, start)`` pair per screen row (``start`` is the character
offset where a wrapped row begins). The view draws row ``y`` from ``rows[y]`` alone, so its
cost per frame depends on the screen height, never on how long the log is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of one container's output; ``stamp`` is the engine's RFC 3339 time."""

    seq: int
    source: int
    stamp: str
    text: str


def split_stamp(raw: str) -> tuple[str, str]:
    """``"2026-01-01T00:00:00.123Z text"`` -> (stamp, text); no stamp -> ("", raw)."""
    head, sep, rest = raw.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T":
        return head, rest
    return "", raw


def short_stamp(stamp: str) -> str:
    """The stamp as shown: ``2026-01-01 00:00:00`` (sub-seconds and zone dropped)."""
    return stamp[:19].replace("T", " ") if stamp else " " * 19


class LogBuffer:
    """See the module docstring."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError(f"a log buffer holds at least one line, not {cap}")
        self.cap = cap
        self.lines: deque[LogLine] = deque(maxlen=cap)
        self.rows: deque[tuple[int, int]] = deque()
        self.next_seq = 0
        self.filter_text = ""
        self.wrap_width = 0  # 0: no wrapping
        self.prefix_width = 0  # characters drawn before each line's text
        self.longest = 0

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def first_seq(self) -> int:
        return self.lines[0].seq if self.lines else self.next_seq

    def line(self, seq: int) -> LogLine | None:
        index = seq - self.first_seq
        if 0 <= index < len(self.lines):
            return self.lines[index]
        return None

    def matches(self, line: LogLine) -> bool:
        return not self.filter_text or self.filter_text in line.text.lower()

    def _rows_for(self, line: LogLine) -> Iterator[tuple[int, int]]:
        width = self.prefix_width + len(line.text)
        if not self.wrap_width or width <= self.wrap_width:
            yield (line.seq, 0)
            return
        for start in range(0, width, self.wrap_width):
            yield (line.seq, start)

    def append(self, source: int, raw_lines: Iterable[str]) -> int:
        """Add lines of ``source`` (each may start with a stamp); returns how many rows
        dropped off the front (so a view can keep the same lines in place)."""
        dropped = 0
        for raw in raw_lines:
            stamp, text = split_stamp(raw)
            line = LogLine(self.next_seq, source, stamp, text)
            self.next_seq += 1
            self.lines.append(line)
            self.longest = max(self.longest, len(text))
            if self.matches(line):
                self.rows.extend(self._rows_for(line))
        first = self.first_seq
        while self.rows and self.rows[0][0] < first:
            self.rows.popleft()
            dropped += 1
        return dropped

    def relayout(
        self, *, filter_text: str | None = None, wrap_width: int | None = None, prefix: int = -1
    ) -> None:
        """Rebuild ``rows`` after the filter, the wrap width or the prefix width changed."""
        if filter_text is not None:
            self.filter_text = filter_text.lower()
        if wrap_width is not None:
            self.wrap_width = max(0, wrap_width)
        if prefix >= 0:
            self.prefix_width = prefix
        rows: deque[tuple[int, int]] = deque()
        for line in self.lines:
            if self.matches(line):
                rows.extend(self._rows_for(line))
        self.rows = rows

    def shown_lines(self) -> list[LogLine]:
        """Every line that passes the filter, oldest first."""
        return [line for line in self.lines if self.matches(line)]

    def find(self, needle: str, from_row: int, backwards: bool = False) -> int | None:
        """The first row after (or before) ``from_row`` whose line contains ``needle``."""
        needle = needle.lower()
        if not needle or not self.rows:
            return None
        count = len(self.rows)
        step = -1 if backwards else 1
        row = from_row
        seen_seq = self.rows[from_row][0] if 0 <= from_row < count else -1
        for _ in range(count):
            row = (row + step) % count
            seq, start = self.rows[row]
            if seq == seen_seq or start:
                continue  # same line as the current match, or a continuation row
            line = self.line(seq)
            if line is not None and needle in line.text.lower():
                return row
        return None
