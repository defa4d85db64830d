"""The volume service behind ``-v name:/path``: create, inspect, list with filters, remove
(refused while a container uses the volume) and prune (anonymous ones, or all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument, NotFound
from tests.fixtures.containers import Harness, open_harness, prepare_root


@pytest.fixture(scope="module")
def vol_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("volumes") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
async def h(vol_root: Path):
    async with open_harness(vol_root, "runc") as harness:
        yield harness


async def test_volume_lifecycle(h: Harness, pushed_images: dict[str, str]) -> None:
    vols = h.volumes
    created = await vols.create("data-1", labels={"app": "x"})
    assert created["Name"] == "data-1" and created["Driver"] == "local"
    assert Path(created["Mountpoint"]).is_dir()
    assert await vols.create("data-1") == created  # idempotent, as docker's
    anon = await vols.create(anonymous=True)
    assert len(anon["Name"]) == 64
    names = {v["Name"] for v in await vols.list(filters={"label": ["app=x"]})}
    assert names == {"data-1"}
    with pytest.raises(InvalidArgument):
        await vols.create("../escape")
    with pytest.raises(NotFound):
        await vols.inspect("missing")
    cid = await h.create(
        pushed_images["test/busybox:1"], ["true"], HostConfig={"Binds": ["data-1:/d"]}
    )
    with pytest.raises(Conflict, match="in use"):
        await vols.remove("data-1")
    dangling = {v["Name"] for v in await vols.list(filters={"dangling": ["true"]})}
    assert "data-1" not in dangling and anon["Name"] in dangling
    result = await vols.prune()
    assert result["VolumesDeleted"] == [anon["Name"]]
    await h.containers.remove(cid)
    result = await vols.prune(all=True)
    assert result["VolumesDeleted"] == ["data-1"]
    await vols.remove("data-1", force=True)  # already gone: no error with force
    with pytest.raises(NotFound):
        await vols.remove("data-1")
