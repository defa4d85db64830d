"""``portside build`` end to end, as a user types it, on the embedded engine (``--root``).

The verb tars the context client-side and streams it to ``POST /build``; the Dockerfiles
start FROM the fixture busybox image in the local registry, and the results are run with
``portside run``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.engine import portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"


class Cli:
    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        self.registry = registry

    def __call__(self, *args: str, input: str | None = None) -> object:
        return portside(
            "--root", str(self.root), "--insecure-registry", self.registry, *args, input=input
        )


@pytest.fixture(scope="module")
def cli(registry: RegistryFixture) -> Iterator[Cli]:
    base = short_tempdir("ps-cbld-")
    try:
        yield Cli(base / "root", registry.host)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


def test_build_and_run(cli: Cli, busybox: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    salt = secrets.token_hex(4)
    (ctx / "data.txt").write_text(f"data-{salt}\n")
    (ctx / "ignored.txt").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("ignored.txt\n")
    outside = tmp_path / "build.Dockerfile"
    outside.write_text(
        f"FROM {busybox}\nARG WHO\nCOPY . /ctx/\nRUN echo $WHO > /who && ls -A /ctx > /listing\n"
    )
    iid = tmp_path / "iid"
    tag = f"cli-built-{salt}:1"
    result = cli(
        "build", "-t", tag, "-f", str(outside), "--build-arg", "WHO=cli",
        "--label", "k=v", "--iidfile", str(iid), str(ctx),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Step 1/5 : FROM " in result.stdout
    assert 'Step 5/5 : LABEL "k"="v"' in result.stdout
    assert f"Successfully tagged {tag}" in result.stdout
    image_id = iid.read_text()
    assert image_id.startswith("sha256:")
    assert f"Successfully built {image_id[7:19]}" in result.stdout
    run = cli("run", "--rm", "--network", "none", tag, "cat", "/who", "/listing", "/ctx/data.txt")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"cli\ndata.txt\ndata-{salt}\n"  # .dockerignore applied, no Dockerfile
    quiet = cli(
        "build", "-q", "-f", str(outside), "--build-arg", "WHO=cli", "--label", "k=v", str(ctx)
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == image_id + "\n"  # same inputs: served from the build cache


def test_build_from_stdin_and_failures(cli: Cli, busybox: str, tmp_path: Path) -> None:
    ok = cli("build", "-q", "-", input=f"FROM {busybox}\nRUN echo stdin > /s\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("sha256:")
    failed = cli("build", "-", input=f"FROM {busybox}\nRUN exit 5\n")
    assert failed.returncode == 5
    assert "The command '/bin/sh -c exit 5' returned a non-zero code: 5" in failed.stderr
    assert "Traceback" not in failed.stderr
    missing = cli("build", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert "nowhere" in missing.stderr and "Traceback" not in missing.stderr
    bad = cli("build", "-t", "Bad Tag", "-", input=f"FROM {busybox}\n")
    assert bad.returncode == 1
    assert "Bad Tag" in bad.stderr and "Traceback" not in bad.stderr
