"""tmux as the reference screen for the benchmark: replay the same bytes, read the screen.

The bytes are written to a file and `cat` into a tmux pane on a raw PTY (`stty -opost`), so
tmux sees exactly what our core saw. Its screen comes back from `capture-pane` (text) and
`capture-pane -e` (attributes, re-read through a fresh core for a cell-by-cell comparison).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tui.terminal.core import TerminalCore

_CONF = "set -g status off\nset -g escape-time 0\n"


def _rows(core: TerminalCore) -> list[list[tuple[object, ...]]]:
    rows = []
    for row in core.screen.buffer:
        cells = [tuple(cell[:8]) for cell in row.cells(core.columns)]
        while cells and cells[-1] == (" ", "default", "default", *([False] * 5)):
            cells.pop()
        rows.append(cells)
    return rows


def replay(data: bytes, columns: int, lines: int) -> tuple[list[str], TerminalCore]:
    """tmux's screen after `data`: (plain text lines, a core holding its cells)."""
    tmux = shutil.which("tmux")
    if tmux is None:
        raise SystemExit("tmux is missing: apt-get install tmux")
    with tempfile.TemporaryDirectory(prefix="pt-bench-") as tmp:
        work = Path(tmp)
        (work / "tmux.conf").write_text(_CONF)
        (work / "stream").write_bytes(data)
        base = [tmux, "-L", f"bench-{os.getpid()}-{secrets.token_hex(3)}"]
        base += ["-f", str(work / "tmux.conf")]
        script = (
            f"stty -opost -echo; cat '{work / 'stream'}'; touch '{work / 'done'}'; exec sleep 600"
        )
        subprocess.run(
            [*base, "new-session", "-d", "-x", str(columns), "-y", str(lines), "sh", "-c", script],
            check=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not (work / "done").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("tmux did not finish the replay in 120 s")
                time.sleep(0.05)
            previous = None
            while True:  # wait until tmux has drawn everything cat wrote
                plain = subprocess.run(
                    [*base, "capture-pane", "-p", "-t", "0"], check=True, capture_output=True
                ).stdout
                coded = subprocess.run(
                    [*base, "capture-pane", "-p", "-e", "-N", "-t", "0"],
                    check=True,
                    capture_output=True,
                ).stdout
                if (plain, coded) == previous:
                    break
                previous = (plain, coded)
                time.sleep(0.3)
        finally:
            subprocess.run([*base, "kill-server"], check=False, capture_output=True)
    text = [line.rstrip() for line in plain.decode().split("\n")[:lines]]
    core = TerminalCore(columns, lines)
    core.feed_text("\r\n".join(coded.decode().split("\n")[:lines]))
    return text, core


def differences(ours: TerminalCore, data: bytes) -> list[str]:
    """Rows where our final screen differs from tmux's for the same bytes."""
    text, theirs = replay(data, ours.columns, ours.lines)
    problems = [
        f"row {y}: ours {a!r} tmux {b!r}"
        for y, (a, b) in enumerate(zip(ours.text(), text, strict=True))
        if a != b
    ]
    for y, (a, b) in enumerate(zip(_rows(ours), _rows(theirs), strict=True)):
        if a != b and not any(p.startswith(f"row {y}:") for p in problems):
            problems.append(f"row {y}: attributes differ")
    return problems
