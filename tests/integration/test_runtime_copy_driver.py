"""The copy-based root file system (for hosts without overlayfs), with real crun and runc:
containers run on a full copy of the image, changes are found by comparing trees, and
commit and export work the same way as on overlay."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.containers import Harness, open_harness, prepare_root

COPY = {"snapshotter": "copy"}


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("copy") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]], **COPY)
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, copy_root: Path):
    async with open_harness(copy_root, request.param, engine_kw=COPY) as harness:
        yield harness


async def test_copy_driver_lifecycle(h: Harness, pushed_images: dict[str, str]) -> None:
    image = pushed_images["test/busybox:1"]
    assert h.containers.rootfs.driver == "copy"
    cid = await h.create(
        image, ["sh", "-c", "echo c > /tmp/new; rm /etc/group; echo hi; exit 4"], WorkingDir="/w"
    )
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 4
    assert await h.output(cid) == "hi\n"
    info = await h.containers.inspect(cid)
    assert info["GraphDriver"]["Name"] == "copy"
    got = {c["Path"]: c["Kind"] for c in await h.containers.changes(cid)}
    assert got.get("/tmp/new") == 1 and got.get("/etc/group") == 2 and got.get("/w") == 1
    assert "/etc/hosts" not in got
    data = b"".join([c async for c in h.containers.export(cid)])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert "tmp/new" in names and "etc/group" not in names
    result = await h.containers.commit(cid, repo="copy/commit", tag=h.runtime)
    new = await h.create(result["Id"], ["sh", "-c", "cat /tmp/new; test ! -e /etc/group"])
    waiter = h.containers.waiter(new, "next-exit")
    await h.containers.start(new)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(new) == "c\n"
