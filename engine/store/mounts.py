"""Thin ctypes wrappers over the Linux calls the snapshotters need and Python 3.11 lacks.

mount(2), umount2(2), unshare(2), prctl(PR_SET_PDEATHSIG) and syncfs(2). Each raises
``OSError`` with the errno on failure. Blocking but short: callers on an event loop use them
only in helper processes, threads, or once at start-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
from functools import cache

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on


def _check(result: int, what: str, target: bytes | str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", target)


def _b(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


def mount(
    source: str | bytes | None,
    target: str | bytes | os.PathLike[str],
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    """mount(2)."""
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    _check(libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", _b(target))


def umount(target: str | bytes | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    libc = _libc()
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _check(libc.umount2(_b(target), flags), "umount", _b(target))


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc().unshare(ctypes.c_int(flags)), "unshare")


def make_private_mount_namespace() -> None:
    """Give this process its own mount namespace where nothing propagates back to the host."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies."""
    libc = _libc()
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _check(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0), "prctl")


def syncfs(fd: int) -> None:
    """syncfs(2): flush the whole filesystem that holds ``fd``."""
    _check(_libc().syncfs(ctypes.c_int(fd)), "syncfs")
