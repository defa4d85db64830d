"""Regenerate screenshots/*.svg: every panel and screen of the dashboard, from fixed data.

Usage: ``.venv/bin/python scripts/screenshots.py [--size 120x36] [--out screenshots]``.
The data is the snapshot tests' (``tests/tui/sample_data.py``: real engine answers with a
frozen clock), so the pictures change only when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiodocker  # noqa: E402
from textual.pilot import Pilot  # noqa: E402

from tests.tui import sample_data, sample_registries, sample_views  # noqa: E402
from tests.tui.test_terminals_panel import open_fixed_terminal  # noqa: E402
from tui.app import PortsideApp  # noqa: E402
from tui.client import EngineChoice  # noqa: E402
from tui.config import DashboardConfig  # noqa: E402
from tui.screens.engines import EnginesScreen  # noqa: E402

Step = Callable[[Pilot[Any]], Awaitable[None]]


async def _no_engine() -> aiodocker.Docker:
    raise RuntimeError("screenshots never connect to an engine")


def _keys(*keys: str) -> Step:
    async def press(pilot: Pilot[Any]) -> None:
        await pilot.press(*keys)
        await sample_data.settle(pilot)

    return press


PICKER_CHOICES = [
    EngineChoice("embedded", None, "embedded"),
    EngineChoice("build-box", "tcp://10.0.0.5:2376", "config"),
    EngineChoice("lab", "unix:///run/lab/docker.sock", "config"),
    EngineChoice("default", "unix:///var/run/docker.sock", "context"),
    EngineChoice("staging", "tcp://staging.example:2376", "context", "docker's current context"),
]


async def open_engines(pilot: Pilot[Any]) -> None:
    """The engine picker (key E) with fixed choices instead of this machine's."""
    app = pilot.app
    assert isinstance(app, PortsideApp)
    app.push_screen(EnginesScreen(app.engine_url, {}, choices=PICKER_CHOICES))
    await sample_data.settle(pilot)


SHOTS: list[tuple[str, str, list[Step]]] = [
    ("containers-dark", "dark", []),
    ("containers-light", "light", []),
    ("containers-high-contrast", "high-contrast", []),
    ("containers-colorblind", "colorblind", []),
    ("containers-filtered", "dark", [_keys("slash", *"web", "enter")]),
    ("images-dark", "dark", [_keys("2")]),
    ("images-light", "light", [_keys("2")]),
    ("pull-dialog", "dark", [_keys("2"), sample_data.open_pull]),
    ("image-history", "dark", [_keys("2"), sample_data.open_history]),
    ("inspect", "dark", [sample_data.open_inspect]),
    ("confirm-remove", "dark", [_keys("d")]),
    ("help", "dark", [_keys("question_mark")]),
    ("engine-unreachable", "dark", [sample_data.unreachable]),
    ("engine-picker", "dark", [open_engines]),
    ("containers-stats-grouped", "dark", [sample_views.load, _keys("b")]),
    ("logs-merged", "dark", [sample_views.load, sample_views.open_logs]),
    ("logs-light", "light", [sample_views.load, sample_views.open_logs]),
    ("stats", "dark", [sample_views.load, sample_views.open_stats]),
    ("volumes", "dark", [sample_views.load, _keys("3")]),
    ("networks", "dark", [sample_views.load, _keys("4")]),
    ("inspect-tree-search", "dark", [sample_views.inspect_search]),
    ("terminals", "dark", [open_fixed_terminal]),
    ("registries", "dark", [sample_registries.open_registries]),
    (
        "registry-catalog",
        "dark",
        [sample_registries.open_registries, sample_registries.open_catalog],
    ),
    ("registry-manifest", "dark", [sample_registries.open_manifest]),
    ("registry-push", "dark", [sample_registries.open_registries, sample_registries.open_push]),
    ("image-scan", "dark", [_keys("2"), sample_registries.open_scan]),
    ("image-scan-light", "light", [_keys("2"), sample_registries.open_scan]),
]


async def shoot(name: str, theme: str, steps: list[Step], size: tuple[int, int]) -> str:
    app = PortsideApp(
        _no_engine,
        "dockerd",
        theme,
        engine_url="unix:///var/run/docker.sock",
        config=DashboardConfig(),
        clock=lambda: sample_data.NOW,
        autoconnect=False,
    )
    async with app.run_test(size=size) as pilot:
        await sample_data.load(pilot)
        for step in steps:
            await step(pilot)
        await sample_data.settle(pilot)
        return app.export_screenshot(title=f"portside: {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="120x36", help="terminal size, COLUMNSxROWS")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args(argv)
    try:
        width, height = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 120x36, not {args.size!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("NO_COLOR", None)  # pictures in colour whatever the caller's terminal
    for name, theme, steps in SHOTS:
        svg = asyncio.run(shoot(name, theme, steps, (width, height)))
        target = args.out / f"{name}.svg"
        target.write_text(svg, encoding="utf-8")
        print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
