"""The ``docker cp`` helper process: builds a container's file view, chroots, does the I/O.

``python -m engine.runtime.archive.helper '<json config>'``, started by ``client``. Steps:

1. die with the parent (PR_SET_PDEATHSIG); unshare a mount namespace (``/`` rprivate), so
   nothing below is ever visible to the host or to the container;
2. bind the container's root file system over itself, then bind each of its volumes and bind
   mounts at their destinations, resolved with ``openat2(RESOLVE_IN_ROOT)`` and mounted
   through ``/proc/self/fd`` (a symlink the container planted or swaps cannot move a mount
   outside its root); read-only mounts and a ``--read-only`` root are remounted read-only;
3. close every descriptor that leads outside, ``chroot`` into the view, switch off imports
   from files (every module is loaded before), and only then read the requested path: from
   here the kernel keeps every lookup (``..``, absolute symlinks, a symlink swapped
   mid-copy) inside the container's root.

Operations: ``stat`` (dockerd's ``ContainerStatPath``), ``get`` (a tar of the path on
stdout, entries renamed like dockerd's ``TarResourceRebase``) and ``put`` (a tar from stdin
extracted under a directory, see ``extract``). Control messages are JSON lines on the
``control`` descriptor: ``{"stat": ...}`` first (or ``{"error", "kind"}``), then ``{"done":
true}`` or an error. ``kind`` is ``notfound``, ``invalid``, ``forbidden`` or ``error``.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys
import tarfile
from importlib.machinery import BuiltinImporter, FrozenImporter
from pathlib import Path
from typing import Any, BinaryIO

from engine.runtime import fsroot
from engine.runtime.archive import paths
from engine.store import mounts

MS_BIND = 0x1000
MS_REMOUNT = 0x20
SYS_OPENAT2 = 437  # same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_CHUNK = 1 << 20  # bigger pipes and writes: fewer wake-ups of the engine per megabyte
F_SETPIPE_SZ = 1031


class HelperError(Exception):
    """An expected failure, reported to the parent as ``{"error", "kind"}``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2_in_root(root_fd: int, path: str, flags: int) -> int:
    """``openat2(root_fd, path, flags, RESOLVE_IN_ROOT)``: symlinks and ``..`` stay inside."""
    libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = libc.syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(root_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


# -- the view ---------------------------------------------------------------------------------
def _bind(root: str, root_fd: int, mount: dict[str, Any]) -> None:
    source = str(mount["source"])
    dest = str(mount["destination"])
    try:
        src_fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a volume not created yet, a bind source gone: nothing to show
    try:
        is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
        try:  # as the runtime does: missing parts made inside the root, through its symlinks
            fsroot.ensure_mountpoint(Path(root), dest, directory=is_dir)
        except OSError:
            return
        try:
            dst_fd = openat2_in_root(root_fd, dest, os.O_PATH)
        except OSError:
            return
        try:
            if stat.S_ISDIR(os.fstat(dst_fd).st_mode) != is_dir:
                return  # the runtime would refuse this mount too
            mounts.mount(
                f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{dst_fd}", None, MS_BIND | mounts.MS_REC
            )
        finally:
            os.close(dst_fd)
        if mount.get("ro"):
            top = openat2_in_root(root_fd, dest, os.O_PATH)
            try:
                mounts.mount(
                    None, f"/proc/self/fd/{top}", None, MS_REMOUNT | MS_BIND | mounts.MS_RDONLY
                )
            finally:
                os.close(top)
    finally:
        os.close(src_fd)


def enter_view(cfg: dict[str, Any]) -> None:
    """Steps 1 to 3 of the module docstring."""
    root = str(cfg["root"])
    mounts.make_private_mount_namespace()
    mounts.mount(root, root, None, MS_BIND | mounts.MS_REC)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for mount in sorted(cfg.get("mounts") or [], key=lambda m: paths.clean(m["destination"])):
            _bind(root, root_fd, mount)
        if cfg.get("ro_rootfs"):
            mounts.mount(None, root, None, MS_REMOUNT | MS_BIND | mounts.MS_RDONLY)
    finally:
        os.close(root_fd)
    os.chroot(root)
    os.chdir("/")
    os.umask(0)
    control = int(cfg["control"])
    os.closerange(3, control)  # nothing that leads outside the chroot stays open
    os.closerange(control + 1, 1 << 16)
    # from here every path is the container's: a module file planted at this interpreter's
    # library path must never be imported (nor a source line read for a traceback)
    sys.path.clear()
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if f in (BuiltinImporter, FrozenImporter)]


# -- stat -------------------------------------------------------------------------------------
def _not_found(cfg: dict[str, Any]) -> HelperError:
    return HelperError(
        "notfound", f"Could not find the file {cfg['path']} in container {cfg['container']}"
    )


