"""Hostile layer tars against both snapshotters (engine.md §7.2, items 1-6).

Each test applies hand-built tars through the real helper process. A sentinel directory
outside the engine root sits where an escape through an absolute or ``..`` path would land;
its files' content, mode, owner, mtime, xattrs and link counts are recorded before and checked
after, together with /etc/passwd and /etc/shadow of this machine and a scan for the marker
file name outside the snapshot trees. A refused layer must leave no committed snapshot and no
work directory behind.

These tests run as root: if the unpacker ever regressed, whatever they aim at this machine's
real directories must be harmless. So anything pointed at ``/`` only creates files named
``MARKER`` (found and deleted again by the checks); existing files are only ever targeted
inside the sentinel, which has its own ``etc/passwd``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.digest import Digest
from engine.errors import PortsideError, VerificationError
from engine.store.snapshots import Snapshotter, chain_of, merged_view, open_snapshotter
from tests.security.layers import Layer, describe, diff_id, header, pad, pax

MARKER = f"portside-escape-{secrets.token_hex(4)}"
HOST_FILES = [Path("/etc/passwd"), Path("/etc/shadow")]


def _stat_of(path: Path) -> tuple[object, ...]:
    st = os.lstat(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_nlink, digest)


class Harness:
    """One snapshotter, a sentinel outside it, and the checks every test ends with."""

    def __init__(self, base: Path, driver: str) -> None:
        self.base = base
        self.snap: Snapshotter = open_snapshotter(base / "root", driver)
        self.blobs = base / "blobs"
        self.blobs.mkdir()
        self.sentinel = base / "sentinel"
        (self.sentinel / "dir").mkdir(parents=True)
        (self.sentinel / "etc").mkdir()
        (self.sentinel / "file").write_bytes(b"sentinel")
        (self.sentinel / "dir" / "inner").write_bytes(b"inner")
        (self.sentinel / "etc" / "passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
        files = ("file", "dir/inner", "etc/passwd")
        for path in (self.sentinel / name for name in files):
            os.chmod(path, 0o644)
            os.utime(path, (1_000_000_000, 1_000_000_000))
        for path in (self.sentinel / "dir", self.sentinel / "etc", self.sentinel):
            os.utime(path, (1_000_000_000, 1_000_000_000))
        self.parent: Digest | None = None
        self.before = self._state()

    @property
    def abs(self) -> str:
        """Absolute path of the sentinel (where an absolute-path escape would land)."""
        return str(self.sentinel)

    @property
    def rel(self) -> str:
        """A relative path with enough ``..`` to reach the sentinel from any snapshot dir."""
        return "../" * 30 + str(self.sentinel).lstrip("/")

    def _state(self) -> tuple[object, ...]:
        return (
            describe(self.sentinel),
            _stat_of(self.sentinel),
            [_stat_of(p) for p in HOST_FILES],
        )

    async def apply(self, layer: Layer, compression: str | None = "gzip") -> Digest:
        data = layer.blob(compression)
        blob = self.blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        diff = diff_id(layer)
        chain = chain_of(self.parent, diff)
        result = await self.snap.apply(chain, self.parent, blob, diff)
        assert result.diff_id == diff
        self.parent = chain
        return chain

    async def reject(self, layer: Layer, match: str) -> PortsideError:
        committed = self.snap.list()
        with pytest.raises(PortsideError, match=match) as info:
            await self.apply(layer)
        assert "\n" not in str(info.value)
        self.assert_nothing_committed(committed)
        return info.value

    def assert_nothing_committed(self, committed: list[Digest]) -> None:
        root = self.snap.root
        assert self.snap.list() == committed
        assert os.listdir(root / "tmp") == []
        assert len([n for n in os.listdir(root) if n.isdigit()]) == len(committed)

    def assert_untouched(self) -> None:
        escaped = [
            place / name
            for place in (Path("/"), Path("/etc"), Path("/tmp"))
            for name in (MARKER, MARKER + ".d")
            if (place / name).exists() or (place / name).is_symlink()
        ]
        for path in escaped:  # leave nothing behind on this machine, then fail
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        assert escaped == []
        assert self._state() == self.before
        snapshots = self.snap.root
        for dirpath, dirnames, filenames in os.walk(self.base):
            if Path(dirpath) == snapshots:
                dirnames[:] = [d for d in dirnames if d == "tmp"]
            assert MARKER not in filenames and MARKER not in dirnames, dirpath

    async def tree(self) -> dict[str, tuple[object, ...]]:
        assert self.parent is not None
        async with merged_view(self.snap, self.parent) as root:
            return describe(root)


@pytest.fixture(params=["overlay", "copy"])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, request.param)
    yield harness
    harness.assert_untouched()


def inside(h: Harness, *parts: str) -> str:
    """Path inside a snapshot where something aimed at the sentinel ends up."""
    return "/".join([h.abs.lstrip("/"), *parts])


# -- 1. names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        f"../../{MARKER}",
        f"a/../../{MARKER}",
        f"../{MARKER}",
        "..",
        f"./../{MARKER}",
        f"/../{MARKER}",
    ],
)
async def test_dotdot_names_refuse_the_layer(h: Harness, name: str):
    layer = Layer().file("ok", b"fine").file(name, b"escaped")
    await h.reject(layer, "leads outside the layer root")
    h.assert_untouched()


async def test_dotdot_towards_the_sentinel_is_refused(h: Harness):
    await h.reject(Layer().file(h.rel + "/file", b"pwned"), "leads outside")
    await h.reject(Layer().dir(h.rel + "/dir", mode=0o700), "leads outside")
    h.assert_untouched()


async def test_absolute_names_stay_inside(h: Harness):
    layer = Layer().file(f"/etc/{MARKER}", b"inside").file(h.abs + "/file", b"inside too")
    await h.apply(layer)
    tree = await h.tree()
    assert tree[f"etc/{MARKER}"][0][0] == "file"
    assert inside(h, "file") in tree
    h.assert_untouched()


async def test_nul_in_names_is_refused(h: Harness):
    await h.reject(
        Layer().raw(pax({b"path": b"ok\x00../../" + MARKER.encode()}) + header("x")), "NUL"
    )
    longname = b"a\x00/../../" + MARKER.encode() + b"\x00"
    gnu = header("././@LongLink", b"L", size=len(longname)) + pad(longname) + header("x")
    await h.reject(Layer().raw(gnu), "NUL")
    target = pax({b"linkpath": b"/etc\x00passwd"}) + header("lnk", b"2")
    await h.reject(Layer().raw(target), "NUL")
    h.assert_untouched()


async def test_ustar_name_field_ends_at_its_first_nul(h: Harness):
    # In a plain ustar header the name field is NUL-terminated: "x\0../../MARKER" is "x".
    await h.apply(Layer().raw(header(b"x\x00../../" + MARKER.encode(), size=2) + pad(b"ok")))
    assert set(await h.tree()) == {"x"}
    h.assert_untouched()


async def test_long_names(h: Harness):
    deep = "/".join(["d" * 200] * 15) + "/" + "f" * 200  # 3215 bytes, components < 256
    await h.apply(Layer().file(deep, b"deep"))
    assert deep in await h.tree()
    await h.reject(Layer().file("x" * 4097, b"long"), "too long")
    await h.reject(Layer().symlink("s", "t" * 4097), "too long")
    await h.reject(Layer().raw(pax({b"comment": b"c" * (2 << 20)}) + header("x")), "too large")
    await h.reject(Layer().file("c" * 300, b"component"), "too long|File name")
    h.assert_untouched()


# -- 2. symlinks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/", "../../..", "/tmp/../../.."])
@pytest.mark.parametrize("same_layer", [False, True])
async def test_writes_through_symlinks_to_the_host_root_stay_inside(
    h: Harness, target: str, same_layer: bool
):
    first = Layer().symlink("evil", target)
    second = first if same_layer else Layer()
    second.file(f"evil/{MARKER}", b"pwned").file(f"evil/etc/{MARKER}", b"pwned")
    second.dir(f"evil/tmp/{MARKER}.d", mode=0o777).file(f"evil/tmp/{MARKER}.d/inner")
    if not same_layer:
        await h.apply(first)
    await h.apply(second)
    tree = await h.tree()
    assert tree["evil"][0] == ("symlink", target)
    assert tree[MARKER][0][0] == "file" and tree[f"etc/{MARKER}"][0][0] == "file"
    assert tree[f"tmp/{MARKER}.d/inner"][0][0] == "file"
    h.assert_untouched()


@pytest.mark.parametrize("kind", ["abs", "rel"])
@pytest.mark.parametrize("same_layer", [False, True])
async def test_writes_through_symlinks_to_the_sentinel_stay_inside(
    h: Harness, kind: str, same_layer: bool
):
    target = h.abs if kind == "abs" else h.rel
    first = Layer().symlink("evil", target)
    second = first if same_layer else Layer()
    second.dir("evil/etc", mode=0o777, uid=99).file("evil/etc/passwd", b"pwned", mode=0o777)
    second.file("evil/file", b"pwned").dir("evil/dir", mode=0o700).file("evil/dir/inner")
    second.file(f"evil/{MARKER}", b"pwned")
    if not same_layer:
        await h.apply(first)
    await h.apply(second)
    tree = await h.tree()
    assert tree["evil"][0] == ("symlink", target)
    assert tree[inside(h, "etc/passwd")][1] == 0o777
    assert tree[inside(h, "etc")][1:3] == (0o777, 99)
    assert tree[inside(h, MARKER)][0][0] == "file"
    h.assert_untouched()


async def test_symlink_chains_and_loops(h: Harness):
    layer = (
        Layer()
        .symlink("a", "b")
        .symlink("b", "c/../../../../" + h.abs.lstrip("/"))
        .dir("c")
        .file("a/file", b"pwned")
    )
    await h.apply(layer)
    assert inside(h, "file") in await h.tree()
    await h.reject(Layer().symlink("loop", "loop").file("loop/x", b"x"), "symbolic links")
    await h.reject(Layer().file("f", b"").file("f/x", b"x"), "not a directory")
    h.assert_untouched()


# -- 3. hardlinks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("/etc/shadow", "does not exist"),
        ("{abs}/file", "does not exist"),
        ("../../outside", "leads outside"),
        ("{rel}/file", "leads outside"),
        ("/", "root directory"),
    ],
)
async def test_hardlinks_to_outside_are_refused(h: Harness, target: str, match: str):
    layer = Layer().hardlink("x", target.format(abs=h.abs, rel=h.rel))
    await h.reject(layer, match)
    h.assert_untouched()


async def test_hardlinks_never_go_through_symlinks(h: Harness):
    # "evil" points at the layer's own root, so even a broken unpacker links nothing of the host
    await h.apply(Layer().dir("etc").file("etc/shadow", b"mine").symlink("evil", "."))
    await h.reject(Layer().hardlink("x", "evil/etc/shadow"), "through a symlink")
    await h.reject(Layer().symlink("s", h.abs).hardlink("y", "s/file"), "through a symlink")
    await h.reject(Layer().dir("d").hardlink("z", "d"), "is a directory")
    h.assert_untouched()


async def test_hardlink_to_a_symlink_links_the_symlink(h: Harness):
    layer = Layer().symlink("lnk", h.abs + "/file").hardlink("hl", "lnk")
    await h.apply(layer)
    tree = await h.tree()
    assert tree["hl"][0] == ("symlink", h.abs + "/file") and tree["hl"][6] == 2
    # A later regular file with the hardlink's name replaces the link, not the sentinel.
    await h.apply(Layer().file("hl", b"pwned", mode=0o777, uid=4321))
    tree = await h.tree()
    assert tree["hl"][0][0] == "file" and tree["hl"][1:3] == (0o777, 4321)
    assert tree["lnk"][0] == ("symlink", h.abs + "/file")
    h.assert_untouched()


# -- 4. whiteouts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        (".wh..", "invalid whiteout"),
        (".wh.", "invalid whiteout"),
        ("dir/.wh..", "invalid whiteout"),
        ("dir/.wh.", "invalid whiteout"),
        ("../.wh.file", "leads outside"),
        ("a/../../.wh.file", "leads outside"),
    ],
)
async def test_bad_whiteouts_are_refused(h: Harness, name: str, match: str):
    await h.apply(Layer().dir("dir").file("dir/keep", b"k"))
    await h.reject(Layer().whiteout(name), match)
    assert "dir/keep" in await h.tree()
    h.assert_untouched()


@pytest.mark.parametrize("target", ["abs", "rel"])
async def test_whiteouts_under_symlinks_stay_inside(h: Harness, target: str):
    link = h.abs if target == "abs" else h.rel
    await h.apply(Layer().symlink("evil", link).file("keep", b"k"))
    layer = (
        Layer().whiteout("evil/.wh.file").whiteout("evil/.wh.dir").whiteout("evil/dir/.wh.inner")
    )
    await h.apply(layer)
    await h.apply(Layer().whiteout("evil/.wh..wh..opq").file("other", b"o"))
    tree = await h.tree()
    assert tree["evil"][0] == ("symlink", link) and "keep" in tree
    h.assert_untouched()


async def test_opaque_whiteout_under_a_symlinked_dir(h: Harness):
    await h.apply(Layer().dir("real").file("real/lower", b"l").symlink("via", h.abs + "/dir"))
    await h.apply(Layer().whiteout("via/.wh..wh..opq").whiteout("real/.wh..wh..opq"))
    tree = await h.tree()
    assert "real/lower" not in tree and tree["via"][0] == ("symlink", h.abs + "/dir")
    h.assert_untouched()


async def test_overlay_xattrs_from_a_tar_are_ignored(h: Harness):
    await h.apply(Layer().dir("o").file("o/keep", b"k").file("hidden", b"h"))
    layer = (
        Layer()
        .dir("o", xattrs={"trusted.overlay.opaque": b"y", "user.overlay.opaque": b"y"})
        .file("redirect", b"r", xattrs={"trusted.overlay.redirect": b"/hidden"})
    )
    await h.apply(layer)
    tree = await h.tree()
    assert "o/keep" in tree and tree["redirect"][0][0] == "file"
    for path in h.snap.lowers(h.parent):
        for name in ("o", "redirect"):
            if (path / name).exists():
                assert not any(
                    n.startswith(("trusted.overlay.r", "user.overlay"))
                    for n in os.listxattr(path / name)
                )
    h.assert_untouched()


# -- 5. the root and dir -> symlink changes ------------------------------------------------------


@pytest.mark.parametrize("name", [".", "./", "/", "a/..", "./a/../"])
@pytest.mark.parametrize("kind", ["symlink", "file", "hardlink", "fifo"])
async def test_root_never_changes_type(h: Harness, name: str, kind: str):
    layer = Layer().file("a", b"a")
    if kind == "symlink":
        layer.symlink(name, h.abs)
    elif kind == "file":
        layer.file(name, b"x")
    elif kind == "hardlink":
        layer.hardlink(name, "a")
    else:
        layer.fifo(name)
    await h.reject(layer, "root directory")
    h.assert_untouched()


async def test_root_directory_entry_sets_attributes_only(h: Harness):
    await h.apply(Layer().dir(".", mode=0o711).file("f", b"f"))
    async with merged_view(h.snap, h.parent) as root:
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o711
        assert os.listdir(root) == ["f"]


@pytest.mark.parametrize("same_layer", [False, True])
async def test_dir_turned_symlink_then_children(h: Harness, same_layer: bool):
    first = Layer().dir("d").file("d/f", b"f")
    second = first if same_layer else Layer()
    second.symlink("d", h.abs).file("d/file", b"pwned", mode=0o777).dir("d/dir", mode=0o700)
    second.file(f"d/{MARKER}", b"pwned")
    if not same_layer:
        await h.apply(first)
    await h.apply(second)
    tree = await h.tree()
    assert tree["d"][0] == ("symlink", h.abs) and "d/f" not in tree
    assert tree[inside(h, "file")][1] == 0o777 and inside(h, MARKER) in tree
    h.assert_untouched()


# -- 6. entries after a same-named symlink (CVE-2021-32760) --------------------------------------


@pytest.mark.parametrize("same_layer", [False, True])
@pytest.mark.parametrize("kind", ["file", "dir", "fifo", "chardev", "symlink", "hardlink"])
async def test_entry_after_symlink_never_touches_the_target(
    h: Harness, kind: str, same_layer: bool
):
    target = h.abs + ("/dir" if kind == "dir" else "/file")
    first = Layer().file("plain", b"p").symlink("x", target)
    second = first if same_layer else Layer()
    attrs = {"uid": 4321, "gid": 4321, "mtime": 12345}
    xattrs = {"user.pwned": b"1"}
    if kind == "file":
        second.file("x", b"pwned", mode=0o6777, xattrs=xattrs, **attrs)
    elif kind == "dir":
        second.dir("x", mode=0o700, xattrs=xattrs, **attrs)
    elif kind == "fifo":
        second.fifo("x", mode=0o4666, **attrs)
    elif kind == "chardev":
        second.chardev("x", 1, 3, mode=0o6666, **attrs)
    elif kind == "symlink":
        second.symlink("x", "elsewhere", **attrs)
    else:
        second.hardlink("x", "plain")
    if not same_layer:
        await h.apply(first)
    await h.apply(second)
    tree = await h.tree()
    if kind == "hardlink":
        assert tree["x"][0] == tree["plain"][0] and tree["x"][6] == 2
    else:
        assert tree["x"][2:4] == (4321, 4321) and tree["x"][5] == 12345 * 10**9
        assert tree["x"][0][0] == {"chardev": "dev"}.get(kind, kind)
    h.assert_untouched()


# -- DiffID ---------------------------------------------------------------------------------------


async def test_diff_id_mismatch_commits_nothing(h: Harness):
    good = Layer().file("a", b"a")
    evil = Layer().file("a", b"b")
    blob = h.blobs / "evil"
    blob.write_bytes(evil.blob())
    with pytest.raises(VerificationError, match="DiffID"):
        await h.snap.apply(diff_id(good), None, blob, diff_id(good))
    h.assert_nothing_committed([])
    h.assert_untouched()
