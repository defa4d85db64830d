"""The thin side of ``portside VERB``: hand the command to a warm command server.

Importing the verbs (aiodocker, aiohttp) costs about 200 ms, more than a whole ``docker
run``. As Mercurial's chg does, a resident server (``tui.cmdserver``) keeps them loaded and
forks a worker per command; this client sends the worker its argv, environment, working
directory, umask and stdio descriptors, forwards the signals it receives, and exits with the
worker's status. It imports only built-in modules.

``run(argv)`` returns the exit status, or None when no usable server answered (nothing has
run then: the caller runs the command itself). ``spawn_server()`` starts one in the
background for the next command.
"""

from __future__ import annotations

import _signal as signal  # the C module: signal.py builds IntEnums with enum (~3.5 ms)
import _socket as socket  # the C module: the socket package's enum set-up costs ~4 ms
import marshal
import os
import struct
import sys

from tui import cmdproto

FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGWINCH,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _stdio() -> list[int]:
    """Descriptors 0-2 to pass; a closed one is replaced by /dev/null, as the shell would."""
    fds = []
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, mode | os.O_CLOEXEC))
    return fds


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def run(argv: list[str]) -> int | None:
    """Run ``portside ARGV`` in a warm worker; its exit status, or None if none answered."""
    try:
        path = cmdproto.socket_path()
    except OSError:
        return None
    sock = _connect(path)
    if sock is None:
        return None
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        cwd = os.getcwd()
    except OSError:
        sock.close()
        return None
    request = marshal.dumps({"argv": argv, "env": dict(os.environ), "cwd": cwd, "umask": umask})
    fds = _stdio()
    try:
        sock.sendmsg(
            [cmdproto.HEADER.pack(len(request)), request],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("3i", *fds))],
        )
    except OSError:
        sock.close()
        return None
    last_signal = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal last_signal
        last_signal = signum
        try:
            sock.send(bytes([signum]))
        except OSError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        kind = _recv_exact(sock, 1)
        if kind == cmdproto.SKIPPED:
            return None
        if kind == cmdproto.RESULT:
            data = _recv_exact(sock, cmdproto.STATUS.size)
            if len(data) == cmdproto.STATUS.size:
                return int(cmdproto.STATUS.unpack(data)[0])
        if last_signal:
            return 128 + last_signal
        print("portside: the command server's worker ended without a status", file=sys.stderr)
        return 1
    finally:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        sock.close()


def spawn_server() -> None:
    """Start a command server in the background (it exits by itself when idle)."""
    import subprocess

    try:
        path = cmdproto.socket_path()
    except OSError:
        return
    subprocess.Popen(
        [sys.executable, "-m", "tui.cmdserver", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
    )
