"""A fast writer of the layer tars the builder makes (COPY/ADD, WORKDIR directories).

``TarWriter(out)`` writes PAX-format entries byte for byte as ``tarfile`` does, but packs
plain ustar headers itself (``tarfile`` builds a PAX header, then only when a name, a link
target or a number does not fit ustar) and copies file content with ``os.read``: a COPY of
thousands of small files spent most of its time in ``tarfile``'s per-entry overhead. The
CLI's context writer (tui/cli/build.py) is its twin: tui/ may not import engine/
(DESIGN.md, rule 1), so each side keeps its own.
"""

from __future__ import annotations

import errno
import os
import tarfile
from typing import BinaryIO

_READ = 1 << 20
_USTAR_MAX = {"size": 8**11, "mtime": 8**11, "uid": 8**7, "gid": 8**7}


class TarWriter:
    """Entries go to ``out`` as they are added; ``close()`` ends the archive."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def add(
        self, info: tarfile.TarInfo, path: str | os.PathLike[str] | None = None, data: bytes = b""
    ) -> None:
        """Add ``info``; a regular file's content comes from ``path`` or ``data``."""
        self._write(header(info))
        if info.type not in tarfile.REGULAR_TYPES or not info.size:
            return
        if path is None:
            self._write(data)
        else:
            self._copy(path, info.size)
        if info.size % tarfile.BLOCKSIZE:
            self._write(bytes(tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE))

    def _copy(self, path: str | os.PathLike[str], size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(left, _READ))
                if not chunk:
                    raise OSError(errno.EIO, "file shrank while it was read", str(path))
                self._write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)

    def close(self) -> None:
        """The two end blocks and the padding to a whole record, as ``tarfile`` writes."""
        self._write(bytes(2 * tarfile.BLOCKSIZE))
        if self.offset % tarfile.RECORDSIZE:
            self._write(bytes(tarfile.RECORDSIZE - self.offset % tarfile.RECORDSIZE))


def header(info: tarfile.TarInfo) -> bytes:
    """The header block(s) of ``info`` in PAX format, as ``tarfile`` writes them."""
    name = info.name
    if info.type == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    simple = (
        name.isascii()
        and len(name) <= 100
        and info.linkname.isascii()
        and len(info.linkname) <= 100
        and not info.uname
        and not info.gname
        and isinstance(info.mtime, int)
        and all(0 <= getattr(info, k) < top for k, top in _USTAR_MAX.items())
        and info.type not in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    )
    if not simple:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    size = info.size if info.type in tarfile.REGULAR_TYPES else 0
    block = bytearray(tarfile.BLOCKSIZE)
    block[0 : len(name)] = name.encode()
    block[100:124] = b"%07o\0%07o\0%07o\0" % (info.mode & 0o7777, info.uid, info.gid)
    block[124:148] = b"%011o\0%011o\0" % (size, info.mtime)
    block[148:156] = b"        "
    block[156:157] = info.type
    block[157 : 157 + len(info.linkname)] = info.linkname.encode()
    block[257:265] = tarfile.POSIX_MAGIC
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)
