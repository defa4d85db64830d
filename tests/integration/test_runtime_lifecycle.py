"""Container lifecycle with real crun and runc: create, start, exit codes, stop, kill,
restart, pause, rename, wait conditions, remove, --rm, persisted states, and monitors
forked by the warm monitor forker (detached, replaced when it dies, a fallback without
it, stopped with the engine while its monitors run on)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument, NotFound, PortsideError
from tests.fixtures.containers import Harness, open_harness, prepare_root
from tests.integration.test_runtime_exec import run_exec

RUNTIMES = ["crun", "runc"]


@pytest.fixture(scope="session")
def run_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("run") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


@pytest.fixture(params=RUNTIMES)
async def h(request: pytest.FixtureRequest, run_root: Path):
    async with open_harness(run_root, request.param) as harness:
        yield harness


async def test_exit_code_and_output(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    info = await h.containers.inspect(cid)
    assert info["State"]["Status"] == "created"
    waiter = h.containers.waiter(cid, "next-exit")
    assert await h.containers.start(cid) is True
    assert (await waiter)["StatusCode"] == 3
    info = await h.containers.inspect(cid)
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 3
    assert info["HostConfig"]["Runtime"] == h.runtime
    assert await h.output(cid) == "hello\noops\n"
    lines = [json.loads(ln) for ln in Path(info["LogPath"]).read_text().splitlines()]
    assert [(e["stream"], e["log"]) for e in lines] == [("stdout", "hello\n"), ("stderr", "oops\n")]
    assert all(e["time"].endswith("Z") for e in lines)


async def test_state_persisted_on_disk(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sleep", "60"])
    record = json.loads((h.engine.config.root / "containers" / cid / "container.json").read_text())
    assert record["State"]["Status"] == "running"
    assert record["State"]["Pid"] > 0
    await h.containers.kill(cid)
    record = json.loads((h.engine.config.root / "containers" / cid / "container.json").read_text())
    assert record["State"]["Status"] == "exited"
    assert record["State"]["ExitCode"] == 137


async def test_stop_sends_signal_then_kill(h: Harness, busybox: str) -> None:
    # sh as pid 1 ignores SIGTERM without a handler: stop must fall back to SIGKILL
    cid = await h.run(busybox, ["sh", "-c", "sleep 1000"])
    assert await h.containers.stop(cid, timeout=1) is True
    info = await h.containers.inspect(cid)
    assert info["State"]["ExitCode"] == 137
    assert await h.containers.stop(cid) is False  # not modified
    # a trap makes SIGTERM a clean exit
    cid2 = await h.run(busybox, ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
    await asyncio.sleep(0.3)
    await h.containers.stop(cid2, timeout=20)
    assert (await h.containers.inspect(cid2))["State"]["ExitCode"] == 42


async def test_stop_signal_option(h: Harness, busybox: str) -> None:
    cid = await h.run(
        busybox,
        ["sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done"],
        StopSignal="SIGUSR1",
    )
    await asyncio.sleep(0.3)
    await h.containers.stop(cid, timeout=20)
    assert (await h.containers.inspect(cid))["State"]["ExitCode"] == 7


async def test_kill_any_signal(h: Harness, busybox: str) -> None:
    cid = await h.run(
        busybox, ["sh", "-c", "trap 'echo got-hup' HUP; while true; do sleep 0.1; done"]
    )
    await asyncio.sleep(0.3)
    await h.containers.kill(cid, "HUP")
    for _ in range(100):
        if "got-hup" in await h.output(cid):
            break
        await asyncio.sleep(0.1)
    assert "got-hup" in await h.output(cid)
    assert (await h.containers.inspect(cid))["State"]["Running"] is True
    await h.containers.kill(cid, signal.SIGKILL)
    assert (await h.containers.inspect(cid))["State"]["ExitCode"] == 137
    with pytest.raises(Conflict):
        await h.containers.kill(cid)
    with pytest.raises(InvalidArgument):
        await h.containers.kill(cid, "SIGNOPE")


async def test_restart_and_pause(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sleep", "1000"])
    pid1 = (await h.containers.inspect(cid))["State"]["Pid"]
    await h.containers.pause(cid)
    info = await h.containers.inspect(cid)
    assert info["State"]["Status"] == "paused" and info["State"]["Paused"] is True
    assert (
        Path(f"/proc/{pid1}/status").read_text().count("State:\tD")
        + Path(f"/proc/{pid1}/status").read_text().count("State:\tS")
        == 1
    )
    with pytest.raises(Conflict):
        await h.containers.pause(cid)
    with pytest.raises(Conflict):
        await h.containers.start(cid)
    await h.containers.unpause(cid)
    with pytest.raises(Conflict):
        await h.containers.unpause(cid)
    await h.containers.restart(cid, timeout=0)
    info = await h.containers.inspect(cid)
    assert info["State"]["Running"] is True
    assert info["State"]["Pid"] != pid1


async def test_rename(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["true"], name="first-name")
    other = await h.create(busybox, ["true"], name="second-name")
    await h.containers.rename("first-name", "renamed")
    assert (await h.containers.inspect("renamed"))["Id"] == cid
    with pytest.raises(NotFound):
        await h.containers.inspect("first-name")
    with pytest.raises(Conflict):
        await h.containers.rename(cid, "second-name")
    with pytest.raises(Conflict):
        await h.create(busybox, ["true"], name="renamed")
    with pytest.raises(InvalidArgument):
        await h.containers.rename(other, "bad name!")


async def test_wait_conditions(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["sh", "-c", "exit 5"])
    # not-running on a created container answers at once
    assert (await h.containers.wait(cid, "not-running"))["StatusCode"] == 0
    next_exit = h.containers.waiter(cid, "next-exit")
    removed = h.containers.waiter(cid, "removed")
    await h.containers.start(cid)
    assert (await next_exit)["StatusCode"] == 5
    assert not removed.done()
    await h.containers.remove(cid)
    assert (await removed)["StatusCode"] == 5
    with pytest.raises(InvalidArgument):
        h.containers.waiter(cid, "whenever")


async def test_remove_running_needs_force(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sleep", "1000"])
    with pytest.raises(Conflict, match="Stop the container"):
        await h.containers.remove(cid)
    await h.containers.remove(cid, force=True)
    assert not (h.engine.config.root / "containers" / cid).exists()
    with pytest.raises(NotFound):
        await h.containers.inspect(cid)
    assert await h.containers.list_containers(all=True, filters={"id": [cid]}) == []


async def test_a_removal_that_cannot_finish_leaves_a_dead_container(
    h: Harness, busybox: str
) -> None:
    """docker's "dead": something holds the container's directory (here a mount inside it),
    so rm fails with the reason, the container stays listed as dead and cannot start, and a
    later rm finishes once the holder is gone."""
    cid = await h.create(busybox, ["true"])
    holder = h.engine.config.root / "containers" / cid / "held"
    holder.mkdir()
    await asyncio.to_thread(
        subprocess.run, ["mount", "-t", "tmpfs", "tmpfs", str(holder)], check=True
    )
    try:
        with pytest.raises(PortsideError, match=r"unable to remove filesystem.*dead"):
            await h.containers.remove(cid, force=True)
        info = await h.containers.inspect(cid)
        assert info["State"]["Status"] == "dead" and info["State"]["Dead"] is True
        (listed,) = await h.containers.list_containers(all=True, filters={"id": [cid]})
        assert listed["State"] == "dead" and listed["Status"] == "Dead"
        with pytest.raises(Conflict, match="marked for removal"):
            await h.containers.start(cid)
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(holder)], check=False)
    await h.containers.remove(cid, force=True)
    assert not (h.engine.config.root / "containers" / cid).exists()
    with pytest.raises(NotFound):
        await h.containers.inspect(cid)


async def test_monitors_run_under_a_python_of_the_engines_version(h: Harness, busybox: str) -> None:
    """The distribution's python3 (a PGO build, quicker to start) when it is of the engine's
    own version, as on Debian 12; else the engine's interpreter."""
    cid = await h.run(busybox, ["sleep", "1000"])
    try:
        monitor = h.containers._records[cid].MonitorPid
        exe = os.path.realpath(f"/proc/{monitor}/exe")
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        system = os.path.realpath("/usr/bin/python3")
        expected = system if os.path.basename(system) == version else sys.executable
        assert exe == os.path.realpath(expected)
    finally:
        await h.containers.remove(cid, force=True)


