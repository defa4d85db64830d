"""``run_dashboard`` as the ``portside`` command runs it: a real process on a real PTY,
drawing a real dockerd's containers, quitting on ``q`` with exit code 0."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from tests.tui.helpers import cli

ROOT = Path(__file__).resolve().parents[2]
CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")

SCRIPT = (
    "import sys; from tui.app import run_dashboard; "
    "raise SystemExit(run_dashboard(sys.argv[1], engine_name='dockerd', theme=sys.argv[2]))"
)


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def read_until(master: int, needle: bytes, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Screen text (escape sequences removed) once ``needle`` shows up."""
    raw = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                raw += os.read(master, 65536)
            except OSError:
                break
            if needle in CSI.sub(b"", raw):
                return CSI.sub(b"", raw)
        elif proc.poll() is not None:
            break
    raise AssertionError(f"{needle!r} never appeared; output ends {CSI.sub(b'', raw)[-600:]!r}")


async def test_dashboard_process_on_a_pty(
    dockerd: Any, busybox: str, scratch: str, tmp_path: Path
) -> None:
    name = f"{scratch}pty"
    await cli(dockerd, "run", "-d", "--init", "--name", name, busybox, "/bin/sleep", "3600")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PORTSIDE_CONFIG")}
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(tmp_path))  # no user config
    proc, master = start([dockerd.host, "light"], env)
    try:
        screen = read_until(master, name.encode(), proc, timeout=60)
        assert b"1 Containers" in screen and b"dockerd" in screen
        os.write(master, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_bad_theme_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTSIDE_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "unix:///nonexistent.sock", "neon"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("portside: unknown theme 'neon'")
    assert result.stderr.count("\n") == 1
