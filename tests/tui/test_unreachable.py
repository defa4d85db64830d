"""An engine that is missing, refuses, appears, vanishes and returns: the dashboard says why,
how to fix it, and reconnects by itself (the engine behind the relay is the real dockerd)."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tui.helpers import dashboard, wait_for
from tests.tui.relay import UnixRelay
from tui.screens.unreachable import UnreachableScreen
from tui.widgets.header import CONNECTED, UNREACHABLE


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pt-", dir="/tmp"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def problem(app: Any) -> str:
    screen = app.screen
    return screen.problem.reason if isinstance(screen, UnreachableScreen) else ""


async def test_missing_refused_then_reconnects(dockerd: Any, busybox: str, sock_dir: Path) -> None:
    path = sock_dir / "engine.sock"
    app = dashboard(f"unix://{path}")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, UnreachableScreen), "why screen")
        screen = app.screen
        assert isinstance(screen, UnreachableScreen)
        assert screen.problem.reason == f"no engine socket at {path}"
        assert "--host" in screen.problem.hint and "DOCKER_HOST" in screen.problem.hint
        assert app.main.header.status == UNREACHABLE

        # A socket file nobody listens on: "refused", with its own advice.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        try:
            await wait_for(
                pilot, lambda: problem(app).startswith("nothing is listening"), "refused"
            )
            assert "start it again" in app.screen.problem.hint  # type: ignore[attr-defined]
        finally:
            stale.close()
            path.unlink()

        relay = UnixRelay(path, dockerd.socket_path)
        await relay.start()
        try:
            await wait_for(pilot, lambda: app.status == CONNECTED, "connected through the relay")
            await wait_for(pilot, lambda: app.screen is app.main, "why screen closed")
            assert app.main.header.info is not None
            await wait_for(pilot, lambda: app.main.header.counts.images > 0, "data loaded")

            # The engine vanishes: the event stream ends and the dashboard notices.
            await relay.stop()
            await wait_for(pilot, lambda: isinstance(app.screen, UnreachableScreen), "lost")
            assert app.docker is None
            await wait_for(pilot, lambda: problem(app).startswith("no engine socket"), "reason")

            # ... and comes back: reconnect without any key press.
            await relay.start()
            await wait_for(pilot, lambda: app.status == CONNECTED, "reconnected")
            await wait_for(pilot, lambda: app.screen is app.main, "why screen closed again")
        finally:
            await relay.stop()


async def test_retry_key_skips_the_backoff(dockerd: Any, sock_dir: Path) -> None:
    path = sock_dir / "engine.sock"
    app = dashboard(f"unix://{path}", retry_delays=(120.0,))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, UnreachableScreen), "why screen")
        assert app.screen.retry_in == 120.0  # type: ignore[attr-defined]
        relay = UnixRelay(path, dockerd.socket_path)
        await relay.start()
        try:
            await pilot.press("r")
            # Without the key the next attempt would be two minutes away.
            await wait_for(pilot, lambda: app.status == CONNECTED, "connected", timeout=60)
        finally:
            await relay.stop()


async def test_bad_address_is_explained(sock_dir: Path) -> None:
    app = dashboard("nope://engine")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, UnreachableScreen), "why screen")
        assert app.screen.problem.reason.startswith("bad engine address 'nope://engine'")  # type: ignore[attr-defined]
        assert "unix:///" in app.screen.problem.hint  # type: ignore[attr-defined]
        await pilot.press("q")
    assert app.return_code == 0
