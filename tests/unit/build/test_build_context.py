"""Build contexts from directories and tar streams: filtering, hostile tars, hashing."""

from __future__ import annotations

import asyncio
import bz2
import concurrent.futures
import gzip
import hashlib
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine.build.context import SCRATCH, BuildContext, ContextError, _scratch_parent, _unpack


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def reg(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 1_600_000_000
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    info.mode = 0o755
    return info, None


# -- directories ---------------------------------------------------------------------------
async def test_directory_context_filtered(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\n",
            ".dockerignore": "*\n!src\n!README.md\nsrc/*.tmp\n",
            "README.md": "r",
            "secret.key": "k",
            "src/main.c": "c",
            "src/junk.tmp": "t",
            "node_modules/x/y.js": "j",
        },
    )
    ctx = await BuildContext.from_directory(tmp_path)
    assert ctx.dockerfile == b"FROM scratch\n"
    assert ctx.dockerfile_name == "Dockerfile"
    assert await ctx.files() == [".dockerignore", "Dockerfile", "README.md", "src", "src/main.c"]
    assert ctx.included("src/main.c") and not ctx.included("secret.key")
    await ctx.close()  # a directory context is left in place
    assert (tmp_path / "secret.key").exists()


async def test_excluded_dir_descended_only_for_exceptions(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM a\n",
            ".dockerignore": "docs\n!docs/keep.txt\nbuild\n",
            "docs/keep.txt": "k",
            "docs/other.txt": "o",
            "build/out": "b",
        },
    )
    ctx = await BuildContext.from_directory(tmp_path)
    # docs is sent as the parent of what the exception re-includes (the docker CLI walks in)
    assert await ctx.files() == [".dockerignore", "Dockerfile", "docs", "docs/keep.txt"]
    assert ctx.resolve("docs").is_dir() and not ctx.sent("docs/other.txt")
    assert not ctx.sent("build", tmp_path / "build")


