"""The build context tar ``portside build`` sends, byte for byte what ``tarfile`` writes.

The tree is walked as the docker CLI sends it: entries sorted by name, owned by 0:0 with no
user or group names, whole-second mtimes, hard links kept as links, sockets left out
(fifos and devices are sent, and the engine refuses them). Plain ustar headers are packed
here; a PAX header (from ``tarfile``) is written only for names, link targets or numbers
that ustar cannot hold. The walk is relative to directory descriptors (``scandir`` and
``openat``), so no path is resolved twice and no symlink is followed, and files are copied
with ``os.read``: a context of a few hundred small files is written in a few milliseconds.

The engine's layer writer (engine/build/tarwriter.py) does the same job for layers: tui/
may not import engine/ (DESIGN.md, rule 1), so each side keeps its own.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from typing import IO

_READ = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_USTAR_TOP = 8**11  # size and mtime must be below this to fit a ustar header
_ZERO_IDS = b"%07o\0%07o\0" % (0, 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def header(
    name: str, kind: bytes, mode: int, mtime: int, size: int = 0, linkname: str = ""
) -> bytes:
    """The header block(s) of one entry owned by 0:0, in PAX format as ``tarfile`` writes."""
    if (
        name.isascii()
        and len(name) <= 100
        and linkname.isascii()
        and len(linkname) <= 100
        and 0 <= size < _USTAR_TOP
        and 0 <= mtime < _USTAR_TOP
        and kind not in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    ):
        block = bytearray(_BLOCK)
        block[0 : len(name)] = name.encode()
        block[100:108] = b"%07o\0" % (mode & 0o7777)
        block[108:124] = _ZERO_IDS
        block[124:148] = b"%011o\0%011o\0" % (size, mtime)
        block[148:156] = b"        "
        block[156:157] = kind
        block[157 : 157 + len(linkname)] = linkname.encode()
        block[257:265] = tarfile.POSIX_MAGIC
        block[148:156] = b"%06o\0 " % sum(block)
        return bytes(block)
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size, info.linkname = kind, mode, mtime, size, linkname
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class ContextTar:
    """Writes entries to ``out``; ``close()`` ends the archive as ``tarfile`` does."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.offset = 0
        self.inodes: dict[tuple[int, int], str] = {}  # hard-linked files sent, by inode

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def entry(self, name: str, kind: bytes, mode: int, mtime: int, linkname: str = "") -> None:
        """An entry without content (a directory gets its trailing slash here)."""
        if kind == tarfile.DIRTYPE and not name.endswith("/"):
            name += "/"
        self._write(header(name, kind, mode, mtime, 0, linkname))

    def data(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        """A regular file with the given content."""
        self._write(header(name, tarfile.REGTYPE, mode, mtime, len(data)))
        self._write(data)
        self._pad(len(data))

    def file(self, name: str, mode: int, mtime: int, size: int, fd: int, shown: str) -> None:
        """A regular file of ``size`` bytes read from ``fd`` (``shown`` names it in errors)."""
        self._write(header(name, tarfile.REGTYPE, mode, mtime, size))
        left = size
        while left:
            chunk = os.read(fd, min(left, _READ))
            if not chunk:
                raise OSError(errno.EIO, "file shrank while it was read", shown)
            self._write(chunk)
            left -= len(chunk)
        self._pad(size)

    def device(self, name: str, char: bool, mode: int, mtime: int, rdev: int) -> None:
        """A character or block device node (always a PAX header, as ``tarfile`` writes)."""
        info = tarfile.TarInfo(name)
        info.type = tarfile.CHRTYPE if char else tarfile.BLKTYPE
        info.mode, info.mtime, info.uid, info.gid = mode, mtime, 0, 0
        info.uname = info.gname = ""
        info.devmajor, info.devminor = os.major(rdev), os.minor(rdev)
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))

    def close(self) -> None:
        """The two end blocks and the padding to a whole record, as ``tarfile`` writes."""
        self._write(bytes(2 * _BLOCK))
        if self.offset % tarfile.RECORDSIZE:
            self._write(bytes(tarfile.RECORDSIZE - self.offset % tarfile.RECORDSIZE))


def add_tree(tar: ContextTar, directory: str, skip: str | None = None) -> None:
    """Add everything under ``directory`` (recursively, sorted by name), as the docker CLI
    sends a context. ``skip`` is a top-level name to leave out. An OSError names the path."""
    fd = os.open(directory, _DIR_FLAGS)
    try:
        _add_dir(tar, fd, directory.rstrip("/") + "/", "", skip)
    finally:
        os.close(fd)


def _add_dir(tar: ContextTar, dir_fd: int, shown: str, prefix: str, skip: str | None) -> None:
    with os.scandir(dir_fd) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        if name == skip:
            continue
        arc = prefix + name
        try:
            st = entry.stat(follow_symlinks=False)
            kind = stat.S_IFMT(st.st_mode)
            mode = st.st_mode & 0o7777
            mtime = int(st.st_mtime)
            if kind == stat.S_IFREG:
                inode = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    if inode in tar.inodes:
                        tar.entry(arc, tarfile.LNKTYPE, mode, mtime, tar.inodes[inode])
                        continue
                    tar.inodes[inode] = arc
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
                try:
                    tar.file(arc, mode, mtime, st.st_size, fd, shown + arc)
                finally:
                    os.close(fd)
            elif kind == stat.S_IFDIR:
                tar.entry(arc, tarfile.DIRTYPE, mode, mtime)
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _add_dir(tar, sub, shown, arc + "/", None)
                finally:
                    os.close(sub)
            elif kind == stat.S_IFLNK:
                tar.entry(arc, tarfile.SYMTYPE, mode, mtime, os.readlink(name, dir_fd=dir_fd))
            elif kind == stat.S_IFIFO:  # sent as the docker CLI does; the engine refuses it
                tar.entry(arc, tarfile.FIFOTYPE, mode, mtime)
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):  # likewise
                tar.device(arc, kind == stat.S_IFCHR, mode, mtime, st.st_rdev)
            # sockets are left out, as tar and the docker CLI do
        except OSError as err:
            if err.filename in (None, name):
                err.filename = shown + arc
            raise
