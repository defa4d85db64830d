"""The archive seam of ``ContainerService`` (``stat_path``, ``copy_from``, ``copy_to``) used
directly, without HTTP, on both root file system drivers (overlay and copy): the view holds
the container's bind mounts, a stopped container's root is unmounted again afterwards, the
helper's mounts never reach the container's own tree, and what was copied is what the
container sees when it starts.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.errors import InvalidArgument, NotFound
from engine.runtime.archive.paths import MODE_DIR
from engine.runtime.rootfs import is_mounted
from tests.fixtures.containers import Harness, open_harness, prepare_root

BUSYBOX = "test/busybox:1"


@pytest.fixture(scope="module", params=["overlay", "copy"])
def root(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pushed_images: dict[str, str],
) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp(f"cp-{request.param}") / "root"
    prepare_root(path, [pushed_images[BUSYBOX]], snapshotter=request.param)
    return path, request.param


@pytest.fixture
async def h(root: tuple[Path, str]) -> AsyncIterator[Harness]:
    async with open_harness(root[0], engine_kw={"snapshotter": root[1]}) as harness:
        yield harness


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


def _tar(**files: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def test_stopped_container_with_a_bind_mount(
    h: Harness, pushed_images: dict[str, str], tmp_path: Path
) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    cid = await h.create(
        pushed_images[BUSYBOX],
        ["cat", "/tmp/a.txt", "/srv/data/b.txt"],
        HostConfig={"Binds": [f"{bind}:/srv/data"]},
    )
    svc = h.containers
    await svc.copy_to(cid, "/tmp", _chunks(_tar(**{"a.txt": b"in the root"})))
    await svc.copy_to(cid, "/srv/data", _chunks(_tar(**{"b.txt": b"in the bind"})))
    assert (bind / "b.txt").read_bytes() == b"in the bind"
    info = await svc.stat_path(cid, "/tmp/a.txt")
    assert (info["name"], info["size"]) == ("a.txt", 11)
    assert (await svc.stat_path(cid, "/srv/data"))["mode"] & MODE_DIR
    async with svc.copy_from(cid, "/tmp/a.txt") as (stat, chunks):
        data = b"".join([c async for c in chunks])
    assert stat["name"] == "a.txt"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("a.txt").read() == b"in the root"  # type: ignore[union-attr]
    rootfs = svc._dir(cid) / "rootfs"
    assert not (h.containers.rootfs.overlay and is_mounted(rootfs))
    assert not (rootfs / "srv" / "data" / "b.txt").exists()  # the bind was the helper's only
    # what was copied is what the container sees when it runs
    waiter = svc.waiter(cid, "next-exit")
    await svc.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(cid) == "in the rootin the bind"


async def test_errors(h: Harness, pushed_images: dict[str, str]) -> None:
    cid = await h.create(pushed_images[BUSYBOX], ["true"], name="cp-errors")
    svc = h.containers
    with pytest.raises(NotFound, match="Could not find the file /nope in container cp-errors"):
        await svc.stat_path("cp-errors", "/nope")
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        await svc.copy_to(cid, "/etc/passwd", _chunks(_tar(x=b"x")))
    with pytest.raises(InvalidArgument, match="bad parameter"):
        await svc.stat_path(cid, "")
    with pytest.raises(NotFound, match="No such container"):
        await svc.stat_path("no-such-container", "/")
