"""diff, export, commit, stats and top with real crun and runc: the container's changes as
docker reports them, a tar of its file system, a committed layer (deletions as whiteouts,
``--change`` edits, a history entry) that runs as a new image, usage counters and the
process list."""

from __future__ import annotations

import io
import os
import struct
import tarfile
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument
from tests.fixtures.containers import Harness, open_harness, prepare_root

CHANGE = (
    "echo new > /tmp/added.txt; rm /etc/group; mkdir -p /srv/d && echo x > /srv/d/f;"
    "echo more >> /etc/passwd; rm -r /home/app"
)


@pytest.fixture(scope="module")
def chg_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("changes") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, chg_root: Path):
    async with open_harness(chg_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def changed(h: Harness, image: str) -> str:
    cid = await h.create(image, ["sh", "-c", CHANGE])
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    return cid


async def test_changes(h: Harness, busybox: str) -> None:
    fresh = await h.create(busybox, ["true"])
    assert await h.containers.changes(fresh) == []
    cid = await changed(h, busybox)
    got = {c["Path"]: c["Kind"] for c in await h.containers.changes(cid)}
    assert got["/tmp"] == 0 and got["/tmp/added.txt"] == 1
    assert got["/etc/group"] == 2 and got["/etc/passwd"] == 0
    assert got["/srv"] == 1 and got["/srv/d/f"] == 1
    assert got["/home/app"] == 2
    # mount points and the init layer never show up
    assert not {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/dev"} & set(got)


async def test_export(h: Harness, busybox: str) -> None:
    cid = await changed(h, busybox)
    data = b"".join([chunk async for chunk in h.containers.export(cid)])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        assert "bin/busybox" in names and "tmp/added.txt" in names
        assert "etc/group" not in names and "home/app" not in names
        member = tar.extractfile("tmp/added.txt")
        assert member is not None and member.read() == b"new\n"
        assert not any(n.startswith(("./", "/")) for n in names)


async def test_commit_runs_as_new_image(h: Harness, busybox: str) -> None:
    cid = await changed(h, busybox)
    result = await h.containers.commit(
        cid,
        repo="committed/test",
        tag=h.runtime,
        comment="a comment",
        author="tester",
        changes=['CMD ["cat", "/tmp/added.txt"]', "ENV COMMITTED=yes", "LABEL from=commit"],
    )
    image_id = result["Id"]
    image = await h.engine.images.inspect(f"committed/test:{h.runtime}")
    assert image["Id"] == image_id
    assert image["Config"]["Cmd"] == ["cat", "/tmp/added.txt"]
    assert "COMMITTED=yes" in image["Config"]["Env"]
    assert image["Config"]["Labels"]["from"] == "commit"
    assert len(image["RootFS"]["Layers"]) == 2
    history = await h.engine.images.history(image_id)
    assert history[0]["Comment"] == "a comment" and "sh -c" in history[0]["CreatedBy"]
    # the committed image runs, with the deletions applied as whiteouts
    new = await h.create(f"committed/test:{h.runtime}", None)
    waiter = h.containers.waiter(new, "next-exit")
    await h.containers.start(new)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(new) == "new\n"
    code_cid = await h.create(
        f"committed/test:{h.runtime}",
        [
            "sh",
            "-c",
            "test ! -e /etc/group && test ! -e /home/app && tail -1 /etc/passwd && echo $COMMITTED",
        ],
    )
    waiter = h.containers.waiter(code_cid, "next-exit")
    await h.containers.start(code_cid)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(code_cid) == "more\nyes\n"
    with pytest.raises(Conflict):  # the image is in use by containers
        await h.engine.images.remove(image_id)
    with pytest.raises(InvalidArgument, match="not a valid change"):
        await h.containers.commit(cid, changes=["RUN rm -rf /"])


# struct vfs_cap_data, revision 2, effective: CAP_NET_RAW (13) permitted
NET_RAW_CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)


async def test_commit_keeps_file_capabilities_and_user_xattrs(h: Harness, busybox: str) -> None:
    """What ``setcap cap_net_raw+ep`` leaves on a file (security.capability) survives commit,
    unpack and export, as with docker; user.* attributes too; overlay's own do not."""
    cid = await changed(h, busybox)
    upper = h.engine.config.root / "containers" / cid / "upper" / "tmp" / "added.txt"
    os.setxattr(upper, "security.capability", NET_RAW_CAPABILITY)
    os.setxattr(upper, "user.note", b"kept")
    result = await h.containers.commit(cid, repo="committed/caps", tag=h.runtime)
    new = await h.create(result["Id"], ["true"])
    data = b"".join([chunk async for chunk in h.containers.export(new)])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        headers = tar.getmember("tmp/added.txt").pax_headers
    raw = headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert raw == NET_RAW_CAPABILITY
    assert headers["SCHILY.xattr.user.note"] == "kept"
    assert not any("overlay" in key for key in headers)


async def test_commit_running_container(h: Harness, busybox: str) -> None:
    cid = await h.run(busybox, ["sh", "-c", "echo live > /live.txt; sleep 1000"])
    for _ in range(100):
        if any(c["Path"] == "/live.txt" for c in await h.containers.changes(cid)):
            break
    result = await h.containers.commit(cid, repo="committed/live", tag=h.runtime)
    assert (await h.containers.inspect(cid))["State"]["Status"] == "running"  # unpaused
    new = await h.create(result["Id"], ["cat", "/live.txt"])
    waiter = h.containers.waiter(new, "next-exit")
    await h.containers.start(new)
    await waiter
    assert await h.output(new) == "live\n"


async def test_stats_and_top(h: Harness, busybox: str) -> None:
    cid = await h.run(
        busybox,
        ["sh", "-c", "head -c 8000000 /dev/zero > /dev/shm/fill; sleep 1000 & wait"],
        HostConfig={"Memory": 64 << 20},
    )
    samples = []
    async for sample in h.containers.stats(cid, stream=True):
        samples.append(sample)
        if len(samples) == 2:
            break
    first, second = samples
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["memory_stats"]["limit"] == 64 << 20
    assert second["memory_stats"]["usage"] > 4_000_000
    assert second["pids_stats"]["current"] >= 1
    assert second["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert second["cpu_stats"]["online_cpus"] >= 1 and second["name"].startswith("/")
    top = await h.containers.top(cid)
    assert "PID" in top["Titles"] and "CMD" in top["Titles"]
    commands = [p[-1] for p in top["Processes"]]
    assert any(c.startswith("sleep 1000") for c in commands)
    assert len(top["Processes"]) == 2  # sh and sleep: nothing from the host
    custom = await h.containers.top(cid, "-o pid,comm")
    assert custom["Titles"] == ["PID", "COMMAND"]
    await h.containers.kill(cid)
    with pytest.raises(Conflict):
        await h.containers.top(cid)
    final = await h.containers.last_stats(cid)
    assert final["memory_stats"] == {}


async def test_mount_points_are_the_containers_not_what_is_mounted(
    h: Harness, busybox: str, tmp_path: Path
) -> None:
    """As docker: missing mount destinations are made in the container's layer before it
    starts (directories 0755, an empty file for a bind of a file), so diff and commit show
    them; what the mounts hold stays out."""
    conf = tmp_path / "extra.conf"
    conf.write_text("from the host\n")
    cid = await h.create(
        busybox,
        ["sh", "-c", "echo in > /made/here/inside; stat -c %a /made /made/here; cat /etc/x.conf"],
        HostConfig={
            "Mounts": [
                {"Type": "volume", "Source": f"mp-{h.runtime}", "Target": "/made/here"},
                {"Type": "tmpfs", "Target": "/made/here/tmp"},  # inside the volume: not ours
            ],
            "Binds": [f"{conf}:/etc/x.conf:ro"],
        },
    )
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(cid) == "755\n755\nfrom the host\n"
    got = {c["Path"]: c["Kind"] for c in await h.containers.changes(cid)}
    assert got == {"/made": 1, "/made/here": 1, "/etc": 0, "/etc/x.conf": 1}
    await h.containers.commit(cid, repo="mountpoints/test", tag=h.runtime)
    check = await h.create(
        f"mountpoints/test:{h.runtime}",
        ["sh", "-c", "stat -c '%a %F' /made /made/here /etc/x.conf; ls -A /made/here"],
    )
    waiter = h.containers.waiter(check, "next-exit")
    await h.containers.start(check)
    assert (await waiter)["StatusCode"] == 0
    assert await h.output(check) == ("755 directory\n755 directory\n644 regular empty file\n")
