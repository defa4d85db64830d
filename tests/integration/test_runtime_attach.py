"""Attach to containers with real crun and runc: interactive TTY sessions on the PTY the
runtime creates (input echoed, resize seen by ``stty``, exit code at the end), several
clients at once, docker's detach keys, stdin pipes closed by the client, and log replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.runtime.attach import Attachment
from tests.fixtures.containers import Harness, open_harness, prepare_root

TIMEOUT = 30


@pytest.fixture(scope="module")
def att_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("attach") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, att_root: Path):
    async with open_harness(att_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


class Reader:
    """Collects an attachment's output in the background."""

    def __init__(self, att: Attachment) -> None:
        self.att = att
        self.data = b""
        self.changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for _, chunk in self.att.output():
            self.data += chunk
            self.changed.set()
        self.changed.set()

    async def until(self, needle: bytes) -> bytes:
        async def wait() -> None:
            while needle not in self.data:
                if self.task.done():
                    raise AssertionError(f"output ended without {needle!r}: {self.data!r}")
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT)
        return self.data

    async def end(self) -> bytes:
        await asyncio.wait_for(self.task, TIMEOUT)
        return self.data


TTY = {"Tty": True, "OpenStdin": True, "AttachStdin": True, "StdinOnce": True}


async def test_interactive_tty_session(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["sh"], **TTY)
    att = await h.containers.attach(cid, stdin=True)  # before start: nothing is missed
    reader = Reader(att)
    await h.containers.start(cid)
    await att.write(b"echo $((6*7))\n")
    await reader.until(b"42\r\n")
    await h.containers.resize(cid, 31, 101)
    await att.write(b"stty size\n")
    await reader.until(b"31 101")
    await att.write(b"exit 5\n")
    await reader.end()
    assert att.exit is not None and att.exit["ExitCode"] == 5
    assert (await h.containers.wait(cid))["StatusCode"] == 5
    assert b"echo $((6*7))" in reader.data  # the terminal echoed our input


async def test_console_size_at_start(h: Harness, busybox: str) -> None:
    cid = await h.create(busybox, ["stty", "size"], Tty=True, HostConfig={"ConsoleSize": [24, 90]})
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert (await h.output(cid)).strip() == "24 90"


async def test_several_clients_at_once(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh"], **TTY)
    a = await h.containers.attach(cid, stdin=True)
    b = await h.containers.attach(cid, stdin=False)
    ra, rb = Reader(a), Reader(b)
    await a.write(b"echo shared-$((1+1))\n")
    await ra.until(b"shared-2")
    await rb.until(b"shared-2")
    await a.write(b"exit\n")
    await ra.end()
    await rb.end()
    assert a.exit == b.exit and a.exit is not None and a.exit["ExitCode"] == 0


async def test_detach_keys(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh"], **TTY)
    att = await h.containers.attach(cid, stdin=True)
    reader = Reader(att)
    await att.write(b"echo before\n")
    await reader.until(b"before\r\n")
    await att.write(b"\x10\x11")  # ctrl-p ctrl-q
    assert att.detached
    await reader.end()
    assert att.exit is None
    assert (await h.containers.inspect(cid))["State"]["Running"] is True
    # a lone ctrl-p followed by something else is passed through; custom keys work
    again = await h.containers.attach(cid, stdin=True, detach_keys="ctrl-a,x")
    reader = Reader(again)
    await again.write(b"\x10echo after\n")
    await reader.until(b"after\r\n")
    await again.write(b"\x01x")
    assert again.detached
    await reader.end()
    assert (await h.containers.inspect(cid))["State"]["Running"] is True


async def test_stdin_pipe_without_tty(h: Harness, busybox: str) -> None:
    cid = await h.create(
        busybox, ["sh", "-c", "cat; echo done >&2"], OpenStdin=True, StdinOnce=True
    )
    att = await h.containers.attach(cid, stdin=True)
    streams: list[tuple[str, bytes]] = []

    async def collect() -> None:
        async for item in att.output():
            streams.append(item)

    task = asyncio.get_running_loop().create_task(collect())
    await h.containers.start(cid)
    await att.write(b"hello through a pipe\n")
    await att.close_stdin()
    await asyncio.wait_for(task, TIMEOUT)
    out = b"".join(d for s, d in streams if s == "stdout")
    err = b"".join(d for s, d in streams if s == "stderr")
    assert out == b"hello through a pipe\n" and err == b"done\n"
    assert att.exit is not None and att.exit["ExitCode"] == 0


async def test_attach_with_log_replay(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh", "-c", "echo early; sleep 1000"])
    for _ in range(100):
        if "early" in await h.output(cid):
            break
        await asyncio.sleep(0.05)
    att = await h.containers.attach(cid, logs=True)
    async for _, data in att.output():
        assert data == b"early\n"
        break
    att.close()
