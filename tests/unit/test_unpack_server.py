"""The warm unpack helper (``engine.store.unpack_server``): real helper and child processes.

Layers applied through the helper match the per-call subprocess (trees, DiffIDs, refusals);
concurrent applies share one helper; a cancelled apply kills its child before returning; a
killed child is a one-line error; a killed helper is replaced; closing the snapshotter or the
engine leaves no helper process and no descriptor behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import PortsideError
from engine.store.snapshots import chain_of, open_snapshotter
from engine.store.unpack import unpack_layer
from engine.store.unpack_server import UnpackServer
from tests.fixtures.engine import engine_config
from tests.fixtures.layers import compress, directory, file, hardlink, layer_tar, symlink
from tests.fixtures.trees import tree_of_dir
from tests.security.layers import Layer, diff_id

ITEMS = [
    directory("etc", 0o755),
    file("etc/hostname", "box\n", 0o644, uid=12, gid=34),
    file("bin/tool", b"\x7fELF" + bytes(5000), 0o4755),
    symlink("bin/alias", "tool"),
    hardlink("bin/again", "bin/tool", 0o4755),
]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(x) for x in fh.read().split()]


def _fds(pid: int | str) -> set[str]:
    return set(os.listdir(f"/proc/{pid}/fd"))


def _exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int]:
    fd = os.pidfd_open(pid)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.fixture
async def server() -> AsyncIterator[UnpackServer]:
    srv = UnpackServer()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(compress(layer_tar(ITEMS), "gzip"))
    return path


@pytest.fixture
def stalled_blob(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with a writer that never writes: an unpack of it waits until it is killed."""
    path = tmp_path / "stalled"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        yield path
    finally:
        os.close(writer)


async def _child_of(srv: UnpackServer) -> int:
    """The one unpack child the helper runs right now (waits for it to appear)."""
    while True:
        if srv.pid is not None:
            kids = _children(srv.pid)
            if kids:
                assert len(kids) == 1
                return kids[0]
        await asyncio.sleep(0.01)


async def _no_children(pid: int) -> None:
    """Wait (bounded) until the helper ``pid`` has no child left."""
    for _ in range(2000):
        if not _children(pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"children of the helper still running: {_children(pid)}")


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
async def test_same_tree_diff_id_and_warnings_as_the_subprocess(
    tmp_path: Path, server: UnpackServer, kind: str
):
    blob = tmp_path / "layer"
    tar = layer_tar(ITEMS)
    blob.write_bytes(tar if kind == "none" else compress(tar, kind))
    results, trees = [], []
    for name, srv in (("old", None), ("warm", server)):
        target = tmp_path / name
        target.mkdir()
        results.append(await unpack_layer(blob, target, overlay=False, server=srv))
        trees.append(tree_of_dir(target))
    assert server.pid is not None
    assert results[0] == results[1] and results[0].compression == kind
    assert trees[0] == trees[1] and trees[0]
    assert os.stat(tmp_path / "warm" / "bin" / "tool").st_mode & 0o7777 == 0o4755


@pytest.mark.parametrize(
    "layer, message",
    [
        (Layer().file("../escape", b"x"), "leads outside the layer root"),
        (Layer().hardlink("link", "/nowhere"), "nowhere"),
        (Layer().raw(b"garbage" * 100), ""),
    ],
)
async def test_refusals_are_the_same_one_line_errors(
    tmp_path: Path, server: UnpackServer, layer: Layer, message: str
):
    path = tmp_path / "bad.tar"
    path.write_bytes(layer.blob(None))
    errors = []
    for name, srv in (("old", None), ("warm", server)):
        target = tmp_path / name
        target.mkdir()
        with pytest.raises(PortsideError) as info:
            await unpack_layer(path, target, overlay=False, server=srv)
        errors.append(str(info.value))
    assert server.pid is not None
    assert errors[0] == errors[1]
    assert message in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "escape").exists()


async def test_eight_at_once_share_one_helper(tmp_path: Path, blob: Path, server: UnpackServer):
    targets = [tmp_path / f"t{i}" for i in range(8)]
    for target in targets:
        target.mkdir()
    seen: list[int] = []
    results = await asyncio.gather(
        *(unpack_layer(blob, t, overlay=True, server=server, progress=seen.append) for t in targets)
    )
    assert len({r.diff_id for r in results}) == 1
    assert len({str(tree_of_dir(t)) for t in targets}) == 1
    pid = server.pid
    assert pid is not None
    await unpack_layer(blob, tmp_path / "t0", overlay=True, server=server)
    assert server.pid == pid  # reused, not restarted
    assert _children(pid) == []  # every child has gone


async def test_helper_holds_nothing_between_requests(
    tmp_path: Path, blob: Path, server: UnpackServer
):
    snap_lock = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        (tmp_path / "t").mkdir()
        await unpack_layer(blob, tmp_path / "t", overlay=False, server=server, pass_fds=[snap_lock])
    finally:
        os.close(snap_lock)
    assert server.pid is not None
    assert _fds(server.pid) == {"0", "1", "2", _ctl_fd(server.pid)}
    assert os.readlink(f"/proc/{server.pid}/cwd") == "/"


