"""Helpers for dashboard tests: bounded waits on a running app, connectors, CLI calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiodocker
from textual.pilot import Pilot

from tui.app import PortsideApp


async def wait_for(
    pilot: Pilot[Any], predicate: Callable[[], object], what: str, timeout: float = 60.0
) -> None:
    """Let the app run until ``predicate()`` is true; fail with ``what`` after ``timeout`` s.

    The bound only stops a broken test from hanging: nothing asserts how fast it happened.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await pilot.pause(0.05)


def connector_for(url: str) -> Callable[[], Any]:
    """The async factory the app expects: a new aiodocker client on ``url`` per connection."""

    async def connect() -> aiodocker.Docker:
        return aiodocker.Docker(url=url)

    return connect


def dashboard(url: str, **kwargs: Any) -> PortsideApp:
    """A dashboard on the engine at ``url`` (events drive it: reconciliation is rare)."""
    kwargs.setdefault("refresh_interval", 600.0)
    kwargs.setdefault("retry_delays", (0.2, 0.4))
    return PortsideApp(connector_for(url), "dockerd", engine_url=url, **kwargs)


async def cli(dockerd: Any, *args: str, check: bool = True) -> str:
    """``docker ARGS`` against the fixture daemon, off the event loop; returns stdout."""
    result = await asyncio.to_thread(dockerd.docker, *args, check=check)
    return result.stdout.strip()


def cell_text(app: PortsideApp, table_id: str, row_key: str, column: str) -> str:
    table = app.main.query_one(f"#{table_id}")
    return str(table.get_cell(row_key, column))  # type: ignore[attr-defined]