async def test_auto_remove(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["sh", "-c", "exit 2"], HostConfig={"AutoRemove": True})
    removed = h.containers.waiter(cid, "removed")
    await h.containers.start(cid)
    assert (await removed)["StatusCode"] == 2
    assert not (h.engine.config.root / "containers" / cid).exists()


async def test_list_and_filters(h: Harness, busybox: str) -> None:
    running = await h.run(busybox, ["sleep", "1000"], Labels={"team": "a"})
    stopped = await h.create(busybox, ["true"], Labels={"team": "b"})
    ids = [c["Id"] for c in await h.containers.list_containers()]
    assert running in ids and stopped not in ids
    every = {c["Id"]: c for c in await h.containers.list_containers(all=True)}
    assert every[stopped]["State"] == "created" and every[stopped]["Status"] == "Created"
    assert every[running]["Status"].startswith("Up ")
    assert every[running]["Command"] == "sleep 1000"
    labelled = await h.containers.list_containers(all=True, filters={"label": ["team=b"]})
    assert [c["Id"] for c in labelled] == [stopped]
    by_status = await h.containers.list_containers(all=True, filters={"status": ["created"]})
    assert stopped in [c["Id"] for c in by_status] and running not in [c["Id"] for c in by_status]


async def test_start_failure_reports_runtime_error(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["/no/such/binary"])
    with pytest.raises(Exception) as info:
        await h.containers.start(cid)
    err = info.value
    assert getattr(err, "exit_code", None) == 127
    assert "no/such/binary" in str(err)
    state = (await h.containers.inspect(cid))["State"]
    assert state["ExitCode"] == 127 and "no/such/binary" in state["Error"]
    assert state["Running"] is False


