"""``portside VERB`` through the warm command server, as a user types it.

The real console script (``.venv/bin/portside``) runs against a real ``portside serve``; the
first verb starts a command server in a private directory, later verbs are forked from it.
Each test checks what the user sees: output on the right stream, exit codes, stdin, the
environment and working directory, signals forwarded to the container, a real terminal with
resize, and what happens when the client dies or the server idles out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.portside import PortsideFixture, start_portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.terminal import Terminal

BUSYBOX = "test/busybox:1"
REPO_ROOT = Path(__file__).resolve().parents[2]
PORTSIDE = Path(sys.executable).with_name("portside")
TIMEOUT = 60


@dataclass
class Warm:
    env: dict[str, str]
    server_dir: Path
    image: str

    def __call__(
        self, *args: str, input: str | None = None, cwd: Path = REPO_ROOT
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PORTSIDE), *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )

    def served_warm(self, *args: str) -> int | None:
        """Exit status of ARGS run by the command server, None if no server answered."""
        code = "import sys; from tui import cmdclient; print(cmdclient.run(sys.argv[1:]))"
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=True,
        )
        last = done.stdout.strip().splitlines()[-1]
        return None if last == "None" else int(last)

    def server_pid(self) -> int:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"tui.cmdserver" in cmdline and any(
                arg.startswith(str(self.server_dir).encode()) for arg in cmdline
            ):
                return int(entry.name)
        raise AssertionError("no command server is running")


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _sockets(directory: Path) -> list[Path]:
    return sorted(directory.glob("cmd-*.sock"))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def serve(pushed_images: dict[str, str]) -> Iterator[tuple[PortsideFixture, str]]:
    base = short_tempdir("ps-warm-")
    try:
        with start_portside(base) as ps:
            ref = pushed_images[BUSYBOX]
            ps.docker("pull", ref)
            yield ps, ref
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(ps: PortsideFixture, server_dir: Path, idle: str = "120") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "DOCKER_"))}
    env["PORTSIDE_HOST"] = ps.host
    env["PORTSIDE_CMDSERVER_DIR"] = str(server_dir)
    env["PORTSIDE_CMDSERVER_IDLE"] = idle
    env["PORTSIDE_CONFIG"] = str(server_dir.parent / "no-config.toml")
    env["DOCKER_CONFIG"] = str(server_dir.parent / "docker-config")
    return env


@pytest.fixture(scope="module")
def warm(serve: tuple[PortsideFixture, str]) -> Iterator[Warm]:
    ps, ref = serve
    base = short_tempdir("ps-cmds-")
    server_dir = base / "servers"
    tool = Warm(_env(ps, server_dir), server_dir, ref)
    first = tool("ps", "-a")  # no server yet: runs here and starts one
    assert first.returncode == 0, first.stderr
    assert _wait_for(lambda: server_dir.is_dir() and bool(_sockets(server_dir)))
    assert _wait_for(lambda: tool.served_warm("ps", "-q") == 0)
    try:
        yield tool
    finally:
        try:
            os.kill(tool.server_pid(), signal.SIGTERM)
        except (AssertionError, ProcessLookupError):
            pass
        _wait_for(lambda: not _sockets(server_dir), timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def test_the_server_directory_and_socket_are_private(warm: Warm) -> None:
    assert warm.server_dir.stat().st_mode & 0o777 == 0o700
    (sock,) = _sockets(warm.server_dir)
    assert sock.stat().st_mode & 0o777 == 0o600


def test_output_streams_and_exit_codes_match_a_cold_run(warm: Warm) -> None:
    argv = ("run", "--rm", warm.image, "sh", "-c", "echo out; echo err >&2; exit 3")
    hot = warm(*argv)
    assert (hot.returncode, hot.stdout, hot.stderr) == (3, "out\n", "err\n")
    cold_env = dict(warm.env, PORTSIDE_CMDSERVER="0")
    cold = subprocess.run(
        [str(PORTSIDE), *argv], env=cold_env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert (cold.returncode, cold.stdout, cold.stderr) == (3, "out\n", "err\n")
    assert warm.served_warm(*argv) == 3

    missing = warm("rm", f"no-such-{secrets.token_hex(3)}")
    assert missing.returncode == 1
    assert "No such container" in missing.stderr
    usage = warm("run")  # argparse's own error and status
    assert usage.returncode == 2
    assert "usage: portside run" in usage.stderr


def test_stdin_environment_and_working_directory_reach_the_verb(warm: Warm) -> None:
    echoed = warm("run", "-i", "--rm", warm.image, "cat", input="through stdin\n")
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == "through stdin\n"

    workdir = short_tempdir("ps-cwd-")
    try:
        (workdir / "vars.env").write_text("FROM_FILE=file-value\n")
        env = dict(warm.env, FROM_CLIENT=f"client-{secrets.token_hex(3)}")
        done = subprocess.run(
            [
                *(str(PORTSIDE), "run", "--rm", "--env-file", "vars.env", "-e", "FROM_CLIENT"),
                *(warm.image, "sh", "-c", 'echo "$FROM_FILE $FROM_CLIENT"'),
            ],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"file-value {env['FROM_CLIENT']}\n"


def test_sigterm_to_the_client_reaches_the_container(warm: Warm) -> None:
    script = 'trap "exit 7" TERM; echo ready; sleep 30 & wait'
    proc = subprocess.Popen(
        [str(PORTSIDE), "run", "--rm", warm.image, "sh", "-c", script],
        env=warm.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 7
    finally:
        proc.kill()
        proc.wait()


def test_run_it_in_a_real_terminal_with_resize(warm: Warm) -> None:
    term = Terminal([str(PORTSIDE), "run", "-it", "--rm", warm.image, "sh"], warm.env, REPO_ROOT)
    term.expect(b"# ")
    term.send(b"stty size; echo tty-$((6*7))\r")
    term.expect(b"tty-42")
    assert b"30 100" in term.out
    term.size(40, 120)  # the terminal sends SIGWINCH to the client, which forwards it
    os.kill(term.pid, signal.SIGWINCH)
    deadline = time.monotonic() + TIMEOUT
    while b"40 120" not in term.out and time.monotonic() < deadline:
        term.send(b"stty size\r")
        term.read_for(0.5)
    assert b"40 120" in term.out
    term.send(b"sleep 30\r")
    time.sleep(0.5)
    term.send(b"\x03")  # ctrl-c is a byte for the container's shell in raw mode
    term.send(b"echo still-$((1+1))\r")
    term.expect(b"still-2")
    term.send(b"exit 4\r")
    assert term.exit_code() == 4


def _holding(pid: int, pipe: int) -> list[int]:
    """Children of ``pid`` whose stdout is the pipe ``pipe`` (a descriptor of this process)."""
    want = os.readlink(f"/proc/self/fd/{pipe}")
    found = []
    for child in _children(pid):
        try:
            if os.readlink(f"/proc/{child}/fd/1") == want:
                found.append(child)
        except OSError:
            continue
    return found


def test_a_killed_client_ends_its_worker(warm: Warm) -> None:
    server = warm.server_pid()
    name = f"warm-{secrets.token_hex(3)}"
    proc = subprocess.Popen(
        [str(PORTSIDE), "run", "--name", name, warm.image, "sleep", "60"],
        env=warm.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        # the worker is the server's child that took the client's stdout
        assert _wait_for(lambda: len(_holding(server, proc.stdout.fileno())) == 1)
        (worker,) = _holding(server, proc.stdout.fileno())
        assert _wait_for(lambda: name in warm("ps").stdout)
        proc.kill()
        proc.wait()
        assert _wait_for(lambda: not Path(f"/proc/{worker}").exists()), "the worker lingers"
    finally:
        proc.kill()
        proc.wait()
        warm("rm", "-f", name)


def test_a_spare_worker_waits_for_the_next_command(warm: Warm) -> None:
    """The server keeps one worker forked ahead (it pre-faults while nothing runs): a
    command is taken by it, and another spare replaces it; commands run back to back or
    side by side are all served."""
    server = warm.server_pid()
    assert _wait_for(lambda: len(_children(server)) == 1)  # the spare, nothing else
    (spare,) = _children(server)
    assert warm("ps", "-q").returncode == 0
    assert _wait_for(lambda: not Path(f"/proc/{spare}").exists()), "it served the command"
    assert _wait_for(lambda: len(_children(server)) == 1)
    assert _children(server) != [spare]
    together = [
        subprocess.Popen(
            [str(PORTSIDE), "ps", "-q"],
            env=warm.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(6)
    ]
    assert [p.wait(timeout=TIMEOUT) for p in together] == [0] * 6
    assert all(warm.served_warm("ps", "-q") == 0 for _ in range(3))


def test_an_idle_server_exits_and_removes_its_socket(serve: tuple[PortsideFixture, str]) -> None:
    ps, _ref = serve
    base = short_tempdir("ps-idle-")
    try:
        server_dir = base / "servers"
        tool = Warm(_env(ps, server_dir, idle="1"), server_dir, "")
        assert tool("ps").returncode == 0
        assert _wait_for(lambda: server_dir.is_dir() and bool(_sockets(server_dir)))
        server = tool.server_pid()
        assert _wait_for(lambda: len(_children(server)) == 1)
        (spare,) = _children(server)
        assert _wait_for(lambda: not _sockets(server_dir), timeout=30), "still listening"
        for pid, what in ((server, "the server"), (spare, "its spare worker")):
            assert _wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists()), f"{what} lives"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_directory_others_can_enter_is_not_used(serve: tuple[PortsideFixture, str]) -> None:
    ps, _ref = serve
    base = short_tempdir("ps-open-")
    try:
        server_dir = base / "servers"
        server_dir.mkdir(mode=0o755)
        server_dir.chmod(0o755)
        tool = Warm(_env(ps, server_dir), server_dir, "")
        done = tool("ps", "-a")
        assert done.returncode == 0, done.stderr  # ran in the client's own process
        assert "CONTAINER ID" in done.stdout
        time.sleep(1)
        assert not _sockets(server_dir)
        assert tool.served_warm("ps") is None
    finally:
        shutil.rmtree(base, ignore_errors=True)
