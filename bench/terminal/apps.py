"""The headless Textual apps behind the widget and flood figures of `bench.terminal`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.strip import Strip

from tui.terminal.core import TerminalCore
from tui.terminal.session import LocalSession
from tui.terminal.terminal import Terminal
from tui.terminal.widget import TerminalView

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


class WatchedView(TerminalView):
    """A `TerminalView` that reports when a row containing `marker` is rendered."""

    marker: str | None = None
    seen: asyncio.Event | None = None
    seen_at = 0.0

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.marker is not None and self.seen is not None and self.marker in strip.text:
            if not self.seen.is_set():
                self.seen_at = time.perf_counter()  # the frame being composed shows it
            self.seen.set()
        return strip


class BenchApp(App[None]):
    CSS = "TerminalView { border: none; }"

    def __init__(self, *terminals: Terminal) -> None:
        super().__init__()
        self.terminals = terminals
        self.frames: list[float] = []
        self.recording = False

    def compose(self) -> ComposeResult:
        with Horizontal():
            for index, terminal in enumerate(self.terminals):
                yield WatchedView(terminal, id=f"t{index}", resize_delay=0.001)

    def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
        if renderable is not None and self.recording:
            self.frames.append(time.perf_counter())
        super()._display(screen, renderable)


@dataclass
class Throughput:
    wall: float
    cpu: float
    frames: int
    core: TerminalCore


async def _until(predicate, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark step did not finish")
        await asyncio.sleep(0.005)


async def widget_throughput(path: Path, columns: int, lines: int) -> Throughput:
    """`cat path` on a PTY shown by a `TerminalView`; time until all of it is on screen."""
    size = path.stat().st_size
    script = f"stty -opost -echo; sleep 0.3; cat '{path}'; exec sleep 600"
    terminal = Terminal(LocalSession(["sh", "-c", script], env=ENV), columns, lines)
    app = BenchApp(terminal)
    async with app.run_test(size=(columns, lines)) as pilot:
        await terminal.start()
        await _until(lambda: terminal.bytes_fed > 0)
        app.recording = True
        wall, cpu = time.perf_counter(), time.process_time()
        await _until(lambda: terminal.bytes_fed >= size)
        await pilot.pause()  # the last frame
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        frames = len(app.frames)
        await terminal.close()
    return Throughput(wall, cpu, frames, terminal.core)


@dataclass
class Flood:
    latencies: list[float] = field(default_factory=list)
    frame_intervals: list[float] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    flood_mb: float = 0.0
    seconds: float = 0.0
    misses: int = 0
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)
    """(generation, seconds) of each garbage collection while typing."""
    """Keystrokes not seen on screen within `MISS_AFTER` seconds (counted at that)."""


MISS_AFTER = 10.0


async def flood_latency(keys: int) -> Flood:
    """Keystroke echo latency in one terminal while the other floods."""
    from bench.terminal.streams import plain

    result = Flood()
    with contextlib.ExitStack() as stack:
        import tempfile

        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pt-flood-")))
        (tmp / "text").write_bytes(plain(2_000_000))
        flood = Terminal(
            LocalSession(["sh", "-c", f"while :; do cat '{tmp / 'text'}'; done"], env=ENV), 80, 24
        )
        typing = Terminal(LocalSession(["sh", "-c", "exec cat"], env=ENV), 80, 24)
        app = BenchApp(flood, typing)
        async with app.run_test(size=(160, 24)) as pilot:
            view = app.query_one("#t1", WatchedView)
            await typing.start()
            await pilot.pause(0.2)
            # the dashboard freezes its heap once it has drawn everything (tui/app.py), so
            # full collections during a flood only scan what came after; do as it does
            gc.freeze()
            stack.callback(gc.unfreeze)
            await flood.start()
            await _until(lambda: flood.bytes_fed > 1_000_000)
            stop = asyncio.Event()

            async def ticker() -> None:
                interval = 0.005
                last = time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(interval)
                    now = time.perf_counter()
                    result.stalls.append(max(0.0, now - last - interval))
                    last = now

            tick = asyncio.create_task(ticker())
            gc_started = [0.0]

            def gc_timer(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_started[0] = time.perf_counter()
                else:
                    pause = time.perf_counter() - gc_started[0]
                    result.gc_pauses.append((info["generation"], pause))

            gc.callbacks.append(gc_timer)
            app.recording = True
            fed_before, start = flood.bytes_fed, time.perf_counter()
            alphabet = "abcdefghijklmnopqrstuvwxyz"
            for index in range(keys):
                marker = alphabet[index % 26] * 3 + str(index)
                # type the marker one key at a time; the last key is the one timed
                for char in marker[:-1]:
                    typing.write(char.encode())
                await asyncio.sleep(0.03)
                view.marker = marker
                view.seen = asyncio.Event()
                sent = time.perf_counter()
                typing.write(marker[-1].encode())
                try:
                    await asyncio.wait_for(view.seen.wait(), MISS_AFTER)
                    result.latencies.append(view.seen_at - sent)
                except TimeoutError:  # counted, not fatal: a very busy machine
                    result.latencies.append(MISS_AFTER)
                    result.misses += 1
                view.marker = None
                typing.write(b"\r")
                await asyncio.sleep(0.02)
            result.seconds = time.perf_counter() - start
            gc.callbacks.remove(gc_timer)
            result.flood_mb = (flood.bytes_fed - fed_before) / 1e6
            app.recording = False
            stop.set()
            await tick
            frames = app.frames
            result.frame_intervals = [b - a for a, b in itertools.pairwise(frames)]
            await flood.close()
            await typing.close()
    return result
