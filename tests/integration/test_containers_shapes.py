"""The answers of the container service have dockerd's shapes: ``inspect`` and
``/containers/json`` items of the same container on a real dockerd 20.10 have no key that
portside lacks; plus prune, list filters, events and the ``info`` runtime section."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fixtures.containers import Harness, open_harness, prepare_root


@pytest.fixture(scope="module")
def shp_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
async def h(shp_root: Path):
    async with open_harness(shp_root, "crun") as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


def _missing(ours: dict, theirs: dict, path: str = "") -> list[str]:
    out = []
    for key, value in theirs.items():
        if key not in ours:
            out.append(path + key)
        elif isinstance(value, dict) and isinstance(ours[key], dict) and path.count(".") < 1:
            out.extend(_missing(ours[key], value, f"{path}{key}."))
    return out


async def test_inspect_and_list_match_dockerd(h: Harness, busybox: str, dockerd) -> None:
    name = "shape-check"
    await asyncio.to_thread(dockerd.docker, "pull", busybox)
    await asyncio.to_thread(
        dockerd.docker, "create", "--name", name, "--network", "none", busybox, "true"
    )
    try:
        theirs = json.loads((await asyncio.to_thread(dockerd.docker, "inspect", name)).stdout)[0]
        listing = (
            await asyncio.to_thread(
                dockerd.docker, "ps", "-a", "--no-trunc", "--format", "{{json .}}"
            )
        ).stdout
    finally:
        await asyncio.to_thread(dockerd.docker, "rm", "-f", name)
    cid = await h.create(busybox, ["true"], name=name, HostConfig={"NetworkMode": "none"})
    ours = await h.containers.inspect(cid)
    missing = _missing(ours, theirs)
    # docker-only details of its own networking and storage drivers
    allowed = {"NetworkSettings.Bridge"}
    assert [m for m in missing if m not in allowed] == []
    assert ours["State"].keys() >= theirs["State"].keys() - {"Health"}
    assert ours["Name"] == "/" + name and ours["Config"]["Image"] == busybox
    assert json.loads(listing.splitlines()[0])["Names"] == name
    item = (await h.containers.list_containers(all=True, filters={"name": [name]}))[0]
    for key in ("Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels"):
        assert key in item
    assert item["State"] == "created" and item["Status"] == "Created"


async def test_prune_and_filters(h: Harness, busybox: str) -> None:
    keep = await h.run(busybox, ["sleep", "1000"])
    done = await h.create(busybox, ["sh", "-c", "exit 3"], Labels={"tier": "x"})
    await h.containers.start(done)
    await h.containers.wait(done)
    other = await h.create(busybox, ["true"])
    exited = await h.containers.list_containers(filters={"exited": ["3"]})
    assert [c["Id"] for c in exited] == [done]
    since = await h.containers.list_containers(all=True, filters={"since": [keep]})
    assert {c["Id"] for c in since} == {done, other}
    before = await h.containers.list_containers(all=True, filters={"before": [done]})
    assert keep in {c["Id"] for c in before} and other not in {c["Id"] for c in before}
    result = await h.containers.prune(filters={"label": ["tier=x"]})
    assert result["ContainersDeleted"] == [done]
    result = await h.containers.prune()
    assert result["ContainersDeleted"] == [other]
    assert (await h.containers.inspect(keep))["State"]["Running"]


async def test_events_and_info(h: Harness, busybox: str) -> None:
    events: list[tuple[str, str]] = []

    async def collect() -> None:
        async for ev in h.engine.events.subscribe(filters={"type": ["container"]}):
            events.append((ev["Action"], ev["Actor"]["Attributes"].get("name", "")))

    task = asyncio.get_running_loop().create_task(collect())
    await asyncio.sleep(0)
    cid = await h.create(busybox, ["sh", "-c", "exit 1"], name="evented")
    removed = h.containers.waiter(cid, "removed")
    await h.containers.start(cid)
    await h.containers.wait(cid)
    await h.containers.remove(cid)
    await removed
    await asyncio.sleep(0.05)
    task.cancel()
    actions = [a for a, n in events if n == "evented"]
    assert actions == ["create", "start", "die", "destroy"]
    info = h.containers.info()
    assert info["DefaultRuntime"] in ("crun", "runc")
    assert set(info["Runtimes"]) >= {"crun", "runc"}
    assert info["CgroupVersion"] in ("1", "2")
    assert {"Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped"} <= set(info)
    details = info["RuntimeDetails"]["runc"]
    assert details["version"] and details["path"].endswith("runc")