async def test_create_errors(h: Harness, busybox: str) -> None:
    with pytest.raises(NotFound, match="No such image"):
        await h.create("127.0.0.1:1/none/such:1", ["true"])
    with pytest.raises(InvalidArgument, match="Minimum memory"):
        await h.create(busybox, ["true"], HostConfig={"Memory": 1024})
    with pytest.raises(InvalidArgument, match="restart"):
        await h.create(busybox, ["true"], HostConfig={"RestartPolicy": {"Name": "sometimes"}})
    with pytest.raises(InvalidArgument, match="--restart and --rm"):
        await h.create(
            busybox, ["true"], HostConfig={"AutoRemove": True, "RestartPolicy": {"Name": "always"}}
        )
    with pytest.raises(NotFound, match="network no-such-net not found"):
        await h.create(busybox, ["true"], HostConfig={"NetworkMode": "no-such-net"})
    with pytest.raises(InvalidArgument, match="absolute"):
        await h.create(busybox, ["true"], WorkingDir="relative/dir")
    assert await h.containers.list_containers(all=True, filters={"ancestor": [busybox]}) == []


def _status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in /proc/{pid}/status")


async def test_monitor_process(h: Harness, busybox: str) -> None:
    import os

    cid = await h.run(busybox, ["sleep", "1000"])
    rec = h.containers._records[cid]
    monitor, init = rec.MonitorPid, rec.State.Pid
    # detached: not our child, its own session, a subreaper whose child is the container init
    assert int(_status_field(monitor, "PPid")) != os.getpid()
    assert os.getsid(monitor) != os.getsid(0)
    assert int(_status_field(init, "PPid")) == monitor
    # small: the monitor stays well under 15 MB resident
    rss_kb = int(_status_field(monitor, "VmRSS").split()[0])
    assert rss_kb < 15 * 1024, rss_kb
    # the container's process starts with default signal dispositions and no blocked signals
    assert int(_status_field(init, "SigIgn"), 16) == 0
    assert int(_status_field(init, "SigBlk"), 16) == 0
    # only what it needs open: no engine fds leaked into the monitor
    names = {os.readlink(f"/proc/{monitor}/fd/{n}") for n in os.listdir(f"/proc/{monitor}/fd")}
    assert not any(n.endswith((".db", ".db-wal", "metadata.db")) for n in names), names


# -- monitors forked by the warm monitor forker ------------------------------------------
# The forker is found through the container service (``monitors``); monitors and forkers
# are told apart by their command lines in /proc.


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
    run_root: Path, busybox: str
) -> None:
    async with open_harness(run_root, "crun") as h:
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
