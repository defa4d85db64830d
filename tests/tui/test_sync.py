"""EngineSync against a real dockerd: one full listing, then targeted refreshes from events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiodocker
from textual.message import Message

from tests.tui.helpers import cli, connector_for
from tui.messages import ContainersUpdated, EngineConnected, ImagesUpdated
from tui.sync import EngineSync, classify_event


async def until(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def test_events_refresh_only_what_changed(dockerd: Any, busybox: str, scratch: str) -> None:
    seen: list[Message] = []
    sync = EngineSync(
        connector_for(dockerd.host),
        seen.append,
        name="dockerd",
        url=dockerd.host,
        refresh_interval=600.0,
    )
    task = asyncio.create_task(sync.run())
    try:
        await until(lambda: any(isinstance(m, ImagesUpdated) for m in seen), "first listing")
        assert isinstance(seen[1], EngineConnected)
        full = [m for m in seen if isinstance(m, ContainersUpdated)]
        assert len(full) == 1 and full[0].complete
        seen.clear()

        cid = await cli(
            dockerd, "run", "-d", "--init", "--name", f"{scratch}s", busybox, "/bin/sleep", "3600"
        )

        def rows_for(cid: str) -> list[Any]:
            return [
                r for m in seen if isinstance(m, ContainersUpdated) for r in m.rows if r.id == cid
            ]

        await until(lambda: any(r.state == "running" for r in rows_for(cid)), "running row")
        updates = [m for m in seen if isinstance(m, ContainersUpdated)]
        # Targeted: only the changed container, never the whole list.
        assert all(not m.complete and {r.id for r in m.rows} == {cid} for m in updates)

        await cli(dockerd, "rm", "-f", cid)
        await until(
            lambda: any(isinstance(m, ContainersUpdated) and cid in m.removed for m in seen),
            "removal",
        )
        # Tagging an image is an image event: the image list is sent again.
        seen.clear()
        await cli(dockerd, "tag", busybox, f"{scratch}tag:1")
        await until(
            lambda: any(
                isinstance(m, ImagesUpdated)
                and any(r.repository == f"{scratch}tag" for r in m.rows)
                for m in seen
            ),
            "image list after tag",
        )
        assert sync.docker is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sync.docker is None


async def test_real_events_are_classified(dockerd: Any, busybox: str, scratch: str) -> None:
    async with aiodocker.Docker(url=dockerd.host) as docker:
        subscriber = docker.events.subscribe()
        await asyncio.sleep(0.2)  # let the subscription reach the daemon
        cid = await cli(
            dockerd, "run", "-d", "--init", "--name", f"{scratch}e", busybox, "/bin/sleep", "3600"
        )
        await cli(dockerd, "exec", cid, "true")
        await cli(dockerd, "tag", busybox, f"{scratch}ev:1")
        events: list[dict[str, Any]] = []
        while not any(e.get("Action") == "tag" for e in events):
            events.append(await asyncio.wait_for(subscriber.get(), 30))
        await docker.events.stop()
    by_action = {e["Action"].split(":")[0]: classify_event(e) for e in events}
    assert by_action["create"] == (cid, False)
    assert by_action["start"] == (cid, False)
    assert by_action["exec_create"] == (None, False)
    assert by_action["exec_die"] == (None, False)
    assert by_action["tag"] == (None, True)
    network = next((e for e in events if e.get("Type") == "network"), None)
    if network is not None:
        assert classify_event(network) == (None, False)
