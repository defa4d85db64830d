"""Acceptance: a filtered build context holds the same files the docker CLI sends.

The same directory and ``.dockerignore`` go to ``docker build`` (the 20.10 CLI's classic
path: the CLI filters the context with moby/patternmatcher) with ``COPY . /ctx/``, and the
exported image is compared with ``BuildContext.files()``. The Dockerfile and
``.dockerignore`` are left out of the comparison: the CLI always sends them, and dockerd then
drops them again when they match a pattern.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from engine.build.context import BuildContext

TREE = {
    "README.md": "r",
    "CHANGES.md": "c",
    "README-secret.md": "s",
    "main.go": "m",
    "pkg/a/util.go": "u",
    "pkg/a/util_test.go": "t",
    "pkg/a/data.json": "d",
    "docs/guide.txt": "g",
    "docs/keep.txt": "k",
    "docs/sub/deep.txt": "dd",
    "tempa": "1",
    "temp": "2",
    "somedir/temporary.txt": "3",
    "somedir/subdir/temporary.txt": "4",
    "build/out.bin": "b",
    "node_modules/lib/index.js": "j",
    "a b/c d.txt": "space",
    ".git/HEAD": "h",
    ".env": "e",
}

IGNORES = {
    "docs-example": "# comment\n*/temp*\n*/*/temp*\ntemp?\n",
    "exceptions": "*.md\n!README*.md\nREADME-secret.md\ndocs\n!docs/keep.txt\n",
    "doublestar": "**/*_test.go\n**/*.json\nnode_modules\n/build/\n.git\n.env\n",
    "everything-but": "*\n!pkg\n!main.go\npkg/a/data.json\n!a b\n",
    "parent-and-classes": "[bd]*\n!docs/sub\nsome?ir/**\n",
}


def _docker_files(dockerd: Any, context: Path) -> set[str]:
    tag = f"portside-ctx-test:{uuid.uuid4().hex[:12]}"
    dockerd.docker("build", "-q", "-t", tag, str(context))
    cid = dockerd.docker("create", tag, "/nothing").stdout.strip()
    try:
        exported = subprocess.run(
            [dockerd.cli, "export", cid],
            env=dockerd.env,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    finally:
        dockerd.docker("rm", "-f", cid)
        dockerd.docker("rmi", "-f", tag)
    names = set()
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        for member in tar.getmembers():
            name = member.name.rstrip("/")
            if name.startswith("ctx/") and not member.isdir():
                names.add(name[len("ctx/") :])
    return names


@pytest.mark.parametrize("case", sorted(IGNORES))
async def test_context_files_match_docker_cli(dockerd: Any, tmp_path: Path, case: str) -> None:
    for name, content in TREE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx/\n")
    (tmp_path / ".dockerignore").write_text(IGNORES[case])
    ctx = await BuildContext.from_directory(tmp_path)
    ours = {
        p for p in await ctx.files() if (tmp_path / p).is_file() and not (tmp_path / p).is_symlink()
    }
    expected = _docker_files(dockerd, tmp_path)
    build_files = {"Dockerfile", ".dockerignore"}
    assert ours - build_files == expected - build_files
    assert ours & build_files == build_files
