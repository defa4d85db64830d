"""Builds layer tars byte by byte (normal and hostile) for the snapshot and unpack tests.

Python's tarfile refuses or rewrites many hostile shapes (NUL in names, huge PAX records,
names with ``..``), so headers are written by hand here: ustar headers, PAX records for long
names and xattrs, and raw blocks for anything else. Also: helpers to apply a list of layers to
a snapshotter, and to describe a file tree for comparisons.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from pathlib import Path

import zstandard

from engine.digest import Digest
from engine.store.snapshots import Snapshotter, chain_of

BLOCK = 512
MTIME = 1_600_000_000


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\x00"


def header(
    name: str | bytes,
    typeflag: bytes = b"0",
    *,
    size: int = 0,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int = MTIME,
    linkname: str | bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    checksum: int | None = None,
) -> bytes:
    """One ustar header block (the name must fit in 100 bytes)."""
    raw_name = _b(name)
    raw_link = _b(linkname)
    assert len(raw_name) <= 100 and len(raw_link) <= 100
    block = bytearray(BLOCK)
    block[0 : len(raw_name)] = raw_name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(raw_link)] = raw_link
    block[257:265] = b"ustar\x0000"
    block[329:337] = _octal(devmajor, 8)
    block[337:345] = _octal(devminor, 8)
    total = sum(block) if checksum is None else checksum
    block[148:156] = f"{total:06o}".encode() + b"\x00 "
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def pax(records: dict[bytes, bytes], name: bytes = b"PaxHeader") -> bytes:
    data = b"".join(pax_record(k, v) for k, v in records.items())
    return header(name, b"x", size=len(data)) + pad(data)


class Layer:
    """Accumulates tar members; ``tar()`` ends the archive, ``blob()`` compresses it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def raw(self, data: bytes) -> Layer:
        self.parts.append(data)
        return self

    def entry(
        self,
        name: str | bytes,
        typeflag: bytes,
        data: bytes = b"",
        *,
        linkname: str | bytes = b"",
        xattrs: dict[str, bytes] | None = None,
        pax_extra: dict[bytes, bytes] | None = None,
        **fields: int,
    ) -> Layer:
        raw_name, raw_link = _b(name), _b(linkname)
        records: dict[bytes, bytes] = dict(pax_extra or {})
        if len(raw_name) > 100:
            records[b"path"] = raw_name
            raw_name = raw_name[:100]
        if len(raw_link) > 100:
            records[b"linkpath"] = raw_link
            raw_link = raw_link[:100]
        for key, value in (xattrs or {}).items():
            records[b"SCHILY.xattr." + key.encode()] = value
        if records:
            self.parts.append(pax(records))
        self.parts.append(header(raw_name, typeflag, size=len(data), linkname=raw_link, **fields))
        self.parts.append(pad(data))
        return self

    def file(self, name: str | bytes, data: bytes = b"", mode: int = 0o644, **kw: object) -> Layer:
        return self.entry(name, b"0", data, mode=mode, **kw)  # type: ignore[arg-type]

    def dir(self, name: str | bytes, mode: int = 0o755, **kw: object) -> Layer:
        return self.entry(name, b"5", mode=mode, **kw)  # type: ignore[arg-type]

    def symlink(self, name: str | bytes, target: str | bytes, **kw: object) -> Layer:
        return self.entry(name, b"2", linkname=target, mode=0o777, **kw)  # type: ignore[arg-type]

    def hardlink(self, name: str | bytes, target: str | bytes, **kw: object) -> Layer:
        return self.entry(name, b"1", linkname=target, **kw)  # type: ignore[arg-type]

    def fifo(self, name: str | bytes, mode: int = 0o644, **kw: object) -> Layer:
        return self.entry(name, b"6", mode=mode, **kw)  # type: ignore[arg-type]

    def chardev(self, name: str | bytes, major: int, minor: int, **kw: object) -> Layer:
        return self.entry(name, b"3", devmajor=major, devminor=minor, **kw)  # type: ignore[arg-type]

    def blockdev(self, name: str | bytes, major: int, minor: int, **kw: object) -> Layer:
        return self.entry(name, b"4", devmajor=major, devminor=minor, **kw)  # type: ignore[arg-type]

    def whiteout(self, name: str | bytes) -> Layer:
        return self.file(name)

    def tar(self) -> bytes:
        return b"".join(self.parts) + bytes(2 * BLOCK)

    def blob(self, compression: str | None = "gzip") -> bytes:
        data = self.tar()
        if compression == "gzip":
            return gzip.compress(data, 1)
        if compression == "zstd":
            return zstandard.ZstdCompressor().compress(data)
        return data


def diff_id(layer: Layer) -> Digest:
    return Digest("sha256", hashlib.sha256(layer.tar()).hexdigest())


async def apply_all(
    snap: Snapshotter, layers: list[Layer], blobs: Path, compression: str | None = "gzip"
) -> Digest:
    """Apply ``layers`` in order (blobs written under ``blobs``); returns the top ChainID."""
    blobs.mkdir(parents=True, exist_ok=True)
    parent: Digest | None = None
    for layer in layers:
        data = layer.blob(compression)
        path = blobs / hashlib.sha256(data).hexdigest()
        path.write_bytes(data)
        diff = diff_id(layer)
        chain = chain_of(parent, diff)
        result = await snap.apply(chain, parent, path, diff)
        assert result.diff_id == diff
        parent = chain
    assert parent is not None
    return parent


def describe(root: Path, times: bool = True) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: type, mode, owner, content or target, xattrs, mtime, nlink.

    Overlay bookkeeping xattrs (``trusted.overlay.*``) are left out.
    """
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as fh:
                    what: object = ("file", hashlib.sha256(fh.read()).hexdigest()[:16])
            elif stat.S_ISLNK(mode):
                what = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(mode):
                what = ("dir",)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                what = ("dev", stat.S_IFMT(mode), os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = ("fifo",)
            try:
                names = os.listxattr(path, follow_symlinks=False)
            except OSError:
                names = []
            xattrs = tuple(
                sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False))
                    for n in names
                    if not n.startswith("trusted.overlay.")
                )
            )
            mtime = st.st_mtime_ns if times else None
            nlink = None if stat.S_ISDIR(mode) else st.st_nlink
            out[rel] = (what, stat.S_IMODE(mode), st.st_uid, st.st_gid, xattrs, mtime, nlink)
    return out
