"""``portside cp``'s local extraction against hostile tars (an engine is not trusted to send
only what it should): the checks of tarfile's ``tar`` filter, made by the CLI itself so
that Python 3.11.2 (Debian 12's, which has no filters) gets them too."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tui.cli.cp import extract_stream
from tui.cli.images import VerbError


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def extract(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    extract_stream(tar_of(*members), str(dest), lambda name: name)
    return dest


def test_plain_members_land_under_the_destination(tmp_path: Path) -> None:
    dest = extract(
        tmp_path,
        (entry("d", tarfile.DIRTYPE, 0o755), b""),
        (entry("d/f", mode=0o640), b"data"),
        (entry("d/abs-link", tarfile.SYMTYPE, link="/etc/passwd"), b""),  # allowed, as docker
        (entry("d/hard", tarfile.LNKTYPE, 0o640, link="d/f"), b""),
    )
    assert (dest / "d/f").read_bytes() == b"data"
    assert stat.S_IMODE((dest / "d/f").stat().st_mode) == 0o640
    assert os.readlink(dest / "d/abs-link") == "/etc/passwd"
    assert (dest / "d/hard").stat().st_ino == (dest / "d/f").stat().st_ino


def test_leading_slashes_are_stripped(tmp_path: Path) -> None:
    dest = extract(tmp_path, (entry("/abs/file"), b"x"))
    assert (dest / "abs/file").read_bytes() == b"x"


@pytest.mark.parametrize(
    "members",
    [
        [(entry("../escaped"), b"x")],
        [(entry("a/../../escaped"), b"x")],
        [(entry("out", tarfile.SYMTYPE, link=".."), b""), (entry("out/escaped"), b"x")],
        [(entry("hard", tarfile.LNKTYPE, link="../outside-file"), b"")],
    ],
    ids=["dotdot", "nested-dotdot", "through-symlink", "hardlink-out"],
)
def test_nothing_lands_outside(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    (tmp_path / "outside-file").write_text("keep")
    with pytest.raises(VerbError, match="refusing an entry of the archive"):
        extract(tmp_path, *members)
    assert not (tmp_path / "escaped").exists()
    assert (tmp_path / "outside-file").read_text() == "keep"
    assert not (tmp_path / "dest" / "hard").exists()


def test_setuid_and_shared_write_bits_are_dropped(tmp_path: Path) -> None:
    dest = extract(
        tmp_path,
        (entry("suid", mode=0o4777), b"#!/bin/sh\n"),
        (entry("sticky", tarfile.DIRTYPE, 0o1777), b""),
    )
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sticky").stat().st_mode) == 0o755
