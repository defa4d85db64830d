"""The streaming tar reader against archives written by Python's tarfile and by hand."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest

from engine.store.tarstream import (
    BLK,
    CHR,
    DIR,
    FIFO,
    LNK,
    MAX_META,
    MAX_NAME,
    REG,
    SYM,
    Entry,
    TarError,
    TarReader,
)
from tests.security.layers import Layer, header, pad, pax

TYPES = {
    tarfile.REGTYPE: REG,
    tarfile.DIRTYPE: DIR,
    tarfile.SYMTYPE: SYM,
    tarfile.LNKTYPE: LNK,
    tarfile.CHRTYPE: CHR,
    tarfile.BLKTYPE: BLK,
    tarfile.FIFOTYPE: FIFO,
}


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(data: bytes, chunk: int = 7919) -> list[tuple[Entry, bytes]]:
    reader = TarReader(_chunks(data, chunk))
    out = []
    while (entry := reader.next()) is not None:
        out.append((entry, b"".join(bytes(m) for m in reader.data())))
    reader.drain()
    return out


def _tarfile_archive(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:

        def add(name: str, kind: bytes, data: bytes = b"", **fields: object) -> None:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data)
            info.mtime = 1_650_000_000
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("dir/", tarfile.DIRTYPE, mode=0o755)
        add("dir/file", tarfile.REGTYPE, b"hello" * 300, mode=0o4755, uid=7, gid=8)
        add("d" * 150 + "/long-" + "n" * 120, tarfile.REGTYPE, b"long")
        add("sym", tarfile.SYMTYPE, linkname="t" * 180)
        add("hard", tarfile.LNKTYPE, linkname="dir/file")
        add("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660)
        add("dev/tty", tarfile.CHRTYPE, devmajor=5, devminor=0)
        add("fifo", tarfile.FIFOTYPE)
        add("big-ids", tarfile.REGTYPE, b"x", uid=3_000_000, gid=2_100_000)
        add("empty", tarfile.REGTYPE)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 512, 65536])
def test_matches_tarfile(fmt: int, chunk: int):
    # ustar cannot hold the long link target or the big ids
    data = _ustar_subset() if fmt == tarfile.USTAR_FORMAT else _tarfile_archive(fmt)
    got = read_all(data, chunk)
    with tarfile.open(fileobj=io.BytesIO(data)) as src:
        expected = list(src)
        contents = [src.extractfile(m).read() if m.isreg() else b"" for m in expected]
    assert [e.name.decode().rstrip("/") for e, _ in got] == [m.name for m in expected]
    for (entry, body), member, content in zip(got, expected, contents, strict=True):
        assert entry.type == TYPES[member.type]
        assert entry.mode == member.mode
        assert (entry.uid, entry.gid) == (member.uid, member.gid)
        assert entry.mtime_ns == int(member.mtime) * 10**9
        assert entry.linkname.decode() == member.linkname
        assert (entry.devmajor, entry.devminor) == (
            (member.devmajor, member.devminor) if member.isdev() else (0, 0)
        )
        assert body == content


def _ustar_subset() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("a" * 90 + "/" + "b" * 90, "short"):
            info = tarfile.TarInfo(name)
            info.size = 3
            info.mtime = 1_650_000_000
            tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


def test_pax_records_and_xattrs():
    layer = Layer().file(
        "f",
        b"data",
        xattrs={"user.a": b"\x00\x01", "security.capability": b"caps"},
        pax_extra={b"mtime": b"1600000000.123456789", b"uid": b"4000000000", b"comment": b"x"},
    )
    [(entry, body)] = read_all(layer.tar())
    assert entry.xattrs == {b"user.a": b"\x00\x01", b"security.capability": b"caps"}
    assert entry.mtime_ns == 1_600_000_000_123_456_789
    assert entry.uid == 4_000_000_000 and body == b"data"


def test_base256_numbers_and_signed_checksums():
    block = bytearray(header("f", size=3))
    block[108:116] = b"\x80" + (70_000_000).to_bytes(7, "big")  # base-256 uid
    block[148:156] = b" " * 8
    signed = sum(b - 256 if b >= 128 else b for b in block)  # old tars summed signed chars
    block[148:156] = f"{signed:06o}".encode() + b"\x00 "
    [(entry, body)] = read_all(bytes(block) + pad(b"abc") + bytes(1024))
    assert entry.uid == 70_000_000 and body == b"abc"


def test_old_style_types_and_header_only_sizes():
    data = (
        header("olddir/", b"\x00")
        + header("oldfile", b"\x00", size=2)
        + pad(b"hi")
        + header("contig", b"7", size=1)
        + pad(b"c")
        + header("a-dir", b"5", size=512)  # a size on a directory covers no data (Go)
        + header("next", b"0")
        + bytes(1024)
    )
    got = read_all(data)
    assert [(e.name, e.type) for e, _ in got] == [
        (b"olddir/", DIR),
        (b"oldfile", REG),
        (b"contig", REG),
        (b"a-dir", DIR),
        (b"next", REG),
    ]
    assert got[1][1] == b"hi"


def test_end_of_archive_and_trailing_data():
    layer = Layer().file("a", b"1")
    reader = TarReader(iter([layer.tar() + b"trailing garbage is hashed, not parsed"]))
    assert reader.next() is not None
    assert reader.next() is None and reader.done
    assert reader.drain() > 0
    # EOF on a header boundary without the zero blocks ends the archive too.
    assert len(read_all(header("x") + header("y"))) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (header("f", size=10) + b"short", "truncated"),
        (header("f")[:300], "truncated"),
        (pax({b"path": b"x" * 10})[:700], "truncated"),
        (pax({b"path": b"name"}), "truncated"),
        (header("f", checksum=1234), "checksum"),
        (b"\xff" * 512, "checksum"),
        (header("f") + bytes(512) + header("g"), "zero block"),
        (pax({b"path": b"a\x00b"}) + header("x"), "NUL"),
        (pax({b"linkpath": b"a\x00b"}) + header("x", b"2"), "NUL"),
        (header("././@LongLink", b"L", size=6) + pad(b"a\x00b\x00\x00\x00") + header("x"), "NUL"),
        (pax({b"path": b"n" * (MAX_NAME + 1)}) + header("x"), "too long"),
        (pax({b"linkpath": b"n" * (MAX_NAME + 1)}) + header("x", b"2"), "too long"),
        (header("big", b"x", size=MAX_META + 1), "too large"),
        (header("sparse", b"S"), "sparse"),
        (pax({b"GNU.sparse.map": b"0,1"}) + header("x"), "sparse"),
        (header("what", b"V"), "unsupported"),
        (header("f", b"x", size=12) + pad(b"garbage here"), "PAX"),
        (pax({b"size": b"-1"}) + header("x"), "PAX size"),
        (pax({b"mtime": b"yesterday"}) + header("x"), "PAX time"),
        (pax({b"SCHILY.xattr.": b"v"}) + header("x"), "xattr name"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_malformed_archives_are_refused(data: bytes, message: str):
    with pytest.raises(TarError, match=message) as info:
        read_all(data)
    assert "\n" not in str(info.value)


def test_many_small_pax_headers_share_one_budget():
    one = pax({b"SCHILY.xattr.user.x" + str(i).encode(): b"v" * 60_000 for i in range(1)})
    many = b"".join(
        pax({b"SCHILY.xattr.user.x" + str(i).encode(): b"v" * 60_000}) for i in range(20)
    )
    assert len(read_all(one + header("x") + bytes(1024))) == 1
    with pytest.raises(TarError, match="too large"):
        read_all(many + header("x") + bytes(1024))
