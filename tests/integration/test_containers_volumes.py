"""The volume service behind ``-v name:/path``: create, inspect, list with filters, remove
(refused while a container uses the volume) and prune (anonymous ones, or all); anonymous
volumes (image VOLUMEs, ``-v /path``) filled from the image at create and removed with
``rm -v`` and ``--rm``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument, NotFound
from tests.fixtures import layers as L
from tests.fixtures.containers import (
    Harness,
    busybox_items,
    image_config,
    open_harness,
    prepare_root,
)


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


@pytest.fixture(scope="module")
def seeded_image(push_image) -> str:
    items = busybox_items(
        extra=[L.directory("data"), L.file("data/seed.txt", "from the image\n", 0o640, uid=7)]
    )
    return push_image("test/volume-seed:1", [items], config=image_config(Volumes={"/data": {}}))


@pytest.fixture(scope="module")
def seeded_root(tmp_path_factory: pytest.TempPathFactory, seeded_image: str) -> Path:
    root = tmp_path_factory.mktemp("anon-volumes") / "root"
    prepare_root(root, [seeded_image])
    return root


async def test_anonymous_volumes_copy_up_at_create_and_go_with_rm_v(
    seeded_root: Path, seeded_image: str
) -> None:
    async with open_harness(seeded_root, "crun") as h:
        vols = h.volumes
        binds = ["/cache", "keep-me:/named"]
        cid = await h.create(seeded_image, ["true"], HostConfig={"Binds": binds})
        mounts = {m["Destination"]: m for m in (await h.containers.inspect(cid))["Mounts"]}
        anon = {mounts["/data"]["Name"], mounts["/cache"]["Name"]}
        assert all(re.fullmatch(r"[0-9a-f]{64}", n) for n in anon)
        assert mounts["/named"]["Name"] == "keep-me"
        listed = {v["Name"] for v in await vols.list()}
        assert anon | {"keep-me"} <= listed
        # the image's /data was copied into its new volume at create, owner and mode kept
        seed = Path(mounts["/data"]["Source"]) / "seed.txt"
        assert seed.read_text() == "from the image\n"
        assert (seed.stat().st_uid, seed.stat().st_mode & 0o777) == (7, 0o640)
        assert list(Path(mounts["/cache"]["Source"]).iterdir()) == []

        await h.containers.remove(cid)  # without -v: docker keeps the volumes
        dangling = {v["Name"] for v in await vols.list(filters={"dangling": ["true"]})}
        assert anon <= dangling
        for name in anon:
            await vols.remove(name)

        # --rm (AutoRemove) takes the anonymous volumes along, never a named one
        cid = await h.create(
            seeded_image,
            ["sh", "-c", "cat /data/seed.txt && echo more > /cache/x"],
            HostConfig={"Binds": binds, "AutoRemove": True},
        )
        mounts = {m["Destination"]: m for m in (await h.containers.inspect(cid))["Mounts"]}
        anon = {mounts["/data"]["Name"], mounts["/cache"]["Name"]}
        removed = h.containers.waiter(cid, "removed")
        await h.containers.start(cid)
        assert (await removed)["StatusCode"] == 0
        listed = {v["Name"] for v in await vols.list()}
        assert not anon & listed and "keep-me" in listed
        await vols.remove("keep-me")
