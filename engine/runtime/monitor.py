"""The per-container monitor: a small process that outlives the engine.

Run as ``python -S -E monitor.py CONFIG SYNC_FD`` by the engine (``monitorclient``), or
forked by the warm ``monitor_forker.py`` the same way (``run``); CONFIG is a ``marshal``
dict. To start fast and stay small (about 8 MB resident) it imports only
built-in and C modules: ``posix`` (as ``os``), ``_socket``, ``_signal``, ``select``,
``fcntl``, ``termios``, ``_json``, ``marshal`` and ``ctypes`` (for prctl/unshare/umount).
It:

1. forks once more and lets the first process exit, so it is not the engine's child; the
   engine started it in a new session; it becomes a child subreaper so the container's
   init (whose parent, the runtime, exits) is reparented to it;
2. runs ``RUNTIME create --bundle B --pid-file pid [--console-socket console.sock] ID``
   with only stdio open and default signal dispositions, receives the PTY master over the
   console socket (SCM_RIGHTS) or hands the runtime pipes for stdin/stdout/stderr; reports
   ``{"created": pid}`` on the sync socket and waits for ``{"start": true}`` (attach clients
   connect meanwhile, so they miss no output), then runs ``RUNTIME start ID``;
3. copies the container's output to docker json-file logs (timestamps, ``max-size`` /
   ``max-file`` rotation, lines split at 16 KiB) and to every attached client, and client
   stdin and resizes to the container; clients connect to ``attach.sock`` in its directory;
4. when the container's init exits: drains the output, reads the OOM-kill counter, runs
   ``RUNTIME delete``, unmounts the rootfs it was given, writes ``exit.json`` (atomically),
   tells the clients and exits.

In ``exec`` mode it does the same for ``RUNTIME exec --detach --process process.json``,
without logs, delete or unmount.

Attach protocol (stream socket; every frame is ``>BI`` type and length, then the payload):
client -> monitor: HELLO (JSON {"stdin","stdout","stderr"}), STDIN, STDIN_EOF, RESIZE
(``>HH`` rows, cols); monitor -> client: STDOUT, STDERR, EXIT (JSON {"ExitCode",
"OOMKilled", "FinishedAt"}).
"""

from __future__ import annotations

import _signal
import _socket
import ctypes
import fcntl
import marshal
import posix as os
import select
import sys
import termios
import time
from _json import encode_basestring

T_STDIN, T_STDOUT, T_STDERR, T_RESIZE, T_STDIN_EOF, T_EXIT, T_HELLO = 0, 1, 2, 3, 4, 5, 10
HEADER_SIZE = 5
MAX_FRAME = 1 << 20
CLIENT_BUFFER = 8 << 20  # a client further behind than this is disconnected
PARTIAL = 16 * 1024  # docker's json-file splits longer lines
READ_SIZE = 65536
DRAIN_SECONDS = 2.0
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
EINTR, EAGAIN, EIO, EINVAL = 4, 11, 5, 22
IN, OUT, ERR, HUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP


# -- tiny helpers shared with the engine (which imports this module) -------------------------
def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(4, "big") + payload


def parse_header(header: bytes) -> tuple[int, int]:
    return header[0], int.from_bytes(header[1:5], "big")


def rfc3339nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def dumps(obj: dict[str, object]) -> str:
    """JSON of a flat dict of str/int/bool/None (what the monitor writes)."""
    parts = []
    for key, value in obj.items():
        if value is True:
            text = "true"
        elif value is False:
            text = "false"
        elif value is None:
            text = "null"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = encode_basestring(str(value))
        parts.append(f"{encode_basestring(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def proc_start_time(pid: int) -> int:
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return int(data[data.rindex(b")") + 2 :].split()[19])


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- system calls Python lacks ------------------------------------------------------------
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_subreaper() -> None:
    libc = _libc()
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0), "prctl")


