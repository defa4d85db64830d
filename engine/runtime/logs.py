"""Reading docker json-file logs: ``--tail``, ``--since``, ``--until``, ``--timestamps`` and
``--follow`` across rotated files (``<id>-json.log.N`` ... ``.1``, then the live file).

The monitor writes; readers only read, in threads. Following polls the live file and
notices rotation by inode: the old file is read to its end before the new one.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

POLL = 0.1
_BLOCK = 65536


@dataclass(frozen=True)
class LogEntry:
    stream: str  # "stdout" | "stderr"
    data: bytes
    time: str  # RFC3339Nano
    ns: int


def parse_time(text: str) -> int:
    """RFC3339(Nano) -> nanoseconds since the epoch."""
    head, _, frac = text.rstrip("Z").partition(".")
    zone = ""
    for sep in ("+", "-"):
        if sep in frac:
            frac, _, rest = frac.partition(sep)
            zone = sep + rest
    if not frac and ("+" in head[19:] or "-" in head[19:]):
        zone = head[19:]
        head = head[:19]
    dt = datetime.fromisoformat(head + (zone or "+00:00"))
    digits = "".join(c for c in frac if c.isdigit())[:9].ljust(9, "0")
    return int(dt.timestamp()) * 1_000_000_000 + int(digits)


def parse_timestamp_arg(value: str | int | float | None) -> int | None:
    """docker's ``since``/``until``: unix seconds (``1700000000.5``) or RFC3339; ns out."""
    if value in (None, "", 0, "0"):
        return None
    text = str(value)
    try:
        seconds = float(text)
    except ValueError:
        return parse_time(text if "T" in text else text + "T00:00:00Z")
    return int(seconds * 1_000_000_000)


def _parse(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
        t = str(obj.get("time", ""))
        return LogEntry(
            str(obj.get("stream", "stdout")), str(obj.get("log", "")).encode(), t, parse_time(t)
        )
    except (ValueError, TypeError, AttributeError):
        return None


def log_files(path: Path) -> list[Path]:
    """Rotated files oldest first, then the live file."""
    rotated = []
    n = 1
    while (path.with_name(f"{path.name}.{n}")).exists():
        rotated.append(path.with_name(f"{path.name}.{n}"))
        n += 1
    return [*reversed(rotated), path]


def _tail_lines(path: Path, count: int) -> list[bytes]:
    """The last ``count`` complete lines of one file, read backwards in blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        pos = os.fstat(fd).st_size
        buf = b""
        while pos > 0 and buf.count(b"\n") <= count:
            step = min(_BLOCK, pos)
            pos -= step
            buf = os.pread(fd, step, pos) + buf
        lines = buf.split(b"\n")
        if pos > 0:
            lines = lines[1:]  # first one is partial
        lines = [ln for ln in lines if ln]
        return lines[-count:] if count else []
    finally:
        os.close(fd)


def _read_all(path: Path) -> list[bytes]:
    try:
        with open(path, "rb") as fh:
            return [ln for ln in fh.read().split(b"\n") if ln]
    except FileNotFoundError:
        return []


def snapshot(path: Path, tail: int | None) -> tuple[list[LogEntry], tuple[int, int] | None]:
    """Existing entries (the last ``tail`` lines if given), and (inode, offset) of the end of
    the live file for following."""
    files = log_files(path)
    lines: list[bytes] = []
    if tail is not None:
        for f in reversed(files):
            need = tail - len(lines)
            if need <= 0:
                break
            lines = _tail_lines(f, need) + lines
    else:
        for f in files:
            lines.extend(_read_all(f))
    try:
        st = os.stat(path)
        end: tuple[int, int] | None = (st.st_ino, st.st_size)
    except FileNotFoundError:
        end = None
    if end is not None and lines:
        # count only complete lines up to the size we saw
        pass
    entries = [e for e in (_parse(ln) for ln in lines) if e is not None]
    return entries, end


class _Follower:
    def __init__(self, path: Path, start: tuple[int, int] | None) -> None:
        self.path = path
        self.fd = -1
        self.ino = 0
        self.pending = b""
        if start is not None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return
            if os.fstat(fd).st_ino == start[0]:
                os.lseek(fd, start[1], os.SEEK_SET)
                self.fd, self.ino = fd, start[0]
            else:
                os.close(fd)

    def poll(self) -> list[bytes]:
        """New complete lines (handles rotation)."""
        out: list[bytes] = []
        while True:
            if self.fd < 0:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                    self.ino = os.fstat(self.fd).st_ino
                except FileNotFoundError:
                    return out
            while True:
                chunk = os.read(self.fd, _BLOCK)
                if not chunk:
                    break
                self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            out.extend(ln for ln in lines if ln)
            try:
                now = os.stat(self.path).st_ino
            except FileNotFoundError:
                return out
            if now == self.ino:
                return out
            os.close(self.fd)  # rotated: the old file is finished, go to the new one
            self.fd = -1
            self.pending = b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def read_logs(
    path: Path,
    *,
    stdout: bool = True,
    stderr: bool = True,
    since: int | None = None,
    until: int | None = None,
    tail: int | None = None,
    follow: bool = False,
    running: Callable[[], bool] = lambda: False,
) -> AsyncIterator[LogEntry]:
    """Entries of a container's log; with ``follow``, until ``running()`` turns False."""

    def wanted(e: LogEntry) -> bool:
        if (e.stream == "stdout" and not stdout) or (e.stream == "stderr" and not stderr):
            return False
        if since is not None and e.ns < since:
            return False
        return not (until is not None and e.ns > until)

    filtered = not (stdout and stderr) or since is not None or until is not None
    entries, end = await asyncio.to_thread(snapshot, path, None if filtered else tail)
    selected = [e for e in entries if wanted(e)]
    if tail is not None:
        selected = selected[len(selected) - tail :] if tail else []
    for e in selected:
        yield e
    if not follow or (until is not None and until <= _now()):
        return
    follower = _Follower(path, end)
    try:
        while True:
            alive = running()
            lines = await asyncio.to_thread(follower.poll)
            for line in lines:
                e = _parse(line)
                if e is None:
                    continue
                if until is not None and e.ns > until:
                    return
                if wanted(e):
                    yield e
            if not alive and not lines:
                return
            if until is not None and _now() > until:
                return
            if not lines:
                await asyncio.sleep(POLL)
    finally:
        follower.close()


def _now() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000_000)
