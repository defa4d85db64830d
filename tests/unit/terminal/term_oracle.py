"""tmux as the oracle: run a program in a private tmux server and read its screen back.

Each `TmuxPane` uses its own server socket (`tmux -L`), no user config, no status line,
TERM=xterm-256color for the program. `capture()` reads `capture-pane -p -e` and turns the
escape-coded capture into cells with a fresh `TerminalCore`, so text and attributes of both
emulators can be compared cell by cell. Also here: `LocalTerm`, the same program on our own
PTY + core, and `compare()`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tui.terminal.cells import Cell
from tui.terminal.core import TerminalCore
from tui.terminal.session import LocalSession
from tui.terminal.terminal import Terminal

TMUX = shutil.which("tmux")
_CONF = "set -g status off\nset -g escape-time 0\nset -g history-limit 5000\n"
_KEEP_OPEN = '"$@"; exec sleep 100000'
"""Keeps the pane (and its server) alive after the program ends, screen untouched."""
SETTLE = 0.3
"""Seconds without change after which a screen counts as settled (a sync, not a test)."""

Attrs = tuple[str, str, str, bool, bool, bool, bool]


def cell_key(cell: Cell) -> Attrs:
    """What is compared per cell: text, colours, bold, italics, underline, reverse."""
    return (cell.data, cell.fg, cell.bg, cell.bold, cell.italics, cell.underscore, cell.reverse)


def rows_of(core: TerminalCore) -> list[list[Attrs]]:
    """Every screen row as comparable cells, trailing default blanks removed."""
    blank = cell_key(Cell(" "))
    rows = []
    for row in core.screen.buffer:
        cells = [cell_key(cell) for cell in row.cells(core.columns)]
        while cells and cells[-1] == blank:
            cells.pop()
        rows.append(cells)
    return rows


def env_for_programs(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PS1": "$ ",
        "TERM": "xterm-256color",
    }


async def _run(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {err.decode().strip()}")
    return out.decode()


class TmuxPane:
    """A program in its own tmux server."""

    def __init__(self, workdir: Path) -> None:
        assert TMUX is not None, "tmux is missing: apt-get install tmux"
        self.socket = f"pt-{os.getpid()}-{secrets.token_hex(4)}"
        self.conf = workdir / f"{self.socket}.conf"
        self.conf.write_text(_CONF)
        self.columns = 0
        self.lines = 0

    def _tmux(self, *args: str) -> list[str]:
        return [TMUX or "tmux", "-L", self.socket, "-f", str(self.conf), *args]

    async def start(
        self, argv: Sequence[str], columns: int, lines: int, env: dict[str, str], cwd: Path
    ) -> None:
        self.columns, self.lines = columns, lines
        env_args = [f"{key}={value}" for key, value in env.items()]
        await _run(
            *self._tmux(
                "new-session", "-d", "-x", str(columns), "-y", str(lines), "-c", str(cwd),
                "--", "env", "-i", *env_args, "sh", "-c", _KEEP_OPEN, "sh", *argv,
            )
        )  # fmt: skip

    async def send(self, data: bytes) -> None:
        await _run(*self._tmux("send-keys", "-t", "0", "-H", *[f"{b:02x}" for b in data]))

    async def resize(self, columns: int, lines: int) -> None:
        self.columns, self.lines = columns, lines
        await _run(*self._tmux("resize-window", "-t", "0", "-x", str(columns), "-y", str(lines)))

    async def snapshot(self) -> TerminalCore:
        """The pane as a core holding the same cells (fed from `capture-pane -e`)."""
        text = await _run(*self._tmux("capture-pane", "-p", "-e", "-N", "-t", "0"))
        position = await _run(*self._tmux("display", "-p", "-t", "0", "#{cursor_x} #{cursor_y}"))
        core = TerminalCore(self.columns, self.lines)
        lines = text.split("\n")[: self.lines]
        core.feed_text("\r\n".join(lines))
        x, y = (int(value) for value in position.split())
        core.screen.cursor.x, core.screen.cursor.y = x, y
        # The plain capture, compared as text on its own: it does not go through our parser.
        plain = await _run(*self._tmux("capture-pane", "-p", "-t", "0"))
        core.tmux_text = [line.rstrip() for line in plain.split("\n")[: self.lines]]  # type: ignore[attr-defined]
        return core

    async def settled(self, timeout: float = 15.0) -> TerminalCore:
        """The screen once it stopped changing for `SETTLE` seconds."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            core = await self.snapshot()
            state = (rows_of(core), core.screen.cursor.x, core.screen.cursor.y)
            if state == previous:
                return core
            if time.monotonic() > deadline:
                raise AssertionError("tmux pane never settled")
            previous = state
            await asyncio.sleep(SETTLE)

    async def close(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._tmux("kill-server"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        self.conf.unlink(missing_ok=True)


class LocalTerm:
    """The same program on our PTY + core, with its raw output recorded."""

    def __init__(self) -> None:
        self.terminal: Terminal | None = None
        self.recorded = bytearray()

    async def start(
        self, argv: Sequence[str], columns: int, lines: int, env: dict[str, str], cwd: Path
    ) -> Terminal:
        session = LocalSession(argv, env=env, cwd=str(cwd))
        self.terminal = Terminal(session, columns, lines)
        output = session.on_output

        def record(data: bytes) -> None:
            self.recorded += data
            output(data)

        session.on_output = record
        await self.terminal.start()
        return self.terminal

    async def settled(self, timeout: float = 15.0) -> TerminalCore:
        assert self.terminal is not None
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            await asyncio.sleep(SETTLE)
            self.terminal.feed_pending()
            if len(self.recorded) == seen:
                return self.terminal.core
            if time.monotonic() > deadline:
                raise AssertionError("program output never settled")
            seen = len(self.recorded)

    async def close(self) -> None:
        if self.terminal is not None:
            await self.terminal.close()


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def compare(ours: TerminalCore, oracle: TerminalCore, attributes: bool = True) -> list[str]:
    """Differences between two screens, one message per differing row (empty: identical)."""
    problems = []
    plain = getattr(oracle, "tmux_text", None)
    if plain is not None:
        for y, (a, b) in enumerate(zip(ours.text(), plain, strict=False)):
            if a != b:
                problems.append(f"row {y} text: ours {a!r} tmux {b!r}")
    mine, theirs = rows_of(ours), rows_of(oracle)
    for y, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if not attributes:
            a = [cell[:1] for cell in a]  # type: ignore[misc]
            b = [cell[:1] for cell in b]  # type: ignore[misc]
        if a != b:
            text_a = "".join(cell[0] for cell in a)
            text_b = "".join(cell[0] for cell in b)
            pairs = enumerate(zip(a, b, strict=False))
            where = next((x for x, (p, q) in pairs if p != q), min(len(a), len(b)))
            problems.append(
                f"row {y} col {where}: ours {text_a!r} {a[where : where + 1]} "
                f"tmux {text_b!r} {b[where : where + 1]}"
            )
    cursor_a = (ours.screen.cursor.x, ours.screen.cursor.y)
    cursor_b = (oracle.screen.cursor.x, oracle.screen.cursor.y)
    if min(cursor_a[0], ours.columns - 1) != min(cursor_b[0], oracle.columns - 1) or (
        cursor_a[1] != cursor_b[1]
    ):
        problems.append(f"cursor ours {cursor_a} tmux {cursor_b}")
    return problems


async def replay_in_tmux(
    pane: TmuxPane, data: bytes, columns: int, lines: int, workdir: Path
) -> TerminalCore:
    """Feed recorded program output to tmux through `cat` on a raw PTY."""
    path = workdir / f"{pane.socket}.bytes"
    done = workdir / f"{pane.socket}.done"
    path.write_bytes(data)
    await pane.start(
        ["sh", "-c", f"stty -opost -echo; cat '{path}'; touch '{done}'"],
        columns,
        lines,
        {"PATH": "/usr/bin:/bin", "TERM": "xterm-256color"},
        workdir,
    )
    await wait_until(done.exists, "cat to finish in tmux")
    return await pane.settled()


async def replay_and_resize(
    pane: TmuxPane,
    data: bytes,
    columns: int,
    lines: int,
    sizes: Sequence[tuple[int, int]],
    workdir: Path,
) -> list[TerminalCore]:
    """Replay `data` into tmux, then resize its window to each of `sizes` in turn (nothing
    redraws: the program has ended); tmux's screen after each resize."""
    await replay_in_tmux(pane, data, columns, lines, workdir)
    screens = []
    for width, height in sizes:
        await pane.resize(width, height)
        screens.append(await pane.settled())
    return screens
