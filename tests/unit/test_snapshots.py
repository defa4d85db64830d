"""Snapshotters with real layer tars, real helper processes and real overlay mounts.

Every scenario runs on both drivers. Merged trees are compared with the independent reference
``tests.fixtures.layers.flatten`` (image-spec semantics), and the two drivers are compared
with each other down to modification times.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import struct
import sys
from pathlib import Path

import pytest

from engine.digest import Digest
from engine.errors import Conflict, InvalidArgument, NotFound, PortsideError, VerificationError
from engine.store.snapshots import (
    CopySnapshotter,
    OverlaySnapshotter,
    Snapshotter,
    chain_of,
    merged_view,
    open_snapshotter,
    overlay_supported,
)
from tests.fixtures.layers import (
    BLOCK,
    MTIME,
    Item,
    chardev,
    compress,
    directory,
    fifo,
    file,
    flatten,
    hardlink,
    layer_tar,
    opaque,
    symlink,
    whiteout,
)
from tests.fixtures.trees import tree_of_dir
from tests.security.layers import Layer, apply_all, describe, diff_id

DRIVERS = ["overlay", "copy"]


@pytest.fixture(params=DRIVERS)
def snap(request: pytest.FixtureRequest, tmp_path: Path) -> Snapshotter:
    return open_snapshotter(tmp_path / "root", request.param)


async def apply_items(snap: Snapshotter, layers: list[list[Item]], blobs: Path) -> Digest:
    """Apply changesets built by the shared fixtures (tarfile-made PAX tars, gzip)."""
    blobs.mkdir(parents=True, exist_ok=True)
    parent: Digest | None = None
    for i, items in enumerate(layers):
        tar = layer_tar(items)
        path = blobs / f"layer{i}.tar.gz"
        path.write_bytes(compress(tar, "gzip"))
        diff = Digest.of_bytes(tar)
        chain = chain_of(parent, diff)
        result = await snap.apply(chain, parent, path, diff)
        assert result.diff_id == diff
        parent = chain
    assert parent is not None
    return parent


async def merged_tree(snap: Snapshotter, chain: Digest) -> dict:
    async with merged_view(snap, chain) as path:
        return tree_of_dir(path)


async def merged_describe(snap: Snapshotter, chain: Digest) -> dict:
    async with merged_view(snap, chain) as path:
        return describe(path)


# -- changesets -------------------------------------------------------------------------------

BASE = [
    directory("etc"),
    file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
    file("etc/shadow", "root:*:1::::::\n", mode=0o640, gid=42),
    directory("bin"),
    file("bin/su", b"\x7fELF-su", mode=0o4755),
    file("bin/wall", b"\x7fELF-wall", mode=0o2755, gid=5),
    directory("tmp", mode=0o1777),
    directory("home"),
    directory("home/user", mode=0o700, uid=1000, gid=1000),
    file("home/user/.profile", "PS1=x\n", mode=0o600, uid=1000, gid=1000),
    symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
    symlink("home/rel", "user/.profile"),
    hardlink("bin/su-again", "bin/su", mode=0o4755),
    directory("dev"),
    chardev("dev/null", 1, 3),
    Item("dev/loop0", BLOCK, 0o660, 0, 6, rdev=(7, 0)),
    directory("run"),
    fifo("run/initctl", mode=0o600),
    file("xattr-file", "x", xattrs={"user.comment": b"hello", "user.bin": b"\x00\xff"}),
    directory("xattr-dir", mode=0o750),
    directory("a"),
    file("a/keep", "keep"),
    file("a/gone", "gone"),
    directory("a/sub"),
    file("a/sub/deep", "deep"),
    directory("o"),
    file("o/lower", "lower"),
    directory("o/sub"),
    file("o/sub/deeper", "deeper"),
    file("top-gone", "bye"),
    directory("w"),
    file("w/old", "old"),
    directory("t"),
    directory("t/dir2file"),
    file("t/dir2file/child", "c"),
    file("t/file2dir", "f"),
    symlink("t/link2dir", "file2dir"),
    directory("t/dir2link"),
    file("t/dir2link/child", "c"),
    directory("t/keep", mode=0o755),
    file("t/keep/child", "c"),
]

CHANGES = [
    whiteout("a/gone"),
    whiteout("top-gone"),
    directory("o"),
    opaque("o"),
    file("o/new", "new"),
    whiteout("a/sub"),  # whiteout first, then this layer's own a/sub: only a/sub/y remains
    directory("a/sub"),
    file("a/sub/y", "y"),
    directory("w"),  # this layer's w, then its whiteout: w survives with only "mine"
    file("w/mine", "mine"),
    whiteout("w"),
    file("a/same", "same"),  # a file and its whiteout in one layer: the file survives
    whiteout("a/same"),
    file("t/dir2file", "now a file"),
    directory("t/file2dir", mode=0o711),
    file("t/file2dir/c", "c"),
    directory("t/link2dir"),
    file("t/link2dir/c", "c"),
    symlink("t/dir2link", "keep"),
    directory("t/keep", mode=0o700, uid=5, gid=6),  # dir over dir: attributes only
    hardlink("a/lower-link", "a/keep"),  # hardlink to a file of a lower layer
    file("etc/passwd", "root:x:0:0::/root:/bin/bash\n", mode=0o600),  # replaced
]

LAYERS = [BASE, CHANGES, [whiteout("o/new"), file("bin/su", b"new su", mode=0o4711)]]


@pytest.mark.parametrize("depth", [1, 2, 3])
async def test_layers_match_the_reference_flattening(snap: Snapshotter, tmp_path: Path, depth):
    layers = LAYERS[:depth]
    top = await apply_items(snap, layers, tmp_path / "blobs")
    assert await merged_tree(snap, top) == flatten(layers)


async def test_entry_kinds_keep_their_attributes(snap: Snapshotter, tmp_path: Path):
    top = await apply_items(snap, [BASE], tmp_path / "blobs")
    async with merged_view(snap, top) as root:
        su = os.lstat(root / "bin/su")
        assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_nlink == 2
        assert os.lstat(root / "bin/su-again").st_ino == su.st_ino
        assert stat.S_IMODE(os.lstat(root / "bin/wall").st_mode) == 0o2755
        assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
        null = os.lstat(root / "dev/null")
        assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
        assert os.minor(null.st_rdev) == 3
        loop = os.lstat(root / "dev/loop0")
        assert stat.S_ISBLK(loop.st_mode) and (loop.st_uid, loop.st_gid) == (0, 6)
        assert stat.S_ISFIFO(os.lstat(root / "run/initctl").st_mode)
        home = os.lstat(root / "home/user")
        assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o700)
        assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
        assert os.getxattr(root / "xattr-file", "user.bin") == b"\x00\xff"
        for path in ("etc", "etc/passwd", "home/user", "tmp", "etc/localtime", "bin/su"):
            assert os.lstat(root / path).st_mtime_ns == MTIME * 10**9, path


async def test_directory_times_are_set_last_and_pax_times_kept(snap: Snapshotter, tmp_path):
    layer = (
        Layer()
        .dir("d", mtime=1_000_000_000)
        .file("d/child", b"x", mtime=1_100_000_000)
        .dir("d/sub", mtime=1_200_000_000)
        .file("d/sub/f", b"y", pax_extra={b"mtime": b"1300000000.25", b"atime": b"5"})
        .symlink("d/ln", "child", mtime=1_400_000_000)
    )
    top = await apply_all(snap, [layer], tmp_path / "blobs")
    async with merged_view(snap, top) as root:
        assert os.lstat(root / "d").st_mtime_ns == 1_000_000_000 * 10**9
        assert os.lstat(root / "d/sub").st_mtime_ns == 1_200_000_000 * 10**9
        assert os.lstat(root / "d/child").st_mtime_ns == 1_100_000_000 * 10**9
        f = os.lstat(root / "d/sub/f")
        assert f.st_mtime_ns == 1_300_000_000_250_000_000
        assert f.st_atime_ns == 5 * 10**9
        assert os.lstat(root / "d/ln").st_mtime_ns == 1_400_000_000 * 10**9


def _capability(bit: int) -> bytes:
    # struct vfs_cap_data, revision 2, effective flag set: permitted = inheritable-free bit
    return struct.pack("<IIIII", 0x02000001, 1 << bit, 0, 0, 0)


async def test_drivers_agree_down_to_times(tmp_path: Path):
    """Implicit parents, symlinked parents, copy-ups and capabilities: same merged tree."""
    base = (
        Layer()
        .dir("usr")
        .dir("usr/lib", mode=0o755, mtime=1_500_000_000)
        .file("usr/lib/libc.so", b"libc")
        .symlink("lib", "usr/lib", mtime=1_400_000_000)
        .dir("var", mode=0o750, uid=7, gid=8, mtime=1_300_000_000)
        .dir("var/log", mode=0o700, mtime=1_200_000_000)
        .file("bin-ping", b"ping", mode=0o755)
        .dir("etc")
        .file("etc/passwd", b"root")
    )
    top = (
        Layer()
        .file("lib/libnew.so", b"new")  # lands in usr/lib through the lower symlink
        .file("var/log/syslog", b"log")  # implicit var and var/log keep lower attributes
        .hardlink("etc/passwd-", "etc/passwd")  # target only in the lower layer
        .file("ping", b"ping", mode=0o755, xattrs={"security.capability": _capability(13)})
        .file("sel", b"s", xattrs={"security.selinux": b"system_u:object_r:bin_t:s0"})
    )
    trees = {}
    for driver in DRIVERS:
        snap = open_snapshotter(tmp_path / driver, driver)
        chain = await apply_all(snap, [base, top], tmp_path / "blobs")
        trees[driver] = await merged_describe(snap, chain)
    assert trees["overlay"] == trees["copy"]
    tree = trees["copy"]
    assert tree["usr/lib/libnew.so"][0][0] == "file"
    assert "lib/libnew.so" not in tree and tree["lib"][0] == ("symlink", "usr/lib")
    assert tree["var"][1:4] == (0o750, 7, 8)
    assert tree["var"][5] == 1_300_000_000 * 10**9
    assert tree["var/log"][5] == 1_200_000_000 * 10**9
    assert tree["usr/lib"][5] == 1_500_000_000 * 10**9
    assert tree["etc/passwd-"][6] == 2 and tree["etc/passwd"][6] == 2
    assert ("security.capability", _capability(13)) in tree["ping"][4]
    assert not any(name == "security.selinux" for name, _ in tree["sel"][4])


@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
async def test_compressions_give_the_same_snapshot(snap: Snapshotter, tmp_path, compression):
    layer = Layer().dir("d").file("d/f", os.urandom(300_000)).symlink("s", "d/f")
    top = await apply_all(snap, [layer], tmp_path / "blobs", compression)
    assert top == diff_id(layer)
    async with merged_view(snap, top) as root:
        assert (root / "d/f").stat().st_size == 300_000
    meta = json.loads((snap.fs_path(top).parent / "meta.json").read_text())
    assert meta["compression"] == (compression or "none")


async def test_empty_layer(snap: Snapshotter, tmp_path: Path):
    top = await apply_all(snap, [Layer()], tmp_path / "blobs")
    assert top == Digest.of_bytes(bytes(1024))
    assert snap.size(top) == 0
    assert await merged_tree(snap, top) == {}


# -- the snapshotter interface ------------------------------------------------------------------


async def test_accessors_and_layout(snap: Snapshotter, tmp_path: Path):
    l1 = Layer().file("one", b"1" * 100)
    l2 = Layer().file("two", b"2" * 50)
    top = await apply_all(snap, [l1, l2], tmp_path / "blobs")
    base = diff_id(l1)
    assert top == chain_of(base, diff_id(l2))
    assert snap.exists(top) and snap.exists(base)
    assert snap.parent(top) == base and snap.parent(base) is None
    assert snap.size(base) == 100 and snap.size(top) == 50
    assert snap.diff_id(top) == diff_id(l2)
    assert snap.list() == [top, base]  # children first
    assert snap.fs_path(top).name == "fs" and snap.fs_path(top).parent.name.isdigit()
    if isinstance(snap, OverlaySnapshotter):
        assert snap.lowers(top) == [snap.fs_path(top), snap.fs_path(base)]
        assert not (snap.fs_path(top) / "one").exists()
        rel = snap.overlay_lowerdir(top).split(":")
        assert [snap.root / r for r in rel] == snap.lowers(top)
    else:
        assert snap.lowers(top) == [snap.fs_path(top)]
        assert (snap.fs_path(top) / "one").read_bytes() == b"1" * 100
    missing = Digest.of_bytes(b"missing")
    assert not snap.exists(missing)
    with pytest.raises(NotFound, match="does not exist"):
        snap.fs_path(missing)
    with pytest.raises(NotFound):
        snap.parent(missing)


async def test_apply_is_idempotent_and_checks_its_arguments(snap: Snapshotter, tmp_path: Path):
    layer = Layer().file("f", b"data")
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob())
    diff = diff_id(layer)
    first = await snap.apply(diff, None, blob, diff)
    again = await snap.apply(diff, None, blob, diff)
    assert first == again and first.size == 4
    other = Digest.of_bytes(b"other")
    with pytest.raises(InvalidArgument, match="does not follow"):
        await snap.apply(other, None, blob, diff)
    with pytest.raises(NotFound, match="apply the lower layers first"):
        await snap.apply(chain_of(other, diff), other, blob, diff)
    # Without an expected DiffID the chain is still checked against what was unpacked.
    with pytest.raises(VerificationError, match="does not produce chain"):
        await snap.apply(other, None, blob, None)
    assert snap.list() == [diff]
    assert os.listdir(snap.root / "tmp") == []


async def test_progress_reports_compressed_bytes(snap: Snapshotter, tmp_path: Path):
    layer = Layer().file("big", os.urandom(3 << 20))
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob())
    seen: list[int] = []
    await snap.apply(diff_id(layer), None, blob, diff_id(layer), progress=seen.append)
    assert seen and seen == sorted(seen)
    assert seen[-1] <= blob.stat().st_size


async def test_corrupt_blob_is_refused(snap: Snapshotter, tmp_path: Path):
    blob = tmp_path / "blob"
    data = Layer().file("f", os.urandom(10_000)).blob()
    blob.write_bytes(data[: len(data) // 2])
    with pytest.raises(PortsideError, match="truncated"):
        await snap.apply(Digest.of_bytes(b"x"), None, blob, None)
    blob.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    with pytest.raises(PortsideError, match="gzip"):
        await snap.apply(Digest.of_bytes(b"x"), None, blob, None)
    blob.write_bytes(os.urandom(4096))
    with pytest.raises(PortsideError, match="not a tar"):
        await snap.apply(Digest.of_bytes(b"x"), None, blob, None)
    with pytest.raises(PortsideError, match="cannot read layer blob"):
        await snap.apply(Digest.of_bytes(b"x"), None, tmp_path / "missing", None)
    assert snap.list() == [] and os.listdir(snap.root / "tmp") == []


async def test_remove_refuses_parents_and_unknown_chains(snap: Snapshotter, tmp_path: Path):
    layers = [Layer().file("a", b"a"), Layer().file("b", b"b")]
    top = await apply_all(snap, layers, tmp_path / "blobs")
    base = diff_id(layers[0])
    with pytest.raises(Conflict, match="parent of"):
        await snap.remove(base)
    for chain in snap.list():  # children first: the order garbage collection uses
        await snap.remove(chain)
    assert snap.list() == [] and not snap.exists(top)
    assert [n for n in os.listdir(snap.root) if n.isdigit()] == []
    with pytest.raises(NotFound):
        await snap.remove(top)


async def test_many_layers_mount_with_relative_lowerdirs(tmp_path: Path):
    snap = open_snapshotter(tmp_path / "root", "overlay")
    layers = [Layer().file(f"f{i}", str(i).encode()).whiteout(f".wh.f{i - 1}") for i in range(8)]
    top = await apply_all(snap, layers, tmp_path / "blobs")
    assert len(snap.lowers(top)) == 8
    async with merged_view(snap, top) as root:
        assert sorted(os.listdir(root)) == ["f7"]
    assert not os.path.ismount(root)


# -- concurrency and crashes --------------------------------------------------------------------

_APPLY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from engine.digest import Digest
from engine.store.snapshots import open_snapshotter
root, driver, blob, diff = sys.argv[1:5]
snap = open_snapshotter(Path(root), driver)
d = Digest.parse(diff)
asyncio.run(snap.apply(d, None, Path(blob), d))
print("ok")
"""


