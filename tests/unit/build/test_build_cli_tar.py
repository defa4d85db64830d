"""The context tar ``portside build`` sends: the same bytes as ``tarfile`` writes, streamed
through a pipe while it is made."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import IO

import pytest

from tui.cli.build import _stdin_context, _TarPipe, _write_tar
from tui.cli.context_tar import ContextTar
from tui.cli.images import VerbError


def _tarfile_bytes(root: Path) -> bytes:
    """The context as ``tarfile`` itself writes it, walked the docker CLI's way (sorted,
    0:0 without names, whole-second mtimes, sockets left out): what the fast writer must
    match byte for byte."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def walk(directory: Path, prefix: str) -> None:
            for name in sorted(os.listdir(directory)):
                path = directory / name
                info = tar.gettarinfo(str(path), prefix + name)
                if info is None:  # a socket
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = int(os.lstat(path).st_mtime)
                if info.isreg():
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
                if info.isdir():
                    walk(path, prefix + name + "/")

        walk(root, "")
    return out.getvalue()


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("hi\n")
    os.chmod(root / "a" / "b" / "f", 0o4755)
    (root / "dir é").mkdir()
    (root / "dir é" / "ü.txt").write_text("non-ascii names get a PAX header\n")
    deep = root / "d" / ("n" * 90) / ("m" * 30)
    deep.mkdir(parents=True)
    (deep / "file").write_bytes(b"z" * 1000)  # a name longer than 100 bytes
    (root / os.fsdecode(b"bad\xffname")).write_bytes(b"q")
    (root / "big").write_bytes(os.urandom(70_000))
    (root / "empty").touch()
    os.utime(root / "empty", (-5, -5))  # an mtime before 1970
    (root / "link").symlink_to("a/b/f")
    (root / "longlink").symlink_to("x" * 150)
    os.link(root / "a" / "b" / "f", root / "a" / "hard")
    os.mkfifo(root / "fifo")


def test_fast_writer_matches_tarfile(tmp_path: Path) -> None:
    _tree(tmp_path)
    fast = io.BytesIO()
    _write_tar(tmp_path, None, None, fast)
    assert fast.getvalue() == _tarfile_bytes(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(fast.getvalue())) as tar:
        names = tar.getnames()
        assert f"d/{'n' * 90}/{'m' * 30}/file" in names
        assert tar.getmember("a/hard").islnk() and tar.getmember("fifo").isfifo()
        assert tar.getmember("longlink").linkname == "x" * 150
        assert tar.extractfile("big").read() == (tmp_path / "big").read_bytes()  # type: ignore[union-attr]


def test_file_shrinking_while_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="shrank"):  # as if it shrank after its stat
            ContextTar(io.BytesIO()).file("f", 0o644, 0, 10, fd, str(tmp_path / "f"))
    finally:
        os.close(fd)


def test_a_file_that_cannot_be_read_is_named_in_full(tmp_path: Path) -> None:
    """The error names the file by its whole path, not the name under its directory."""
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "f"
    target.write_text("x")
    if os.geteuid() != 0:
        target.chmod(0)
        expected = "Permission denied"
    else:  # root reads anything: a sysfs file claims 4096 bytes and holds fewer
        thp = "/sys/kernel/mm/transparent_hugepage/enabled"
        subprocess.run(["mount", "--bind", thp, str(target)], check=True)
        expected = "shrank"
    try:
        with pytest.raises(VerbError, match=f"{tmp_path}/sub/f.*{expected}"):
            _write_tar(tmp_path, None, None, io.BytesIO())
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(target)], check=True)


def test_stdin_dockerfile_becomes_a_one_file_tar() -> None:
    out = io.BytesIO()
    _stdin_context(b"FROM scratch\n", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.extractfile("Dockerfile").read() == b"FROM scratch\n"  # type: ignore[union-attr]


async def _collect(body: AsyncGenerator[bytes, None]) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_pipe_streams_what_the_writer_writes(tmp_path: Path) -> None:
    _tree(tmp_path)
    pipe = _TarPipe(lambda: (None, lambda out: _write_tar(tmp_path, None, None, out)))
    expected = io.BytesIO()
    _write_tar(tmp_path, None, None, expected)
    assert await _collect(pipe.chunks()) == expected.getvalue()
    assert await pipe.failure() is None


async def test_pipe_reports_the_writer_failure() -> None:
    def write(out: io.BufferedWriter) -> None:
        out.write(b"x" * 100_000)
        raise VerbError("unable to prepare context: 'f' gone", 1)

    pipe = _TarPipe(lambda: (None, write))
    with pytest.raises(VerbError, match="gone"):
        await _collect(pipe.chunks())
    assert isinstance(await pipe.failure(), VerbError)


async def test_pipe_abandoned_by_its_reader_stops_the_writer() -> None:
    """The upload ending early (the engine refused the build) closes the pipe: the writer
    thread stops on the broken pipe instead of blocking for ever."""
    written = []

    def write(out: io.BufferedWriter) -> None:
        for _ in range(1000):
            out.write(b"y" * 65536)
            written.append(1)

    pipe = _TarPipe(lambda: (None, write))
    body = pipe.chunks()
    assert await anext(body)
    await body.aclose()
    assert await asyncio.wait_for(pipe.failure(), 60) is None
    assert len(written) < 1000


async def test_pipe_started_but_never_read_stops_on_discard() -> None:
    """The request failed before its body was read: discarding the pipe ends the writer."""

    def write(out: io.BufferedWriter) -> None:
        while True:  # far more than any pipe holds
            out.write(b"z" * 65536)

    pipe = _TarPipe(lambda: (None, write))
    pipe.start()
    pipe.discard()
    assert await asyncio.wait_for(pipe.failure(), 60) is None


async def test_the_plan_runs_in_the_writer_thread_and_its_error_comes_first() -> None:
    """The Dockerfile name is known before the request; a context that cannot be planned
    fails there, and the pipe is left with nothing running."""
    threads: list[str] = []

    def plan() -> tuple[str | None, Callable[[IO[bytes]], None]]:
        threads.append(threading.current_thread().name)
        return "sub/Dockerfile.dev", lambda out: out.write(b"x" * 10)

    pipe = _TarPipe(plan)
    assert await pipe.planned() == "sub/Dockerfile.dev"
    assert threads and threads[0] != threading.current_thread().name
    assert await _collect(pipe.chunks()) == b"x" * 10

    def bad_plan() -> tuple[str | None, Callable[[IO[bytes]], None]]:
        raise VerbError("unable to prepare context: path 'nowhere' not found", 1)

    failing = _TarPipe(bad_plan)
    with pytest.raises(VerbError, match="nowhere"):
        await failing.planned()
    failing.discard()
    assert await asyncio.wait_for(failing.failure(), 60) is None
