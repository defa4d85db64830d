"""Secure layer unpack: applies one layer tar to a snapshot directory in a helper process.

``unpack_layer()`` (parent side, asyncio) starts ``python -m engine.store.unpack`` with the
blob as stdin, or has the warm helper of ``engine.store.unpack_server`` fork a child that runs
the same code (``child_main``) with the same descriptors, confinement and output. The helper
dies with its parent (PR_SET_PDEATHSIG), unshares a mount namespace
(``/`` made rprivate), optionally mounts a read-only overlay of the lower layers for lookups,
chroots into the target directory and applies the tar entry by entry (``Applier``); a second
thread decompresses and computes the DiffID meanwhile. It prints JSON lines on stdout:
``{"progress": <compressed bytes read>}`` now and then, then ``{"diff_id", "size", ...}`` or
``{"error": "<one line>"}``.

Safety rules inside the helper, on top of the chroot: names are normalised and refused when
``..`` would leave the root; parent directories are resolved component by component in user
space (symlinks followed but scoped to the root, like ``filepath-securejoin``), so the final
operation always runs on a path without symlinks; the last component is never followed
(``O_NOFOLLOW``/``O_EXCL`` creation, fd-based ``fchown``/``fchmod``/``futimens``, ``lchown``,
``utime(follow_symlinks=False)``; a symlink in the way is unlinked first); hardlink targets
must resolve inside the root without crossing a symlink; ``/`` never changes type.
``trusted.overlay.*``, ``user.overlay.*`` and ``security.selinux`` xattrs from a tar are
dropped. Whiteouts follow the image spec (lower layers only): for the overlay driver they are
stored as overlayfs expects (char 0/0, ``trusted.overlay.opaque=y``), for the copy driver they
are performed as deletions.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import stat
import sys
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence

from engine.errors import PortsideError
from engine.store import mounts
from engine.store.compression import decompress_stream, prepare
from engine.store.tarstream import (
    BLK,
    CHR,
    DIR,
    FIFO,
    LNK,
    REG,
    SYM,
    Entry,
    TarError,
    TarReader,
    show,
)

TYPE_CHECKING = False  # not ``typing``'s: the helper process starts faster without it
if TYPE_CHECKING:
    from pathlib import Path

    from engine.digest import Digest
    from engine.store.unpack_server import UnpackServer

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATHDIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
OPAQUE_XATTR = b"trusted.overlay.opaque"
WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
_MAX_SYMLINK_HOPS = 40
_MAX_WARNINGS = 20
_QUEUE_CHUNKS = 8
_PROGRESS_STEP = 1 << 20


def _p(parts: Sequence[bytes]) -> bytes:
    """Path of ``parts`` relative to the root (``.`` for the root itself)."""
    return b"/".join(parts) if parts else b"."


def clean_name(name: bytes, what: str = "entry name") -> tuple[bytes, ...]:
    """Normalise a tar name into components; ``..`` that climbs above the root is an error."""
    out: list[bytes] = []
    for part in name.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            if not out:
                raise TarError(f"invalid {what} {show(name)!r}: it leads outside the layer root")
            out.pop()
        else:
            out.append(part)
    return tuple(out)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _masked_xattr(name: bytes) -> bool:
    return name == b"security.selinux" or name.startswith((b"trusted.overlay.", b"user.overlay."))


def _sendall(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Applier:
    """Applies tar entries to the current directory tree (the helper's chroot).

    ``overlay``: the tree holds only this layer's changes and ``lower_fd`` (if any) is a
    directory fd of the merged lower layers, used to give implicit directories the lower
    attributes and to copy up hardlink targets and symlinks that lie in lower layers.
    Otherwise the tree is a full copy of the parent and whiteouts delete.
    """

    def __init__(self, overlay: bool, lower_fd: int | None = None) -> None:
        self.overlay = overlay
        self.lower_fd = lower_fd
        self.size = 0
        self.entries = 0
        self.warnings: list[str] = []
        self.warning_count = 0
        self._dirs: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}  # lexical -> physical
        self._times: dict[bytes, tuple[int, int, int]] = {}  # dir -> (ino, atime, mtime)
        self._written: set[int] = set()  # inodes this layer created or changed (copy driver)
        self._opaque: set[bytes] = set()  # overlay: dirs whose lower content is hidden
        self._copied: set[bytes] = set()  # overlay: lower entries copied up into this layer

    # -- bookkeeping ---------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(text)

    def _forget_dirs(self) -> None:
        self._dirs.clear()

    def _note_dir(self, path: bytes, st: os.stat_result) -> None:
        if path not in self._times:
            self._times[path] = (st.st_ino, st.st_atime_ns, st.st_mtime_ns)

    def _remove(self, path: bytes, st: os.stat_result) -> None:
        """Remove whatever is at ``path`` (never following it)."""
        self._copied.discard(path)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            self._forget_dirs()
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self._forget_dirs()

    def _set_xattrs(self, target: int | bytes, xattrs: dict[bytes, bytes], name: bytes) -> None:
        for key, value in xattrs.items():
            if _masked_xattr(key):
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                self._warn(f"xattr {show(key)} of {show(name)} not kept: {err.strerror}")

    # -- start and finish ----------------------------------------------------------------
    def start(self) -> None:
        """Take the root's attributes from the lower layers (overlay) and note its times."""
        root = os.open(b".", _O_DIR)
        try:
            if self.overlay and self.lower_fd is not None:
                low = os.fstat(self.lower_fd)
                os.fchown(root, low.st_uid, low.st_gid)
                os.fchmod(root, stat.S_IMODE(low.st_mode))
                self._times[b"."] = (os.fstat(root).st_ino, low.st_atime_ns, low.st_mtime_ns)
            else:
                self._note_dir(b".", os.fstat(root))
        finally:
            os.close(root)

    def finish(self) -> None:
        """Set directory times last, once nothing changes them any more."""
        for path, (ino, atime, mtime) in self._times.items():
            try:
                fd = os.open(path, _O_DIR)
            except OSError:
                continue  # removed or replaced later in the layer
            try:
                if os.fstat(fd).st_ino == ino:
                    os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)

    # -- lower layers (overlay driver) ---------------------------------------------------
    def _lower_parent(self, phys: Sequence[bytes]) -> tuple[int, list[int]] | None:
        """An O_PATH fd of the lower directory holding ``phys[-1]``, never crossing symlinks."""
        assert self.lower_fd is not None
        cur, opened = self.lower_fd, []
        for comp in phys[:-1]:
            try:
                cur = os.open(comp, _O_PATHDIR, dir_fd=cur)
            except OSError:
                for fd in opened:
                    os.close(fd)
                return None
            opened.append(cur)
        return cur, opened

    def _lower_lstat(self, phys: Sequence[bytes]) -> os.stat_result | None:
        if self.lower_fd is None or self._hidden(phys):
            return None
        found = self._lower_parent(phys)
        if found is None:
            return None
        dirfd, opened = found
        try:
            st = os.stat(phys[-1], dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            for fd in opened:
                os.close(fd)
        return None if _is_whiteout(st) else st

    def _hidden(self, phys: Sequence[bytes]) -> bool:
        """Is the lower content at ``phys`` hidden by an opaque dir of this layer?"""
        return any(_p(phys[:i]) in self._opaque for i in range(len(phys)))

    def _lower_xattrs(self, phys: Sequence[bytes]) -> dict[bytes, bytes]:
        found = self._lower_parent(phys)
        if found is None:
            return {}
        dirfd, opened = found
        out: dict[bytes, bytes] = {}
        try:
            fd = os.open(phys[-1], _O_DIR, dir_fd=dirfd)
            try:
                for key in os.listxattr(fd):
                    name = os.fsencode(key)
                    if not _masked_xattr(name):
                        out[name] = os.getxattr(fd, key)
            finally:
                os.close(fd)
        except OSError:
            return out
        finally:
            for fd in opened:
                os.close(fd)
        return out

    def _copy_up(self, phys: Sequence[bytes], low: os.stat_result) -> os.stat_result:
        """Copy a lower non-directory to the same path of this layer (hardlink targets, and
        symlinks that parent paths go through)."""
        found = self._lower_parent(phys)
        if found is None:
            raise TarError(f"cannot copy {show(_p(phys))} up from the lower layers")
        dirfd, opened = found
        path, name, mode = _p(phys), phys[-1], low.st_mode
        try:
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=dirfd), path)
            elif stat.S_ISREG(mode):
                src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
                try:
                    dst = os.open(path, _O_NEW, 0o600)
                    try:
                        while os.sendfile(dst, src, None, 1 << 30):
                            pass
                        os.fchown(dst, low.st_uid, low.st_gid)
                        os.fchmod(dst, stat.S_IMODE(mode))
                    finally:
                        os.close(dst)
                finally:
                    os.close(src)
            else:
                os.mknod(path, mode, low.st_rdev)
            os.chown(path, low.st_uid, low.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(mode) and not stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode))  # the node mknod just made, not a symlink
            os.utime(path, ns=(low.st_atime_ns, low.st_mtime_ns), follow_symlinks=False)
        finally:
            for fd in opened:
                os.close(fd)
        self._copied.add(path)
        return os.lstat(path)

    # -- directories ---------------------------------------------------------------------
    def _mkdir_implicit(self, phys: Sequence[bytes], low: os.stat_result | None) -> os.stat_result:
        path = _p(phys)
        os.mkdir(path, 0o755)
        fd = os.open(path, _O_DIR)
        try:
            if low is not None:
                os.fchown(fd, low.st_uid, low.st_gid)
                os.fchmod(fd, stat.S_IMODE(low.st_mode))
                xattrs = self._lower_xattrs(phys)
                if xattrs:
                    self._set_xattrs(fd, xattrs, path)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if low is not None:
            self._times[path] = (st.st_ino, low.st_atime_ns, low.st_mtime_ns)
        else:
            self._times[path] = (st.st_ino, st.st_atime_ns, st.st_mtime_ns)
        self._written.add(st.st_ino)
        return st

    def _materialize(self, phys: Sequence[bytes], create: bool) -> os.stat_result | None:
        """``phys`` does not exist in this tree: bring it in from the lower layers (overlay),
        or create an implicit directory when ``create``."""
        if self.overlay:
            low = self._lower_lstat(phys)
            if low is not None:
                if stat.S_ISDIR(low.st_mode):
                    return self._mkdir_implicit(phys, low)
                if stat.S_ISLNK(low.st_mode):
                    return self._copy_up(phys, low)
                return low if create else None  # a lower non-directory: caller refuses
        if not create:
            return None
        return self._mkdir_implicit(phys, None)

    def resolve_dir(
        self, parts: tuple[bytes, ...], create: bool = True
    ) -> tuple[bytes, ...] | None:
        """Physical (symlink-free) path of the directory ``parts``, following symlinks inside
        the root and creating missing directories when ``create``; None when it is missing
        and not ``create``."""
        hit = self._dirs.get(parts)
        if hit is not None:
            return hit
        pending = list(reversed(parts))
        cur: list[bytes] = []
        hops = 0
        st: os.stat_result | None = None
        while pending:
            comp = pending.pop()
            if comp == b"..":
                if cur:
                    cur.pop()
                st = None
                continue
            if not comp or comp == b".":
                continue
            nxt = [*cur, comp]
            path = _p(nxt)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = self._materialize(nxt, create)
                if st is None:
                    return None
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                cur = nxt
                continue
            if stat.S_ISLNK(mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise TarError(f"too many levels of symbolic links in {show(_p(parts))!r}")
                target = os.readlink(path)
                if target.startswith(b"/"):
                    cur = []
                pending.extend(reversed(target.split(b"/")))
                st = None
                continue
            if self.overlay and _is_whiteout(st):
                if not create:
                    return None
                os.unlink(path)
                st = self._mkdir_implicit(nxt, None)
                fd = os.open(path, _O_DIR)
                try:
                    os.setxattr(fd, OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
                self._opaque.add(path)
                cur = nxt
                continue
            if not create:
                return None
            raise TarError(
                f"cannot apply entries under {show(_p(parts))!r}: {show(path)!r} is not a directory"
            )
        phys = tuple(cur)
        here = _p(phys)
        if here not in self._times:
            self._note_dir(here, st if st is not None else os.lstat(here))
        self._dirs[parts] = phys
        return phys

    def _resolve_link_target(self, linkname: bytes, name: bytes) -> tuple[bytes, os.stat_result]:
        """A hardlink target: inside the root, not through a symlink, not a directory."""
        parts = clean_name(linkname, "hardlink target")
        if not parts:
            raise TarError(f"invalid hardlink {show(name)!r}: it points at the root directory")
        cur: list[bytes] = []
        for comp in parts[:-1]:
            nxt = [*cur, comp]
            path = _p(nxt)
            try:
                st: os.stat_result | None = os.lstat(path)
            except FileNotFoundError:
                st = None
                if self.overlay:
                    low = self._lower_lstat(nxt)
                    if low is not None and stat.S_ISDIR(low.st_mode):
                        st = self._mkdir_implicit(nxt, low)
                    elif low is not None and stat.S_ISLNK(low.st_mode):
                        st = low
            if st is None or (self.overlay and _is_whiteout(st)):
                raise TarError(
                    f"invalid hardlink {show(name)!r}: target {show(linkname)!r} does not exist"
                )
            if stat.S_ISLNK(st.st_mode):
                raise TarError(
                    f"invalid hardlink {show(name)!r}: target {show(linkname)!r} "
                    "goes through a symlink"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise TarError(
                    f"invalid hardlink {show(name)!r}: target {show(linkname)!r} "
                    "is not under a directory"
                )
            cur = nxt
        full = [*cur, parts[-1]]
        path = _p(full)
        try:
            st = os.lstat(path)
            if self.overlay and _is_whiteout(st):
                raise FileNotFoundError
        except FileNotFoundError:
            low = self._lower_lstat(full) if self.overlay else None
            if low is None:
                raise TarError(
                    f"invalid hardlink {show(name)!r}: target {show(linkname)!r} does not exist"
                ) from None
            st = low if stat.S_ISDIR(low.st_mode) else self._copy_up(full, low)
        if stat.S_ISDIR(st.st_mode):
            raise TarError(
                f"invalid hardlink {show(name)!r}: target {show(linkname)!r} is a directory"
            )
        return path, st

    # -- entries -------------------------------------------------------------------------
    def apply(self, entry: Entry, reader: TarReader) -> None:
        """Apply one entry; its file data is read from ``reader``."""
        self.entries += 1
        parts = clean_name(entry.name)
        if not parts:
            if entry.type != DIR:
                raise TarError(
                    f"entry {show(entry.name)!r} would change the type of the root directory: "
                    "refused"
                )
            self._dir_attrs(b".", entry)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, entry)
            return
        parent = self.resolve_dir(parts[:-1])
        assert parent is not None
        path = _p((*parent, base))
        kind = entry.type
        if kind == REG:
            self._file(path, entry, reader)
        elif kind == DIR:
            self._dir(parts, (*parent, base), entry)
        elif kind == SYM:
            self._symlink(path, entry)
        elif kind == LNK:
            self._hardlink(path, entry)
        elif kind in (CHR, BLK, FIFO):
            self._node(path, entry)

    def _file(self, path: bytes, e: Entry, reader: TarReader) -> None:
        try:
            fd = os.open(path, _O_NEW, 0o600)
        except FileExistsError:
            self._remove(path, os.lstat(path))
            fd = os.open(path, _O_NEW, 0o600)
        try:
            if e.size:
                write = os.write
                for chunk in reader.data():
                    done = write(fd, chunk)
                    if done != len(chunk):
                        _sendall(fd, chunk[done:])
            os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, e.mode & 0o7777)
            if e.xattrs:
                self._set_xattrs(fd, e.xattrs, path)
            os.utime(fd, ns=(e.atime_ns or e.mtime_ns, e.mtime_ns))
            if not self.overlay:
                self._written.add(os.fstat(fd).st_ino)
        finally:
            os.close(fd)
        self.size += e.size

    def _dir_attrs(self, path: bytes, e: Entry, opaque: bool = False) -> int:
        fd = os.open(path, _O_DIR)
        try:
            os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, e.mode & 0o7777)
            if e.xattrs:
                self._set_xattrs(fd, e.xattrs, path)
            if opaque:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        self._times[path] = (ino, e.atime_ns or e.mtime_ns, e.mtime_ns)
        self._written.add(ino)
        return ino

    def _dir(self, parts: tuple[bytes, ...], phys: tuple[bytes, ...], e: Entry) -> None:
        path = _p(phys)
        opaque = False
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):  # a directory over a directory keeps it
                # over a whiteout of this same layer: the lower directory stays hidden
                opaque = self.overlay and _is_whiteout(st)
                self._remove(path, st)
                os.mkdir(path, 0o700)
        self._dir_attrs(path, e, opaque)
        if opaque:
            self._opaque.add(path)
        self._dirs[parts] = phys

    def _symlink(self, path: bytes, e: Entry) -> None:
        try:
            os.symlink(e.linkname, path)
        except FileExistsError:
            self._remove(path, os.lstat(path))
            os.symlink(e.linkname, path)
        os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if e.xattrs:
            self._set_xattrs(path, e.xattrs, path)
        os.utime(path, ns=(e.atime_ns or e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        if not self.overlay:
            self._written.add(os.lstat(path).st_ino)

    def _hardlink(self, path: bytes, e: Entry) -> None:
        target, tst = self._resolve_link_target(e.linkname, e.name)
        try:
            os.link(target, path, follow_symlinks=False)
        except FileExistsError:
            st = os.lstat(path)
            if st.st_ino == tst.st_ino and st.st_dev == tst.st_dev:
                return  # already that file
            self._remove(path, st)
            os.link(target, path, follow_symlinks=False)
        self._written.add(tst.st_ino)

    def _node(self, path: bytes, e: Entry) -> None:
        perm = e.mode & 0o7777
        if e.type == FIFO:
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if e.type == CHR else stat.S_IFBLK
            try:
                dev = os.makedev(e.devmajor, e.devminor)
            except (OverflowError, ValueError):
                raise TarError(f"entry {show(e.name)!r} has an invalid device number") from None
        try:
            os.mknod(path, kind | perm, dev)
        except FileExistsError:
            self._remove(path, os.lstat(path))
            os.mknod(path, kind | perm, dev)
        os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if perm & 0o6000:
            # chown cleared set-id bits; ``path`` is the node mknod just created (it refuses
            # an existing name, and nothing else writes in this tree), so this is no symlink
            os.chmod(path, perm)
        if e.xattrs:
            self._set_xattrs(path, e.xattrs, path)
        os.utime(path, ns=(e.atime_ns or e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        if not self.overlay:
            self._written.add(os.lstat(path).st_ino)

    # -- whiteouts -----------------------------------------------------------------------
    def _whiteout(self, parts: tuple[bytes, ...], e: Entry) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._opaque_dir(parts[:-1])
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): ignored, as docker does
        name = base[len(WHITEOUT_PREFIX) :]
        if name in (b"", b".", b".."):
            raise TarError(f"invalid whiteout {show(e.name)!r}: it names no file")
        parent = self.resolve_dir(parts[:-1], create=False)
        if parent is None:
            return  # nothing below to hide
        path = _p((*parent, name))
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        if self.overlay:
            if st is not None and path in self._copied:  # a lower entry, copied up: hide it
                self._remove(path, st)
                self._copied.discard(path)
                st = None
            if st is None:
                os.mknod(path, stat.S_IFCHR, 0)
            elif stat.S_ISDIR(st.st_mode):
                self._set_opaque(path)  # this layer's own directory survives, lower one hides
            return
        if st is None:
            return
        if st.st_ino in self._written:  # same-layer entries survive their whiteout
            if stat.S_ISDIR(st.st_mode):
                self._prune(path)
            return
        self._remove(path, st)

    def _set_opaque(self, path: bytes) -> None:
        fd = os.open(path, _O_DIR)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)
        self._opaque.add(path)

    def _opaque_dir(self, parts: tuple[bytes, ...]) -> None:
        phys = self.resolve_dir(parts)
        assert phys is not None
        path = _p(phys)
        if not self.overlay:
            self._prune(path)
        elif phys:
            self._set_opaque(path)
        else:
            self._opaque_root()

    def _opaque_root(self) -> None:
        """overlayfs ignores an opaque root: hide each lower top-level name instead."""
        self._opaque.add(b".")
        if self.lower_fd is None:
            return
        low = os.open(b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.lower_fd)
        try:
            names = os.listdir(low)
        finally:
            os.close(low)
        for name in names:
            bname = os.fsencode(name)
            try:
                st = os.lstat(bname)
            except FileNotFoundError:
                os.mknod(bname, stat.S_IFCHR, 0)
                continue
            if stat.S_ISDIR(st.st_mode):
                self._set_opaque(bname)

    def _prune(self, path: bytes) -> None:
        """Copy driver: remove what lower layers left under ``path``, keep this layer's."""
        with os.scandir(path) as it:
            items = list(it)
        for item in items:
            child = item.name if path == b"." else path + b"/" + item.name
            if item.inode() in self._written:
                if item.is_dir(follow_symlinks=False):
                    self._prune(child)
            else:
                self._remove(child, os.lstat(child))


# ---------------------------------------------------------------------------------------
# helper process
# ---------------------------------------------------------------------------------------


def _emit(obj: dict[str, object]) -> None:
    os.write(1, (json.dumps(obj) + "\n").encode())


def _run(cfg: dict[str, object]) -> dict[str, object]:
    target = str(cfg["target"])
    lowers = [str(x) for x in cfg.get("lowers") or []]  # type: ignore[attr-defined]
    overlay = cfg.get("mode") == "overlay"
    mounts.make_private_mount_namespace()
    lower_fd = None
    if overlay and lowers:
        os.chdir(str(cfg["lower_root"]))
        if len(lowers) == 1:
            lower_fd = os.open(lowers[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            view = str(cfg["view"])
            mounts.mount(
                "overlay",
                view,
                "overlay",
                mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV,
                "lowerdir=" + ":".join(lowers),
            )
            lower_fd = os.open(view, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        head: bytes | None = os.pread(0, 8, 0)
    except OSError:
        head = None  # not a regular file: import for any compression
    prepare(head)  # anything decompressing needs is imported before the chroot
    os.chroot(target)
    os.chdir("/")
    os.umask(0)

    hasher = hashlib.sha256()
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE_CHUNKS)
    info: dict[str, object] = {}
    last = [0]

    def on_read(total: int) -> None:
        if total - last[0] >= _PROGRESS_STEP:
            last[0] = total
            _emit({"progress": total})
        info["read"] = total

    def produce() -> None:
        try:
            kind, stream = decompress_stream(0, on_read)
            info["compression"] = str(kind)
            for chunk in stream:
                hasher.update(chunk)
                chunks.put(chunk)
            chunks.put(None)
        except BaseException as err:
            chunks.put(err)

    def consume() -> Iterator[bytes]:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=produce, name="decompress", daemon=True)
    thread.start()
    reader = TarReader(consume())
    applier = Applier(overlay, lower_fd)
    applier.start()
    entry = reader.next()
    while entry is not None:
        try:
            applier.apply(entry, reader)
        except OSError as err:
            raise PortsideError(
                f"cannot apply layer entry {show(entry.name)!r}: {err.strerror or err}"
            ) from None
        entry = reader.next()
    reader.drain()
    thread.join()
    applier.finish()
    if cfg.get("sync", True):
        root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            mounts.syncfs(root)
        finally:
            os.close(root)
    return {
        "diff_id": f"sha256:{hasher.hexdigest()}",
        "size": applier.size,
        "entries": applier.entries,
        "compression": info.get("compression", "none"),
        "read": info.get("read", 0),
        "warnings": applier.warnings,
        "warning_count": applier.warning_count,
    }


def child_main(cfg: dict[str, object], ppid: int) -> int:
    """Apply the layer on fd 0 as ``cfg`` says, reporting JSON lines on fd 1; the exit code.

    Shared by the per-call helper (``main``) and the children of the warm helper
    (``engine.store.unpack_server``). ``ppid``: the parent this process must die with.
    """
    try:
        mounts.set_parent_death_signal()
        if os.getppid() != ppid:
            return 1  # the parent is already gone
        result = _run(cfg)
    except PortsideError as err:
        _emit({"error": str(err)})
        return 1
    except OSError as err:
        _emit({"error": f"cannot unpack layer: {err.strerror or err}"})
        return 1
    except Exception as err:
        import traceback

        traceback.print_exc()
        _emit({"error": f"internal error while unpacking layer: {type(err).__name__}: {err}"})
        return 1
    _emit(result)
    return 0


def main(argv: list[str]) -> int:
    """Per-call helper entry point: ``python -m engine.store.unpack '<json config>'``."""
    try:
        cfg = json.loads(argv[1])
    except ValueError as err:
        _emit({"error": f"internal error while unpacking layer: bad config: {err}"})
        return 1
    return child_main(cfg, int(cfg.get("ppid") or 0))


# ---------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------


class UnpackResult(namedtuple("UnpackResult", "diff_id size entries compression warnings")):
    """What the helper reports after applying a layer (a plain namedtuple: ``typing`` costs
    the helper process ~3 ms of start-up)."""

    __slots__ = ()
    diff_id: Digest
    size: int
    entries: int
    compression: str
    warnings: list[str]


def _child_env() -> dict[str, str]:
    """The helper runs with ``-S`` (no site import: faster start) and this process's path, in
    the same order, plus the directory holding ``engine`` last (editable installs find it
    through an import hook that ``-S`` skips)."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    paths.append(pkg_root)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


async def unpack_layer(
    blob: Path,
    target: Path,
    *,
    overlay: bool,
    lowers: Sequence[str] = (),
    lower_root: Path | None = None,
    view: Path | None = None,
    progress: Callable[[int], None] | None = None,
    pass_fds: Sequence[int] = (),
    sync: bool = True,
    server: UnpackServer | None = None,
) -> UnpackResult:
    """Apply the layer ``blob`` onto the directory ``target`` in a chrooted helper process.

    ``overlay``: whiteouts are stored for overlayfs and ``lowers`` (paths relative to
    ``lower_root``, topmost first) are the parent layers, mounted read-only on ``view`` when
    there are several. ``progress`` gets the running count of compressed bytes read. Raises
    ``PortsideError`` with the helper's one-line message when the layer is refused.
    ``server``: a warm helper to fork the unpacker from (the per-call subprocess otherwise,
    and when the server cannot start one).
    """
    cfg = {
        "target": str(target),
        "mode": "overlay" if overlay else "copy",
        "lowers": list(lowers),
        "lower_root": str(lower_root) if lower_root else None,
        "view": str(view) if view else None,
        "ppid": os.getpid(),
        "sync": sync,
    }
    try:
        blob_fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise PortsideError(f"cannot read layer blob {blob}: {err.strerror}") from None
    out = _Output(progress)
    try:
        done = server is not None and await server.run(
            json.dumps(cfg).encode(), blob_fd, tuple(pass_fds), out.feed
        )
        if not done:
            await _run_subprocess(cfg, blob_fd, tuple(pass_fds), out)
    finally:
        os.close(blob_fd)
    return out.result()


class _Output:
    """Collects a helper's output: JSON lines (progress, result or error) and other text."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.final: dict[str, object] | None = None
        self.text: list[str] = []
        self.rc: int | None = None
        self._buf = b""

    def feed(self, data: bytes) -> None:
        """Raw output bytes, in any chunking."""
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self.line(line)

    def line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            if line.strip():
                self.text.append(line.decode(errors="replace").strip())
        elif "progress" in msg:
            if self.progress is not None:
                self.progress(int(msg["progress"]))
        else:
            self.final = msg

    def result(self) -> UnpackResult:
        if self._buf:
            self.line(self._buf)
            self._buf = b""
        final = self.final
        if final is not None and "error" in final:
            raise PortsideError(str(final["error"]))
        if final is None or self.rc not in (None, 0):
            if self.text:
                detail = self.text[-1]
            elif self.rc is not None:
                detail = f"exit status {self.rc}"
            else:
                detail = "it ended without a result (killed or crashed)"
            raise PortsideError(f"layer unpack helper failed: {detail}")
        from engine.digest import Digest

        return UnpackResult(
            diff_id=Digest.parse(str(final["diff_id"])),
            size=int(final["size"]),  # type: ignore[call-overload]
            entries=int(final["entries"]),  # type: ignore[call-overload]
            compression=str(final.get("compression", "none")),
            warnings=[str(w) for w in final.get("warnings") or []],  # type: ignore[attr-defined]
        )


async def _run_subprocess(
    cfg: dict[str, object], blob_fd: int, pass_fds: tuple[int, ...], out: _Output
) -> None:
    """The per-call helper: ``python -S -P -m engine.store.unpack '<cfg>'``."""
    import asyncio  # here, not at the top: the helper process never needs these
    import contextlib

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-S",
        "-P",
        "-m",
        "engine.store.unpack",
        json.dumps(cfg),
        stdin=blob_fd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
        env=_child_env(),
        close_fds=True,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    try:
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            out.line(line)
        out.rc = await proc.wait()
        stderr = await stderr_task
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        stderr_task.cancel()
        raise
    for line in stderr.splitlines():
        if line.strip():
            out.text.append(line.decode(errors="replace").strip())


if __name__ == "__main__":
    os._exit(main(sys.argv))