def resolve(cfg: dict[str, Any]) -> tuple[str, str, os.stat_result, dict[str, Any]]:
    """dockerd's ``ResolvePath`` + ``StatPath``: (absolute path, resolved path, lstat, stat).

    The directory part is resolved through symlinks (inside the chroot, so inside the
    container), the last element is not: asking for a symlink gives the symlink.
    """
    abs_path = paths.container_abs_path(str(cfg["path"]))
    dir_part, base_part = paths.split(abs_path)
    resolved_dir = os.path.realpath(dir_part)
    resolved = resolved_dir.rstrip("/") + "/" + base_part
    try:
        st = os.lstat(resolved)
    except FileNotFoundError:
        raise _not_found(cfg) from None
    except OSError as err:
        raise HelperError("error", f"lstat {abs_path}: {err.strerror.lower()}") from None
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.path.realpath(abs_path)
    return abs_path, resolved, st, paths.path_stat(paths.base(abs_path), st, link)


# -- get --------------------------------------------------------------------------------------
class _Padded:
    """A file read as exactly ``size`` bytes: cut when it grew, zero-padded when it shrank."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        data = os.read(self.fd, n) if n else b""
        if len(data) < n:
            data += bytes(n - len(data))
        self.left -= len(data)
        return data


class TreeWriter:
    """Writes a tar of one path, the way dockerd's ``TarWithOptions`` names entries."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(  # noqa: SIM115 - closed in close()
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape"
        )
        self.inodes: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def add(self, path: str, name: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime
        key = (st.st_dev, st.st_ino)
        mode = st.st_mode
        if stat.S_ISREG(mode) and st.st_nlink > 1 and key in self.inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = self.inodes[key]
            self.tar.addfile(info)
            return
        if stat.S_ISREG(mode):
            self._file(path, info, key, st)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            if not info.name.endswith("/"):
                info.name += "/"
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: docker skips them too
        self.tar.addfile(info)

    def _file(
        self, path: str, info: tarfile.TarInfo, key: tuple[int, int], st: os.stat_result
    ) -> None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError:
            return  # gone or replaced meanwhile
        try:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode):
                return
            info.type = tarfile.REGTYPE
            info.size = now.st_size
            if st.st_nlink > 1:
                self.inodes[key] = info.name
            self.tar.addfile(info, _Padded(fd, now.st_size))  # type: ignore[arg-type]
        finally:
            os.close(fd)

    def tree(self, path: str, name: str) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        self.add(path, name, st)
        if not stat.S_ISDIR(st.st_mode):
            return
        try:
            children = sorted(os.listdir(path))
        except OSError:
            return
        for child in children:
            self.tree(os.path.join(path, child), f"{name.rstrip('/')}/{child}")


def get(cfg: dict[str, Any], control: BinaryIO) -> None:
    abs_path, resolved, _st, info = resolve(cfg)
    emit(control, {"stat": info})
    source = os.path.normpath(resolved)
    out = os.fdopen(1, "wb", buffering=_CHUNK, closefd=False)
    writer = TreeWriter(out)
    writer.tree(source, paths.base(abs_path))
    writer.close()
    out.flush()


# -- main -------------------------------------------------------------------------------------
def emit(control: BinaryIO, obj: dict[str, Any]) -> None:
    control.write((json.dumps(obj) + "\n").encode())
    control.flush()


def run(cfg: dict[str, Any], control: BinaryIO) -> None:
    # every module is imported before the chroot: the interpreter's files are out of reach after
    from engine.runtime.archive import extract

    enter_view(cfg)
    op = cfg["op"]
    if op == "stat":
        emit(control, {"stat": resolve(cfg)[3]})
    elif op == "get":
        get(cfg, control)
    else:
        extract.put(cfg, control)
    emit(control, {"done": True})


def _widen_pipes() -> None:
    import fcntl

    for fd in (0, 1):
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass  # not a pipe, or over /proc/sys/fs/pipe-max-size: the default will do


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    control = os.fdopen(int(cfg["control"]), "wb", buffering=0)
    try:
        mounts.set_parent_death_signal()
        _widen_pipes()
        if os.getppid() != cfg.get("ppid"):
            return 1  # the parent is already gone
        run(cfg, control)
    except HelperError as err:
        emit(control, {"error": err.message, "kind": err.kind})
        return 1
    except BrokenPipeError:
        return 1  # the client went away
    except OSError as err:
        emit(control, {"error": f"cannot copy: {err.strerror or err}", "kind": "error"})
        return 1
    except Exception as err:
        text = f"internal error in the copy helper: {type(err).__name__}: {err}"
        emit(control, {"error": text, "kind": "error"})
        return 1
    return 0


if __name__ == "__main__":
    # run the imported module, not ``__main__``: ``extract`` raises its ``HelperError``
    from engine.runtime.archive import helper

    code = helper.main(sys.argv)
    sys.stdout.flush()
    os._exit(code)
