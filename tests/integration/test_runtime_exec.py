"""exec in running containers with real crun and runc: output and exit codes, ``-e``,
``-u``, ``-w``, ``--privileged``, TTY sessions with resize, stdin, detached execs, and the
errors for stopped or paused containers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.containers import ContainerStartError
from engine.errors import Conflict, InvalidArgument, NotFound
from tests.fixtures.containers import Harness, open_harness, prepare_root
from tests.integration.test_runtime_attach import Reader

TIMEOUT = 30


@pytest.fixture(scope="module")
def exec_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("exec") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, exec_root: Path):
    async with open_harness(exec_root, request.param) as harness:
        yield harness


@pytest.fixture
async def running(h: Harness, pushed_images: dict[str, str]) -> str:
    return await h.run(pushed_images["test/busybox:1"], ["sleep", "1000"], Env=["FROM_RUN=1"])


async def run_exec(h: Harness, cid: str, cmd: list[str], **config) -> tuple[int, bytes, bytes]:
    eid = (
        await h.containers.exec_create(
            cid, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, **config}
        )
    )["Id"]
    att = await h.containers.exec_start(eid)
    assert att is not None
    out, err = b"", b""
    async for stream, data in att.output():
        if stream == "stdout":
            out += data
        else:
            err += data
    code = await asyncio.wait_for(h.containers.exec_wait(eid), TIMEOUT)
    assert code is not None
    info = await h.containers.exec_inspect(eid)
    assert info["ExitCode"] == code and info["Running"] is False
    return code, out, err


async def test_exec_output_and_exit_code(h: Harness, running: str) -> None:
    code, out, err = await run_exec(h, running, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (code, out, err) == (4, b"out\n", b"err\n")
    eid = (await h.containers.exec_create(running, {"Cmd": ["/no/such/thing"]}))["Id"]
    with pytest.raises(ContainerStartError, match="/no/such/thing") as info:
        await h.containers.exec_start(eid)
    assert info.value.exit_code == 127 and "\n" not in str(info.value)
    assert (await h.containers.exec_inspect(eid))["ExitCode"] == 127


async def test_exec_env_user_workdir(h: Harness, running: str) -> None:
    code, out, _ = await run_exec(
        h,
        running,
        ["sh", "-c", "echo $FROM_RUN $EXTRA; id -u; pwd"],
        Env=["EXTRA=yes"],
        User="app",
        WorkingDir="/home/app",
    )
    assert code == 0
    assert out.decode().split() == ["1", "yes", "1000", "/home/app"]
    code, out, _ = await run_exec(h, running, ["id", "-u"], User="65534:65534")
    assert out.strip() == b"65534"


async def test_exec_privileged(h: Harness, running: str) -> None:
    _, plain, _ = await run_exec(h, running, ["grep", "CapEff", "/proc/self/status"])
    _, priv, _ = await run_exec(
        h, running, ["grep", "CapEff", "/proc/self/status"], Privileged=True
    )
    assert int(priv.split()[1], 16) > int(plain.split()[1], 16)
    assert int(plain.split()[1], 16) & (1 << 21) == 0  # no CAP_SYS_ADMIN without it


async def test_exec_tty_and_resize(h: Harness, running: str) -> None:
    eid = (
        await h.containers.exec_create(
            running,
            {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True},
        )
    )["Id"]
    att = await h.containers.exec_start(eid, console_size=(20, 70))
    assert att is not None
    reader = Reader(att)
    await att.write(b"stty size\n")
    await reader.until(b"20 70")
    await h.containers.exec_resize(eid, 40, 120)
    await att.write(b"stty size; tty\n")
    await reader.until(b"40 120")
    await reader.until(b"/dev/pts/")
    await att.write(b"exit 3\n")
    await reader.end()
    assert await h.containers.exec_wait(eid) == 3
    info = await h.containers.exec_inspect(eid)
    assert info["ProcessConfig"]["tty"] is True and info["ProcessConfig"]["entrypoint"] == "sh"


async def test_a_resize_sent_while_the_exec_starts_waits_for_it(h: Harness, running: str) -> None:
    """Clients (the docker CLI, aiodocker sessions) resize straight after the start request,
    before the process runs: dockerd waits for it, so must we (it answered 409)."""
    eid = (
        await h.containers.exec_create(
            running,
            {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True},
        )
    )["Id"]
    starting = asyncio.ensure_future(h.containers.exec_start(eid))
    await asyncio.sleep(0)  # the start is under way, the process not running yet
    assert not (await h.containers.exec_inspect(eid))["Running"]
    await h.containers.exec_resize(eid, 33, 111)
    att = await starting
    assert att is not None
    reader = Reader(att)
    await att.write(b"stty size\n")
    await reader.until(b"33 111")
    await att.write(b"exit\n")
    await reader.end()


async def test_exec_stdin(h: Harness, running: str) -> None:
    eid = (
        await h.containers.exec_create(
            running, {"Cmd": ["wc", "-c"], "AttachStdin": True, "AttachStdout": True}
        )
    )["Id"]
    att = await h.containers.exec_start(eid)
    assert att is not None
    reader = Reader(att)
    await att.write(b"12345")
    await att.close_stdin()
    assert (await reader.end()).strip() == b"5"
    assert await h.containers.exec_wait(eid) == 0


async def test_exec_detached(h: Harness, running: str) -> None:
    eid = (
        await h.containers.exec_create(
            running, {"Cmd": ["sh", "-c", "echo detached > /tmp/marker"]}
        )
    )["Id"]
    assert await h.containers.exec_start(eid, detach=True) is None
    assert await h.containers.exec_wait(eid) == 0
    code, out, _ = await run_exec(h, running, ["cat", "/tmp/marker"])
    assert code == 0
    assert out == b"detached\n"
    with pytest.raises(Conflict):
        await h.containers.exec_start(eid)


async def test_exec_errors(h: Harness, running: str, pushed_images: dict[str, str]) -> None:
    with pytest.raises(NotFound):
        await h.containers.exec_inspect("nope")
    with pytest.raises(InvalidArgument):
        await h.containers.exec_create(running, {"Cmd": []})
    with pytest.raises(InvalidArgument, match="/proc"):
        await h.containers.exec_create(running, {"Cmd": ["pwd"], "WorkingDir": "/proc/self/fd/5"})
    await h.containers.pause(running)
    with pytest.raises(Conflict, match="paused"):
        await h.containers.exec_create(running, {"Cmd": ["true"]})
    await h.containers.unpause(running)
    stopped = await h.create(pushed_images["test/busybox:1"], ["true"])
    with pytest.raises(Conflict, match="not running"):
        await h.containers.exec_create(stopped, {"Cmd": ["true"]})
