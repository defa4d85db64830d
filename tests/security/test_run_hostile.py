"""Hostile images at run time (checklist items 7 and 8): /etc/passwd as a FIFO, a device or
a symlink leading out of the root, WORKDIR through a symlink to a host directory, WORKDIR
under /proc/self/fd (CVE-2024-21626), unknown users. Nothing may hang, nothing on the host
may be read or created, and each refusal is a one-line error."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from tests.fixtures import layers as L
from tests.fixtures.containers import (
    Harness,
    busybox_items,
    image_config,
    open_harness,
    prepare_root,
)

PASSWD = "/etc/passwd"


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host directory the hostile images point at; it must stay untouched."""
    path = tmp_path_factory.mktemp("host-side")
    (path / "passwd").write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    return path


@pytest.fixture(scope="module")
def images(push_image, hostile_dir: Path) -> dict[str, str]:
    host = str(hostile_dir)
    return {
        "fifo-passwd": push_image(
            "hostile/fifo-passwd:1",
            [busybox_items({"etc/passwd": L.fifo("etc/passwd")})],
            config=image_config(User="app"),
        ),
        "symlink-fifo-passwd": push_image(
            "hostile/symlink-fifo:1",
            [
                busybox_items(
                    {"etc/passwd": L.symlink("etc/passwd", "/run/pw")},
                    [L.directory("run"), L.fifo("run/pw")],
                )
            ],
            config=image_config(User="app"),
        ),
        "zero-passwd": push_image(
            "hostile/zero-passwd:1",
            [
                busybox_items(
                    {"etc/passwd": L.symlink("etc/passwd", "/dev/zero")},
                    [L.chardev("dev/zero", 1, 5)],
                )
            ],
            config=image_config(User="app"),
        ),
        "escape-passwd": push_image(
            "hostile/escape-passwd:1",
            [
                busybox_items(
                    {
                        "etc/passwd": L.symlink(
                            "etc/passwd", "../../../../../../.." + host + "/passwd"
                        )
                    }
                )
            ],
            config=image_config(User="hostonly"),
        ),
        "workdir-symlink": push_image(
            "hostile/workdir-symlink:1",
            [busybox_items(extra=[L.symlink("work", host)])],
            config=image_config(WorkingDir="/work/created-by-workdir"),
        ),
        "workdir-relative-symlink": push_image(
            "hostile/workdir-rel:1",
            [busybox_items(extra=[L.symlink("work", "../../../../../../.." + host)])],
            config=image_config(WorkingDir="/work/created-by-workdir"),
        ),
        "workdir-procfd": push_image(
            "hostile/workdir-procfd:1",
            [busybox_items()],
            config=image_config(WorkingDir="/proc/self/fd/7"),
        ),
    }


@pytest.fixture(scope="module")
def hostile_root(
    tmp_path_factory: pytest.TempPathFactory, images: dict[str, str], pushed_images
) -> Path:
    root = tmp_path_factory.mktemp("hostile-run") / "root"
    prepare_root(root, [*images.values(), pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, hostile_root: Path):
    async with open_harness(hostile_root, request.param) as harness:
        yield harness


@pytest.mark.parametrize("kind", ["fifo-passwd", "symlink-fifo-passwd", "zero-passwd"])
async def test_passwd_not_a_regular_file(h: Harness, images: dict[str, str], kind: str) -> None:
    cid = await h.create(images[kind], ["id"])
    with pytest.raises(InvalidArgument) as info:
        await asyncio.wait_for(h.containers.start(cid), 30)  # must not hang on the FIFO
    message = str(info.value)
    assert "/etc/passwd" in message and "\n" not in message
    assert (await h.containers.inspect(cid))["State"]["Running"] is False


async def test_passwd_symlink_does_not_reach_host(
    h: Harness, images: dict[str, str], hostile_dir: Path
) -> None:
    cid = await h.create(images["escape-passwd"], ["id"])
    with pytest.raises(InvalidArgument, match="unable to find user hostonly"):
        await h.containers.start(cid)
    # a numeric user needs no passwd entry at all
    cid = await h.create(images["escape-passwd"], ["id", "-u"], User="4242")
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert (await h.output(cid)).strip() == "4242"


@pytest.mark.parametrize("kind", ["workdir-symlink", "workdir-relative-symlink"])
async def test_workdir_symlink_stays_inside(
    h: Harness, images: dict[str, str], hostile_dir: Path, kind: str
) -> None:
    before = sorted(os.listdir(hostile_dir))
    cid = await h.create(images[kind], ["pwd"])
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert sorted(os.listdir(hostile_dir)) == before  # nothing created on the host
    # busybox pwd prints the physical path: the symlink's target, inside the container
    out = (await h.output(cid)).strip()
    assert out == f"{hostile_dir}/created-by-workdir"
    upper = h.engine.config.root / "containers" / cid / "upper"
    if upper.is_dir():  # overlay: the directory was made in the container's own layer
        assert (upper / str(hostile_dir).lstrip("/") / "created-by-workdir").is_dir()


async def test_workdir_under_proc_self_fd(
    h: Harness, images: dict[str, str], pushed_images
) -> None:
    with pytest.raises(InvalidArgument, match="/proc"):
        await h.create(images["workdir-procfd"], ["pwd"])
    with pytest.raises(InvalidArgument, match="/proc"):
        await h.create(pushed_images["test/busybox:1"], ["pwd"], WorkingDir="/proc/self/fd/7")
    with pytest.raises(InvalidArgument, match="/proc"):
        await h.create(pushed_images["test/busybox:1"], ["pwd"], WorkingDir="/proc/../proc/1/cwd")


async def test_unknown_user_and_group(h: Harness, pushed_images: dict[str, str]) -> None:
    image = pushed_images["test/busybox:1"]
    cid = await h.create(image, ["id"], User="nosuchuser")
    with pytest.raises(InvalidArgument, match="unable to find user nosuchuser"):
        await h.containers.start(cid)
    cid = await h.create(image, ["id"], User="app:nosuchgroup")
    with pytest.raises(InvalidArgument, match="unable to find group nosuchgroup"):
        await h.containers.start(cid)
    cid = await h.create(image, ["id"], User="1234:staff", HostConfig={"GroupAdd": ["nogroup"]})
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    out = await h.output(cid)
    assert "uid=1234 gid=50(staff)" in out and "65534(nogroup)" in out
