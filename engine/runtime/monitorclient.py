"""The engine's side of a monitor process: start it, hand-shake, attach, watch it exit.

``launch()`` starts ``monitor.py`` detached (new session, only the sync socket passed, so
no other engine fd reaches it or the runtime), forked by a warm ``MonitorForker`` when one
is given and works, and returns a ``Launch`` once the container exists; ``Launch.start()``
lets it run. ``AttachStream`` speaks the framed attach protocol over the monitor's
``attach.sock`` (reached through ``/proc/self/fd/<dirfd>/`` so that deep engine roots do
not hit the 108-byte socket path limit). ``wait_exit(pid)`` resolves when a process (not
our child) exits, through a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import PortsideError
from engine.runtime import monitor as proto

MONITOR_SCRIPT = Path(proto.__file__).resolve()
FORKER_SCRIPT = MONITOR_SCRIPT.with_name("monitor_forker.py")
HANDSHAKE_TIMEOUT = 120.0
SYSTEM_PYTHON = "/usr/bin/python3"
_interpreter: str | None = None


def monitor_interpreter() -> str:
    """The Python that runs monitors. The monitor imports only built-in modules, so any
    CPython of this engine's own version will do (its config travels in ``marshal``, whose
    format is per version); the distribution's ``python3`` is preferred when it is one:
    distributions build it with PGO and LTO and it starts in about half the time of a plain
    source build (14 ms against 32 ms here), which is on every container's start path.
    ``PORTSIDE_MONITOR_PYTHON`` names another."""
    global _interpreter
    if _interpreter is None:
        chosen = sys.executable
        candidate = os.environ.get("PORTSIDE_MONITOR_PYTHON") or SYSTEM_PYTHON
        name = os.path.basename(os.path.realpath(candidate))
        wanted = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        if name == wanted and os.access(candidate, os.X_OK):
            chosen = candidate
        _interpreter = chosen
    return _interpreter


class StartError(PortsideError):
    """The runtime could not create or start the process; ``code`` is docker's exit code."""

    def __init__(self, message: str, code: int = 128) -> None:
        super().__init__(message)
        self.code = code


class ContainerStartError(PortsideError):
    """A container or exec process could not start (docker's exit codes 125/126/127); the
    API answers 400 when the command is missing or not executable."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = 400 if exit_code in (126, 127) else 500


def read_pid_file(cdir: Path) -> tuple[int, int] | None:
    """(pid, start time) from ``monitor.pid``."""
    try:
        data = json.loads((cdir / "monitor.pid").read_text())
        return int(data["pid"]), int(data["start_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(pid: int, start_time: int) -> bool:
    """Whether ``pid`` is still the same process (guards against pid reuse)."""
    try:
        return proto.proc_start_time(pid) == start_time and _not_zombie(pid)
    except (OSError, ValueError, IndexError):
        return False


def _not_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] != b"Z"


async def wait_exit(pid: int) -> None:
    """Return once process ``pid`` has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@dataclass
