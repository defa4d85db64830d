"""Container logs with real crun and runc: docker json-file lines, ``--tail``, ``--since``,
``--until``, ``--timestamps``, ``--follow`` (live, ending with the container), rotation with
``max-size``/``max-file`` read back across files, and the ``none`` driver."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from tests.fixtures.containers import Harness, open_harness, prepare_root


@pytest.fixture(scope="module")
def logs_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("logs") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, logs_root: Path):
    async with open_harness(logs_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def finished(h: Harness, image: str, script: str, **config) -> str:
    cid = await h.create(image, ["sh", "-c", script], **config)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    await waiter
    return cid


async def lines(h: Harness, cid: str, **kw) -> list[tuple[str, str]]:
    return [(s, d.decode()) async for s, d in h.containers.logs(cid, **kw)]


async def test_tail_streams_and_timestamps(h: Harness, busybox: str) -> None:
    cid = await finished(h, busybox, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    everything = await lines(h, cid)
    assert len(everything) == 10
    assert [d for s, d in everything if s == "stdout"] == [f"out{i}\n" for i in range(1, 6)]
    assert [d for s, d in everything if s == "stderr"] == [f"err{i}\n" for i in range(1, 6)]
    assert await lines(h, cid, stderr=False, tail=2) == [("stdout", "out4\n"), ("stdout", "out5\n")]
    assert await lines(h, cid, tail=3) == everything[-3:]
    assert await lines(h, cid, tail=0) == []
    stamped = await lines(h, cid, stdout=False, timestamps=True, tail="all")
    assert len(stamped) == 5
    for _, text in stamped:
        stamp, _, rest = text.partition(" ")
        assert stamp.endswith("Z") and "T" in stamp and rest.startswith("err")
    with pytest.raises(InvalidArgument):
        await lines(h, cid, tail="many")


async def test_since_and_until(h: Harness, busybox: str) -> None:
    cid = await finished(h, busybox, "echo first; sleep 1.2; echo second")
    path = Path((await h.containers.inspect(cid))["LogPath"])
    entries = [json.loads(x) for x in path.read_text().splitlines()]
    second_time = entries[1]["time"]
    assert await lines(h, cid, since=second_time) == [("stdout", "second\n")]
    assert await lines(h, cid, until=entries[0]["time"]) == [("stdout", "first\n")]
    future = time.time() + 3600
    assert await lines(h, cid, since=future) == []
    assert len(await lines(h, cid, since=0)) == 2


async def test_follow(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh", "-c", "echo a; sleep 0.5; echo b; sleep 0.5; echo c"])
    got = [d.decode() async for _, d in h.containers.logs(cid, follow=True)]
    assert got == ["a\n", "b\n", "c\n"]  # ended by itself when the container exited


async def test_follow_from_tail_of_running(h: Harness, busybox: str) -> None:
    cid = await h.run(
        busybox, ["sh", "-c", "i=0; while [ $i -lt 30 ]; do echo n$i; i=$((i+1)); sleep 0.05; done"]
    )
    await asyncio.sleep(0.3)
    got = [d.decode().strip() async for _, d in h.containers.logs(cid, follow=True, tail=1)]
    numbers = [int(x[1:]) for x in got]
    assert numbers == list(range(numbers[0], 30)) and numbers[0] > 0


async def test_rotation(h: Harness, busybox: str) -> None:
    # 400 lines of ~100 bytes with json overhead: ~60 KB through 16 KB files, 3 kept
    script = (
        "i=0; while [ $i -lt 400 ]; do "
        "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    )
    cid = await finished(
        h,
        busybox,
        script,
        HostConfig={
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "16k", "max-file": "3"}}
        },
    )
    path = Path((await h.containers.inspect(cid))["LogPath"])
    files = [path, path.with_name(path.name + ".1"), path.with_name(path.name + ".2")]
    assert all(f.exists() for f in files)
    assert not path.with_name(path.name + ".3").exists()
    assert all(f.stat().st_size <= 16 * 1024 for f in files)
    got = [d.decode().split("-")[1] async for _, d in h.containers.logs(cid)]
    numbers = [int(n) for n in got]
    # the oldest lines rotated away; what is left is the contiguous end, in order
    assert numbers == list(range(numbers[0], 400)) and numbers[0] > 0
    assert [d async for _, d in h.containers.logs(cid, tail=2)] == [
        b"line-398-" + b"x" * 50 + b"\n",
        b"line-399-" + b"x" * 50 + b"\n",
    ]


async def test_max_file_one_truncates(h: Harness, busybox: str) -> None:
    script = (
        "i=0; while [ $i -lt 300 ]; do echo entry-$i-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; "
        "i=$((i+1)); done"
    )
    cid = await finished(
        h, busybox, script, HostConfig={"LogConfig": {"Config": {"max-size": "4k"}}}
    )
    path = Path((await h.containers.inspect(cid))["LogPath"])
    assert path.stat().st_size <= 4096
    assert not path.with_name(path.name + ".1").exists()
    last = [d async for _, d in h.containers.logs(cid, tail=1)]
    assert last == [b"entry-299-" + b"y" * 30 + b"\n"]


async def test_long_line_split_like_docker(h: Harness, busybox: str) -> None:
    cid = await finished(h, busybox, "head -c 40000 /dev/zero | tr '\\0' 'z'; echo")
    path = Path((await h.containers.inspect(cid))["LogPath"])
    entries = [json.loads(x)["log"] for x in path.read_text().splitlines()]
    assert [len(e) for e in entries] == [16384, 16384, 40000 - 32768 + 1]
    assert entries[-1].endswith("\n") and not entries[0].endswith("\n")


async def test_none_driver(h: Harness, busybox: str) -> None:
    cid = await finished(
        h, busybox, "echo nothing kept", HostConfig={"LogConfig": {"Type": "none"}}
    )
    info = await h.containers.inspect(cid)
    assert info["LogPath"] == ""
    with pytest.raises(InvalidArgument, match="does not support reading"):
        await lines(h, cid)
    with pytest.raises(InvalidArgument, match="not supported"):
        await h.create(busybox, ["true"], HostConfig={"LogConfig": {"Type": "syslog"}})
