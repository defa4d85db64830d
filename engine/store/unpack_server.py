"""Warm layer-unpack helper (a fork server) so a layer apply does not start Python each time.

``UnpackServer`` (engine side) starts ONE helper lazily, ``python -S -P -m
engine.store.unpack_server``, with the same interpreter, flags and environment as the per-call
helper of ``engine.store.unpack``. The helper imports the unpack code once, dies with the
engine (PR_SET_PDEATHSIG), and waits on a ``SOCK_SEQPACKET`` control socket. Per unpack the
engine sends the JSON config with SCM_RIGHTS descriptors: the blob (the child's stdin), one
end of a fresh per-request stream socket (the child's stdout and stderr) and ``pass_fds``
(e.g. the snapshot store's lock). The helper forks; the child first sends a pidfd of itself
on the per-request socket, then does exactly what the per-call helper does
(``unpack.child_main``: PDEATHSIG, private mount namespace, chroot, same JSON lines). The
helper closes its copies at once and goes back to waiting: it stays single-threaded and holds
no lock or directory between requests; children are reaped by the kernel (SIGCHLD ignored).

The engine kills a cancelled child through its pidfd and waits for it to be gone. A dead
helper is replaced on the next unpack; when no helper can be started, ``run`` answers False
and the caller falls back to the per-call subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # engine-side types; the helper process starts without them
    import asyncio
    import subprocess
    from collections.abc import Callable

_READY = b"R"
_MARK = b"P"
_MAX_FDS = 16
_MAX_REQUEST = 1 << 20
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------
# helper process
# ---------------------------------------------------------------------------------------


def _child(ctl: socket.socket, request: bytes, fds: list[int], helper_pid: int) -> int:
    """Runs in the forked child: become the per-call unpack helper for this request."""
    import json

    from engine.store.unpack import child_main

    ctl.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as the per-call helper
    blob, out = fds[0], fds[1]
    os.dup2(blob, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in (blob, out):
        if fd > 2:
            os.close(fd)
    pidfd = os.pidfd_open(os.getpid())
    first = socket.socket(fileno=1)
    try:
        socket.send_fds(first, [_MARK], [pidfd])
    finally:
        first.detach()
        os.close(pidfd)
    return child_main(json.loads(request), helper_pid)


def serve(ctl_fd: int, engine_pid: int) -> int:
    """Helper main loop: one fork per request until the engine closes the control socket."""
    from engine.store import mounts

    mounts.set_parent_death_signal()
    if os.getppid() != engine_pid:
        return 1  # the engine is already gone
    import engine.store.unpack  # noqa: F401  (warm: every child inherits it)
    from engine.store.compression import prepare

    prepare(None)  # zstandard too

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C is the engine's to handle
    ctl = socket.socket(fileno=ctl_fd)
    ctl.sendall(_READY)
    me = os.getpid()
    while True:
        try:
            request, fds, _flags, _addr = socket.recv_fds(
                ctl, _MAX_REQUEST, _MAX_FDS, socket.MSG_CMSG_CLOEXEC
            )
        except ConnectionError:
            return 0
        if not request and not fds:
            return 0  # the engine closed the control socket
        if len(fds) < 2:
            for fd in fds:
                os.close(fd)
            continue
        try:
            pid = os.fork()
        except OSError:
            pid = -1  # the engine sees the request end without a child and falls back
        if pid == 0:
            code = 1
            try:
                code = _child(ctl, request, fds, me)
            finally:
                try:
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------------------------------
# engine side
# ---------------------------------------------------------------------------------------


def _spawn(ctl_fd: int) -> subprocess.Popen[bytes]:
    """Start the helper process. On the loop thread, like asyncio's own subprocesses (a
    vfork+exec, a few ms): PR_SET_PDEATHSIG fires when the creating *thread* exits, so a
    worker thread would take the helper down with it."""
    import subprocess

    from engine.store.unpack import _child_env

    return subprocess.Popen(
        [
            sys.executable,
            "-S",
            "-P",
            "-m",
            "engine.store.unpack_server",
            str(ctl_fd),
            str(os.getpid()),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        cwd="/",
        env=_child_env(),
        close_fds=True,
        pass_fds=(ctl_fd,),
    )


class _Helper:
    """One running helper: the process, its control socket and its pidfd."""

    def __init__(self, proc: subprocess.Popen[bytes], ctl: socket.socket, pidfd: int) -> None:
        self.proc = proc
        self.ctl = ctl
        self.pidfd = pidfd

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill_now(self) -> None:
        """Synchronous stop (finalizers, failed starts): close, kill, reap."""
        self.ctl.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def _kill_box(box: list[_Helper | None]) -> None:
    helper = box[0]
    box[0] = None
    if helper is not None:
        helper.kill_now()


class UnpackServer:
    """Engine side of the warm unpack helper; one per snapshotter, started on first use.

    ``run`` is safe to call concurrently from one event loop; ``close`` stops the helper.
    """

    def __init__(self) -> None:
        import weakref

        self._box: list[_Helper | None] = [None]
        self._broken = False
        self._closed = False
        self._start_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._finalizer = weakref.finalize(self, _kill_box, self._box)

    @property
    def pid(self) -> int | None:
        """The running helper's pid (None when none runs)."""
        helper = self._box[0]
        return helper.proc.pid if helper is not None and helper.alive() else None

    async def _ensure(self) -> _Helper | None:
        import asyncio

        helper = self._box[0]
        if helper is not None and helper.alive():
            return helper
        if self._broken or self._closed:
            return None
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._start_lock, self._lock_loop = asyncio.Lock(), loop
        assert self._start_lock is not None
        async with self._start_lock:
            helper = self._box[0]
            if helper is not None and helper.alive():
                return helper
            _kill_box(self._box)
            try:
                helper = await self._start()
            except OSError:
                helper = None
            if helper is None:
                self._broken = True  # stay on the per-call subprocess from now on
            self._box[0] = helper
            return helper

    async def _start(self) -> _Helper | None:
        import asyncio

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = _spawn(theirs.fileno())
        except OSError:
            mine.close()
            return None
        finally:
            theirs.close()
        helper = _Helper(proc, mine, -1)
        try:
            helper.pidfd = os.pidfd_open(proc.pid)  # our child, not reaped: no pid reuse
        except OSError:
            helper.kill_now()
            return None
        mine.setblocking(False)
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                await _readable(mine.fileno())
            ready = mine.recv(16)
        except (TimeoutError, OSError):
            ready = b""
        except BaseException:
            helper.kill_now()
            raise
        if ready != _READY:
            helper.kill_now()
            return None
        return helper

    async def run(
        self,
        request: bytes,
        blob_fd: int,
        pass_fds: tuple[int, ...],
        on_data: Callable[[bytes], None],
    ) -> bool:
        """Run one unpack in a child of the helper, feeding its output bytes to ``on_data``.

        False when no child could be started (no helper, or it died before forking): the
        caller then uses the per-call subprocess. Cancelling kills the child and waits for it.
        """
        for _attempt in range(2):
            helper = await self._ensure()
            if helper is None:
                return False
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                try:
                    await _send(helper.ctl, request, [blob_fd, theirs.fileno(), *pass_fds])
                except OSError:  # the helper is gone: replace it and try once more
                    self._drop(helper)
                    continue
                finally:
                    theirs.close()
                if await _follow(mine, on_data):
                    return True
            finally:
                mine.close()
            if helper.alive():
                return False  # the helper lives but no child came: do this one the old way
            self._drop(helper)
        return False

    def _drop(self, helper: _Helper) -> None:
        if self._box[0] is helper:
            _kill_box(self._box)

    async def close(self) -> None:
        """Stop the helper (running children die with it); later ``run`` calls fall back."""
        import asyncio

        self._closed = True
        helper = self._box[0]
        self._box[0] = None
        if helper is None:
            return
        helper.ctl.close()  # the helper sees EOF and exits
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await _readable(helper.pidfd)
        except TimeoutError:
            pass
        finally:
            helper.kill_now()  # reaps it (or kills it when it did not go in time)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` is readable (a pidfd: the process has exited)."""
    await _ready(fd, write=False)


