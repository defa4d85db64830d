"""What a container changed, as docker reports it, and tars made from it.

- ``overlay_changes``: read the container's upper dir (whiteouts are char 0/0 devices,
  opaque dirs carry ``trusted.overlay.opaque=y``) against its lower layers.
- ``naive_changes``: compare a copied rootfs with the image's tree (copy driver).
- ``write_layer``: a layer tar of those changes, deletions as ``.wh.`` whiteouts and
  opaque dirs as ``.wh..wh..opq`` (OCI image-spec layer format), for ``commit``.
- ``write_tree``: a tar of a whole tree, for ``export``.

Kinds are docker's: 0 modified, 1 added, 2 deleted. Everything here is blocking; callers
run it in threads. Tars are written with ``tarfile`` (writing is safe; reading layers is
the unpacker's job), entries without a leading "./", owners numeric.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

MODIFIED, ADDED, DELETED = 0, 1, 2
OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _in_lowers(lowers: list[Path], rel: str) -> bool:
    """Whether ``rel`` exists in the merged lower layers (topmost first)."""
    parts = rel.strip("/").split("/")
    for lower in lowers:
        base = str(lower)
        hidden = False
        # a whiteout or an opaque dir higher up the path in this layer hides the rest
        for i in range(1, len(parts)):
            prefix = os.path.join(base, *parts[:i])
            try:
                st = os.lstat(prefix)
            except FileNotFoundError:
                break
            if _is_whiteout(st):
                return False
            if stat.S_ISDIR(st.st_mode) and _is_opaque(prefix):
                hidden = True
        try:
            st = os.lstat(os.path.join(base, *parts))
        except (FileNotFoundError, NotADirectoryError):
            if hidden:
                return False
            continue
        return not _is_whiteout(st)
    return False


def _lower_children(lowers: list[Path], rel: str) -> set[str]:
    names: set[str] = set()
    for lower in reversed(lowers):
        d = os.path.join(str(lower), rel.strip("/"))
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        if _is_opaque(d):
            names = set()
        for n in entries:
            st = os.lstat(os.path.join(d, n))
            if _is_whiteout(st):
                names.discard(n)
            else:
                names.add(n)
    return names


def overlay_changes(
    upper: Path, lowers: list[Path], exclude: set[str], mountpoints: Collection[str] = ()
) -> list[tuple[str, int]]:
    """Changes in an overlay upper dir; ``exclude``d paths are left out with what they hold,
    ``mountpoints`` keep their own entry but not what is below them."""
    out: list[tuple[str, int]] = []

    def walk(rel: str) -> None:
        d = os.path.join(str(upper), rel.strip("/"))
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            return
        for name in entries:
            path = f"{rel.rstrip('/')}/{name}"
            full = os.path.join(d, name)
            st = os.lstat(full)
            if path in exclude:
                continue
            if _is_whiteout(st):
                out.append((path, DELETED))
                continue
            existed = _in_lowers(lowers, path)
            out.append((path, MODIFIED if existed else ADDED))
            if stat.S_ISDIR(st.st_mode) and path not in mountpoints:
                if existed and _is_opaque(full):
                    present = set(os.listdir(full))
                    for gone in sorted(_lower_children(lowers, path) - present):
                        out.append((f"{path}/{gone}", DELETED))
                walk(path)

    walk("/")
    return sorted(out)


def _signature(st: os.stat_result, path: str) -> tuple[object, ...]:
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    if stat.S_ISDIR(st.st_mode):
        return (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, int(st.st_mtime), link, st.st_rdev)


def _tree(root: Path) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {}
    base = str(root)
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            out["/" + os.path.relpath(full, base)] = os.lstat(full)
    return out


def naive_changes(
    rootfs: Path, image: Path | None, exclude: set[str], mountpoints: Collection[str] = ()
) -> list[tuple[str, int]]:
    """Changes of a copied rootfs compared with the image's tree (``exclude`` and
    ``mountpoints`` as for ``overlay_changes``)."""
    now = _tree(rootfs)
    before = _tree(image) if image is not None else {}
    below = tuple(m.rstrip("/") + "/" for m in mountpoints)
    out = []
    for path, st in now.items():
        if path in exclude or path.startswith(below):
            continue
        old = before.get(path)
        if old is None:
            out.append((path, ADDED))
        elif _signature(st, os.path.join(rootfs, path.lstrip("/"))) != _signature(
            old, os.path.join(str(image), path.lstrip("/"))
        ):
            out.append((path, MODIFIED))
    deleted = sorted(p for p in before if p not in now and p not in exclude)
    for path in deleted:
        parent = path.rsplit("/", 1)[0]
        if parent and parent in before and parent not in now:
            continue  # its parent is reported already
        out.append((path, DELETED))
    return sorted(out)


# -- tars -------------------------------------------------------------------------------------
def _kept_xattr(name: str) -> bool:
    """File capabilities (``setcap``, as docker keeps them) and user attributes; never the
    overlay driver's own or SELinux labels, which belong to this host."""
    if name.startswith(("user.overlay.", "trusted.overlay.")):
        return False
    return name == "security.capability" or name.startswith("user.")


