"""Builds from uploaded (tar) contexts on a real engine: the context goes to disk only when
a step needs its files, and its cache keys are those of the same tree as a directory."""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.build.context import BuildContext
from engine.build.executor import BuildError
from engine.build.tarcontext import TarContext
from engine.engine import Engine
from tests.fixtures.containers import prepare_root
from tests.fixtures.engine import engine_config


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("tarbuild") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


@pytest.fixture
async def engine(build_root: Path) -> AsyncIterator[Engine]:
    eng = await Engine.open(engine_config(build_root))
    try:
        yield eng
    finally:
        await eng.close()


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def tar_of(directory: Path) -> bytes:
    """The directory as the docker CLI sends it (entries relative to the context, no ".")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return buf.getvalue()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1 << 16):
        yield data[i : i + (1 << 16)]


async def build_tar(
    engine: Engine, data: bytes, work: Path, lines: list[str]
) -> tuple[str, TarContext]:
    ctx = await BuildContext.from_tar(chunks(data), None, work)
    assert isinstance(ctx, TarContext)
    async with ctx:
        return await engine.builds.build(ctx, progress=lines.append), ctx


async def build_dir(engine: Engine, directory: Path, lines: list[str]) -> str:
    async with await BuildContext.from_directory(directory) as ctx:
        return await engine.builds.build(ctx, progress=lines.append)


def cached_steps(lines: list[str]) -> list[bool]:
    steps = "".join(lines).split("Step ")[1:]
    return [" ---> Using cache" in step for step in steps]


def dockerfile(busybox: str) -> str:
    return (
        f"FROM {busybox}\n"
        "COPY app /app\n"
        "COPY *.txt /txt/\n"
        "RUN cat /app/a /txt/b.txt > /joined\n"
        "COPY link /link\n"
        "ADD conf /conf\n"
    )


def context_files(busybox: str) -> dict[str, str]:
    return {
        "Dockerfile": dockerfile(busybox),
        ".dockerignore": "app/skip\n*.tmp\n",
        "app/a": secrets.token_hex(8),
        "app/skip": "never sent",
        "app/deep/c": "c",
        "b.txt": "b",
        "x.tmp": "ignored",
        "conf/z": "z",
    }


@pytest.mark.parametrize("first", ["directory", "tar"])
async def test_directory_and_tar_contexts_share_the_cache(
    engine: Engine, busybox: str, tmp_path: Path, first: str
) -> None:
    src = write_tree(tmp_path / "src", context_files(busybox))
    (src / "link").symlink_to("app/deep")
    (src / "app" / "deep" / "c").chmod(0o751)
    data = tar_of(src)
    work = tmp_path / "work"
    work.mkdir()
    lines: list[str] = []
    if first == "directory":
        image_id = await build_dir(engine, src, lines)
        lines.clear()
        again, ctx = await build_tar(engine, data, work, lines)
        assert ctx.written == 0  # every step hit the cache made from the directory
    else:
        image_id, ctx = await build_tar(engine, data, work, lines)
        assert ctx.written == 1
        lines.clear()
        again = await build_dir(engine, src, lines)
    assert again == image_id
    assert cached_steps(lines) == [False, True, True, True, True, True]
    assert list(work.iterdir()) == []


async def test_one_changed_file_reruns_from_its_step(
    engine: Engine, busybox: str, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", context_files(busybox))
    (src / "link").symlink_to("app/deep")
    work = tmp_path / "work"
    work.mkdir()
    lines: list[str] = []
    first, ctx = await build_tar(engine, tar_of(src), work, lines)
    assert ctx.written == 1
    lines.clear()
    assert (await build_tar(engine, tar_of(src), work, lines))[0] == first
    (src / "x.tmp").write_text("ignored files change nothing")
    (src / "app" / "skip").write_text("neither do these")
    lines.clear()
    same, ctx = await build_tar(engine, tar_of(src), work, lines)
    assert same == first and ctx.written == 0
    (src / "conf" / "z").write_text("changed")
    lines.clear()
    changed, ctx = await build_tar(engine, tar_of(src), work, lines)
    assert changed != first and ctx.written == 1
    assert cached_steps(lines) == [False, True, True, True, True, False]
    assert list(work.iterdir()) == []


async def test_run_bind_mount_of_the_context_gets_its_files(
    engine: Engine, busybox: str, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    src = write_tree(
        tmp_path / "src",
        {
            "Dockerfile": (
                f"FROM {busybox}\n"
                f"RUN --mount=type=bind,source=data,target=/m cat /m/f > /out && echo {token}\n"
            ),
            "data/f": token,
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    lines: list[str] = []
    image_id, ctx = await build_tar(engine, tar_of(src), work, lines)
    assert ctx.written == 1
    lines.clear()
    again, ctx = await build_tar(engine, tar_of(src), work, lines)
    assert again == image_id and cached_steps(lines) == [False, True]
    assert list(work.iterdir()) == []


async def test_failed_builds_leave_no_context_behind(
    engine: Engine, busybox: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for text in (
        f"FROM {busybox}\nCOPY missing /m\n",  # fails from the index
        f"FROM {busybox}\nCOPY a /a\nRUN exit 3\n",  # fails after the tree was written
    ):
        src = write_tree(tmp_path / secrets.token_hex(4), {"Dockerfile": text, "a": "a"})
        with pytest.raises(BuildError):
            await build_tar(engine, tar_of(src), work, [])
        assert list(work.iterdir()) == []
