"""The measurements of bench/tui: populating an engine, the PTY figures, frame times."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import select
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
from textual.screen import Screen

from tui.app import PortsideApp

CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")
PORTSIDE = Path(sys.executable).with_name("portside")
COLUMNS, LINES = 160, 48
CONCURRENCY = 8


async def populate(host: str, ref: str, containers: int, tags: int) -> None:
    """``containers`` created containers, ``tags`` tags of ``ref``, 3 commits, via the API."""
    docker = aiodocker.Docker(url=host)
    gate = asyncio.Semaphore(CONCURRENCY)
    repository, _, _ = ref.rpartition(":")

    async def create(index: int) -> str:
        async with gate:
            made = await docker.containers.create(
                {"Image": ref, "Cmd": ["true"]}, name=f"bench-{index:04d}"
            )
            return made.id

    async def tag(index: int) -> None:
        async with gate:
            await docker.images.tag(ref, repo=f"{repository}-tag", tag=f"t{index:04d}")

    try:
        ids = await asyncio.gather(*(create(i) for i in range(containers)))
        await asyncio.gather(*(tag(i) for i in range(tags)))
        for index, cid in enumerate(ids[:3]):
            await docker.containers.container(cid).commit(
                repository=f"{repository}-commit", tag=f"c{index}"
            )
    finally:
        await docker.close()


@dataclass
class PtyFigures:
    first_paint: float  # s, process start -> first frame
    full_render: float  # s, process start -> frame with every container
    first_paint_cpu: float  # CPU s the process had used by its first frame
    full_render_cpu: float
    rss_mb: float
    idle_cpu_percent: float
    idle_s: float


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drain(master: int, seconds: float, until: Callable[[bytes], bool] | None = None) -> bytes:
    """Read the PTY for up to ``seconds`` (or until ``until(text so far)``); returns the text."""
    raw = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                raw += os.read(master, 1 << 16)
            except OSError:
                break
            if until is not None and until(CSI.sub(b"", raw)):
                break
    return CSI.sub(b"", raw)


def _on_pty(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, float]:
    """``portside ARGS`` on a new PTY of COLUMNS x LINES: the process, the master fd and
    when it was started (``time.perf_counter``)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(PORTSIDE), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master, started


def pty_figures(host: str, containers: int, config_home: Path, idle_s: float) -> PtyFigures:
    """Run ``portside --host HOST`` on a PTY: first paint, full render, memory, idle CPU."""
    config_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PORTSIDE_CONFIG")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(config_home))
    proc, master, started = _on_pty(["--host", host], env)
    full = f"Containers {containers}".encode()
    try:
        text = b""
        first = first_cpu = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.01)
            if not ready:
                if proc.poll() is not None:
                    raise RuntimeError(f"portside exited {proc.returncode}: {text[-400:]!r}")
                continue
            text += CSI.sub(b"", os.read(master, 1 << 16))
            now = time.perf_counter()
            if first is None and b"Help" in text:
                first, first_cpu = now - started, _cpu_seconds(proc.pid)
            if full in text:
                full_cpu = _cpu_seconds(proc.pid)
                break
        else:
            raise RuntimeError(f"no frame with {full!r}; output ends {text[-400:]!r}")
        full_render = time.perf_counter() - started
        _drain(master, 2.0)  # settle: the last frames, the first row stats
        rss = _rss_mb(proc.pid)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        _drain(master, idle_s)
        cpu = _cpu_seconds(proc.pid) - cpu0
        wall = time.monotonic() - wall0
        os.write(master, b"q")
        proc.wait(timeout=30)
        return PtyFigures(
            first or full_render,
            full_render,
            first_cpu or full_cpu,
            full_cpu,
            rss,
            100 * cpu / wall,
            idle_s,
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def embedded_figures(work: Path, rounds: int = 3) -> tuple[float, float]:
    """``portside --root FRESH`` (the embedded engine, as the Quick start opens it) on a PTY:
    medians over ``rounds`` of process start -> first frame and -> connected (the header's
    "Containers 0", drawn once the engine the dashboard started answers)."""
    firsts, connected = [], []
    for index in range(rounds):
        home = work / f"embedded-{index}"
        (home / "run").mkdir(parents=True, mode=0o700)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NO_COLOR", "PORTSIDE_CONFIG", "PORTSIDE_HOST", "DOCKER_HOST")
        }
        env.update(
            TERM="xterm-256color",
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_RUNTIME_DIR=str(home / "run"),
        )
        proc, master, started = _on_pty(["--root", str(home / "root")], env)
        try:
            first = None
            text = b""
            deadline = time.monotonic() + 60
            while b"Containers 0" not in text:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded: never connected; output ends {text[-400:]!r}")
                ready, _, _ = select.select([master], [], [], 0.01)
                if ready:
                    text += CSI.sub(b"", os.read(master, 1 << 16))
                    if first is None and b"Help" in text:
                        first = time.perf_counter() - started
            done = time.perf_counter() - started
            firsts.append(first or done)
            connected.append(done)
            _drain(master, 0.5)
            os.write(master, b"q")
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
    return statistics.median(firsts), statistics.median(connected)


