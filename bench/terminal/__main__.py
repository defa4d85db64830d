"""Terminal benchmark: throughput of the core and the widget, latency while flooding.

Run it as `python -m bench.terminal [--mb N] [--rounds N] [--keys N] [--skip-widget]`.

1. Core: MB/s of `TerminalCore.feed` on three streams (plain, SGR-coloured, cursor-heavy
   full-screen redraw; see `streams.py`), against plain pyte (`pyte.Screen` +
   `pyte.ByteStream`) on the same bytes, with the final screen checked against tmux's.
2. Widget: MB/s end to end in a headless Textual app: `cat` on a real PTY -> session ->
   batched feed -> `TerminalView` rendering frames; final screen checked against tmux.
3. Flood: two terminals side by side, one flooding (`cat` in a loop); keystroke-to-screen
   latency in the other (key written -> echoed row rendered by the widget) and the
   dashboard's frame intervals and event-loop stalls meanwhile.

Every figure is the median over `--rounds` rounds (the spread is printed beside it) and is
set against the acceptance line it must clear (>= 10 MB/s plain, >= 5 MB/s SGR, >= 2 MB/s
cursor-heavy, echo < 30 ms median, frames < 50 ms). Figures are printed, never asserted;
CPU figures use process time so other work on the machine disturbs them less (wall-clock
figures are printed too): on a busy machine read the CPU column.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyte

from bench.terminal.streams import STREAMS
from bench.terminal.tmux import differences
from tui.terminal.core import TerminalCore

CHUNK = 1 << 16
COLUMNS, LINES = 80, 24


def feed_ours(data: bytes) -> TerminalCore:
    core = TerminalCore(COLUMNS, LINES)
    for start in range(0, len(data), CHUNK):
        core.feed(data[start : start + CHUNK])
    return core


def feed_pyte(data: bytes) -> pyte.Screen:
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    for start in range(0, len(data), CHUNK):
        stream.feed(data[start : start + CHUNK])
    return screen


TARGET_MBS = {"plain": 10.0, "sgr": 5.0, "cursor": 2.0}
TARGET_ECHO_MS = 30.0
TARGET_FRAME_MS = 50.0


def verdict(value: float, line: float, higher: bool = True) -> str:
    ok = value >= line if higher else value < line
    return f"{'ok' if ok else 'BELOW':5} ({'>=' if higher else '<'} {line:g})"


def spread(values: list[float]) -> str:
    return f"[{min(values):.2f}-{max(values):.2f}]"


def measure(function, data: bytes, rounds: int) -> tuple[list[float], list[float]]:
    """(CPU MB/s, wall MB/s) of each of `rounds` runs."""
    cpus, walls = [], []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        function(data)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        cpus.append(len(data) / cpu / 1e6)
        walls.append(len(data) / wall / 1e6)
    return cpus, walls


def core_bench(size: int, rounds: int) -> dict[str, float]:
    print(f"== core: {size / 1e6:.1f} MB per stream, {COLUMNS}x{LINES}, median of {rounds}")
    print(
        f"{'stream':8} {'cpu MB/s':>9} {'spread':>13} {'wall MB/s':>10} {'pyte cpu':>9} "
        f"{'ratio':>7}  {'target':17} tmux"
    )
    results = {}
    for name, make in STREAMS.items():
        data = make(size)
        cpus, walls = measure(feed_ours, data, rounds)
        sample = data[: min(len(data), 1_000_000)]
        pyte_cpu = statistics.median(measure(feed_pyte, sample, 1)[0])
        problems = differences(feed_ours(data), data)
        same = "identical" if not problems else f"DIFFERS: {problems[:3]}"
        cpu = results[name] = statistics.median(cpus)
        print(
            f"{name:8} {cpu:9.2f} {spread(cpus):>13} {statistics.median(walls):10.2f} "
            f"{pyte_cpu:9.2f} {cpu / pyte_cpu:6.1f}x  {verdict(cpu, TARGET_MBS[name])} {same}"
        )
    return results


async def widget_bench(size: int, rounds: int) -> None:
    from bench.terminal.apps import widget_throughput

    print(
        f"\n== widget: cat of {size / 1e6:.1f} MB on a PTY into TerminalView, "
        f"{COLUMNS}x{LINES}, median of {rounds}"
    )
    print(
        f"{'stream':8} {'cpu MB/s':>9} {'spread':>13} {'wall MB/s':>10} {'frames':>7}  "
        f"{'target (cpu)':17} tmux"
    )
    with tempfile.TemporaryDirectory(prefix="pt-bench-") as tmp:
        for name, make in STREAMS.items():
            data = make(size)
            path = Path(tmp) / name
            path.write_bytes(data)
            results = [await widget_throughput(path, COLUMNS, LINES) for _ in range(rounds)]
            cpus = [len(data) / r.cpu / 1e6 for r in results]
            walls = [len(data) / r.wall / 1e6 for r in results]
            problems = differences(results[-1].core, data)
            same = "identical" if not problems else f"DIFFERS: {problems[:3]}"
            cpu = statistics.median(cpus)
            frames = statistics.median(r.frames for r in results)
            print(
                f"{name:8} {cpu:9.2f} {spread(cpus):>13} {statistics.median(walls):10.2f} "
                f"{frames:7.0f}  {verdict(cpu, TARGET_MBS[name])} {same}"
            )


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def flood_bench(keys: int, rounds: int) -> None:
    from bench.terminal.apps import flood_latency

    print(
        f"\n== flood: one terminal floods (cat in a loop), {keys} keystrokes in the other, "
        f"{rounds} rounds"
    )
    echo, frame_p99, frame_max, stall_p99, rates = [], [], [], [], []
    for index in range(rounds):
        result = await flood_latency(keys)
        lat = result.latencies
        echo.append(statistics.median(lat) * 1000)
        frame_p99.append(_pct(result.frame_intervals, 0.99))
        frame_max.append(max(result.frame_intervals) * 1000)
        stall_p99.append(_pct(result.stalls, 0.99))
        rates.append(result.flood_mb / result.seconds)
        print(
            f"round {index + 1}: echo median {echo[-1]:.1f} ms (p95 {_pct(lat, 0.95):.1f}, "
            f"max {max(lat) * 1000:.1f}); frames {len(result.frame_intervals)}, interval "
            f"median {statistics.median(result.frame_intervals) * 1000:.1f} ms, "
            f"p99 {frame_p99[-1]:.1f}, max {frame_max[-1]:.1f}; loop stalls p99 "
            f"{stall_p99[-1]:.1f} ms; flood {rates[-1]:.1f} MB/s"
            + (f"; {result.misses} keys never echoed" if result.misses else "")
        )
        full = [pause * 1000 for generation, pause in result.gc_pauses if generation == 2]
        young = [pause * 1000 for generation, pause in result.gc_pauses if generation < 2]
        print(
            f"         garbage collections: {len(young)} young (max "
            f"{max(young, default=0):.1f} ms), {len(full)} full (max {max(full, default=0):.1f} ms)"
        )
    med = statistics.median
    print(
        f"keystroke -> screen, median of rounds: {med(echo):.1f} ms  "
        f"{verdict(med(echo), TARGET_ECHO_MS, higher=False)}"
    )
    print(
        f"frame interval p99, median of rounds: {med(frame_p99):.1f} ms  "
        f"{verdict(med(frame_p99), TARGET_FRAME_MS, higher=False)}; "
        f"worst frame {med(frame_max):.1f} ms (median of rounds)"
    )
    print(f"flood fed while typing: {med(rates):.1f} MB/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.terminal", description=__doc__)
    parser.add_argument("--mb", type=float, default=4.0, help="MB per stream (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (median)")
    parser.add_argument("--keys", type=int, default=40, help="keystrokes per flood round")
    parser.add_argument("--skip-widget", action="store_true", help="core figures only")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.mb <= 0 or args.keys < 1:
        parser.error("--rounds and --keys must be at least 1 and --mb positive")
    size = int(args.mb * 1e6)
    core_bench(size, args.rounds)
    if not args.skip_widget:
        asyncio.run(widget_bench(size, args.rounds))
        asyncio.run(flood_bench(args.keys, max(1, min(args.rounds, 3))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
