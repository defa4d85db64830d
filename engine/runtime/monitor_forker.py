"""A warm process that forks container monitors, so a start does not pay a Python start.

Run as ``python -S -E monitor_forker.py CONTROL_FD ENGINE_PID`` by the engine
(``monitorclient.MonitorForker``), next to ``monitor.py``, which it imports (only built-in
modules, as the monitor itself). It dies with the engine (``PR_SET_PDEATHSIG``) or when
the engine closes the control socket.

Each request on the control socket (``SOCK_SEQPACKET``) is one ``marshal``-ed dict ``{"cfg":
path of monitor.cfg, "dir": the container's directory}`` with two descriptors attached
(``SCM_RIGHTS``): the sync socket and the monitor's log. For each, the forker forks a child
that becomes what ``python -S -E monitor.py CFG SYNC_FD`` started detached would be: a new
session, the directory as working directory, /dev/null as stdin and stdout, the log as
stderr, default SIGCHLD, no other descriptor; it then runs ``monitor.run``, whose first step
forks again and lets the first process exit (the forker reaps it), so monitors are never
the forker's children and outlive it and the engine alike.
"""

from __future__ import annotations

import _signal
import _socket
import ctypes
import marshal
import posix as os
import sys

try:
    import monitor  # run as a script: its own directory is sys.path[0]
except ImportError:  # imported as part of the engine package (tests, tools)
    from engine.runtime import monitor

PR_SET_PDEATHSIG = 1
_MAX_REQUEST = 1 << 16
_FDS = 2


def _die_with_parent(engine_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0)
    if os.getppid() != engine_pid:  # the engine went before the prctl took effect
        os._exit(0)


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, usable, 4))
    return fds


def _become_monitor(request: dict[str, str], sync_fd: int, log_fd: int) -> int:
    """In the forked child: the detached start the engine used to do, then the monitor."""
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log_fd, 2)
    for fd in (null, log_fd):
        if fd > 2:
            os.close(fd)
    os.chdir(request["dir"])
    return monitor.run(request["cfg"], sync_fd)


def serve(control_fd: int, engine_pid: int) -> int:
    _die_with_parent(engine_pid)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # the first fork of each monitor
    control = _socket.socket(fileno=control_fd)
    while True:
        try:
            data, ancdata, _flags, _addr = control.recvmsg(
                _MAX_REQUEST, _socket.CMSG_SPACE(4 * _FDS)
            )
        except InterruptedError:
            continue
        fds = _received_fds(ancdata)
        if not data:
            for fd in fds:
                os.close(fd)
            return 0  # the engine closed its end
        try:
            request = marshal.loads(data)
            valid = isinstance(request, dict) and len(fds) == _FDS
        except (EOFError, ValueError, TypeError):
            valid = False
        if valid and os.fork() == 0:
            code = 125
            try:
                control.close()
                code = _become_monitor(request, fds[0], fds[1])
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
            except BaseException:
                sys.excepthook(*sys.exc_info())
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(code)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
