"""The warm command server behind ``portside VERB`` (the client is tui/cmdclient.py).

``python -m tui.cmdserver SOCKET`` loads the verbs once (``tui.main`` with aiodocker and
aiohttp, and its argument parser), listens on SOCKET and forks one worker per connection. A
worker takes the client's stdio descriptors, argv, environment, working directory and
umask, runs the verb exactly as ``tui.main.main`` would in a fresh process, raises in itself
the signals the client forwards, and sends back the exit status.

The server never runs an event loop or a thread, so every fork starts clean. It holds an
exclusive lock beside its socket (one server per socket), serves only peers of its own uid
(the socket is 0600 in a 0700 directory, and SO_PEERCRED is checked too), exits after
``PORTSIDE_CMDSERVER_IDLE`` seconds without a command (15 minutes by default) or as soon as
a module it loaded changes on disk, and removes its socket when it goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import marshal
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from tui import cmdproto
from tui.prefault import Prefault

CHECK_INTERVAL = 5.0
SETTLE = 0.05
BUSY_CAP = 1.0
_FDS = struct.Struct("3i")


def _module_files() -> dict[str, int]:
    """mtime of the source (or compiled) file of every module loaded so far."""
    files: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        with contextlib.suppress(OSError):
            files[path] = os.stat(path).st_mtime_ns
    return files


def _stale(files: dict[str, int]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def _listen(path: str) -> socket.socket:
    """Bind beside ``path`` and rename into place, so a client never sees a dead socket."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.rename(tmp, path)
    return listener


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request and the three descriptors sent with its first bytes."""
    head, ancdata, _flags, _addr = conn.recvmsg(cmdproto.HEADER.size, socket.CMSG_SPACE(_FDS.size))
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    if len(head) < cmdproto.HEADER.size:
        head += _recv_exact(conn, cmdproto.HEADER.size - len(head))
    (size,) = cmdproto.HEADER.unpack(head)
    if len(fds) != 3 or size > cmdproto.MAX_REQUEST:
        raise ValueError("a request needs three descriptors and at most 1 MiB")
    request = marshal.loads(_recv_exact(conn, size))
    if not (
        isinstance(request, dict)
        and isinstance(request.get("argv"), list)
        and all(isinstance(a, str) for a in request["argv"])
        and isinstance(request.get("env"), dict)
        and isinstance(request.get("cwd"), str)
        and isinstance(request.get("umask"), int)
    ):
        raise ValueError("malformed request")
    return request, fds


def _std_stream(fd: int, write: bool) -> io.TextIOWrapper:
    """A text stream on ``fd`` made the way the interpreter makes sys.stdin/out/err."""
    tty = os.isatty(fd)
    raw = io.FileIO(fd, "w" if write else "r", closefd=False)
    buffered: io.BufferedIOBase = io.BufferedWriter(raw) if write else io.BufferedReader(raw)
    return io.TextIOWrapper(
        buffered,  # type: ignore[arg-type]
        encoding=sys.stdout.encoding or "utf-8",
        errors="backslashreplace" if fd == 2 else "strict",
        line_buffering=write and (tty or fd == 2),
        write_through=fd == 2,
    )


def _relay_signals(conn: socket.socket) -> None:
    """Raise in this process each signal the client forwards; SIGHUP if it goes away."""
    valid = {int(s) for s in signal.valid_signals()}
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGHUP)
            return
        for signum in data:
            if signum in valid:
                os.kill(os.getpid(), signum)


def _exit_status(run: Callable[[], int]) -> int:
    """What the process exit status of ``sys.exit(run())`` would have been."""
    try:
        return run()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return int(done.code or 0)
        print(done.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:
        traceback.print_exc()
        return 1


def _worker(conn: socket.socket, closing: list[int], verbs: Any, parser: Any) -> NoReturn:
    """In the forked child: become the client's command and report its status."""
    for fd in closing:
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        request, fds = _read_request(conn)
    except (OSError, ValueError, EOFError, TypeError):
        with contextlib.suppress(OSError):
            conn.sendall(cmdproto.SKIPPED)
        os._exit(0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    os.umask(request["umask"] & 0o777)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdin = _std_stream(0, write=False)
    sys.stdout = _std_stream(1, write=True)
    sys.stderr = _std_stream(2, write=True)
    sys.argv = ["portside", *request["argv"]]
    threading.Thread(target=_relay_signals, args=(conn,), daemon=True).start()
    try:
        os.chdir(request["cwd"])
    except OSError as err:
        print(f"portside: cannot use the working directory: {err}", file=sys.stderr)
        status = 1
    else:
        status = _exit_status(lambda: verbs.main(request["argv"], parser=parser))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Let go of the client's stdio before reporting: a reader of its pipes (``$(portside
    # ...)``, a test) sees end-of-file with the client's exit, not once this process has
    # torn down its memory.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with contextlib.suppress(OSError):
        conn.sendall(cmdproto.RESULT + cmdproto.STATUS.pack(status & 0xFF))
    os._exit(0)


@dataclass
class _Spare:
    """The server's end of a spare worker: its pid, the pipe it reports on (``a`` once it
    has a client, then end-of-file when that command is over) and the pipe that lets it
    pre-fault."""

    pid: int
    reports: int
    go: int
    going: bool = False


def _spare(
    listener: socket.socket,
    reports: int,
    go: int,
    closing: list[int],
    prefault: Prefault | None,
    verbs: Any,
    parser: Any,
) -> NoReturn:
    """In a spare worker: wait for a client or the word to pre-fault, then serve a client."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server ends an unused spare so
    ready, _, _ = select.select([listener, go], [], [])
    if go in ready and listener not in ready:
        if not os.read(go, 1):
            os._exit(0)  # the server is gone
        if prefault is not None:
            prefault.run(lambda: bool(select.select([listener], [], [], 0)[0]))
    os.close(go)
    while True:
        try:
            conn, _addr = listener.accept()
        except InterruptedError:
            continue
        except OSError:
            os._exit(0)
        break
    os.write(reports, b"a")  # held open until this worker exits: the server sees it end
    if _peer_uid(conn) != os.geteuid():
        os._exit(0)
    _worker(conn, [listener.fileno(), *closing], verbs, parser)


def _fork_spare(
    listener: socket.socket, lock_fd: int, prefault: Prefault | None, verbs: Any, parser: Any
) -> _Spare:
    """Fork the next spare worker; it waits in accept() for the next client."""
    reports_r, reports_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reports_r)
            os.close(go_w)
            _spare(listener, reports_w, go_r, [lock_fd], prefault, verbs, parser)
        finally:
            os._exit(1)  # never back into the server's loop
    os.close(reports_w)
    os.close(go_r)
    return _Spare(pid, reports_r, go_w)


def _prefault_due(busy: dict[int, float], last: float) -> float:
    """When the spare should pre-fault: once the machine is quiet (``SETTLE`` after the last
    command ended, so a script's next command is not slowed by it), or ``BUSY_CAP`` into
    commands that keep running (a shell, ``logs -f``)."""
    if busy:
        return min(busy.values()) + BUSY_CAP
    return last + SETTLE


def serve(path: str) -> int:
    lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another server has this socket
    from tui import main as verbs

    parser = verbs.build_parser()
    watched = _module_files()
    idle = float(os.environ.get(cmdproto.IDLE_ENV) or cmdproto.DEFAULT_IDLE)
    listener = _listen(path)
    inode = os.stat(path).st_ino

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    signal.signal(signal.SIGTERM, stop)
    prefault = Prefault.load()
    last = time.monotonic()
    busy: dict[int, float] = {}  # report pipe of each running worker -> when it started
    spare = _fork_spare(listener, lock_fd, prefault, verbs, parser)
    try:
        while True:
            now = time.monotonic()
            wait = min(CHECK_INTERVAL, idle)
            if not spare.going:
                due = _prefault_due(busy, last)
                if due <= now:
                    with contextlib.suppress(OSError):
                        os.write(spare.go, b"g")
                    spare.going = True
                else:
                    wait = min(wait, due - now)
            ready, _, _ = select.select([spare.reports, *busy], [], [], wait)
            for fd in ready:
                if fd != spare.reports:
                    os.read(fd, 1)  # end of file: that command is over
                    os.close(fd)
                    del busy[fd]
                    last = time.monotonic()
                    continue
                os.close(spare.go)
                if os.read(fd, 1):  # it took a client: the next spare waits for the next
                    busy[fd] = last = time.monotonic()
                else:  # it died unused: do not spin if spares keep dying
                    os.close(fd)
                    time.sleep(0.1)
                spare = _fork_spare(listener, lock_fd, prefault, verbs, parser)
            if not ready and (time.monotonic() - last >= idle or _stale(watched)):
                return 0
    finally:
        with contextlib.suppress(OSError):
            os.kill(spare.pid, signal.SIGTERM)
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        listener.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tui.cmdserver SOCKET", file=sys.stderr)
        return 2
    return serve(args[0])


if __name__ == "__main__":
    sys.exit(main())