@dataclass
class FrameStats:
    keys: int
    frames: int
    work: list[float]  # seconds of each frame's work (wall clock)
    latency: list[float]  # key press -> end of the next frame
    cpu: list[float]  # CPU seconds of each frame's work (the loop's thread)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0

    @property
    def worst_cpu(self) -> float:
        return max(self.cpu, default=0.0)

    @property
    def median_work(self) -> float:
        return statistics.median(self.work) if self.work else 0.0

    @property
    def p95_work(self) -> float:
        return sorted(self.work)[int(0.95 * (len(self.work) - 1))] if self.work else 0.0

    @property
    def worst_work(self) -> float:
        return max(self.work, default=0.0)

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latency) if self.latency else 0.0

    @property
    def worst_latency(self) -> float:
        return max(self.latency, default=0.0)


class TimedApp(PortsideApp):
    """The dashboard, recording when each frame ended and how long its work took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.displayed = False
        self.frames: list[tuple[float, float, float]] = []  # (end, wall s, CPU s) per frame
        self.frame_done = asyncio.Event()

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        if renderable is not None:
            self.displayed = True
        super()._display(screen, renderable)


def _instrument() -> None:
    """Time ``Screen._on_timer_update`` (one frame: layout, render, display)."""
    original = Screen._on_timer_update
    if getattr(original, "_bench", False):
        return

    def timed(self: Screen[Any]) -> None:
        app = self.app
        if not isinstance(app, TimedApp):
            original(self)
            return
        app.displayed = False
        start, cpu = time.perf_counter(), time.thread_time()
        original(self)
        end, cpu = time.perf_counter(), time.thread_time() - cpu
        if app.displayed:
            app.frames.append((end, end - start, cpu))
            app.frame_done.set()

    timed._bench = True  # type: ignore[attr-defined]
    Screen._on_timer_update = timed  # type: ignore[method-assign]


async def _keys(pilot: Any, app: TimedApp, keys: list[str]) -> FrameStats:
    first = len(app.frames)
    latency = []
    for key in keys:
        before = len(app.frames)
        app.frame_done.clear()
        start = time.perf_counter()
        await pilot.press(key)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.frame_done.wait(), 1.0)
        if len(app.frames) > before:
            latency.append(app.frames[before][0] - start)
    frames = app.frames[first:]
    return FrameStats(
        len(keys),
        len(frames),
        [wall for _, wall, _ in frames],
        latency,
        [cpu for _, _, cpu in frames],
    )


async def frame_times(host: str, containers: int) -> tuple[FrameStats, FrameStats, FrameStats]:
    """Frame work and key-to-frame latency: scrolling row by row, paging, filtering."""
    _instrument()

    async def connect() -> aiodocker.Docker:
        return aiodocker.Docker(url=host)

    app = TimedApp(connect, "bench", engine_url=host, refresh_interval=600.0, freeze_heap=True)
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        table = app.main.containers.table
        deadline = time.monotonic() + 60
        while len(table.rows_by_key) < containers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(table.rows_by_key)} containers listed")
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        scroll = await _keys(pilot, app, ["down"] * 150)
        paging = await _keys(pilot, app, ["pagedown"] * 10 + ["pageup"] * 10 + ["end", "home"])
        await pilot.press("slash")
        await pilot.pause(0.2)
        typed = list("bench-01")
        filtering = await _keys(pilot, app, [*typed, *["backspace"] * len(typed)])
    return scroll, paging, filtering
