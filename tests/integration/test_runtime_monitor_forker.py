"""Monitors forked by the warm monitor forker: what a container start gets from it and what
happens when it is gone.

Real engine, real crun and runc. The forker is found through the container service
(``monitors``); monitors and forkers are told apart by their command lines in /proc.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.fixtures.containers import Harness, open_harness, prepare_root
from tests.integration.test_runtime_exec import run_exec

RUNTIMES = ["crun", "runc"]


@pytest.fixture(scope="session")
def forker_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("forker") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


@pytest.fixture(params=RUNTIMES)
async def h(request: pytest.FixtureRequest, forker_root: Path):
    async with open_harness(forker_root, request.param) as harness:
        yield harness


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _forker_pid(h: Harness) -> int:
    proc = h.containers.monitors._proc
    assert proc is not None and proc.returncode is None
    return proc.pid


async def test_a_start_is_forked_and_the_monitor_is_detached(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sleep", "60"])
    info = await h.containers.inspect(cid)
    forker = _forker_pid(h)
    monitor = h.containers._records[cid].MonitorPid
    assert any(arg.endswith("monitor_forker.py") for arg in _cmdline(monitor))
    assert _ppid(monitor) != forker  # the forker's child exited: not its child
    # a session of its own (its first process's), as a detached start
    assert os.getsid(monitor) not in (os.getsid(0), os.getsid(forker))
    assert Path(f"/proc/{monitor}/cwd").resolve() == h.engine.config.root / "containers" / cid
    assert os.readlink(f"/proc/{monitor}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{monitor}/fd/2").endswith("monitor.log")
    assert _ppid(info["State"]["Pid"]) == monitor  # the monitor reaps the container
    # the forker holds only its stdio and its control socket between starts
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{forker}/fd"))[:3] == [0, 1, 2]
    assert len(os.listdir(f"/proc/{forker}/fd")) == 4
    await h.containers.kill(cid)
    waited = await h.containers.wait(cid, "not-running")
    assert waited["StatusCode"] == 137


async def test_exec_goes_through_the_forker_too(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sleep", "60"])
    forker = _forker_pid(h)
    code, out, _err = await run_exec(h, cid, ["sh", "-c", "echo from exec; exit 4"])
    assert (code, out) == (4, b"from exec\n")
    assert _forker_pid(h) == forker  # the same warm forker served the exec
    await h.containers.kill(cid)


async def test_a_killed_forker_is_replaced(h: Harness, busybox: str) -> None:
    first = await h.run(busybox, ["sleep", "60"])
    forker = _forker_pid(h)
    os.kill(forker, signal.SIGKILL)
    await h.containers.monitors._proc.wait()  # type: ignore[union-attr]
    second = await h.run(busybox, ["sleep", "60"])
    assert _forker_pid(h) != forker
    assert (await h.containers.inspect(first))["State"]["Running"]  # its monitor lives on
    assert (await h.containers.inspect(second))["State"]["Running"]
    for cid in (first, second):
        await h.containers.kill(cid)


async def test_without_a_forker_a_start_falls_back(h: Harness, busybox: str) -> None:
    await h.containers.monitors.close()
    cid = await h.run(busybox, ["sh", "-c", "echo plain; sleep 60"])
    monitor = h.containers._records[cid].MonitorPid
    assert any(arg.endswith("monitor.py") for arg in _cmdline(monitor))
    assert h.containers.monitors._proc is None
    await h.containers.kill(cid)
    assert await h.output(cid) == "plain\n"


async def test_closing_the_engine_stops_the_forker_not_the_monitors(
    forker_root: Path, busybox: str
) -> None:
    async with open_harness(forker_root, "crun") as h:
        cid = await h.run(busybox, ["sleep", "60"])
        forker = _forker_pid(h)
        monitor = h.containers._records[cid].MonitorPid
        await h.containers.close()
        assert not Path(f"/proc/{forker}").exists() or _state(forker) == "Z"
        assert Path(f"/proc/{monitor}").exists() and _state(monitor) != "Z"
        os.kill(monitor, 0)
        await h.containers.monitors.close()  # closing twice is harmless
        assert h.containers.monitors._proc is None
    # the harness's own teardown removes the container


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]
