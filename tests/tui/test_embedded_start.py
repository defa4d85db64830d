"""``portside`` on the embedded engine, as typed, on a real PTY: the dashboard draws its first
frame, starts the engine itself, connects, and stops the engine on quit; an engine that
cannot start is an unreachable screen saying why, not a crash."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.fixtures.terminal import Terminal

PORTSIDE = Path(sys.executable).with_name("portside")


def environment(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NO_COLOR", "PORTSIDE_CONFIG", "PORTSIDE_HOST", "DOCKER_HOST")
    }
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env.update(
        TERM="xterm-256color",
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no user config
        XDG_RUNTIME_DIR=str(run),  # where the engine's private socket dir goes
        PORTSIDE_CMDSERVER="0",
    )
    return env


def test_the_dashboard_starts_the_embedded_engine_and_stops_it(tmp_path: Path) -> None:
    env = environment(tmp_path)
    with Terminal(
        [str(PORTSIDE), "--root", str(tmp_path / "root")], env, rows=30, cols=110
    ) as term:
        screen = term.expect_text(b"Containers 0")
        assert b"embedded" in screen and b"unreachable" not in screen
        sockets = list((tmp_path / "run").glob("portside-*/engine.sock"))
        assert len(sockets) == 1  # the engine this dashboard started, on a private socket
        term.send(b"q")
        assert term.exit_code(timeout=60) == 0
    assert list((tmp_path / "run").glob("portside-*")) == []  # stopped, private dir removed
    assert (tmp_path / "root").is_dir()


def test_an_engine_that_cannot_start_is_shown_not_crashed(tmp_path: Path) -> None:
    env = environment(tmp_path)
    root = tmp_path / "not-a-dir"
    root.write_text("a file where the engine's root should be\n")
    with Terminal([str(PORTSIDE), "--root", str(root)], env, rows=30, cols=110) as term:
        screen = term.expect_text(b"did not start")
        assert b"Traceback" not in screen
        term.send(b"q")
        assert term.exit_code(timeout=60) == 0
    assert list((tmp_path / "run").glob("portside-*")) == []