async def _ready(fd: int, *, write: bool) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, ready)
    try:
        await fut
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _send(ctl: socket.socket, request: bytes, fds: list[int]) -> None:
    while True:
        try:
            socket.send_fds(ctl, [request], fds)
            return
        except BlockingIOError:
            await _ready(ctl.fileno(), write=True)


async def _wait_gone(pidfd: int) -> None:
    try:
        await _readable(pidfd)
    finally:
        os.close(pidfd)


def _recv_pidfd(sock: socket.socket) -> tuple[bytes, int | None]:
    """The child's first message: its pidfd (None at EOF: no child started)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 1, socket.MSG_CMSG_CLOEXEC)
    return data[1:], (fds[0] if fds else None)


async def _first_message(sock: socket.socket) -> tuple[bytes, int | None]:
    """The child's first message: its pidfd and any output with it (None at EOF)."""
    while True:
        await _readable(sock.fileno())
        try:
            return _recv_pidfd(sock)
        except BlockingIOError:
            continue


async def _kill(pidfd: int) -> None:
    """SIGKILL the child and wait until it is gone, even when cancelled meanwhile."""
    import asyncio
    import contextlib

    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    with contextlib.suppress(BaseException):
        await asyncio.shield(_wait_gone(pidfd))


async def _follow(sock: socket.socket, on_data: Callable[[bytes], None]) -> bool:
    """Read one child's output to the end; False when no child ever started."""
    import asyncio
    import contextlib

    from engine.errors import PortsideError

    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        data, pidfd = await _first_message(sock)
    except BaseException:
        # Cancelled before the child announced itself. It announces right after the fork:
        # wait for that (briefly, whatever else is cancelled) to kill it and see it gone.
        # If it does not come in time, SHUT_RD makes the announcement fail (the child then
        # exits without touching anything), and one already queued is still readable.
        with contextlib.suppress(BaseException):
            _, announced = await asyncio.wait_for(_first_message(sock), 5.0)
            if announced is not None:
                await asyncio.shield(_kill(announced))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
        with contextlib.suppress(OSError):
            _, queued = _recv_pidfd(sock)
            if queued is not None:
                await _kill(queued)
        raise
    if pidfd is None:
        if data:
            raise PortsideError("layer unpack helper failed: its child sent no process id")
        return False  # EOF: the helper died or could not fork before the child started
    try:
        if data:
            on_data(data)
        while True:
            chunk = await loop.sock_recv(sock, 1 << 16)
            if not chunk:
                break
            on_data(chunk)
    except BaseException:
        await _kill(pidfd)
        raise
    await _wait_gone(pidfd)  # gone for good before the caller touches its directory
    return True


if __name__ == "__main__":
    os._exit(serve(int(sys.argv[1]), int(sys.argv[2])))
