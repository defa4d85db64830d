"""Layer compression: detection by magic bytes and bounded streaming decompression.

A layer's media type is only a hint; what the bytes start with decides (gzip, zstd with
skippable frames, bzip2, xz, or a plain tar). ``decompress_stream`` turns a file descriptor
of compressed bytes into an iterator of decompressed chunks of bounded size (a small
decompression bomb never becomes a huge buffer) and reports truncated or corrupt streams as
one-line ``PortsideError``\\ s. gzip uses zlib-ng when installed (about 3x faster than zlib).
Everything but ``zstandard`` is imported up front; the unpack helper chroots before it
decompresses, so it calls ``prepare`` with the blob's first bytes before it does.
"""

from __future__ import annotations

import bz2
import enum
import lzma
import os
import zlib
from collections.abc import Callable, Iterator

from engine.errors import PortsideError

TYPE_CHECKING = False  # not ``typing``'s: the unpack helper starts faster without it
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

try:  # zlib-ng decompresses gzip about three times faster than the zlib CPython links
    from zlib_ng import zlib_ng as _gzip_zlib
except ImportError:  # pragma: no cover - optional accelerator
    _gzip_zlib = zlib  # type: ignore[assignment]

READ_SIZE = 1 << 20  # compressed bytes per read
OUT_SIZE = 4 << 20  # upper bound of one decompressed chunk

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_FRAME = 0xFD2FB528
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE = 0x184D2A50


class Compression(enum.StrEnum):
    """How a layer blob is compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


def detect(head: bytes) -> Compression:
    """Compression of a stream from its first bytes (at least 6 for a sure answer)."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if len(head) >= 4:
        magic = int.from_bytes(head[:4], "little")
        if magic == _ZSTD_FRAME or magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE:
            return Compression.ZSTD
    if head.startswith(XZ_MAGIC):
        return Compression.XZ
    if head.startswith(BZIP2_MAGIC):
        return Compression.BZIP2
    return Compression.NONE


def _zstandard() -> ModuleType:
    """The ``zstandard`` module, imported on first use (about 3 ms of start-up saved)."""
    import zstandard

    return zstandard


def prepare(head: bytes | None) -> None:
    """Import now what decompressing a stream starting with ``head`` needs (None: unknown)."""
    if head is None or detect(head) is Compression.ZSTD:
        _zstandard()


def from_media_type(media_type: str) -> Compression | None:
    """What a layer media type claims (a hint: ``detect`` has the last word)."""
    mt = media_type.lower()
    if mt.endswith(("+gzip", ".gzip", "tar.gzip")):
        return Compression.GZIP
    if mt.endswith(("+zstd", ".zstd")):
        return Compression.ZSTD
    if mt.endswith((".tar", "+tar")) or mt.endswith(".tar.v1"):
        return Compression.NONE
    return None


def _raw_chunks(fd: int, on_read: Callable[[int], None] | None) -> Iterator[bytes]:
    total = 0
    while True:
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            return
        total += len(chunk)
        if on_read is not None:
            on_read(total)
        yield chunk


def decompress_stream(
    fd: int, on_read: Callable[[int], None] | None = None
) -> tuple[Compression, Iterator[bytes]]:
    """Detect the compression of the stream on ``fd`` and iterate its decompressed bytes.

    ``on_read`` receives the running count of compressed bytes read. Chunks are at most
    ``OUT_SIZE`` bytes. A truncated or corrupt stream raises ``PortsideError`` while iterating.
    """
    raw = _raw_chunks(fd, on_read)
    first = next(raw, b"")
    kind = detect(first)

    def source() -> Iterator[bytes]:
        if first:
            yield first
        yield from raw

    if kind is Compression.NONE:
        return kind, source()
    if kind is Compression.ZSTD:
        return kind, _guard(kind, _zstd(source()))
    if kind is Compression.GZIP:
        return kind, _guard(kind, _zlib_members(source()))
    factory: Callable[[], Any] = bz2.BZ2Decompressor if kind is Compression.BZIP2 else _lzma_new
    return kind, _guard(kind, _buffered_members(source(), factory))


def _lzma_new() -> lzma.LZMADecompressor:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


def _guard(kind: Compression, it: Iterator[bytes]) -> Iterator[bytes]:
    """Turn codec exceptions into one-line PortsideErrors."""
    try:
        yield from it
    except PortsideError:
        raise
    except (zlib.error, _gzip_zlib.error, lzma.LZMAError, OSError, ValueError) as err:
        raise PortsideError(
            f"layer blob is not valid {kind} data ({err}); the blob is corrupt, pull it again"
        ) from None
    except Exception as err:
        if kind is not Compression.ZSTD or not isinstance(err, _zstandard().ZstdError):
            raise
        raise PortsideError(
            f"layer blob is not valid {kind} data ({err}); the blob is corrupt, pull it again"
        ) from None