class Launch:
    """A monitor whose process was created and waits for ``start()``."""

    monitor_pid: int
    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def start(self) -> int:
        """Let the process run; returns its pid."""
        self.writer.write(b'{"start": true}\n')
        await self.writer.drain()
        msg = await _message(self.reader)
        self._close()
        if "started" in msg:
            return int(msg["started"])
        raise StartError(str(msg.get("error", "the monitor exited")), int(msg.get("code", 128)))

    async def abort(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.writer.write(b'{"start": false}\n')
            await self.writer.drain()
        self._close()
        await wait_exit(self.monitor_pid)

    def _close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


async def _message(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        line = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT)
    except TimeoutError:
        raise StartError("the container monitor did not answer in time", 125) from None
    if not line:
        return {"error": "the container monitor exited unexpectedly (see monitor.log)", "code": 125}
    try:
        return dict(json.loads(line))
    except ValueError:
        return {"error": f"bad message from the monitor: {line[:200]!r}", "code": 125}


async def launch(cdir: Path, config: dict[str, Any], forker: MonitorForker | None = None) -> Launch:
    """Write ``monitor.cfg`` in ``cdir``, start the monitor (forked by ``forker`` when it
    can, else a fresh interpreter), wait until the process exists."""
    cfg_path = cdir / "monitor.cfg"
    cfg = {**config, "dir": str(cdir)}
    await asyncio.to_thread(_write_marshal, cfg_path, cfg)
    for stale in ("exit.json", "pid", "monitor.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cdir / stale)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log = os.open(
        cdir / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
    )
    try:
        forked = forker is not None and await forker.fork(cfg_path, cdir, theirs.fileno(), log)
        if not forked:
            await _start_detached(cfg_path, cdir, theirs.fileno(), log)
    finally:
        os.close(log)
        theirs.close()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    hello = await _message(reader)
    if "monitor" not in hello:
        writer.close()
        raise StartError(str(hello.get("error")), int(hello.get("code", 125)))
    monitor_pid = int(hello["monitor"])
    msg = await _message(reader)
    if "created" not in msg:
        writer.close()
        await wait_exit(monitor_pid)
        raise StartError(str(msg.get("error")), int(msg.get("code", 128)))
    return Launch(monitor_pid, int(msg["created"]), reader, writer)


async def _start_detached(cfg_path: Path, cdir: Path, sync_fd: int, log: int) -> None:
    """Start ``monitor.py`` in a fresh interpreter, in its own session."""
    proc = await asyncio.create_subprocess_exec(
        monitor_interpreter(),
        "-S",
        "-E",
        str(MONITOR_SCRIPT),
        str(cfg_path),
        str(sync_fd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
        pass_fds=(sync_fd,),
        start_new_session=True,
        cwd=str(cdir),
    )
    await proc.wait()  # the first process exits at once; the monitor is its child


async def _sendmsg(sock: socket.socket, data: bytes, ancdata: list[tuple[int, int, bytes]]) -> None:
    """``sendmsg`` on a non-blocking socket, waiting for room when it is full."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sock.sendmsg([data], ancdata)
            return
        except BlockingIOError:
            room: asyncio.Future[None] = loop.create_future()
            loop.add_writer(sock.fileno(), _settle, room)
            try:
                await room
            finally:
                loop.remove_writer(sock.fileno())


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MonitorForker:
    """The engine's end of ``monitor_forker.py``: a warm interpreter that forks monitors, so
    a container start skips a Python start (~12 ms). Started on first use, restarted if it
    died; ``fork`` answers False when it cannot be used (the caller starts the monitor the
    old way then). ``close`` ends it; it also dies with the engine."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def fork(self, cfg_path: Path, cdir: Path, sync_fd: int, log: int) -> bool:
        request = marshal.dumps({"cfg": str(cfg_path), "dir": str(cdir)})
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("2i", sync_fd, log))]
        async with self._lock:
            for _attempt in range(2):
                control = await self._running()
                if control is None:
                    return False
                try:
                    await _sendmsg(control, request, fds)
                    return True
                except OSError:
                    await self._stop()  # it died: start another once
            return False

    async def _running(self) -> socket.socket | None:
        if self._closed:
            return None
        if self._control is not None and self._proc is not None and self._proc.returncode is None:
            return self._control
        await self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                monitor_interpreter(),
                "-S",
                "-E",
                str(FORKER_SCRIPT),
                str(theirs.fileno()),
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd="/",
            )
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        ours.setblocking(False)  # a stuck forker must not stall the event loop
        self._control = ours
        return ours

    async def _stop(self) -> None:
        control, self._control = self._control, None
        proc, self._proc = self._proc, None
        if control is not None:
            control.close()  # the forker ends when it reads the end of its socket
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """Stop the forker (monitors it started run on: they are not its children)."""
        async with self._lock:
            self._closed = True
            await self._stop()


def _write_marshal(path: Path, data: dict[str, Any]) -> None:
    """The monitor's config, in ``marshal`` (it reads it without importing json)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(marshal.dumps(data))
    os.replace(tmp, path)


def read_exit(cdir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((cdir / "exit.json").read_text()))
    except (OSError, ValueError):
        return None


class AttachStream:
    """One client connection to a monitor's attach socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.exit: dict[str, Any] | None = None

    @classmethod
    async def connect(cls, cdir: Path, *, stdin: bool, stdout: bool, stderr: bool) -> AttachStream:
        dfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            reader, writer = await asyncio.open_unix_connection(
                f"/proc/self/fd/{dfd}/attach.sock", limit=1 << 21
            )
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise PortsideError(
                f"the container's monitor is not reachable: {err.strerror}"
            ) from None
        finally:
            os.close(dfd)
        stream = cls(reader, writer)
        hello = json.dumps({"stdin": stdin, "stdout": stdout, "stderr": stderr}).encode()
        await stream._send(proto.T_HELLO, hello)
        return stream

    async def _send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(proto.frame(kind, payload))
        await self.writer.drain()

    async def write(self, data: bytes) -> None:
        for i in range(0, len(data), proto.MAX_FRAME):
            await self._send(proto.T_STDIN, data[i : i + proto.MAX_FRAME])

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            await self._send(proto.T_STDIN_EOF)

    async def resize(self, height: int, width: int) -> None:
        if not (0 < height < 65536 and 0 < width < 65536):
            raise PortsideError(f"invalid terminal size {height}x{width}")
        await self._send(proto.T_RESIZE, height.to_bytes(2, "big") + width.to_bytes(2, "big"))

    async def read(self) -> tuple[str, bytes] | None:
        """The next (stream, data) of output, or None at the end (``self.exit`` set if the
        process exited)."""
        while True:
            try:
                header = await self.reader.readexactly(proto.HEADER_SIZE)
                kind, size = proto.parse_header(header)
                payload = await self.reader.readexactly(size) if size else b""
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return None
            if kind == proto.T_STDOUT:
                return "stdout", payload
            if kind == proto.T_STDERR:
                return "stderr", payload
            if kind == proto.T_EXIT:
                with contextlib.suppress(ValueError):
                    self.exit = dict(json.loads(payload))
                return None

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


def kill_monitor(pid: int, start_time: int) -> None:
    if alive(pid, start_time):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
