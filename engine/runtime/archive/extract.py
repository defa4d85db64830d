"""Extract an uploaded tar under a directory of the container (``PUT .../archive``).

Runs inside the helper's chroot (``helper``), so the kernel keeps every lookup inside the
container. The rules are dockerd's ``archive.Untar``: entry names are cleaned and joined to
the destination (``/abs`` lands under it, ``../x`` that leaves it is refused); missing
parents are created 0755 root; an existing entry is replaced unless both are directories
(with ``noOverwriteDirNonDir`` a directory and a non-directory never replace each other);
symlinks may be absolute (they resolve inside the container) but a relative target that
climbs out of the destination is refused, like hardlink targets outside it; owners come
from the tar, or all become the container user's with ``copyUIDGID``; directory times are
set last. Unlike dockerd, device nodes are refused: a copy has no business creating them.
The final component of each entry is never followed.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from engine.runtime.archive import paths
from engine.runtime.archive.helper import HelperError, emit
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

_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# attributes are set through a descriptor of the entry itself, never through a symlink
_O_ATTRS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_MASKED_XATTRS = (b"trusted.", b"security.")
_READ_ONLY = {
    False: "mounted volume is marked read-only",
    True: "container rootfs is marked read-only",
}


def _clean_rel(name: bytes) -> tuple[bytes, bool]:
    """Go's ``filepath.Clean`` of an entry name made relative: (path, climbs above)."""
    out: list[bytes] = []
    climbs = False
    for part in name.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            if out:
                out.pop()
            elif not name.startswith(b"/"):
                climbs = True
            continue
        out.append(part)
    return b"/".join(out), climbs


def _lexical_inside(dest: bytes, target: bytes) -> bool:
    """Does ``target`` (cleaned lexically) stay under ``dest``?"""
    norm = os.path.normpath(target)
    return norm == dest or norm.startswith(dest.rstrip(b"/") + b"/")


class Extractor:
    def __init__(
        self, dest: str, *, no_overwrite_dir_non_dir: bool, owner: tuple[int, int] | None
    ) -> None:
        self.dest = os.fsencode(dest)
        self.dest_shown = dest
        self.no_overwrite = no_overwrite_dir_non_dir
        self.owner = owner
        self.dirs: list[tuple[bytes, int, int]] = []

    def _join(self, rel: bytes) -> bytes:
        return self.dest.rstrip(b"/") + b"/" + rel if rel else self.dest

    def apply(self, e: Entry, reader: TarReader) -> None:
        rel, climbs = _clean_rel(e.name)
        if climbs:
            raise HelperError(
                "invalid",
                f'Error processing tar file: "{show(e.name)}" is outside of "{self.dest_shown}"',
            )
        path = self._join(rel)
        if not rel:
            if e.type != DIR:
                raise HelperError(
                    "invalid", f"cannot overwrite directory {self.dest_shown!r} with a file"
                )
            return  # the destination itself: dockerd skips "."
        if e.type in (CHR, BLK):
            raise HelperError(
                "invalid",
                f"refusing device node {show(e.name)!r} in the archive: create device "
                "nodes inside the container instead",
            )
        parent = os.path.dirname(path)
        if not os.path.lexists(parent):
            os.makedirs(parent, 0o755, exist_ok=True)
        self._replace(path, e)
        if e.type == REG:
            self._file(path, e, reader)
        elif e.type == DIR:
            if not os.path.lexists(path):
                os.mkdir(path, 0o700)
        elif e.type == SYM:
            target = os.path.join(os.path.dirname(path), e.linkname)
            if not e.linkname.startswith(b"/") and not _lexical_inside(self.dest, target):
                raise HelperError(
                    "invalid",
                    f'Error processing tar file: invalid symlink "{show(path)}" -> '
                    f'"{show(e.linkname)}"',
                )
            os.symlink(e.linkname, path)
        elif e.type == LNK:
            link_rel, link_climbs = _clean_rel(e.linkname)
            if link_climbs or not link_rel:
                raise HelperError(
                    "invalid",
                    f'Error processing tar file: invalid hardlink "{show(path)}" -> '
                    f'"{show(e.linkname)}"',
                )
            os.link(self._join(link_rel), path, follow_symlinks=False)
        elif e.type == FIFO:
            os.mkfifo(path, 0o600)
        else:
            raise HelperError("invalid", f"unhandled tar header type in {show(e.name)!r}")
        self._attributes(path, e)

    def _replace(self, path: bytes, e: Entry) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        shown = os.fsdecode(path)
        if self.no_overwrite and is_dir and e.type != DIR:
            raise HelperError(
                "invalid",
                f'cannot overwrite directory "{shown}" with non-directory "{self.dest_shown}"',
            )
        if self.no_overwrite and not is_dir and e.type == DIR:
            raise HelperError(
                "invalid",
                f'cannot overwrite non-directory "{shown}" with directory "{self.dest_shown}"',
            )
        if is_dir and e.type == DIR:
            return
        if is_dir:
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _file(self, path: bytes, e: Entry, reader: TarReader) -> None:
        fd = os.open(path, _O_NEW, 0o600)
        try:
            for chunk in reader.data():
                while chunk:
                    done = os.write(fd, chunk)
                    chunk = chunk[done:]
        finally:
            os.close(fd)

    def _attributes(self, path: bytes, e: Entry) -> None:
        uid, gid = self.owner if self.owner is not None else (e.uid, e.gid)
        times = (e.atime_ns or e.mtime_ns, e.mtime_ns)
        if e.type == SYM:
            os.chown(path, uid, gid, follow_symlinks=False)
            self._xattrs(path, e)
            os.utime(path, ns=times, follow_symlinks=False)
            return
        try:
            fd = os.open(path, _O_ATTRS)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return  # a hardlink to a symlink: nothing more to set
            raise
        try:
            os.fchown(fd, uid, gid)
            self._xattrs(fd, e)
            os.fchmod(fd, e.mode & 0o7777)
            if e.type == DIR:
                self.dirs.append((path, *times))
            else:
                os.utime(fd, ns=times)
        finally:
            os.close(fd)

    @staticmethod
    def _xattrs(target: bytes | int, e: Entry) -> None:
        for key, value in (e.xattrs or {}).items():
            if key.startswith(_MASKED_XATTRS):
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                if err.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        for path, atime, mtime in self.dirs:
            try:
                fd = os.open(path, _O_ATTRS | os.O_DIRECTORY)
            except OSError:
                continue  # replaced later in the archive
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)


