"""Build contexts from directories and tar streams: filtering, hostile tars, hashing."""

from __future__ import annotations

import asyncio
import bz2
import concurrent.futures
import contextlib
import gzip
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from engine.build import tarindex
from engine.build.context import (
    SCRATCH,
    BuildContext,
    ContextError,
    _scratch_parent,
    apply_entries,
    decompressed,
)
from engine.store import tarstream


def _unpack(chunks: Iterator[bytes], roots: list[Path], budget: int | None = None) -> None:
    """The on-disk writer fed straight from a tar stream (what the index must match)."""
    reader = tarstream.TarReader(decompressed(chunks))

    def entries() -> Iterator[tuple[tarstream.Entry, tarstream.TarReader]]:
        while (entry := reader.next()) is not None:
            yield entry, reader
        reader.drain()

    apply_entries(entries(), roots, budget)


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
        assert list(tmp_path.iterdir()) == []  # answered from the index: nothing written
        root = await ctx.materialize()
        assert root.parent == tmp_path and await ctx.materialize() == root
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
        root = await ctx.materialize()
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
        root = await ctx.materialize()
        assert (root / "d").read_bytes().startswith(b"replaced")
        assert not (root / "d").is_symlink()
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


def spool_fds(where: Path) -> list[str]:
    """This process's open files under ``where`` (the unlinked spool files show there)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(where)):
                out.append(target)
    return out


async def test_cancelled_upload_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarindex, "SPOOL_RAM", 10_000)  # the spool moves to a file early
    monkeypatch.setattr(tarindex, "CACHE_BODY_MAX", 0)  # streamed, not gathered first
    data = make_tar([reg("Dockerfile", b"FROM a\n"), reg("big", b"x" * 100_000)])
    written = asyncio.Event()
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield data[:20_000]
        written.set()
        await never.wait()
        yield data[20_000:]

    task = asyncio.create_task(BuildContext.from_tar(stalls(), None, tmp_path))
    await written.wait()  # the reader has used the first chunk and asks for more
    await asyncio.sleep(0.05)
    assert [t.endswith("(deleted)") for t in spool_fds(tmp_path)] == [True]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []
    assert spool_fds(tmp_path) == []


async def test_big_context_spools_to_an_unlinked_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarindex, "SPOOL_RAM", 50_000)
    big = os.urandom(300_000)
    data = make_tar([reg("Dockerfile", b"FROM a\nCOPY big /\n"), reg("big", big)])
    async with await BuildContext.from_tar(chunks_of(data, 64 << 10), None, tmp_path) as ctx:
        assert ctx.dockerfile == b"FROM a\nCOPY big /\n"
        assert len(spool_fds(tmp_path)) == 1 and list(tmp_path.iterdir()) == []
        root = await ctx.materialize()
        assert (root / "big").read_bytes() == big
    assert list(tmp_path.iterdir()) == [] and spool_fds(tmp_path) == []


async def test_close_cancelled_before_its_thread_runs_still_removes(tmp_path: Path) -> None:
    """The API cancels a handler whose client hung up; a removal queued behind busy worker
    threads must still happen."""
    ctx = await BuildContext.from_tar(chunks_of(make_tar(GOOD)), None, tmp_path)
    root = await ctx.materialize()
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


async def test_the_same_upload_again_reuses_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged rebuild sends the same bytes: the index made the first time serves again
    (never changed, shared until its last user and the cache let it go)."""
    data = make_tar([*GOOD, reg("other/Dockerfile", b"FROM other\n"), reg("nonce", os.urandom(8))])
    first = await BuildContext.from_tar(chunks_of(data), None, tmp_path)
    second = await BuildContext.from_tar(chunks_of(data, 333), "other/Dockerfile", tmp_path)
    shared = first.index
    assert second.index is shared
    assert (first.dockerfile, second.dockerfile) == (b"FROM scratch\nCOPY . /\n", b"FROM other\n")
    key = await first.hash_paths(["app"])
    await first.close()
    assert await second.hash_paths(["app"]) == key
    root = await second.materialize()
    assert (root / "app" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    await second.close()
    assert shared.users == 1  # the cache's hold
    changed = data.replace(b"#!/bin/sh\n", b"#!/bin/XX\n")
    monkeypatch.setattr(tarindex, "CACHE_BYTES", 1)  # room for one index: the older goes
    async with await BuildContext.from_tar(chunks_of(changed), None, tmp_path) as third:
        assert third.index is not shared
        assert await third.hash_paths(["app"]) != key
    assert shared.users == 0 and shared.spool.size and not shared.spool.on_disk
    async with await BuildContext.from_tar(chunks_of(data), None, tmp_path) as again:
        assert again.index is not shared  # indexed anew after the eviction
        assert await again.hash_paths(["app"]) == key  # indexed anew after the eviction
    assert list(tmp_path.iterdir()) == []


# -- cache keys from the index ----------------------------------------------------------------
async def test_tar_context_hashes_like_the_same_directory(tmp_path: Path) -> None:
    """A tar context answers from its index with the keys a directory context computes by
    reading the same tree, both ways: a later entry of the same name wins, a hard link or
    a replaced file is hashed by what the tree holds at the end."""
    members = [
        *GOOD,
        reg("app/run.sh", b"#!/bin/sh\necho replaced\n", 0o755),  # the same name again
        reg("data/a.txt", b"alpha"),
        reg("data/b.txt", b"beta"),
        special("data/b.txt", tarfile.SYMTYPE, "a.txt"),  # a file replaced by a link
        special("data/c.txt", tarfile.LNKTYPE, "data/a.txt"),
        special("data/sub", tarfile.DIRTYPE),
        reg("data/sub/x", b"x", 0o4750),
        special("data/sub", tarfile.DIRTYPE),  # mode bits of a directory entry again
        reg("gone/inner", b"i"),
        reg("gone", b"a file replaces the directory"),
        special("ln", tarfile.SYMTYPE, "data/sub"),
    ]
    members[-2][0].mode = 0o600
    paths_cases = (["app"], ["data"], ["app/run.sh", "data/c.txt"], ["."], ["ln"], ["gone"])
    async with await BuildContext.from_tar(chunks_of(make_tar(members)), None, tmp_path) as ctx:
        keys = [await ctx.hash_paths(p) for p in paths_cases]
        files = await ctx.files()
        assert ctx.is_dir("ln") and not ctx.is_dir("gone")
        assert list(tmp_path.iterdir()) == []  # no file was written for any of that
        copy = tmp_path / "copy"
        shutil.copytree(await ctx.materialize(), copy, symlinks=True)
    plain = await BuildContext.from_directory(copy)
    assert [await plain.hash_paths(p) for p in paths_cases] == keys
    assert await plain.files() == files
    (copy / "data" / "a.txt").write_text("changed")
    assert await plain.hash_paths(["data"]) != keys[1]


async def test_directory_tree_sent_as_tar_gets_the_same_keys(tmp_path: Path) -> None:
    """The other way round: a directory (modes, symlinks, .dockerignore with exceptions,
    a hard link) and the tar the CLI would send of it give the same keys and listing."""
    src = tmp_path / "src"
    write(
        src,
        {
            "Dockerfile": "FROM a\n",
            ".dockerignore": "logs\n!logs/keep.txt\n*.tmp\n",
            "app/main.py": "print(1)\n",
            "app/x.tmp": "t",
            "logs/a.log": "a",
            "logs/keep.txt": "k",
            "bin/tool": "#!/bin/sh\n",
        },
    )
    (src / "bin" / "tool").chmod(0o751)
    (src / "app").chmod(0o750)
    src.chmod(0o700)  # an uploaded context's root is a private directory: 0700 in its key
    os.symlink("../app/main.py", src / "bin" / "main")
    os.link(src / "app" / "main.py", src / "hard.py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=".")
    plain = await BuildContext.from_directory(src)
    cases = (["."], ["app"], ["bin/main"], ["logs"], ["hard.py", "bin"])
    work = tmp_path / "work"
    work.mkdir()
    async with await BuildContext.from_tar(chunks_of(buf.getvalue()), None, work) as ctx:
        for paths in cases:
            assert await ctx.hash_paths(paths) == await plain.hash_paths(paths), paths
        assert await ctx.files() == await plain.files()
        assert ctx.sent("logs", ctx.root / "logs") and not ctx.included("logs/a.log")
        with pytest.raises(ContextError, match="dockerignore"):
            ctx.resolve("logs/a.log")
    assert list(work.iterdir()) == []


def _named(name: str, data: bytes, mode: int) -> tuple[tarfile.TarInfo, bytes]:
    return reg(name, data, mode)


PARITY = {
    "file over dir": [reg("d/a", b"a"), reg("d/b/c", b"c"), reg("d", b"file")],
    "dir over file": [reg("d", b"file"), special("d", tarfile.DIRTYPE), reg("d/x", b"x")],
    "modes": [
        special("./", tarfile.DIRTYPE),
        _named("suid", b"s", 0o4755),
        special("sticky", tarfile.DIRTYPE),
        reg("deep/er/file", b"implied parents", 0o600),
    ],
    "link over its dir": [reg("d/f", b"f"), special("d", tarfile.LNKTYPE, "d/f")],
    "link to itself": [reg("a", b"a"), special("a", tarfile.LNKTYPE, "a")],
    "entry under a file": [reg("f", b"f"), reg("f/x", b"x")],
    "link through a symlink": [
        reg("d/f", b"f"),
        special("s", tarfile.SYMTYPE, "d"),
        special("h", tarfile.LNKTYPE, "s/f"),
    ],
    "link under a file": [reg("f", b"f"), special("h", tarfile.LNKTYPE, "f/x")],
    "long name": [reg("x" * 300, b"x")],
    "long link target": [special("l", tarfile.SYMTYPE, "t/" * 2048)],
    "not a file": [reg("./", b"x")],
}


@pytest.mark.parametrize("case", sorted(PARITY))
async def test_index_answers_as_the_unpacked_tree(tmp_path: Path, case: str) -> None:
    """The index follows the on-disk writer entry for entry: the same tree (listing and
    keys) or the same one-line error."""
    members = [reg("Dockerfile", b"FROM a\n"), *PARITY[case]]
    if case == "modes":
        members[3][0].mode = 0o1777
    data = make_tar(members)
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    try:
        _unpack(iter([data]), [disk])
        expected: tuple[list[str], str] | str = (
            await (plain := await BuildContext.from_directory(disk)).files(),
            await plain.hash_paths(["."]),
        )
    except ContextError as err:
        expected = str(err)
    work = tmp_path / "work"
    work.mkdir()
    try:
        async with await BuildContext.from_tar(chunks_of(data), None, work) as ctx:
            got: tuple[list[str], str] | str = (await ctx.files(), await ctx.hash_paths(["."]))
            root = await ctx.materialize()
            assert await (await BuildContext.from_directory(root)).hash_paths(["."]) == got[1]
    except ContextError as err:
        got = str(err)
    assert got == expected
    assert list(work.iterdir()) == []


async def test_materialize_moves_to_disk_when_tmpfs_filled_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tree's place is chosen at upload; if tmpfs has less room when the files are
    needed, the writer moves it to the temporary directory, and close() still finds it.
    The tmpfs is a directory of the test's (how much room /dev/shm has is the machine's)."""
    from engine.build import tarcontext

    scratch = tmp_path / "shm"
    scratch.mkdir()
    monkeypatch.setattr(tarcontext, "SCRATCH", str(scratch))
    monkeypatch.setattr(tarcontext, "_scratch_parent", lambda: (str(scratch), 1 << 30))
    async with await BuildContext.from_tar(chunks_of(make_tar(GOOD))) as ctx:
        planned = ctx.root
        assert planned.parent == scratch and not planned.exists()
        monkeypatch.setattr(tarcontext, "_scratch_parent", lambda: (str(scratch), 100))
        root = await ctx.materialize()
        assert root.parent == Path(tempfile.gettempdir()) and not planned.exists()
        assert (root / "app" / "run.sh").read_bytes() == b"#!/bin/sh\n"
        assert await ctx.files() == await (await BuildContext.from_directory(root)).files()
    assert not root.exists()


async def test_materialize_failure_leaves_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ctx = await BuildContext.from_tar(chunks_of(make_tar(GOOD)), None, work)
    work.rmdir()  # the place the tree was to go is gone
    with pytest.raises(ContextError, match="cannot create the build context directory"):
        await ctx.materialize()
    await ctx.close()
    assert list(tmp_path.iterdir()) == []
