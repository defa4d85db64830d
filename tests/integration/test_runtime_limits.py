"""Resource limits actually enforced, with real runc and crun: a memory hog is OOM-killed
and reported, ``--pids-limit`` stops forks, ``--cpus`` throttles, ``--ulimit`` applies
(clamped to the engine's own hard limit). On a hybrid cgroup host, crun without the private
mount-namespace view falls back to runc with a message naming the reason."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import pytest

from engine.runtime import cgroups
from tests.fixtures.containers import Harness, open_harness, prepare_root


@pytest.fixture(scope="module")
def lim_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("limits") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["runc", "crun"])
async def h(request: pytest.FixtureRequest, lim_root: Path):
    async with open_harness(lim_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def run_sh(h: Harness, image: str, script: str, **config) -> tuple[int, str, dict]:
    cid = await h.create(image, ["sh", "-c", script], **config)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    code = (await waiter)["StatusCode"]
    return code, await h.output(cid), await h.containers.inspect(cid)


async def test_memory_hog_is_oom_killed(h: Harness, busybox: str) -> None:
    events = []
    hog = "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"
    task = asyncio.get_running_loop().create_task(_collect(h, events))
    code, _, info = await run_sh(h, busybox, hog, HostConfig={"Memory": 32 << 20})
    task.cancel()
    assert code == 137
    assert info["State"]["OOMKilled"] is True
    assert info["HostConfig"]["Runtime"] == h.runtime
    assert "oom" in events
    # the same container without a hog is not reported as OOM-killed
    code, _, info = await run_sh(h, busybox, "true", HostConfig={"Memory": 32 << 20})
    assert code == 0 and info["State"]["OOMKilled"] is False


async def _collect(h: Harness, events: list[str]) -> None:
    async for event in h.engine.events.subscribe():
        events.append(event["Action"])


async def test_pids_limit(h: Harness, busybox: str) -> None:
    script = (
        "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; echo spawned; kill $(jobs -p)"
    )
    code, out, _ = await run_sh(h, busybox, script, HostConfig={"PidsLimit": 12})
    assert code != 0 and "can't fork" in out and "spawned" not in out
    code, out, _ = await run_sh(h, busybox, script, HostConfig={"PidsLimit": 100})
    assert "spawned" in out and "can't fork" not in out
    cid = await h.run(busybox, ["sleep", "1000"], HostConfig={"PidsLimit": 12})
    stats = await h.containers.last_stats(cid)
    assert stats["pids_stats"]["limit"] == 12 and stats["pids_stats"]["current"] == 1


async def test_cpus_quota_throttles(h: Harness, busybox: str) -> None:
    cid = await h.run(
        busybox,
        ["sh", "-c", "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done"],
        HostConfig={"NanoCpus": 200_000_000},
    )
    info = await h.containers.inspect(cid)
    cg = cgroups.container_cgroup(info["State"]["Pid"])
    quota_dir = cg.dir("cpu")
    assert quota_dir is not None
    if cg.v2 is None:
        assert (quota_dir / "cpu.cfs_quota_us").read_text().strip() == "20000"
    await asyncio.sleep(1.0)
    # measured while the loop spins: throttled periods prove the quota is enforced
    stats = await h.containers.last_stats(cid)
    assert stats["cpu_stats"]["throttling_data"]["throttled_periods"] > 0
    await h.containers.wait(cid)


async def test_ulimits_and_clamping(h: Harness, busybox: str) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code, out, _ = await run_sh(
        h,
        busybox,
        "ulimit -n; ulimit -Hn",
        HostConfig={"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}]},
    )
    assert code == 0 and out.split() == ["100", "200"]
    cid = await h.create(
        busybox,
        ["sh", "-c", "ulimit -Hn"],
        HostConfig={"Ulimits": [{"Name": "nofile", "Soft": 1 << 30, "Hard": 1 << 30}]},
    )
    info = await h.containers.inspect(cid)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert int((await h.output(cid)).strip()) == hard
    assert info["State"]["Status"] == "created"


async def test_default_spec_has_no_raised_rlimits(h: Harness, busybox: str) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code, out, _ = await run_sh(h, busybox, "ulimit -Hn")
    assert code == 0 and int(out.strip()) <= hard


@pytest.mark.skipif(cgroups.host().mode != "hybrid", reason="needs a hybrid cgroup host")
async def test_crun_fallback_on_hybrid_host(lim_root: Path, busybox: str) -> None:
    async with open_harness(lim_root, "crun", hide_unified=False) as h:
        rt = h.containers.runtimes.available["crun"]
        assert rt.legacy_view is False
        result = await h.containers.create(
            {
                "Image": busybox,
                "Cmd": ["true"],
                "HostConfig": {"Runtime": "crun", "Memory": 64 << 20},
            }
        )
        note = " ".join(result["Warnings"])
        assert "crun cannot" in note and "hybrid" in note and "using runc" in note
        info = await h.containers.inspect(result["Id"])
        assert info["HostConfig"]["Runtime"] == "runc"
        assert (await h.containers.wait(result["Id"], "not-running"))["StatusCode"] == 0