def hide_cgroup2(unified: str) -> None:
    """In a fresh child: own mount namespace without the cgroup2 mount (crun, hybrid)."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount")
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _check(libc.umount2(unified.encode(), MNT_DETACH), "umount")


def unmount(path: str) -> None:
    libc = _libc()
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.umount2(path.encode(), 0) != 0 and ctypes.get_errno() != EINVAL:
        libc.umount2(path.encode(), MNT_DETACH)


# -- child processes ------------------------------------------------------------------------
_SIGNALS = range(1, _signal.NSIG)


def spawn(
    argv: list[str],
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    hide: str | None = None,
) -> int:
    """fork/exec ``argv`` with exactly these three fds, default signal dispositions and an
    empty signal mask (ignored signals would otherwise reach the container's process)."""
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            for sig in _SIGNALS:
                try:
                    _signal.signal(sig, _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
            for target, fd in enumerate((stdin, stdout, stderr)):
                os.dup2(null if fd < 0 else fd, target, inheritable=True)
            os.closerange(3, 1 << 20)
            if hide:
                hide_cgroup2(hide)
            os.execv(argv[0], argv)
        except BaseException as err:
            try:
                os.write(2, f"cannot run {argv[0]}: {err}\n".encode())
            finally:
                os._exit(127)
    os.close(null)
    return pid


def wait_child(pid: int, timeout: float | None = None) -> int | None:
    """The exit code of child ``pid``, or None if it is still running after ``timeout``."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, 0 if end is None else os.WNOHANG)
        except InterruptedError:
            continue
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if end is not None and time.monotonic() >= end:
            return None
        time.sleep(0.002)


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- logs -----------------------------------------------------------------------------------
class LogWriter:
    """docker json-file lines with rotation; partial lines kept until a newline or 16 KiB."""

    def __init__(self, path: str | None, max_size: int, max_file: int) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.fd = -1
        self.size = 0
        self.partial = {"stdout": b"", "stderr": b""}
        if path:
            self._open()

    def _open(self) -> None:
        assert self.path
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        assert self.path
        os.close(self.fd)
        if self.max_file <= 1:
            os.truncate(self.path, 0)
        else:
            for n in range(self.max_file - 1, 0, -1):
                src = self.path if n == 1 else f"{self.path}.{n - 1}"
                try:
                    os.replace(src, f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
        self._open()

    def _emit(self, stream: str, data: bytes) -> None:
        text = encode_basestring(data.decode("utf-8", "replace"))
        raw = f'{{"log":{text},"stream":"{stream}","time":"{rfc3339nano()}"}}\n'.encode()
        if self.max_size and self.size > 0 and self.size + len(raw) > self.max_size:
            self._rotate()
        os.write(self.fd, raw)
        self.size += len(raw)

    def write(self, stream: str, data: bytes) -> None:
        if self.fd < 0:
            return
        buf = self.partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            for i in range(0, nl + 1, PARTIAL):
                self._emit(stream, buf[i : min(i + PARTIAL, nl + 1)])
            buf = buf[nl + 1 :]
        while len(buf) >= PARTIAL:
            self._emit(stream, buf[:PARTIAL])
            buf = buf[PARTIAL:]
        self.partial[stream] = buf

    def close(self) -> None:
        if self.fd < 0:
            return
        for stream, buf in self.partial.items():
            if buf:
                self._emit(stream, buf)
        os.close(self.fd)
        self.fd = -1


# -- attach clients -------------------------------------------------------------------------
class Client:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.outbuf = bytearray()
        self.hello: dict[str, bool] | None = None
        self.stdin_closed = False


def _parse_hello(payload: bytes) -> dict[str, bool]:
    text = payload.decode()
    return {
        k: f'"{k}": true' in text or f'"{k}":true' in text for k in ("stdin", "stdout", "stderr")
    }


class Monitor:
    def __init__(self, cfg: dict, sync: _socket.socket) -> None:
        self.cfg = cfg
        self.sync = sync
        self.mode = cfg.get("mode", "container")
        self.tty = bool(cfg.get("tty"))
        self.ep = select.epoll()
        self.handlers: dict[int, object] = {}
        self.clients: dict[int, Client] = {}
        self.master = self.stdin_w = self.stdout_r = self.stderr_r = -1
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.pid = 0
        self.status: int | None = None
        self.exited_ns = 0
        self.logs = LogWriter(
            cfg.get("log_path") if self.mode == "container" else None,
            int(cfg.get("log_max_size") or 0),
            int(cfg.get("log_max_file") or 1),
        )
        self.listener: _socket.socket | None = None
        self.oom_before = 0
        self._oom: bool | None = None

    # -- sync channel -----------------------------------------------------------------------
    def tell(self, msg: dict[str, object]) -> None:
        try:
            self.sync.sendall(dumps(msg).encode() + b"\n")
        except OSError:
            pass

    def wait_for_go(self) -> bool:
        buf = b""
        while b"\n" not in buf:
            try:
                chunk = self.sync.recv(4096)
            except InterruptedError:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            buf += chunk
        return b"true" in buf.split(b"\n", 1)[0]

    # -- runtime -------------------------------------------------------------------------------
    def runtime_argv(self, *args: str) -> list[str]:
        return [*self.cfg["runtime"], "--log", "runtime.log", "--log-format", "json", *args]

    def run_runtime(self, *args: str) -> tuple[int, bytes]:
        """Run a runtime command to completion; (exit code, stderr)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = spawn(self.runtime_argv(*args), stdin=-1, stdout=-1, stderr=w)
        os.close(w)
        err = b""
        while True:
            try:
                chunk = os.read(r, READ_SIZE)
            except InterruptedError:
                continue
            if not chunk:
                break
            err += chunk
        os.close(r)
        code = wait_child(pid)
        return code or 0, err

    def runtime_error(self, stderr: bytes) -> str:
        """The runtime's own message: from its JSON log, else its stderr."""
        try:
            fd = os.open("runtime.log", os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                data = os.pread(fd, 65536, max(0, size - 65536))
            finally:
                os.close(fd)
        except OSError:
            data = b""
        for line in reversed(data.decode("utf-8", "replace").splitlines()):
            if '"level":"error"' not in line and '"level":"fatal"' not in line:
                continue
            start = line.find('"msg":"')
            if start < 0:
                continue
            msg, i = [], start + 7
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line):
                    i += 1
                    msg.append({"n": " ", "t": " "}.get(line[i], line[i]))
                else:
                    msg.append(line[i])
                i += 1
            if msg:
                return "".join(msg)
        text = stderr.decode("utf-8", "replace").strip().splitlines()
        return text[-1] if text else "the runtime failed without a message"

    def launch(self) -> bool:
        """create (or exec --detach); True when the process exists and waits to start."""
        console: _socket.socket | None = None
        if self.tty:
            _unlink("console.sock")
            console = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            console.bind("console.sock")
            console.listen(1)
            console.setblocking(False)
        stdin = stdout = err_r = -1
        if self.tty:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)  # the runtime's own stderr
        else:
            if self.cfg.get("open_stdin"):
                stdin, self.stdin_w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self.stdin_w, False)
            self.stdout_r, stdout = os.pipe2(os.O_CLOEXEC)
            # the container's stderr; the runtime's own errors also go to runtime.log
            self.stderr_r, err_w = os.pipe2(os.O_CLOEXEC)
        extra = ["--console-socket", "console.sock"] if console else []
        if self.mode == "exec":
            args = ["exec", "--detach", "--pid-file", "pid", "--process", "process.json"]
        else:
            args = ["create", "--bundle", self.cfg["bundle"], "--pid-file", "pid"]
        pid = spawn(
            self.runtime_argv(*args, *extra, self.cfg["id"]),
            stdin=stdin,
            stdout=stdout,
            stderr=err_w,
            hide=self.cfg.get("hide_cgroup2"),
        )
        for fd in (stdin, stdout, err_w):
            if fd >= 0:
                os.close(fd)
        if err_r >= 0:
            os.set_blocking(err_r, False)
        err = b""
        code = None
        while code is None:
            if console is not None and self.master < 0:
                self.receive_console(console)
            if err_r >= 0:
                err += read_all(err_r)
            code = wait_child(pid, 0.005)
        if console is not None:
            if self.master < 0:
                self.receive_console(console)
            console.close()
            _unlink("console.sock")
        if err_r >= 0:
            err += read_all(err_r)
            os.close(err_r)
        if code != 0:
            if not self.tty:
                err = read_all(self.stderr_r) if self.stderr_r >= 0 else b""
            message = self.runtime_error(err)
            self.tell({"error": message, "code": exit_code_for(message)})
            return False
        try:
            fd = os.open("pid", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.pid = int(os.read(fd, 64).strip())
            finally:
                os.close(fd)
        except (OSError, ValueError):
            self.tell({"error": "the runtime wrote no pid file", "code": 128})
            return False
        if self.tty and self.master < 0:
            self.tell(
                {"error": "the runtime sent no terminal over its console socket", "code": 128}
            )
            return False
        if self.master >= 0:
            os.set_blocking(self.master, False)
        return True

    def receive_console(self, console: _socket.socket) -> None:
        try:
            fd, _ = console._accept()
        except (BlockingIOError, InterruptedError):
            return
        conn = _socket.socket(fileno=fd)
        try:
            conn.settimeout(5)
            _, ancdata, _, _ = conn.recvmsg(4096, _socket.CMSG_LEN(16))
        except OSError:
            ancdata = []
        finally:
            conn.close()
        for level, kind, data in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds = [
                    int.from_bytes(data[i : i + 4], sys.byteorder)
                    for i in range(0, len(data) - 3, 4)
                ]
                if fds and self.master < 0:
                    self.master = fds.pop(0)
                for extra_fd in fds:
                    os.close(extra_fd)

    def start(self) -> bool:
        if self.mode == "exec":
            return True
        code, err = self.run_runtime("start", self.cfg["id"])
        if code != 0:
            message = self.runtime_error(err)
            self.tell({"error": message, "code": exit_code_for(message)})
            return False
        return True

    def abort(self) -> None:
        if self.mode == "container":
            self.run_runtime("delete", "--force", self.cfg["id"])
        elif self.pid:
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass

    # -- event loop -------------------------------------------------------------------------------
    def watch(self, fd: int, events: int, handler: object) -> None:
        if fd in self.handlers:
            self.ep.modify(fd, events)
        else:
            self.ep.register(fd, events)
        self.handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def outputs_open(self) -> bool:
        return self.master >= 0 or self.stdout_r >= 0 or self.stderr_r >= 0

    def close_output(self, which: str) -> None:
        fd = getattr(self, which)
        if fd < 0:
            return
        self.unwatch(fd)
        os.close(fd)
        setattr(self, which, -1)

    def on_output(self, which: str) -> None:
        fd = getattr(self, which)
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the terminal's last slave closed
            data = b""
        if not data:
            self.close_output(which)
            return
        stream = "stderr" if which == "stderr_r" else "stdout"
        self.logs.write(stream, data)
        packet = frame(T_STDERR if stream == "stderr" else T_STDOUT, data)
        for client in list(self.clients.values()):
            if client.hello and client.hello.get(stream):
                self.send(client, packet)

    def send(self, client: Client, packet: bytes) -> None:
        if len(client.outbuf) + len(packet) > CLIENT_BUFFER:
            self.drop(client)
            return
        was_empty = not client.outbuf
        client.outbuf += packet
        if was_empty:
            self.flush(client)

    def flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
            del client.outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(client)
            return
        if client.fd in self.handlers:
            self.watch(client.fd, IN | (OUT if client.outbuf else 0), client)

    def drop(self, client: Client) -> None:
        if self.clients.pop(client.fd, None) is None:
            return
        self.unwatch(client.fd)
        if client.hello and client.hello.get("stdin") and not client.stdin_closed:
            self.client_stdin_eof()
        client.sock.close()

    def accept(self, blocking_hello: bool = False) -> bool:
        assert self.listener is not None
        try:
            fd, _ = self.listener._accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False
        sock = _socket.socket(fileno=fd)
        client = Client(sock)
        self.clients[client.fd] = client
        if blocking_hello:
            # clients that connected before the process started sent their hello first
            sock.settimeout(5)
            try:
                while client.hello is None and client.fd in self.clients:
                    data = sock.recv(READ_SIZE)
                    if not data:
                        break
                    self.feed(client, data)
            except OSError:
                pass
        if client.fd not in self.clients:
            return True
        sock.setblocking(False)
        self.watch(client.fd, IN | (OUT if client.outbuf else 0), client)
        return True

    def on_client(self, client: Client, events: int) -> None:
        if events & OUT:
            self.flush(client)
        if not events & (IN | HUP | ERR) or client.fd not in self.clients:
            return
        try:
            data = client.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        self.feed(client, data)

    def feed(self, client: Client, data: bytes) -> None:
        client.inbuf += data
        while len(client.inbuf) >= HEADER_SIZE:
            kind, size = parse_header(client.inbuf)
            if size > MAX_FRAME:
                self.drop(client)
                return
            if len(client.inbuf) < HEADER_SIZE + size:
                break
            payload = client.inbuf[HEADER_SIZE : HEADER_SIZE + size]
            client.inbuf = client.inbuf[HEADER_SIZE + size :]
            self.on_frame(client, kind, payload)

    def on_frame(self, client: Client, kind: int, payload: bytes) -> None:
        if kind == T_HELLO:
            try:
                client.hello = _parse_hello(payload)
            except UnicodeDecodeError:
                self.drop(client)
                return
            if self.status is not None and not self.outputs_open():
                self.send(client, frame(T_EXIT, self.exit_payload()))
        elif kind == T_STDIN and client.hello and client.hello.get("stdin"):
            self.write_stdin(payload)
        elif kind == T_STDIN_EOF:
            client.stdin_closed = True
            self.client_stdin_eof()
        elif kind == T_RESIZE and len(payload) == 4 and self.master >= 0:
            rows, cols = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
            winsize = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, winsize)
            except OSError:
                pass

    def client_stdin_eof(self) -> None:
        if self.cfg.get("stdin_once") and not self.tty and self.stdin_w >= 0:
            self.stdin_closing = True
            if not self.stdin_buf:
                self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin_w >= 0:
            self.unwatch(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = -1

    def stdin_fd(self) -> int:
        return self.master if self.tty else self.stdin_w

    def write_stdin(self, data: bytes) -> None:
        if self.stdin_fd() < 0 or (self.stdin_closing and not self.tty):
            return
        self.stdin_buf += data
        self.pump_stdin()

    def pump_stdin(self) -> None:
        fd = self.stdin_fd()
        if fd < 0:
            self.stdin_buf.clear()
            return
        try:
            while self.stdin_buf:
                n = os.write(fd, self.stdin_buf[:READ_SIZE])
                del self.stdin_buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.stdin_buf.clear()
            if not self.tty:
                self.close_stdin()
            return
        if self.tty:
            self.watch(fd, IN | (OUT if self.stdin_buf else 0), "master")
        elif self.stdin_buf:
            self.watch(fd, OUT, "stdin")
        else:
            self.unwatch(fd)
            if self.stdin_closing:
                self.close_stdin()

    def exit_info(self) -> dict[str, object]:
        code = os.waitstatus_to_exitcode(self.status or 0)
        if code < 0:
            code = 128 - code
        return {
            "ExitCode": code,
            "OOMKilled": self.oom_killed(),
            "FinishedAt": rfc3339nano(self.exited_ns),
        }

    def exit_payload(self) -> bytes:
        return dumps(self.exit_info()).encode()

    def oom_count(self) -> int:
        path = self.cfg.get("oom_file")
        if not path:
            return 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 4096).decode()
            finally:
                os.close(fd)
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def oom_killed(self) -> bool:
        if self._oom is None:
            self._oom = self.mode == "container" and self.oom_count() > self.oom_before
        return self._oom

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.pid and self.status is None:
                self.status = status
                self.exited_ns = time.time_ns()

    def loop(self) -> None:
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        _signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        self.watch(rfd, IN, "signal")
        for which in ("master", "stdout_r", "stderr_r"):
            fd = getattr(self, which)
            if fd >= 0:
                os.set_blocking(fd, False)
                self.watch(fd, IN, which)
        assert self.listener is not None
        while self.accept(blocking_hello=True):
            pass
        self.watch(self.listener.fileno(), IN, "listen")
        deadline: float | None = None
        while True:
            self.reap()
            if self.status is not None:
                if deadline is None:
                    deadline = time.monotonic() + DRAIN_SECONDS
                    self.oom_killed()  # read the counter before the cgroup goes away
                if not self.outputs_open() or time.monotonic() >= deadline:
                    break
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                events = self.ep.poll(timeout)
            except InterruptedError:
                continue
            # clients first: one that connected before some output must not miss it
            events.sort(key=lambda e: 0 if self.handlers.get(e[0]) == "listen" else 1)
            for fd, mask in events:
                handler = self.handlers.get(fd)
                if handler == "signal":
                    read_all(rfd)
                elif handler == "listen":
                    while self.accept():
                        pass
                elif handler in ("stdout_r", "stderr_r"):
                    self.on_output(handler)  # type: ignore[arg-type]
                elif handler == "master":
                    if mask & OUT:
                        self.pump_stdin()
                    if mask & (IN | HUP | ERR):
                        self.on_output("master")
                elif handler == "stdin":
                    self.pump_stdin()
                elif isinstance(handler, Client):
                    self.on_client(handler, mask)
        for which in ("master", "stdout_r", "stderr_r"):
            self.close_output(which)
        self.close_stdin()

    def finish(self) -> None:
        info = self.exit_info()
        self.logs.close()
        if self.mode == "container":
            self.run_runtime("delete", "--force", self.cfg["id"])
            if self.cfg.get("rootfs_mount"):
                unmount(self.cfg["rootfs_mount"])
        write_atomic("exit.json", dumps(info).encode())
        payload = frame(T_EXIT, dumps(info).encode())
        for client in list(self.clients.values()):
            if client.hello is not None:
                self.send(client, payload)
        end = time.monotonic() + 1.0
        while any(c.outbuf for c in self.clients.values()) and time.monotonic() < end:
            for fd, mask in self.ep.poll(0.1):
                handler = self.handlers.get(fd)
                if isinstance(handler, Client):
                    self.on_client(handler, mask)
        for client in list(self.clients.values()):
            self.drop(client)
        if self.listener is not None:
            self.listener.close()
            _unlink("attach.sock")

    def run(self) -> int:
        _unlink("attach.sock")
        self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.listener.bind("attach.sock")
        self.listener.listen(64)
        self.listener.setblocking(False)
        if not self.launch():
            self.abort()
            return 1
        self.oom_before = self.oom_count()
        self.tell({"created": self.pid})
        if not self.wait_for_go():
            self.abort()
            return 1
        if not self.start():
            self.abort()
            return 1
        self.tell({"started": self.pid})
        self.sync.close()
        self.loop()
        self.finish()
        return 0