def _ctl_fd(pid: int) -> str:
    sockets = [fd for fd in _fds(pid) if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")]
    assert len(sockets) == 1
    return sockets[0]


async def test_cancel_kills_the_child_before_returning(
    tmp_path: Path, stalled_blob: Path, blob: Path, server: UnpackServer
):
    target = tmp_path / "t"
    target.mkdir()
    task = asyncio.ensure_future(unpack_layer(stalled_blob, target, overlay=False, server=server))
    child = await _child_of(server)
    with _pidfd(child) as pidfd:
        assert not _exited(pidfd)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _exited(pidfd)  # gone before unpack_layer returned
    assert server.pid is not None and _children(server.pid) == []
    (tmp_path / "u").mkdir()
    assert (await unpack_layer(blob, tmp_path / "u", overlay=False, server=server)).entries


async def test_cancel_at_any_point_leaves_no_child(
    tmp_path: Path, stalled_blob: Path, blob: Path, server: UnpackServer
):
    (tmp_path / "warm").mkdir()
    await unpack_layer(blob, tmp_path / "warm", overlay=False, server=server)
    helper = server.pid
    assert helper is not None
    for steps in range(8):
        target = tmp_path / f"t{steps}"
        target.mkdir()
        task = asyncio.ensure_future(
            unpack_layer(stalled_blob, target, overlay=False, server=server)
        )
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a child that had not announced itself yet exits on its own, having done nothing
        await _no_children(helper)
        assert os.listdir(target) == []
    assert server.pid == helper


async def test_killed_child_is_a_one_line_error(
    tmp_path: Path, stalled_blob: Path, server: UnpackServer
):
    target = tmp_path / "t"
    target.mkdir()
    task = asyncio.ensure_future(unpack_layer(stalled_blob, target, overlay=False, server=server))
    os.kill(await _child_of(server), signal.SIGKILL)
    with pytest.raises(PortsideError, match=r"^layer unpack helper failed: [^\n]+$"):
        await task


async def test_killed_helper_is_replaced(tmp_path: Path, blob: Path, server: UnpackServer):
    (tmp_path / "a").mkdir()
    await unpack_layer(blob, tmp_path / "a", overlay=False, server=server)
    first = server.pid
    assert first is not None
    with _pidfd(first) as pidfd:
        os.kill(first, signal.SIGKILL)
        select.select([pidfd], [], [])
    (tmp_path / "b").mkdir()
    result = await unpack_layer(blob, tmp_path / "b", overlay=False, server=server)
    assert result.entries and server.pid not in (None, first)
    assert tree_of_dir(tmp_path / "a") == tree_of_dir(tmp_path / "b")


async def test_helper_killed_with_a_child_running(
    tmp_path: Path, stalled_blob: Path, server: UnpackServer
):
    """The child dies with its helper (PDEATHSIG): the apply fails, it does not hang."""
    (tmp_path / "t").mkdir()
    task = asyncio.ensure_future(
        unpack_layer(stalled_blob, tmp_path / "t", overlay=False, server=server)
    )
    child = await _child_of(server)
    assert server.pid is not None
    with _pidfd(child) as pidfd:
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(PortsideError, match=r"^layer unpack helper failed"):
            await task
        assert _exited(pidfd)


async def test_closed_server_falls_back_to_the_subprocess(tmp_path: Path, blob: Path):
    srv = UnpackServer()
    (tmp_path / "a").mkdir()
    await unpack_layer(blob, tmp_path / "a", overlay=False, server=srv)
    pid = srv.pid
    assert pid is not None
    with _pidfd(pid) as pidfd:
        await srv.close()
        assert _exited(pidfd)
    assert srv.pid is None
    (tmp_path / "b").mkdir()
    result = await unpack_layer(blob, tmp_path / "b", overlay=False, server=srv)
    assert result.entries == len(ITEMS) and srv.pid is None
    assert tree_of_dir(tmp_path / "a") == tree_of_dir(tmp_path / "b")


async def test_snapshotter_and_engine_close_leave_no_helper_and_no_fd(tmp_path: Path):
    layer = Layer().file("hello", b"hi\n")
    path = tmp_path / "layer.tar"
    path.write_bytes(layer.blob(None))
    chain = chain_of(None, diff_id(layer))
    before = _fds("self")
    for round_ in range(3):
        snap = open_snapshotter(tmp_path / f"snap{round_}", "overlay")
        await snap.apply(chain, None, path, diff_id(layer))
        pid = snap.unpacker.pid
        assert pid is not None
        with _pidfd(pid) as pidfd:
            await snap.close()
            assert _exited(pidfd)
    eng = await Engine.open(engine_config(tmp_path / "root"))
    try:
        await eng.snapshots.apply(chain, None, path, diff_id(layer))
        pid = eng.snapshots.unpacker.pid
        assert pid is not None
        pidfd = os.pidfd_open(pid)
    finally:
        await eng.close()
    try:
        assert _exited(pidfd)
    finally:
        os.close(pidfd)
    assert _fds("self") == before
