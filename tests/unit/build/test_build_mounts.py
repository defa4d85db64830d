"""RUN --mount host side without containers: cache directories (persistent, keyed by id,
mode/uid/gid, private sharing), context binds as filtered copies, source escapes, secret
files, and the mountpoint stubs left out of a RUN layer."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from engine.build.context import BuildContext
from engine.build.executor import _mount_stubs
from engine.build.instructions import parse_mount
from engine.build.mounts import RunMounts, cache_dir
from engine.errors import InvalidArgument


async def _mounts(root: Path, ctx: BuildContext, *specs: str, **secrets: bytes) -> RunMounts:
    async def resolve(ref: str | None) -> tuple[Path | None, BuildContext | None, str]:
        assert ref is None  # only the context in these tests
        return ctx.root, ctx, "context"

    return RunMounts(
        root=root,
        mounts=[parse_mount(s, {}) for s in specs],
        resolve=resolve,
        secrets=secrets,
        where="Dockerfile:2",
    )


@pytest.fixture
async def ctx(tmp_path: Path) -> BuildContext:
    src = tmp_path / "ctx"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "keep.txt").write_text("keep\n")
    (src / "dir" / "sub" / "private.key").write_text("no\n")
    (src / ".dockerignore").write_text("**/*.key\n")
    (src / "Dockerfile").write_text("FROM scratch\n")
    (src / "link").symlink_to("/etc")
    return await BuildContext.from_directory(src)


async def test_cache_dir_is_created_once_with_owner_and_mode(
    tmp_path: Path, ctx: BuildContext
) -> None:
    root = tmp_path / "root"
    spec = "type=cache,id=pip,target=/c,mode=0700,uid=12,gid=34"
    async with await _mounts(root, ctx, spec) as m:
        (entry,) = m.host_mounts
        host = Path(entry["Source"])
        assert host == cache_dir(root, "pip") and entry["Target"] == "/c"
        st = host.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 12, 34)
        (host / "kept").write_text("x")
    async with await _mounts(root, ctx, "type=cache,id=pip,target=/other") as m:
        assert (Path(m.host_mounts[0]["Source"]) / "kept").exists()  # persisted
    assert not (root / "build-tmp").exists() or not list((root / "build-tmp").iterdir())


async def test_private_cache_gets_its_own_dir_while_in_use(
    tmp_path: Path, ctx: BuildContext
) -> None:
    root = tmp_path / "root"
    spec = "type=cache,id=p,target=/c,sharing=private"
    async with (
        await _mounts(root, ctx, spec) as first,
        await _mounts(root, ctx, spec) as second,
    ):
        assert first.host_mounts[0]["Source"] != second.host_mounts[0]["Source"]
    async with await _mounts(root, ctx, spec) as again:
        assert again.host_mounts[0]["Source"] == first.host_mounts[0]["Source"]


async def test_context_bind_is_a_filtered_copy(tmp_path: Path, ctx: BuildContext) -> None:
    root = tmp_path / "root"
    async with await _mounts(root, ctx, "type=bind,source=dir,target=/m") as m:
        host = Path(m.host_mounts[0]["Source"])
        assert m.host_mounts[0]["ReadOnly"] is True
        assert sorted(p.relative_to(host).as_posix() for p in host.rglob("*")) == [
            "keep.txt",
            "sub",
        ]
        assert host != ctx.root / "dir"
    assert not host.exists()  # the copy is gone with the step


async def test_bind_source_cannot_escape(tmp_path: Path, ctx: BuildContext) -> None:
    with pytest.raises(InvalidArgument, match=r"'\.\.' is not allowed"):
        await _mounts(tmp_path, ctx, "type=bind,source=../x,target=/m")
    mounts = await _mounts(tmp_path, ctx, "type=bind,source=link/passwd,target=/m")
    with pytest.raises(InvalidArgument, match="not found in the build context"):
        async with mounts:
            pass  # the symlink resolves inside the context, where there is no etc/passwd


async def test_secret_files_and_requirements(tmp_path: Path, ctx: BuildContext) -> None:
    root = tmp_path / "root"
    specs = ("type=secret,id=a", "type=secret,id=b,target=/b,mode=0440,uid=3", "type=secret,id=c")
    async with await _mounts(root, ctx, *specs, a=b"AAA", b=b"BBB") as m:
        assert [x["Target"] for x in m.host_mounts] == ["/run/secrets/a", "/b"]
        a, b = (Path(x["Source"]) for x in m.host_mounts)
        assert a.read_bytes() == b"AAA" and stat.S_IMODE(a.stat().st_mode) == 0o400
        assert stat.S_IMODE(b.stat().st_mode) == 0o440 and b.stat().st_uid == 3
        assert stat.S_IMODE(os.stat(a.parent).st_mode) == 0o700
    assert not a.exists()
    with pytest.raises(InvalidArgument, match="secret 'c' not found"):
        async with await _mounts(root, ctx, "type=secret,id=c,required"):
            pass


async def test_duplicate_targets_refused(tmp_path: Path, ctx: BuildContext) -> None:
    with pytest.raises(InvalidArgument, match="used twice"):
        async with await _mounts(tmp_path, ctx, "type=tmpfs,target=/t", "type=tmpfs,target=/t/"):
            pass


def test_mount_stubs() -> None:
    targets = ["/run/secrets/a", "/cache"]
    assert _mount_stubs([("/run", 1), ("/run/secrets", 1)], targets) == {"/run", "/run/secrets"}
    changed = [("/run", 0), ("/run/secrets", 1), ("/run/app.pid", 1), ("/x", 1)]
    assert _mount_stubs(changed, targets) == {"/run/secrets"}
    assert _mount_stubs([("/", 0)], targets) == {"/"}


async def test_locked_cache_waits_for_the_holder(tmp_path: Path, ctx: BuildContext) -> None:
    root = tmp_path / "root"
    spec = "type=cache,id=l,target=/c,sharing=locked"
    first = await _mounts(root, ctx, spec)
    await first.__aenter__()
    second = asyncio.create_task((await _mounts(root, ctx, spec)).__aenter__())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done()  # blocked on the lock, not on time
    await first.__aexit__(None, None, None)
    entered = await second
    assert entered.host_mounts[0]["Source"] == first.host_mounts[0]["Source"]
    await entered.__aexit__(None, None, None)
