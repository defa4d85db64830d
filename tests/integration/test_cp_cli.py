"""``portside cp`` end to end against ``portside serve``, checked against the docker CLI.

Each copy is made twice, once with ``portside cp`` and once with ``docker cp`` on the same
engine, and the resulting trees are compared: the verb must follow docker's path rules
(``SRC/.``, existing or missing destinations, ``-``, ``-L``) exactly.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.portside import PortsideFixture, start_portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def serve(registry: RegistryFixture, pushed_images: dict[str, str]) -> Iterator[PortsideFixture]:
    base = short_tempdir("ps-cpcli-")
    try:
        with start_portside(base, "--insecure-registry", registry.host) as engine:
            engine.docker("pull", pushed_images[BUSYBOX])
            yield engine
            ids = engine.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def portside(
    serve: PortsideFixture, *args: str, input: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "DOCKER_"))}
    env["PORTSIDE_CONFIG"] = str(serve.root.parent / "no-config.toml")
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tui.main", "--host", serve.host, "cp", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"portside cp {' '.join(args)} failed: {result.stderr.decode()}")
    return result


def _container(serve: PortsideFixture, pushed_images: dict[str, str], *flags: str) -> str:
    name = f"cpcli-{secrets.token_hex(4)}"
    serve.docker(
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        *flags,
        pushed_images[BUSYBOX],
        "sleep",
        "600",
    )
    return name


def _listing(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            full = Path(dirpath) / n
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = full.read_text()
    return out


def _tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")
    (src / "link").symlink_to("a.txt")
    return src


@pytest.mark.parametrize(
    ("src", "dest"),
    [
        ("/tmp/src", "."),  # into an existing directory
        ("/tmp/src", "new"),  # a missing destination takes the copy
        ("/tmp/src/.", "content"),  # the directory's content
        ("/tmp/src/a.txt", "."),
        ("/tmp/src/a.txt", "renamed.txt"),
        ("/tmp/src/link", "."),  # the symlink itself
    ],
)
def test_from_container_like_docker(
    serve: PortsideFixture, pushed_images: dict[str, str], tmp_path: Path, src: str, dest: str
) -> None:
    name = _container(serve, pushed_images)
    serve.docker("cp", str(_tree(tmp_path)), f"{name}:/tmp/")
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for d in (mine, theirs):
        d.mkdir()
    portside(serve, f"{name}:{src}", str(mine / dest))
    serve.docker("cp", f"{name}:{src}", str(theirs / dest))
    assert _listing(mine) == _listing(theirs)
    assert _listing(mine)


def test_to_container_like_docker(
    serve: PortsideFixture, pushed_images: dict[str, str], tmp_path: Path
) -> None:
    name = _container(serve, pushed_images)
    src = _tree(tmp_path)
    for tool, base in (("portside", "/tmp/p"), ("docker", "/tmp/d")):
        serve.docker("exec", name, "mkdir", base)
        for source, dest in (
            (str(src), f"{base}/"),
            (str(src), f"{base}/new"),
            (f"{src}/.", f"{base}/content"),
            (str(src / "a.txt"), f"{base}/renamed.txt"),
            (str(src / "link"), f"{base}/"),
        ):
            if tool == "portside":
                portside(serve, source, f"{name}:{dest}")
            else:
                serve.docker("cp", source, f"{name}:{dest}")
    listings = {}
    for base in ("/tmp/p", "/tmp/d"):
        out = tmp_path / base.rsplit("/", 1)[1]
        serve.docker("cp", f"{name}:{base}", str(out))
        listings[base] = _listing(out)
    assert listings["/tmp/p"] == listings["/tmp/d"]
    assert listings["/tmp/p"]["new/sub/b.txt"] == "beta\n"
    assert listings["/tmp/p"]["link"] == "-> a.txt"


def test_streams_follow_link_and_archive_mode(
    serve: PortsideFixture, pushed_images: dict[str, str], tmp_path: Path
) -> None:
    name = _container(serve, pushed_images, "--user", "app")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("streamed.txt")
        info.size, info.uid, info.gid = 3, 4321, 4321
        tar.addfile(info, io.BytesIO(b"abc"))
    portside(serve, "-", f"{name}:/tmp", input=buf.getvalue())
    got = portside(serve, f"{name}:/tmp/streamed.txt", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(got)) as tar:
        member = tar.getmember("streamed.txt")
        assert (member.uid, member.gid) == (4321, 4321)
        assert tar.extractfile(member).read() == b"abc"  # type: ignore[union-attr]
    local = tmp_path / "owned.txt"
    local.write_text("x")
    portside(serve, "-a", str(local), f"{name}:/tmp/")
    assert serve.docker("exec", name, "stat", "-c", "%u:%g", "/tmp/owned.txt").stdout == (
        "1000:1000\n"
    )
    serve.docker("exec", name, "ln", "-s", "/etc", "/tmp/etc-link")
    portside(serve, "-L", f"{name}:/tmp/etc-link", str(tmp_path / "followed"))
    assert (tmp_path / "followed" / "passwd").read_text().startswith("root:")
    portside(serve, f"{name}:/tmp/etc-link", str(tmp_path / "kept"))
    assert os.readlink(tmp_path / "kept") == "/etc"


def test_errors(serve: PortsideFixture, pushed_images: dict[str, str], tmp_path: Path) -> None:
    name = _container(serve, pushed_images)
    missing = portside(serve, f"{name}:/no/such", str(tmp_path), check=False)
    assert missing.returncode == 1
    assert (
        f"Error response from daemon: Could not find the file /no/such in container {name}"
        in missing.stderr.decode()
    )
    both = portside(serve, f"{name}:/etc", f"{name}:/tmp", check=False)
    assert both.returncode == 1
    assert b"copying between containers is not supported" in both.stderr
    neither = portside(serve, str(tmp_path), str(tmp_path / "x"), check=False)
    assert b"must specify at least one container source" in neither.stderr
    (tmp_path / "file").write_text("x")
    nodir = portside(serve, str(tmp_path / "file"), f"{name}:/no/such/dir/", check=False)
    assert nodir.returncode == 1
    stdin_to_file = portside(serve, "-", f"{name}:/etc/passwd", input=b"", check=False)
    assert b"must be a directory" in stdin_to_file.stderr
    assert serve.docker("exec", name, "cat", "/etc/passwd").stdout.startswith("root:")
