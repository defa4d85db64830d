"""What the thin ``portside`` client and the warm command server share: where the server's
socket lives, the code key in its name, and the wire format.

Only built-in modules here: the client imports this before anything else and must stay
under a few milliseconds.

Wire format (one stream connection per command):

- client -> server, first message: ``>I`` length + a ``marshal``-ed request dict (``argv``,
  ``env``, ``cwd``, ``umask``), with the client's stdin, stdout and stderr attached as
  SCM_RIGHTS; then one byte per signal the client receives (the signal number), to be
  raised in the worker;
- server -> client: ``R`` + ``>i`` exit status when the command finished, or ``S`` when the
  server will not run it (the client then runs the command itself).
"""

from __future__ import annotations

import os
import stat
import struct

HEADER = struct.Struct(">I")
STATUS = struct.Struct(">i")
MAX_REQUEST = 1 << 20
RESULT = b"R"
SKIPPED = b"S"
DISABLE_ENV = "PORTSIDE_CMDSERVER"
DIR_ENV = "PORTSIDE_CMDSERVER_DIR"
IDLE_ENV = "PORTSIDE_CMDSERVER_IDLE"
DEFAULT_IDLE = 900.0

# Top-level options that take a value (to find the verb in argv without argparse).
VALUE_OPTIONS = frozenset(
    {"-H", "--host", "-c", "--context", "--root", "--insecure-registry", "--registry-mirror"}
    | {"--theme"}
)
NOT_WARM = frozenset({"serve"})

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1").lower() not in ("0", "no", "false", "off")


def verb_of(argv: list[str]) -> str | None:
    """The verb of a ``portside`` command line, or None (the dashboard, ``--version``)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("-"):
            if arg in VALUE_OPTIONS:
                i += 1
            i += 1
            continue
        return arg
    return None


def warm_eligible(argv: list[str]) -> bool:
    """Verbs go to the command server; the dashboard and ``serve`` never do."""
    verb = verb_of(argv)
    return verb is not None and verb not in NOT_WARM


def code_key() -> str:
    """Names the code a server has loaded: the environment and interpreter, and the newest
    module file of the verbs' code. An edited or upgraded checkout gets a fresh server."""
    import sys

    newest = 0
    for sub in (_PACKAGE, os.path.join(_PACKAGE, "cli")):
        with os.scandir(sub) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    # the environment (the venv holding the interpreter's link, as site finds it: sys.prefix
    # is not set yet under the launcher's -S) and the real interpreter: .venv/bin/python and
    # python3 share a server
    env = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    interpreter = f"{env}\0{os.path.realpath(sys.executable)}"
    text = f"{interpreter}\0{sys.hexversion}\0{_PACKAGE}\0{newest}"
    # FNV-1a: a stable name without importing hashlib.
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def server_dir() -> str:
    """A private directory for this user's command servers (created 0700, checked)."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        path = configured
    else:
        base = os.environ.get("XDG_RUNTIME_DIR") or ""
        if not base or not os.access(base, os.W_OK):
            base = "/tmp"
        path = os.path.join(base, f"portside-cmd-{os.geteuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of this user")
    return path


def socket_path(key: str | None = None) -> str:
    return os.path.join(server_dir(), f"cmd-{key or code_key()}.sock")