async def test_dockerfile_elsewhere_and_its_own_ignore_file(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(
        context,
        {
            ".dockerignore": "a.txt\n",
            "a.txt": "a",
            "b.txt": "b",
            "sub/Dockerfile.dev": "FROM dev\n",
            "sub/Dockerfile.dev.dockerignore": "b.txt\n",
        },
    )
    write(tmp_path, {"outside/Dockerfile": "FROM out\n"})
    dev = await BuildContext.from_directory(context, "sub/Dockerfile.dev")
    assert dev.dockerfile == b"FROM dev\n"
    assert dev.ignore_patterns == ["b.txt"]
    assert dev.included("a.txt") and not dev.included("b.txt")
    outside = await BuildContext.from_directory(context, str(tmp_path / "outside/Dockerfile"))
    assert outside.dockerfile == b"FROM out\n"
    assert outside.dockerfile_name == "Dockerfile"
    assert not outside.included("a.txt")


async def test_dockerfile_excluded_by_pattern_is_still_sent(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", ".dockerignore": "Dockerfile\n.dockerignore\n"})
    ctx = await BuildContext.from_directory(tmp_path)
    assert await ctx.files() == [".dockerignore", "Dockerfile"]


async def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match=r"Dockerfile .* not found: check the path or -f"):
        await BuildContext.from_directory(tmp_path)
    with pytest.raises(ContextError, match="is not a directory"):
        await BuildContext.from_directory(tmp_path / "nope")
    (tmp_path / "Dockerfile").mkdir()
    with pytest.raises(ContextError, match="not a regular file"):
        await BuildContext.from_directory(tmp_path)


# -- resolving COPY sources ----------------------------------------------------------------
async def test_resolve_stays_inside(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", "dir/file": "f"})
    os.symlink("dir/file", tmp_path / "inside")
    os.symlink("../dir", tmp_path / "dir" / "loop")
    os.symlink("/etc/passwd", tmp_path / "abs")
    os.symlink("../../etc", tmp_path / "dir" / "up")
    ctx = await BuildContext.from_directory(tmp_path)
    root = tmp_path.resolve()
    assert ctx.resolve("inside") == root / "dir" / "file"
    assert ctx.resolve("./dir/loop/loop/file") == root / "dir" / "file"
    assert ctx.resolve("inside", follow_final=False) == root / "inside"
    assert ctx.resolve("dir/../dir/file") == root / "dir" / "file"
    with pytest.raises(ContextError, match="outside the context"):
        ctx.resolve("abs")
    with pytest.raises(ContextError, match="leads outside the build context"):
        ctx.resolve("dir/up/passwd")
    with pytest.raises(ContextError, match="leads outside the build context"):
        ctx.resolve("../x")
    with pytest.raises(ContextError, match="not found"):
        ctx.resolve("missing")
    os.symlink("self", tmp_path / "self")
    with pytest.raises(ContextError, match="too many symbolic links"):
        ctx.resolve("self")


# -- hashing -------------------------------------------------------------------------------
async def test_hash_ignores_mtime_but_not_content_mode_or_links(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", "app/a.txt": "a", "app/b.txt": "b", "x": "x"})
    os.symlink("a.txt", tmp_path / "app" / "link")
    ctx = await BuildContext.from_directory(tmp_path)
    first = await ctx.hash_paths(["app"])
    assert first.startswith("sha256:") and len(first) == 71
    os.utime(tmp_path / "app" / "a.txt", (1, 1))
    assert await ctx.hash_paths(["app"]) == first
    assert await ctx.hash_paths(["x"]) != first

    (tmp_path / "app" / "a.txt").write_text("A")
    changed = await ctx.hash_paths(["app"])
    assert changed != first
    (tmp_path / "app" / "a.txt").write_text("a")
    assert await ctx.hash_paths(["app"]) == first

    os.chmod(tmp_path / "app" / "b.txt", 0o600)
    assert await ctx.hash_paths(["app"]) != first
    os.chmod(tmp_path / "app" / "b.txt", 0o644)
    assert await ctx.hash_paths(["app"]) == first

    os.unlink(tmp_path / "app" / "link")
    os.symlink("b.txt", tmp_path / "app" / "link")
    assert await ctx.hash_paths(["app"]) != first


async def test_resolve_refuses_ignored_paths(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", ".dockerignore": "*.key\n", "a.key": "k"})
    os.symlink("a.key", tmp_path / "alias")
    ctx = await BuildContext.from_directory(tmp_path)
    assert ctx.resolve(".") == tmp_path.resolve()
    for path in ("a.key", "alias"):
        with pytest.raises(ContextError, match=r"not found in the build context \(.dockerignore"):
            ctx.resolve(path)


async def test_hash_skips_ignored_files(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM a\n", ".dockerignore": "app/*.log\n", "app/a": "a"})
    ctx = await BuildContext.from_directory(tmp_path)
    before = await ctx.hash_paths(["app"])
    (tmp_path / "app" / "debug.log").write_text("noise")
    assert await ctx.hash_paths(["app"]) == before


async def test_same_tree_same_hash_in_two_places(tmp_path: Path) -> None:
    for where in ("one", "two"):
        write(tmp_path / where, {"Dockerfile": "FROM a\n", "d/f": "same"})
    one = await BuildContext.from_directory(tmp_path / "one")
    two = await BuildContext.from_directory(tmp_path / "two")
    assert await one.hash_paths(["d"]) == await two.hash_paths(["d"])
    assert await one.hash_paths(["d", "Dockerfile"]) != await one.hash_paths(["d"])


# -- tar streams ---------------------------------------------------------------------------
GOOD = [
    reg("Dockerfile", b"FROM scratch\nCOPY . /\n"),
    reg(".dockerignore", b"*.secret\n"),
    special("app", tarfile.DIRTYPE),
    reg("app/run.sh", b"#!/bin/sh\n", 0o755),
    reg("/abs/inside.txt", b"absolute names are made relative"),
    special("app/link", tarfile.SYMTYPE, "run.sh"),
    special("app/hard", tarfile.LNKTYPE, "app/run.sh"),
    reg("key.secret", b"k"),
]


@pytest.mark.parametrize(
    "compress",
    [lambda b: b, gzip.compress, bz2.compress, lzma.compress],
    ids=["plain", "gzip", "bzip2", "xz"],
)
async def test_tar_context(tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    data = compress(make_tar(GOOD))
    async with await BuildContext.from_tar(chunks_of(data), None, tmp_path) as ctx:
        root = ctx.root
        assert root.parent == tmp_path
        assert ctx.dockerfile == b"FROM scratch\nCOPY . /\n"
        assert await ctx.files() == [
            ".dockerignore",
            "Dockerfile",
            "abs",
            "abs/inside.txt",
            "app",
            "app/hard",
            "app/link",
            "app/run.sh",
        ]
        run = root / "app" / "run.sh"
        assert run.read_bytes() == b"#!/bin/sh\n"
        assert run.stat().st_mode & 0o777 == 0o755
        assert run.stat().st_mtime == 1_600_000_000
        assert os.readlink(root / "app" / "link") == "run.sh"
        assert (root / "app" / "hard").stat().st_ino == run.stat().st_ino
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


async def test_tar_context_named_dockerfile(tmp_path: Path) -> None:
    data = make_tar([reg("docker/Dockerfile.ci", b"FROM ci\n"), reg("a", b"a")])
    ctx = await BuildContext.from_tar(chunks_of(data), "docker/Dockerfile.ci", tmp_path)
    try:
        assert ctx.dockerfile == b"FROM ci\n"
        assert ctx.dockerfile_name == "docker/Dockerfile.ci"
    finally:
        await ctx.close()


async def test_tar_context_goes_to_tmpfs_when_it_has_room(tmp_path: Path) -> None:
    """tmpfs when /dev/shm has room (this VM and CI: 12 GiB), the temporary directory when
    it has not; the budget is a share of what tmpfs has free."""
    parent, budget = _scratch_parent()
    shm = os.statvfs(SCRATCH)
    if shm.f_bavail * shm.f_frsize >= 256 << 20:
        assert parent == SCRATCH and budget is not None and 0 < budget < shm.f_blocks * shm.f_frsize
    else:
        assert parent is None and budget is None
    async with await BuildContext.from_tar(chunks_of(make_tar(GOOD))) as ctx:
        root = ctx.root
        assert root.parent == Path(parent or tempfile.gettempdir())
        assert root.stat().st_mode & 0o777 == 0o700
        assert (root / "app" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert not root.exists()


def test_context_outgrowing_its_budget_moves_to_disk(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    roots = [first]
    try:
        _unpack(iter([make_tar(GOOD)]), roots, budget=1600)  # spills after a few entries
        assert len(roots) == 2 and not first.exists()
        root = roots[1]
        run = root / "app" / "run.sh"
        assert run.read_bytes() == b"#!/bin/sh\n" and run.stat().st_mode & 0o777 == 0o755
        assert run.stat().st_mtime == 1_600_000_000
        assert os.readlink(root / "app" / "link") == "run.sh"
        assert (root / "app" / "hard").read_bytes() == b"#!/bin/sh\n"
        assert (root / "key.secret").read_bytes() == b"k"
    finally:
        for root in roots[1:]:
            shutil.rmtree(root, ignore_errors=True)


async def test_tar_context_drops_listed_dockerfile_but_keeps_its_dir(tmp_path: Path) -> None:
    """As the docker CLI + dockerd: the CLI sends build/Special.dockerfile despite the
    ``build`` pattern, so build/ exists; dockerd then removes the listed Dockerfile."""
    data = make_tar(
        [
            reg(".dockerignore", b"build\n"),
            reg("build/Special.dockerfile", b"FROM x\nCOPY . /\n"),
            reg("build/out.bin", b"o"),
            reg("data.txt", b"d"),
        ]
    )
    name = "build/Special.dockerfile"
    async with await BuildContext.from_tar(chunks_of(data), name, tmp_path) as ctx:
        assert ctx.dockerfile == b"FROM x\nCOPY . /\n"
        assert await ctx.files() == [".dockerignore", "build", "data.txt"]
        with pytest.raises(ContextError):
            ctx.resolve(name)


HOSTILE = [
    ([reg("Dockerfile", b"x"), reg("../evil", b"e")], "leads outside the context"),
    ([reg("a/../../evil", b"e")], "leads outside the context"),
    (
        [special("esc", tarfile.SYMTYPE, "/tmp"), reg("esc/evil", b"e")],
        "goes through a symlink",
    ),
    (
        [special("up", tarfile.SYMTYPE, ".."), reg("up/evil", b"e")],
        "goes through a symlink",
    ),
    ([special("h", tarfile.LNKTYPE, "../../etc/passwd")], "leads outside the context"),
    ([special("h", tarfile.LNKTYPE, "missing")], "not earlier in the context"),
    (
        [special("s", tarfile.SYMTYPE, "/etc/passwd"), special("h", tarfile.LNKTYPE, "s")],
        "must point to a file",
    ),
    ([special("dev", tarfile.CHRTYPE)], "device or FIFO"),
    ([special("fifo", tarfile.FIFOTYPE)], "device or FIFO"),
]


@pytest.mark.parametrize(("members", "problem"), HOSTILE)
async def test_hostile_tar_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], problem: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ContextError, match=problem) as info:
        await BuildContext.from_tar(chunks_of(make_tar(members)), None, work)
    assert "\n" not in str(info.value)
    assert list(work.iterdir()) == []  # nothing half-written left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


async def test_symlink_in_tar_cannot_redirect_later_writes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        special("d", tarfile.SYMTYPE, str(outside)),
        reg("d", b"replaced the link, not written through it"),
        reg("Dockerfile", b"FROM a\n"),
    ]
    work = tmp_path / "work"
    work.mkdir()
    async with await BuildContext.from_tar(chunks_of(make_tar(members)), None, work) as ctx:
        assert (ctx.root / "d").read_bytes().startswith(b"replaced")
        assert not (ctx.root / "d").is_symlink()
    assert list(outside.iterdir()) == []


async def test_directory_replaced_by_a_symlink_takes_no_more_entries(tmp_path: Path) -> None:
    """The directory the previous entries went into is kept open; once a later entry has
    replaced it with a symlink, entries under that name are refused, not written through."""
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        reg("Dockerfile", b"FROM a\n"),
        reg("d/one", b"1"),
        reg("d/two", b"2"),
        special("d", tarfile.SYMTYPE, str(outside)),
        reg("d/three", b"3"),
    ]
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ContextError, match="symlink"):
        await BuildContext.from_tar(chunks_of(make_tar(members)), None, work)
    assert list(outside.iterdir()) == []
    assert list(work.iterdir()) == []


async def test_bad_streams(tmp_path: Path) -> None:
    good = make_tar([reg("Dockerfile", b"FROM a\n")])
    cases = [
        (b"this is not a tar archive at all" * 20, "not a valid tar"),
        (good[:700], "not a valid tar"),
        (gzip.compress(good)[:-30], "truncated"),
        (b"\x1f\x8b\x08\x00garbage-garbage-garbage", "corrupt"),
        (make_tar([reg("other", b"x")]), "Dockerfile 'Dockerfile' not found"),
    ]
    for data, problem in cases:
        with pytest.raises(ContextError, match=problem):
            await BuildContext.from_tar(chunks_of(data), None, tmp_path)
    with pytest.raises(ContextError, match="leads outside"):
        await BuildContext.from_tar(chunks_of(good), "../Dockerfile", tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_cancelled_upload_leaves_nothing(tmp_path: Path) -> None:
    data = make_tar([reg("Dockerfile", b"FROM a\n"), reg("big", b"x" * 100_000)])
    written = asyncio.Event()
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield data[:20_000]
        written.set()
        await never.wait()
        yield data[20_000:]

    task = asyncio.create_task(BuildContext.from_tar(stalls(), None, tmp_path))
    await written.wait()  # the writer has used the first chunk and asks for more
    assert [p.name for p in tmp_path.rglob("big")] == ["big"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []


async def test_close_cancelled_before_its_thread_runs_still_removes(tmp_path: Path) -> None:
    """The API cancels a handler whose client hung up; a removal queued behind busy worker
    threads must still happen."""
    ctx = await BuildContext.from_tar(chunks_of(make_tar(GOOD)), None, tmp_path)
    root = ctx.root
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    release = threading.Event()
    busy = loop.run_in_executor(None, release.wait)  # the only worker is taken
    closing = asyncio.create_task(ctx.close())
    await asyncio.sleep(0.05)  # close() now waits for a thread
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    await busy
    await asyncio.to_thread(lambda: None)  # runs after the queued removal
    assert not root.exists()


# -- content digests taken while unpacking ---------------------------------------------------
async def test_tar_context_hashes_like_the_same_directory(tmp_path: Path) -> None:
    """The digests a tar context records while writing its files give the keys a directory
    context computes by reading them; a later entry of the same name wins, a hard link or a
    replaced file is hashed by what is on disk at the end."""
    members = [
        *GOOD,
        reg("app/run.sh", b"#!/bin/sh\necho replaced\n", 0o755),  # the same name again
        reg("data/a.txt", b"alpha"),
        reg("data/b.txt", b"beta"),
        special("data/b.txt", tarfile.SYMTYPE, "a.txt"),  # a file replaced by a link
        special("data/c.txt", tarfile.LNKTYPE, "data/a.txt"),
    ]
    async with await BuildContext.from_tar(chunks_of(make_tar(members)), None, tmp_path) as ctx:
        assert ctx.digests  # recorded while unpacking
        assert "data/b.txt" not in ctx.digests
        copy = tmp_path / "copy"
        shutil.copytree(ctx.root, copy, symlinks=True)
        plain = await BuildContext.from_directory(copy)
        assert plain.digests == {}
        for paths in (["app"], ["data"], ["app/run.sh", "data/c.txt"], ["."]):
            assert await ctx.hash_paths(paths) == await plain.hash_paths(paths)
        before = await ctx.hash_paths(["data"])
        (copy / "data" / "a.txt").write_text("changed")
        assert await plain.hash_paths(["data"]) != before


def test_spilled_context_keeps_its_digests(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    roots = [first]
    digests: dict[str, bytes] = {}
    try:
        _unpack(iter([make_tar(GOOD)]), roots, budget=1600, digests=digests)
        assert len(roots) == 2
        assert set(digests) == {
            "Dockerfile",
            ".dockerignore",
            "app/run.sh",
            "abs/inside.txt",
            "key.secret",
        }
        assert digests["app/run.sh"] == hashlib.sha256(b"#!/bin/sh\n").digest()
    finally:
        for root in roots[1:]:
            shutil.rmtree(root, ignore_errors=True)