def _mount_of(resolved: str, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The mount holding ``resolved`` (the deepest destination above it)."""
    best: tuple[int, dict[str, Any]] | None = None
    for m in mounts:
        dest = os.path.realpath(paths.clean(m["destination"]))
        inside = resolved == dest or resolved.startswith(dest.rstrip("/") + "/")
        if inside and (best is None or len(dest) > best[0]):
            best = (len(dest), m)
    return best[1] if best else None


def _stdin_chunks() -> Iterator[bytes]:
    while chunk := os.read(0, 1 << 20):
        yield chunk


def put(cfg: dict[str, Any], control: BinaryIO) -> None:
    """dockerd's ``ContainerExtractToDir`` (inside the chroot)."""
    abs_path = paths.container_abs_path(str(cfg["path"]))
    resolved = os.path.realpath(abs_path)
    try:
        st = os.lstat(resolved)
    except FileNotFoundError:
        raise HelperError(
            "notfound", f"Could not find the file {cfg['path']} in container {cfg['container']}"
        ) from None
    except OSError as err:
        raise HelperError("error", f"lstat {abs_path}: {err.strerror.lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise HelperError("invalid", "extraction point is not a directory")
    mount = _mount_of(resolved, list(cfg.get("mounts") or []))
    if mount is not None and mount.get("ro"):
        raise HelperError("forbidden", _READ_ONLY[False])
    if mount is None and cfg.get("ro_rootfs"):
        raise HelperError("forbidden", _READ_ONLY[True])
    emit(control, {"stat": paths.path_stat(paths.base(abs_path), st, "")})
    owner = cfg.get("owner")
    extractor = Extractor(
        resolved,
        no_overwrite_dir_non_dir=bool(cfg.get("no_overwrite_dir_non_dir")),
        owner=(int(owner[0]), int(owner[1])) if owner else None,
    )
    reader = TarReader(_stdin_chunks())
    try:
        entry = reader.next()
        while entry is not None:
            try:
                extractor.apply(entry, reader)
            except OSError as err:
                if err.errno == errno.EROFS:
                    raise HelperError("forbidden", _READ_ONLY[bool(cfg.get("ro_rootfs"))]) from None
                raise HelperError(
                    "error",
                    f"Error processing tar file: cannot extract {show(entry.name)!r}: "
                    f"{err.strerror or err}",
                ) from None
            entry = reader.next()
        reader.drain()
    except TarError as err:
        raise HelperError("invalid", f"Error processing tar file: {err}") from None
    extractor.finish()
