"""Hostile archives sent to ``POST /images/load`` of ``portside serve`` (docker CLI).

Names that climb out of the archive, links that point outside it or at the host, and
manifests naming files that are not there are refused with one line; nothing is loaded
and nothing is written outside the engine's work directory.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.portside import PortsideFixture, private_portside


@pytest.fixture(scope="module")
def portside() -> Iterator[PortsideFixture]:
    with private_portside("ps-hostile-") as engine:
        yield engine


def _tar(path: Path, members: list[tuple[str, bytes | str]]) -> Path:
    """A tar of regular files (bytes) and symlinks (str targets)."""
    with tarfile.open(path, "w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def _load(portside: PortsideFixture, path: Path) -> subprocess.CompletedProcess[str]:
    return portside.docker("load", "-i", str(path), check=False)


def _images(portside: PortsideFixture) -> str:
    return portside.docker("images", "-aq").stdout


def _manifest(config: str, layers: list[str]) -> bytes:
    return json.dumps([{"Config": config, "RepoTags": ["evil:1"], "Layers": layers}]).encode()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../escape", b"x"), ("manifest.json", b"[]")], "leads outside"),
        (
            [("cfg.json", "/etc/passwd"), ("manifest.json", _manifest("cfg.json", []))],
            "has no file",
        ),
        (
            [("cfg.json", "../../etc/passwd"), ("manifest.json", _manifest("cfg.json", []))],
            "leads outside",
        ),
        (
            [("a", "b"), ("b", "a"), ("manifest.json", _manifest("a", []))],
            "too many levels of links",
        ),
        ([("manifest.json", _manifest("missing.json", []))], "has no file 'missing.json'"),
        ([("manifest.json", b"{not json")], "not valid JSON"),
        ([("hello.txt", b"a filesystem, not an image\n")], "use import"),
        (
            [("index.json", json.dumps({"schemaVersion": 2, "manifests": []}).encode())],
            "lists no manifests",
        ),
    ],
    ids=["dotdot", "abs-link", "link-climb", "link-loop", "missing", "bad-json", "fs", "empty"],
)
def test_hostile_archives_are_refused(
    portside: PortsideFixture,
    tmp_path: Path,
    members: list[tuple[str, bytes | str]],
    message: str,
) -> None:
    before = _images(portside)
    result = _load(portside, _tar(tmp_path / "evil.tar", members))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error response from daemon: ")
    assert message in lines[0]
    assert _images(portside) == before
    work = portside.root / "tmp-archives"
    assert not work.exists() or not any(work.iterdir())  # work directories are removed
