"""CPU, memory, network and block I/O sparklines for one or several containers.

A worker asks the engine for one-shot stats (``stream=0``) every ``interval`` seconds, only
for the containers whose block is on screen, and posts ``StatsSampled``; each block keeps a
bounded ``History`` and redraws its four sparklines and current figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, Sparkline, Static

from tui import keymap
from tui.humanize import human_size
from tui.sync import one_line
from tui.widgets.stats_sample import History, Sample

if TYPE_CHECKING:
    import aiodocker

    from tui.app import PortsideApp

DEFAULT_INTERVAL = 2.0
SERIES = (("cpu", "CPU"), ("memory", "MEM"), ("net", "NET"), ("block", "I/O"))


class StatsSampled(Message):
    """One-shot stats answers: (target index, raw stats or None, error) triples."""

    def __init__(self, results: Sequence[tuple[int, dict[str, Any] | None, str]]) -> None:
        super().__init__()
        self.results = results


async def one_shot(docker: aiodocker.Docker, cid: str) -> dict[str, Any]:
    """``GET /containers/{cid}/stats?stream=0`` (a single answer)."""
    answer = await docker.containers.container(cid).stats(stream=False)
    return dict(answer[0]) if answer else {}


def figures(history: History) -> dict[str, str]:
    last = history.last
    if last is None:
        return {key: "…" for key, _ in SERIES}
    limit = f" / {human_size(last.memory_limit)}" if last.memory_limit else ""
    return {
        "cpu": f"{last.cpu_percent:5.1f}%",
        "memory": f"{human_size(last.memory)}{limit}",
        "net": f"{human_size(history.net[-1])}/s",
        "block": f"{human_size(history.block[-1])}/s",
    }


class StatsBlock(Vertical):
    """One container: a title and four labelled sparklines."""

    DEFAULT_CSS = """
    StatsBlock { height: auto; padding: 0 1 1 1; }
    StatsBlock > .stats-name { text-style: bold; color: $accent; }
    StatsBlock Horizontal { height: 1; }
    StatsBlock .stats-label { width: 5; color: $foreground-muted; }
    StatsBlock .stats-value { width: 22; }
    StatsBlock Sparkline { width: 1fr; height: 1; }
    """

    def __init__(self, index: int, name: str) -> None:
        super().__init__(id=f"stats-{index}")
        self.index = index
        self.container_name = name
        self.history = History()

    def compose(self) -> ComposeResult:
        yield Label(self.container_name, classes="stats-name", markup=False)
        for key, label in SERIES:
            with Horizontal():
                yield Label(label, classes="stats-label")
                yield Label("…", classes="stats-value", id=f"value-{key}")
                yield Sparkline([], id=f"spark-{key}")

    def add(self, sample: Sample) -> None:
        self.history.add(sample)
        values = figures(self.history)
        for key, _ in SERIES:
            self.query_one(f"#value-{key}", Label).update(values[key])
            self.query_one(f"#spark-{key}", Sparkline).data = list(getattr(self.history, key))

    def show_error(self, error: str) -> None:
        self.query_one("#value-cpu", Label).update(Content.assemble((error, "$error")))


class StatsScreen(Screen[None]):
    """``targets`` are (container id, name) pairs."""

    BINDINGS = [*keymap.bindings(keymap.STATS), *keymap.bindings(keymap.DIALOG)]

    DEFAULT_CSS = """
    StatsScreen > #stats-title { dock: top; height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, str]],
        *,
        autoload: bool = True,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        super().__init__()
        if not targets:
            raise ValueError("stats of no container: select a running one first")
        self.targets = list(targets)
        self.autoload = autoload
        self.interval = interval
        self.requested: list[set[int]] = []  # which blocks each round asked for (tests)

    def compose(self) -> ComposeResult:
        title = "Stats " + ", ".join(name for _, name in self.targets)
        yield Static(Content.assemble((title, "bold")), id="stats-title", markup=False)
        with VerticalScroll(id="stats-scroll"):
            for index, (_, name) in enumerate(self.targets):
                yield StatsBlock(index, name)
        yield Footer()

    def block(self, index: int) -> StatsBlock:
        return self.query_one(f"#stats-{index}", StatsBlock)

    def on_mount(self) -> None:
        self.query_one("#stats-scroll").focus()
        if self.autoload:
            self.run_worker(self._poll(), group="stats", exclusive=True)

    def visible_indexes(self) -> set[int]:
        window = self.query_one("#stats-scroll").region
        return {block.index for block in self.query(StatsBlock) if block.region.overlaps(window)}

    async def _poll(self) -> None:
        while True:
            docker = cast("PortsideApp", self.app).docker
            wanted = sorted(self.visible_indexes()) if self.is_current else []
            if docker is not None and wanted:
                from aiodocker import DockerError  # loaded with the client

                self.requested.append(set(wanted))
                answers = await asyncio.gather(
                    *(one_shot(docker, self.targets[i][0]) for i in wanted),
                    return_exceptions=True,
                )
                results: list[tuple[int, dict[str, Any] | None, str]] = []
                for index, answer in zip(wanted, answers, strict=True):
                    if isinstance(answer, DockerError):
                        results.append((index, None, one_line(answer.message)))
                    elif isinstance(answer, BaseException):
                        results.append((index, None, one_line(str(answer)) or "no answer"))
                    else:
                        results.append((index, answer, ""))
                self.post_message(StatsSampled(results))
            await asyncio.sleep(self.interval)

    def on_stats_sampled(self, message: StatsSampled) -> None:
        message.stop()
        now = time.monotonic()
        for index, stats, error in message.results:
            block = self.block(index)
            if stats is None:
                block.show_error(error)
            else:
                block.add(Sample.from_api(stats, now))

    def action_close(self) -> None:
        self.dismiss()