async def test_concurrent_applies_commit_once(snap: Snapshotter, tmp_path: Path):
    layer = Layer()
    for i in range(300):
        layer.file(f"f{i}", os.urandom(2000))
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob())
    diff = diff_id(layer)
    root = snap.root.parent.parent
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _APPLY_SCRIPT,
            str(root),
            snap.driver,
            str(blob),
            str(diff),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(snap.apply(diff, None, blob, diff) for _ in range(3)))
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(out.strip() == b"ok" for out, _ in outs)
    assert len(set(results)) == 1 and results[0].diff_id == diff
    assert snap.list() == [diff]
    assert [n for n in os.listdir(snap.root) if n.isdigit()] == [snap.fs_path(diff).parent.name]
    assert os.listdir(snap.root / "tmp") == []


_CRASH_SCRIPT = """
import asyncio, os, signal, sys
from pathlib import Path
from engine.digest import Digest
from engine.store.snapshots import open_snapshotter
root, driver, blob, diff = sys.argv[1:5]
snap = open_snapshotter(Path(root), driver)
d = Digest.parse(diff)
def die(n):
    print("dying", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(snap.apply(d, None, Path(blob), d, progress=die))
"""


async def test_leftovers_of_a_killed_apply_are_cleaned(snap: Snapshotter, tmp_path: Path):
    layer = Layer()
    for i in range(40):
        layer.file(f"f{i}", os.urandom(200_000))
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob())
    diff = diff_id(layer)
    root = snap.root.parent.parent
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASH_SCRIPT,
        str(root),
        snap.driver,
        str(blob),
        str(diff),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL and out == b"dying\n"
    assert os.listdir(snap.root / "tmp") != []  # the half-applied layer
    # Crash leftovers of other kinds: an orphan snapshot dir and a dangling chain link.
    (snap.root / "77" / "fs").mkdir(parents=True)
    (snap.root / "77" / "meta.json").write_text("{}")
    os.symlink("99", snap.root / "chains" / f"sha256-{'0' * 64}")
    # The helper dies with its parent; until it is gone it holds the lock and cleanup waits.
    for _ in range(200):
        if snap.cleanup():
            break
        await asyncio.sleep(0.05)
    again = open_snapshotter(root, snap.driver)
    assert os.listdir(again.root / "tmp") == []
    assert sorted(os.listdir(again.root / "chains")) == []
    assert not (again.root / "77").exists()
    assert again.list() == []
    await again.apply(diff, None, blob, diff)
    assert again.list() == [diff]


# -- choosing a driver ------------------------------------------------------------------------


def test_open_snapshotter_picks_and_forces_drivers(tmp_path: Path):
    assert overlay_supported(tmp_path / "root" / "snapshots")  # root, overlayfs, ext4 here
    assert isinstance(open_snapshotter(tmp_path / "root"), OverlaySnapshotter)
    forced = open_snapshotter(tmp_path / "root", "copy")
    assert isinstance(forced, CopySnapshotter)
    assert forced.root == tmp_path / "root" / "snapshots" / "copy"
    assert stat.S_IMODE(os.stat(forced.root).st_mode) == 0o700
    with pytest.raises(InvalidArgument, match="unknown snapshotter 'zfs'"):
        open_snapshotter(tmp_path / "root", "zfs")
    assert not [p for p in (tmp_path / "root" / "snapshots").iterdir() if "probe" in p.name]
