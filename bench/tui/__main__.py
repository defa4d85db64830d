"""Dashboard benchmark: `python -m bench.tui [--containers N] [--images N] [--idle S]`.

Setup: the busybox-static test image is pushed to Debian's docker-registry on a loopback
port and pulled by a fresh ``portside serve``; then, through the Engine API, N containers
are created (not started), N tags of the image are added and 3 containers are committed.

Figures (printed, never asserted; see ``measure.py`` for the methods):

1. first paint: the real ``portside --host URL`` console script on a real PTY; process
   start -> the first frame (the first output holding the footer's "Help").
2. full render: same process, start -> the frame whose header reads "Containers N" (the
   N rows are put in the table in the same handler, so they are in that frame).
3. resident memory of that process after the full render (VmRSS from /proc), and its idle
   CPU over ``--idle`` seconds (utime+stime from /proc/PID/stat, divided by wall time).
4. first paint on the embedded engine (what the Quick start opens): ``portside --root
   FRESH`` on a PTY, start -> first frame, and start -> connected (the header's
   "Containers 0" once the engine the dashboard starts answers); medians of 3 runs.
5. frame times while scrolling row by row, paging and filtering, in-process with
   Textual's ``run_test``: each frame's work is timed around ``Screen._on_timer_update``
   (layout, compositor render, display: everything Textual does to produce one frame),
   as CPU time of the event loop's thread (compared with the targets) and wall clock; and
   key-to-frame latency from a key press to the end of the next frame (includes Textual's
   frame scheduling, up to 1/60 s, and the handler's work).

Targets: first paint < 0.6 s, full render < 1.0 s, median frame < 16 ms, worst < 50 ms,
idle CPU < 1 %, memory < 150 MB. Exit status 0 unless ``--check`` and a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from bench.tui.measure import (
    FrameStats,
    PtyFigures,
    embedded_figures,
    frame_times,
    populate,
    pty_figures,
)
from tests.fixtures.images import busybox_image
from tests.fixtures.portside import start_portside
from tests.fixtures.procs import unmount_under
from tests.fixtures.registry import start_registry

TARGETS = {
    "first paint": ("s", 0.6),
    "first paint (embedded)": ("s", 0.6),
    "full render": ("s", 1.0),
    "median frame": ("ms", 16.0),
    "worst frame (scrolling)": ("ms", 50.0),
    "idle CPU": ("%", 1.0),
    "memory": ("MB", 150.0),
}


def log(message: str) -> None:
    print(f"[bench/tui] {message}", file=sys.stderr, flush=True)


def report(
    pty: PtyFigures,
    embedded: tuple[float, float],
    scroll: FrameStats,
    paging: FrameStats,
    filtering: FrameStats,
) -> dict[str, float]:
    figures = {
        "first paint": pty.first_paint,
        "first paint (embedded)": embedded[0],
        "full render": pty.full_render,
        "median frame": max(scroll.median_cpu, filtering.median_cpu) * 1000,
        "worst frame (scrolling)": scroll.worst_cpu * 1000,
        "idle CPU": pty.idle_cpu_percent,
        "memory": pty.rss_mb,
    }
    print("\nportside dashboard, 2-core VM (indicative when the machine is busy)")
    print(f"{'figure':28} {'value':>10} {'target':>10}  verdict")
    for name, value in figures.items():
        unit, target = TARGETS[name]
        verdict = "PASS" if value < target else "FAIL"
        print(f"{name:28} {value:9.3f}{unit:<1} {target:9g}{unit:<1}  {verdict}")
    print(
        f"{'worst frame (paging)':28} {paging.worst_cpu * 1000:9.3f}ms"
        "  (pagedown/pageup/end/home: a page of rows never drawn before)"
    )
    print(
        f"{'connected (embedded)':28} {embedded[1]:9.3f}s"
        "  (portside --root FRESH: the dashboard starts the engine after its first frame)"
    )
    for label, stats in (("scrolling", scroll), ("paging", paging), ("filtering", filtering)):
        print(
            f"\n{label}: {stats.frames} frames for {stats.keys} keys; frame work CPU median "
            f"{stats.median_cpu * 1000:.1f} ms, worst {stats.worst_cpu * 1000:.1f} ms; wall "
            f"median {stats.median_work * 1000:.1f} ms, p95 {stats.p95_work * 1000:.1f} ms, "
            f"worst {stats.worst_work * 1000:.1f} ms; key-to-frame median "
            f"{stats.median_latency * 1000:.1f} ms, worst {stats.worst_latency * 1000:.1f} ms"
        )
    print(
        f"\nPTY process: first paint {pty.first_paint:.3f} s ({pty.first_paint_cpu:.3f} CPU s),"
        f" full render {pty.full_render:.3f} s ({pty.full_render_cpu:.3f} CPU s),"
        f" RSS {pty.rss_mb:.1f} MB, idle CPU {pty.idle_cpu_percent:.2f} % over {pty.idle_s:g} s"
    )
    print(
        "Frame figures are the CPU time of each frame's work (less disturbed by a busy"
        " machine); wall-clock figures above. First paint and full render are wall clock."
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--images", type=int, default=500, help="tags of the test image")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-tui-", dir="/tmp"))
    try:
        built = busybox_image(work / "image")
        with contextlib.ExitStack() as stack:
            registry = stack.enter_context(start_registry("plain", work / "registry"))
            ref = registry.push(built.skopeo_source, "bench/busybox:1")
            engine = stack.enter_context(
                start_portside(work / "ps", "--insecure-registry", registry.host)
            )
            engine.docker("pull", ref)
            log(f"creating {args.containers} containers, {args.images} tags, 3 commits")
            asyncio.run(populate(engine.host, ref, args.containers, args.images))
            log("first paint, full render, memory, idle CPU: portside on a PTY")
            pty = pty_figures(engine.host, args.containers, work / "config", args.idle)
            log("first paint and connection on the embedded engine: portside --root")
            embedded = embedded_figures(work / "embedded")
            log("frame times while scrolling and filtering (run_test)")
            scroll, paging, filtering = asyncio.run(frame_times(engine.host, args.containers))
            try:
                figures = report(pty, embedded, scroll, paging, filtering)
            finally:
                engine.remove_containers()
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    missed = [name for name, value in figures.items() if value >= TARGETS[name][1]]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
