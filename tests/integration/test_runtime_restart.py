"""Restart policies with real crun and runc: ``no``, ``on-failure[:N]``, ``always`` and
``unless-stopped``, also across engine restarts (the engine is closed, the container
exits meanwhile, a new engine on the same root applies the policy)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.containers import Harness, open_harness, prepare_root

TIMEOUT = 30


@pytest.fixture(scope="module")
def restart_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("restart") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def h(restart_root: Path, runtime: str):
    async with open_harness(restart_root, runtime) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def settle(h: Harness, cid: str, predicate) -> dict:
    info: dict = {}
    for _ in range(int(TIMEOUT / 0.05)):
        info = await h.containers.inspect(cid)
        if predicate(info):
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"container never reached the state: {info['State']}, {info['RestartCount']}"
    )


def policy(name: str, retries: int = 0) -> dict:
    return {"RestartPolicy": {"Name": name, "MaximumRetryCount": retries}}


async def test_on_failure_with_limit(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh", "-c", "echo run; exit 3"], HostConfig=policy("on-failure", 2))
    info = await settle(
        h, cid, lambda i: i["RestartCount"] == 2 and i["State"]["Status"] == "exited"
    )
    assert info["State"]["ExitCode"] == 3
    await asyncio.sleep(0.5)
    assert (await h.containers.inspect(cid))["RestartCount"] == 2  # no third restart
    assert (await h.output(cid)).count("run\n") == 3


async def test_on_failure_ignores_success(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["true"], HostConfig=policy("on-failure"))
    await settle(h, cid, lambda i: i["State"]["Status"] == "exited")
    await asyncio.sleep(0.5)
    info = await h.containers.inspect(cid)
    assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited"


async def test_no_policy(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["false"], HostConfig=policy("no"))
    await settle(h, cid, lambda i: i["State"]["Status"] == "exited")
    await asyncio.sleep(0.3)
    assert (await h.containers.inspect(cid))["RestartCount"] == 0


async def test_always_until_stopped(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh", "-c", "sleep 0.2"], HostConfig=policy("always"))
    await settle(h, cid, lambda i: i["RestartCount"] >= 2)
    await settle(h, cid, lambda i: i["State"]["Running"])
    await h.containers.stop(cid, timeout=1)
    count = (await h.containers.inspect(cid))["RestartCount"]
    await asyncio.sleep(0.8)
    info = await h.containers.inspect(cid)
    assert info["State"]["Status"] == "exited" and info["RestartCount"] == count


async def test_policies_across_engine_restart(
    restart_root: Path, busybox: str, runtime: str
) -> None:
    async with open_harness(restart_root, runtime, cleanup=False) as h:
        always = await h.run(
            busybox, ["sh", "-c", "sleep 1.5; exit 1"], HostConfig=policy("always")
        )
        on_failure = await h.run(
            busybox, ["sh", "-c", "sleep 1.5; exit 2"], HostConfig=policy("on-failure", 3)
        )
        on_success = await h.run(
            busybox, ["sh", "-c", "sleep 1.5"], HostConfig=policy("on-failure")
        )
        stopped_unless = await h.run(
            busybox, ["sleep", "1000"], HostConfig=policy("unless-stopped")
        )
        stopped_always = await h.run(busybox, ["sleep", "1000"], HostConfig=policy("always"))
        await h.containers.stop(stopped_unless, timeout=0)
        await h.containers.stop(stopped_always, timeout=0)
    await asyncio.sleep(2.5)  # everything exits while no engine is running
    async with open_harness(restart_root, runtime) as h:
        h.before -= {always, on_failure, on_success, stopped_unless, stopped_always}
        for cid in (always, on_failure, stopped_always):
            info = await settle(h, cid, lambda i: i["State"]["Running"])
            assert info["RestartCount"] >= (0 if cid == stopped_always else 1)
        for cid in (on_success, stopped_unless):
            await asyncio.sleep(0.3)
            info = await h.containers.inspect(cid)
            assert info["State"]["Status"] == "exited", (cid, info["State"])
            assert info["RestartCount"] == 0