def _truncated(kind: Compression) -> PortsideError:
    return PortsideError(f"layer blob ends in the middle of its {kind} stream (truncated blob)")


def _zlib_members(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """gzip, one or more concatenated members, with bounded output per call."""
    obj = None
    started = False
    for data in chunks:
        while data:
            if obj is None:
                obj = _gzip_zlib.decompressobj(31)
                started = True
            out = obj.decompress(data, OUT_SIZE)
            if out:
                yield out
            if obj.eof:
                data = obj.unused_data
                obj = None
                started = False
            else:
                data = obj.unconsumed_tail
    if obj is not None and started and not obj.eof:
        # flush whatever the window still holds; a complete member would have reached eof
        tail = obj.flush()
        if tail:
            yield tail
        if not obj.eof:
            raise _truncated(Compression.GZIP)


def _buffered_members(chunks: Iterator[bytes], factory: Callable[[], Any]) -> Iterator[bytes]:
    """bzip2/xz (concatenated streams allowed): decompressors that buffer input themselves."""
    obj = None
    for data in chunks:
        while True:
            if obj is None:
                if not data:
                    break
                obj = factory()
            out = obj.decompress(data, OUT_SIZE)
            if out:
                yield out
            if obj.eof:
                data = obj.unused_data
                obj = None
                continue
            if obj.needs_input:
                break
            data = b""
    if obj is not None:
        raise _truncated(Compression.BZIP2 if factory is bz2.BZ2Decompressor else Compression.XZ)


class _ZstdFrames:
    """Follows zstd frame and block headers over the compressed bytes.

    zstandard's stream reader accepts a stream cut inside a frame without complaint; walking
    the headers (one per 128 KiB block at most) tells a complete stream from a truncated one.
    """

    def __init__(self) -> None:
        self._skip = 0
        self._want = 4
        self._hdr = b""
        self._state = "magic"
        self._checksum = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            need = self._want - len(self._hdr)
            part = data[i : i + need]
            self._hdr += part
            i += len(part)
            if len(self._hdr) < self._want:
                return
            hdr, self._hdr = self._hdr, b""
            self._step(hdr)

    def _step(self, hdr: bytes) -> None:
        state = self._state
        if state == "magic":
            magic = int.from_bytes(hdr, "little")
            if magic == _ZSTD_FRAME:
                self._state, self._want = "fhd", 1
            elif magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE:
                self._state, self._want = "skipsize", 4
            else:
                raise PortsideError(
                    "layer blob has data after its zstd frames that is not a zstd frame; "
                    "the blob is corrupt"
                )
        elif state == "skipsize":
            self._skip = int.from_bytes(hdr, "little")
            self._state, self._want = "magic", 4
        elif state == "fhd":
            desc = hdr[0]
            fcs_flag = desc >> 6
            single = (desc >> 5) & 1
            self._checksum = bool((desc >> 2) & 1)
            did = (0, 1, 2, 4)[desc & 3]
            fcs = (single, 2, 4, 8)[fcs_flag]
            self._skip = (0 if single else 1) + did + fcs
            self._state, self._want = "block", 3
        else:  # block header
            value = int.from_bytes(hdr, "little")
            last = value & 1
            btype = (value >> 1) & 3
            size = value >> 3
            if btype == 3:
                raise PortsideError(
                    "layer blob has a reserved zstd block type; the blob is corrupt"
                )
            self._skip = 1 if btype == 1 else size
            if last:
                self._skip += 4 if self._checksum else 0
                self.frames += 1
                self._state, self._want = "magic", 4

    def complete(self) -> bool:
        return self._state == "magic" and not self._skip and not self._hdr


class _ChunkFile:
    """A minimal file object over an iterator of chunks, for zstandard's stream reader."""

    def __init__(self, chunks: Iterator[bytes], frames: _ZstdFrames) -> None:
        self._chunks = chunks
        self._frames = frames
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
            self._frames.feed(self._pending)
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


def _zstd(chunks: Iterator[bytes]) -> Iterator[bytes]:
    frames = _ZstdFrames()
    reader = (
        _zstandard()
        .ZstdDecompressor()
        .stream_reader(_ChunkFile(chunks, frames), read_size=READ_SIZE, read_across_frames=True)
    )
    while True:
        out = reader.read(OUT_SIZE)
        if not out:
            break
        yield out
    if not frames.complete():
        raise _truncated(Compression.ZSTD)
