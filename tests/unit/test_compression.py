"""Compression detection and bounded streaming decompression of layer blobs."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path

import pytest
import zstandard

from engine.errors import PortsideError
from engine.store.compression import (
    OUT_SIZE,
    READ_SIZE,
    Compression,
    decompress_stream,
    detect,
    from_media_type,
)

PAYLOAD = os.urandom(300_000) + bytes(700_000) + b"tail"


def _skippable(data: bytes, magic: int = 0x184D2A5E) -> bytes:
    return magic.to_bytes(4, "little") + len(data).to_bytes(4, "little") + data


def _zstd(data: bytes, **kw: object) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(data)  # type: ignore[arg-type]


def _decompress(tmp_path: Path, blob: bytes) -> tuple[Compression, bytes, list[int], int]:
    path = tmp_path / "blob"
    path.write_bytes(blob)
    reads: list[int] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        kind, chunks = decompress_stream(fd, reads.append)
        parts = list(chunks)
    finally:
        os.close(fd)
    return kind, b"".join(parts), reads, max((len(p) for p in parts), default=0)


def test_detect_by_magic_not_by_name():
    assert detect(gzip.compress(b"x")) is Compression.GZIP
    assert detect(_zstd(b"x")) is Compression.ZSTD
    assert detect(_skippable(b"meta") + _zstd(b"x")) is Compression.ZSTD
    assert detect(bz2.compress(b"x")) is Compression.BZIP2
    assert detect(lzma.compress(b"x")) is Compression.XZ
    assert detect(b"etc/passwd\x00\x00") is Compression.NONE
    assert detect(b"") is Compression.NONE
    assert detect(b"\x1f") is Compression.NONE


def test_media_types_are_only_hints():
    assert from_media_type("application/vnd.oci.image.layer.v1.tar+gzip") is Compression.GZIP
    assert from_media_type("application/vnd.oci.image.layer.v1.tar+zstd") is Compression.ZSTD
    assert from_media_type("application/vnd.oci.image.layer.v1.tar") is Compression.NONE
    docker = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert from_media_type(docker) is Compression.GZIP
    assert from_media_type("application/octet-stream") is None


@pytest.mark.parametrize(
    ("kind", "blob"),
    [
        (Compression.GZIP, gzip.compress(PAYLOAD)),
        (Compression.GZIP, gzip.compress(PAYLOAD[:500_000]) + gzip.compress(PAYLOAD[500_000:])),
        (Compression.ZSTD, _zstd(PAYLOAD, write_checksum=True)),
        (Compression.ZSTD, _zstd(PAYLOAD, write_content_size=False)),
        (
            Compression.ZSTD,
            _skippable(b"toc")
            + _zstd(PAYLOAD[:400_000])
            + _skippable(b"")
            + _zstd(PAYLOAD[400_000:]),
        ),
        (Compression.BZIP2, bz2.compress(PAYLOAD)),
        (Compression.XZ, lzma.compress(PAYLOAD)),
        (Compression.NONE, PAYLOAD),
    ],
    ids=[
        "gzip",
        "gzip-2-members",
        "zstd-checksum",
        "zstd-no-size",
        "zstd-skippable",
        "bz2",
        "xz",
        "none",
    ],
)
def test_round_trip(tmp_path: Path, kind: Compression, blob: bytes):
    got_kind, data, reads, _ = _decompress(tmp_path, blob)
    assert got_kind is kind
    assert data == PAYLOAD
    assert reads and reads[-1] == len(blob) and reads == sorted(reads)


def test_large_stream_is_read_in_bounded_steps(tmp_path: Path):
    payload = os.urandom(READ_SIZE * 3)
    _, data, reads, _ = _decompress(tmp_path, gzip.compress(payload, 1))
    assert data == payload
    steps = [b - a for a, b in zip([0, *reads], reads, strict=False)]
    assert len(reads) >= 3 and max(steps) <= READ_SIZE


@pytest.mark.parametrize("codec", ["gzip", "zstd", "xz", "bz2"])
def test_bomb_never_becomes_one_huge_buffer(tmp_path: Path, codec: str):
    zeros = bytes(64 << 20)
    blob = {
        "gzip": lambda: gzip.compress(zeros, 9),
        "zstd": lambda: _zstd(zeros, level=19),
        "xz": lambda: lzma.compress(zeros),
        "bz2": lambda: bz2.compress(zeros),
    }[codec]()
    assert len(blob) < 1 << 20  # all of it is read in one go
    _, data, _, largest = _decompress(tmp_path, blob)
    assert len(data) == len(zeros)
    assert largest <= OUT_SIZE


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(PAYLOAD)[:-9],
        _zstd(PAYLOAD)[:-5],
        _zstd(PAYLOAD) + _skippable(b"meta")[:-2],
        lzma.compress(PAYLOAD)[:-30],
        bz2.compress(PAYLOAD)[:-30],
    ],
    ids=["gzip", "zstd", "zstd-skippable", "xz", "bz2"],
)
def test_truncated_streams_are_errors(tmp_path: Path, blob: bytes):
    with pytest.raises(PortsideError, match="truncated"):
        _decompress(tmp_path, blob)


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(b"x" * 1000) + b"garbage after the member",
        gzip.compress(b"x")[:10] + os.urandom(5000),
        _zstd(b"x" * 1000) + b"not a zstd frame",
        b"\x28\xb5\x2f\xfd" + os.urandom(5000),
    ],
    ids=["gzip-trailing", "gzip-corrupt", "zstd-trailing", "zstd-corrupt"],
)
def test_corrupt_streams_are_one_line_errors(tmp_path: Path, blob: bytes):
    with pytest.raises(PortsideError, match="corrupt") as info:
        _decompress(tmp_path, blob)
    assert "\n" not in str(info.value)