def exit_code_for(message: str) -> int:
    """docker's exit codes for a process that could not start."""
    low = message.lower()
    if "not found" in low or "no such file" in low:
        return 127
    if "permission denied" in low:
        return 126
    return 128


def main() -> int:
    return run(sys.argv[1], int(sys.argv[2]))


def run(cfg_path: str, sync_fd: int) -> int:
    """Read the config, detach (fork; the first process exits at once) and monitor."""
    fd = os.open(cfg_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        cfg = marshal.loads(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    if os.fork() != 0:
        os._exit(0)
    sync = _socket.socket(fileno=sync_fd)
    try:
        set_subreaper()
        os.chdir(cfg["dir"])
        for sig in (_signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM, _signal.SIGPIPE):
            _signal.signal(sig, _signal.SIG_IGN)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        me = os.getpid()
        write_atomic("monitor.pid", dumps({"pid": me, "start_time": proc_start_time(me)}).encode())
        sync.sendall(dumps({"monitor": me}).encode() + b"\n")
        return Monitor(cfg, sync).run()
    except Exception as err:  # report anything unexpected instead of dying silently
        try:
            sync.sendall(dumps({"error": f"monitor failed: {err}", "code": 125}).encode() + b"\n")
        except OSError:
            pass
        raise


if __name__ == "__main__":
    sys.exit(main())
