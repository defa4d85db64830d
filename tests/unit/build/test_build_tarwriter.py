"""``engine.build.tarwriter``: the layer tars the builder writes are byte for byte what
``tarfile`` writes, whatever the entry (long or non-ASCII names, big owners, links)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.build.layers import CopyItem, Owner, write_copy_tar
from engine.build.tarwriter import TarWriter


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


ENTRIES = [
    (_info("etc", tarfile.DIRTYPE, mode=0o755), b""),
    (_info("etc/passwd", mode=0o644), b"root:x:0:0::/root:/bin/sh\n"),
    (_info("big", mode=0o600), os.urandom(70_000)),
    (_info("empty", mode=0o644, mtime=-5), b""),  # before 1970: a PAX header
    (_info("d/" + "n" * 120, mode=0o644), b"a name longer than 100 bytes"),
    (_info("dir é/ü", mode=0o644), b"non-ASCII"),
    (_info("owned", mode=0o4755, uid=1000, gid=1000), b"x"),
    (_info("huge-owner", mode=0o644, uid=3_000_000, gid=70_000_000), b"y"),  # beyond ustar
    (_info("link", tarfile.SYMTYPE, linkname="etc/passwd", mode=0o777), b""),
    (_info("longlink", tarfile.SYMTYPE, linkname="x" * 150, mode=0o777), b""),
    (_info("hard", tarfile.LNKTYPE, linkname="etc/passwd", mode=0o644), b""),
    (_info("fifo", tarfile.FIFOTYPE, mode=0o644), b""),
    (_info("tty", tarfile.CHRTYPE, devmajor=5, devminor=0, mode=0o666), b""),
]


def _reference(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if info.type in tarfile.REGULAR_TYPES:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def test_entries_match_tarfile() -> None:
    out = io.BytesIO()
    tar = TarWriter(out)
    for info, data in ENTRIES:
        if info.type in tarfile.REGULAR_TYPES:
            info.size = len(data)
        tar.add(info, data=data)
    tar.close()
    assert out.getvalue() == _reference(ENTRIES)


def test_copy_layer_matches_tarfile(tmp_path: Path) -> None:
    """A COPY layer of a tree (files read from disk) is the tar ``tarfile`` would write."""
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_bytes(os.urandom(3000))
    (src / ("m" * 110)).write_text("long")
    (src / "l").symlink_to("a/b/f")
    for f in src.rglob("*"):
        os.utime(f, (1_650_000_000, 1_650_000_000), follow_symlinks=False)
    out = io.BytesIO()
    write_copy_tar(
        out, [CopyItem(src, "/app")], ["/app"], Owner(1000, 1000), None, dir_mtime=1_600_000_000
    )
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {
            "app",
            "app/a",
            "app/a/b",
            "app/a/b/f",
            "app/l",
            f"app/{'m' * 110}",
        }
        assert members["app/a/b/f"].uid == 1000 and members["app/l"].linkname == "a/b/f"
        got = tar.extractfile("app/a/b/f").read()  # type: ignore[union-attr]
        assert got == (src / "a" / "b" / "f").read_bytes()
        reference = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    assert out.getvalue() == _reference(reference)


def test_file_shrinking_while_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    info = _info("f", size=10)  # as if the file shrank after its lstat
    with pytest.raises(OSError, match="shrank"):
        TarWriter(io.BytesIO()).add(info, tmp_path / "f")
