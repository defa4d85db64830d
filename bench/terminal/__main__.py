"""Terminal benchmark: `python -m bench.terminal [--mb N] [--runs N] [--skip-widget]`.

1. Core: MB/s of `TerminalCore.feed` on three streams (plain, SGR-coloured, cursor-heavy
   full-screen redraw; see `streams.py`), against plain pyte (`pyte.Screen` +
   `pyte.ByteStream`) on the same bytes, with the final screen checked against tmux's.
2. Widget: MB/s end to end in a headless Textual app: `cat` on a real PTY -> session ->
   batched feed -> `TerminalView` rendering frames; final screen checked against tmux.
3. Flood: two terminals side by side, one flooding (`cat` in a loop); keystroke-to-screen
   latency in the other (key written -> echoed row rendered by the widget) and the
   dashboard's frame intervals and event-loop stalls meanwhile.

Figures are printed, never asserted; CPU figures use process time so other work on the
machine disturbs them less (wall-clock figures are printed too).
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


def measure(function, data: bytes, runs: int) -> tuple[float, float]:
    """Best (CPU MB/s, wall MB/s) over `runs`."""
    best_cpu = best_wall = 0.0
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        function(data)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best_cpu = max(best_cpu, len(data) / cpu / 1e6)
        best_wall = max(best_wall, len(data) / wall / 1e6)
    return best_cpu, best_wall


def core_bench(size: int, runs: int) -> dict[str, float]:
    print(f"== core: {size / 1e6:.1f} MB per stream, {COLUMNS}x{LINES}, best of {runs}")
    print(f"{'stream':8} {'ours cpu':>9} {'ours wall':>10} {'pyte cpu':>9} {'ratio':>7}  tmux")
    results = {}
    for name, make in STREAMS.items():
        data = make(size)
        ours_cpu, ours_wall = measure(feed_ours, data, runs)
        sample = data[: min(len(data), 1_000_000)]
        pyte_cpu, _ = measure(feed_pyte, sample, 1)
        problems = differences(feed_ours(data), data)
        verdict = "identical" if not problems else f"DIFFERS: {problems[:3]}"
        results[name] = ours_cpu
        print(
            f"{name:8} {ours_cpu:9.2f} {ours_wall:10.2f} {pyte_cpu:9.2f} "
            f"{ours_cpu / pyte_cpu:6.1f}x  {verdict}"
        )
    return results


async def widget_bench(size: int, runs: int) -> None:
    from bench.terminal.apps import widget_throughput

    print(f"\n== widget: cat of {size / 1e6:.1f} MB on a PTY into TerminalView, {COLUMNS}x{LINES}")
    print(f"{'stream':8} {'wall MB/s':>10} {'cpu MB/s':>9} {'frames':>7}  tmux")
    with tempfile.TemporaryDirectory(prefix="pt-bench-") as tmp:
        for name, make in STREAMS.items():
            data = make(size)
            path = Path(tmp) / name
            path.write_bytes(data)
            best = None
            for _ in range(runs):
                result = await widget_throughput(path, COLUMNS, LINES)
                if best is None or result.wall < best.wall:
                    best = result
            assert best is not None
            problems = differences(best.core, data)
            verdict = "identical" if not problems else f"DIFFERS: {problems[:3]}"
            print(
                f"{name:8} {len(data) / best.wall / 1e6:10.2f} {len(data) / best.cpu / 1e6:9.2f} "
                f"{best.frames:7d}  {verdict}"
            )


async def flood_bench(keys: int) -> None:
    from bench.terminal.apps import flood_latency

    print(f"\n== flood: one terminal floods (cat in a loop), {keys} keystrokes in the other")
    result = await flood_latency(keys)
    lat = sorted(result.latencies)
    frames = sorted(result.frame_intervals)
    stalls = sorted(result.stalls)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))] * 1000

    print(
        f"keystroke -> screen: median {statistics.median(lat) * 1000:.1f} ms, "
        f"p95 {pct(lat, 0.95):.1f} ms, max {lat[-1] * 1000:.1f} ms"
    )
    print(
        f"frames while flooding: {len(frames)} frames, interval median "
        f"{statistics.median(frames) * 1000:.1f} ms, p99 {pct(frames, 0.99):.1f} ms, "
        f"max {frames[-1] * 1000:.1f} ms"
    )
    print(
        f"event-loop stalls: p99 {pct(stalls, 0.99):.1f} ms, max {stalls[-1] * 1000:.1f} ms; "
        f"flood fed {result.flood_mb:.1f} MB ({result.flood_mb / result.seconds:.1f} MB/s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.terminal", description=__doc__)
    parser.add_argument("--mb", type=float, default=4.0, help="MB per stream (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure, best kept")
    parser.add_argument("--keys", type=int, default=40, help="keystrokes for the latency")
    parser.add_argument("--skip-widget", action="store_true", help="core figures only")
    args = parser.parse_args(argv)
    size = int(args.mb * 1e6)
    core_bench(size, args.runs)
    if not args.skip_widget:
        asyncio.run(widget_bench(size, args.runs))
        asyncio.run(flood_bench(args.keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
