"""Running one command as a measured trial: wall time and peak memory of its process tree.

The command runs under a tiny launcher (``python -S``) that forks it, times it and collects
its ``wait4`` rusage: Linux keeps ``ru_maxrss`` across ``execve``, so forking the command
straight from this (large) bench process would report the bench's own size. Peak RSS is the
larger of that ``ru_maxrss`` (the biggest single process of the tree) and the largest sum of
resident memory over the command and all its descendants, sampled from /proc every
``SAMPLE_INTERVAL`` seconds (helper processes running in parallel add up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL = 0.05

# argv: RESULT_FILE COMMAND...; writes the command's pid (line 1), then its wall time and
# ru_maxrss as JSON (line 2), and exits with the command's status (128+N for signal N).
_LAUNCHER = r"""
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        sys.stderr.write(f"cannot run {argv[0]}: {err}\n")
    os._exit(127)
with open(out, "w") as fh:
    fh.write(f"{pid}\n")
_, status, ru = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "a") as fh:
    fh.write(json.dumps({"seconds": seconds, "maxrss_kb": ru.ru_maxrss}) + "\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Trial:
    seconds: float
    peak_rss: int  # bytes
    returncode: int
    output_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    """Sum of the resident memory of ``pid`` and all its descendants, in bytes."""
    total, stack, seen = 0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss(current)
        stack += _children(current)
    return total


def _read_child_pid(result: Path) -> int | None:
    try:
        first = result.read_text().split("\n", 1)[0]
        return int(first) if first else None
    except (OSError, ValueError):
        return None


def run_trial(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800.0
) -> Trial:
    """Run ``argv`` to completion under the launcher; its output's tail is kept."""
    with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
        result = Path(tmp) / "result"
        log = Path(tmp) / "output"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(result), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
            )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            child = None
            while not done.is_set():
                child = child or _read_child_pid(result)
                if child is not None:
                    peak = max(peak, tree_rss(child))
                done.wait(SAMPLE_INTERVAL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
        done.set()
        sampler.join()
        lines = result.read_text().splitlines() if result.exists() else []
        stats = json.loads(lines[1]) if len(lines) > 1 else {"seconds": 0.0, "maxrss_kb": 0}
        tail = log.read_bytes()[-2000:].decode("utf-8", "replace")
    peak = max(peak, int(stats["maxrss_kb"]) * 1024)
    return Trial(float(stats["seconds"]), peak, returncode, tail)