def _xattrs(path: str) -> dict[str, str]:
    """PAX records for a file's kept xattrs; binary values travel as surrogate escapes, which
    tarfile writes with ``hdrcharset=BINARY``."""
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if not _kept_xattr(name):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


class _Writer:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.inodes: dict[tuple[int, int], str] = {}

    def add(self, full: str, arcname: str) -> None:
        st = os.lstat(full)
        if stat.S_ISSOCK(st.st_mode):
            return
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        info.uname = info.gname = ""
        key = (st.st_dev, st.st_ino)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in self.inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = self.inodes[key]
            self.tar.addfile(info)
            return
        info.pax_headers.update(_xattrs(full))
        if stat.S_ISREG(st.st_mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            if st.st_nlink > 1:
                self.inodes[key] = arcname
            with open(full, "rb") as fh:
                self.tar.addfile(info, fh)
            return
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(full)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            return
        self.tar.addfile(info)

    def whiteout(self, arcname: str) -> None:
        parent, _, name = arcname.rpartition("/")
        info = tarfile.TarInfo(f"{parent}/{WHITEOUT}{name}" if parent else WHITEOUT + name)
        info.mode = 0o644
        self.tar.addfile(info)

    def opaque(self, arcname: str) -> None:
        info = tarfile.TarInfo(f"{arcname}/{OPAQUE_MARKER}")
        info.mode = 0o644
        self.tar.addfile(info)


def write_layer_overlay(
    out: BinaryIO, upper: Path, exclude: set[str], mountpoints: Collection[str] = ()
) -> None:
    """The layer tar of an overlay upper dir (``exclude`` and ``mountpoints`` as for
    ``overlay_changes``)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        w = _Writer(tar)
        base = str(upper)
        for dirpath, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, base)
                if "/" + arc in exclude:
                    if name in dirs:
                        dirs.remove(name)
                    continue
                st = os.lstat(full)
                if _is_whiteout(st):
                    w.whiteout(arc)
                    continue
                w.add(full, arc)
                if "/" + arc in mountpoints and name in dirs:
                    dirs.remove(name)
                    continue
                if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
                    w.opaque(arc)


def write_layer_naive(out: BinaryIO, rootfs: Path, changes: list[tuple[str, int]]) -> None:
    """The layer tar of changes found by ``naive_changes`` (copy driver)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        w = _Writer(tar)
        for path, kind in changes:
            arc = path.lstrip("/")
            if kind == DELETED:
                w.whiteout(arc)
            else:
                w.add(os.path.join(str(rootfs), arc), arc)


def iter_tree(root: Path) -> Iterator[tuple[str, str]]:
    base = str(root)
    for dirpath, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            yield full, os.path.relpath(full, base)


def write_tree(out: BinaryIO, root: Path) -> None:
    """A tar of everything under ``root`` (``docker export``)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        w = _Writer(tar)
        for full, arc in iter_tree(root):
            w.add(full, arc)
