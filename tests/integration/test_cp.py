"""``docker cp`` through the real docker CLI, against ``portside serve`` AND the reference dockerd.

Every test runs the same commands and assertions on both engines, so the path rules
(trailing ``/`` and ``/.``, files versus directories, ``-`` tar streams, ``-L``), the error
messages and the stat header match dockerd's. Containers are named uniquely per test.
"""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.runtime.archive.paths import MODE_DIR, MODE_SYMLINK, decode_stat_header
from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    private_portside,
    unix_request,
)
from tests.fixtures.procs import ServiceError
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"


@dataclass
class Engine:
    name: str
    host: str
    env: dict[str, str]
    cli: str

    def docker(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, input=input, timeout=300
        )
        if check and result.returncode != 0:
            raise ServiceError(
                f"[{self.name}] docker {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        return result

    def out(self, *args: str) -> str:
        return self.docker(*args).stdout.decode()

    def request(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any, bytes]:
        return unix_request(self.host.removeprefix("unix://"), method, path, query=query)


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    with private_portside("ps-cp-", "--insecure-registry", registry.host) as engine:
        yield engine


@pytest.fixture(
    scope="module", params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)]
)
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pushed_images: dict[str, str],
) -> Iterator[Engine]:
    if request.param == "portside":
        host = request.getfixturevalue("portside").host
    else:
        host = request.getfixturevalue("dockerd").host
    env = client_env(host, tmp_path_factory.mktemp(f"cp-{request.param}"))
    eng = Engine(request.param, host, env, docker_cli())
    eng.docker("pull", pushed_images[BUSYBOX])
    eng.image = pushed_images[BUSYBOX]  # type: ignore[attr-defined]
    names: list[str] = []
    eng.names = names  # type: ignore[attr-defined]
    yield eng
    if names:
        eng.docker("rm", "-f", "-v", *names, check=False)


def _container(engine: Engine, *args: str, run: bool = True) -> str:
    name = f"cp-{secrets.token_hex(4)}"
    engine.names.append(name)  # type: ignore[attr-defined]
    image = engine.image  # type: ignore[attr-defined]
    if run:
        engine.docker(
            "run", "-d", "--network", "none", "--name", name, *args, image, "sleep", "600"
        )
    else:
        engine.docker("create", "--network", "none", "--name", name, *args, image, "sleep", "600")
    return name


def _tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")
    (src / "link").symlink_to("a.txt")
    (src / "sub" / "b.txt").chmod(0o640)
    return src


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(m.name.rstrip("/") for m in tar.getmembers())


@pytest.mark.parametrize("run", [True, False], ids=["running", "created"])
def test_file_round_trip(engine: Engine, tmp_path: Path, run: bool) -> None:
    name = _container(engine, run=run)
    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello from the host\n")
    engine.docker("cp", str(local), f"{name}:/tmp/")
    engine.docker("cp", str(local), f"{name}:/tmp/renamed.txt")
    back = tmp_path / "back"
    back.mkdir()
    engine.docker("cp", f"{name}:/tmp/hello.txt", str(back))
    engine.docker("cp", f"{name}:/tmp/renamed.txt", str(back / "again.txt"))
    assert (back / "hello.txt").read_bytes() == b"hello from the host\n"
    assert (back / "again.txt").read_bytes() == b"hello from the host\n"
    if run:
        assert engine.out("exec", name, "cat", "/tmp/renamed.txt") == "hello from the host\n"


@pytest.mark.parametrize("run", [True, False], ids=["running", "created"])
def test_directory_rules(engine: Engine, tmp_path: Path, run: bool) -> None:
    name = _container(engine, run=run)
    src = _tree(tmp_path)
    engine.docker("cp", str(src), f"{name}:/tmp/")  # -> /tmp/src
    engine.docker("cp", str(src) + "/.", f"{name}:/tmp/flat")  # new dir, content only
    engine.docker("cp", str(src), f"{name}:/tmp/named")  # missing: becomes the copy
    tars = {
        p: engine.docker("cp", f"{name}:{p}", "-").stdout
        for p in ("/tmp/src", "/tmp/src/", "/tmp/src/.", "/tmp/flat", "/tmp/named")
    }
    expect = ["a.txt", "link", "sub", "sub/b.txt"]
    assert _names(tars["/tmp/src"]) == sorted(["src", *[f"src/{n}" for n in expect]])
    assert _names(tars["/tmp/src/"]) == _names(tars["/tmp/src"])
    assert _names(tars["/tmp/src/."]) == sorted([".", *[f"./{n}" for n in expect]])
    assert _names(tars["/tmp/flat"]) == sorted(["flat", *[f"flat/{n}" for n in expect]])
    assert _names(tars["/tmp/named"]) == sorted(["named", *[f"named/{n}" for n in expect]])
    with tarfile.open(fileobj=io.BytesIO(tars["/tmp/src"])) as tar:
        b = tar.getmember("src/sub/b.txt")
        assert b.mode & 0o7777 == 0o640
        assert tar.extractfile(b).read() == b"beta\n"  # type: ignore[union-attr]
        assert tar.getmember("src/link").linkname == "a.txt"
    out = tmp_path / "out"
    out.mkdir()
    engine.docker("cp", f"{name}:/tmp/src", str(out))
    engine.docker("cp", f"{name}:/tmp/src/.", str(out / "content"))
    assert (out / "src" / "sub" / "b.txt").read_text() == "beta\n"
    assert (out / "src" / "link").readlink() == Path("a.txt")
    assert sorted(p.name for p in (out / "content").iterdir()) == ["a.txt", "link", "sub"]


def test_tar_streams_and_follow_link(engine: Engine, tmp_path: Path) -> None:
    name = _container(engine)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin.txt")
        info.size, info.mode, info.uid, info.gid = 4, 0o600, 1234, 5678
        tar.addfile(info, io.BytesIO(b"data"))
        link = tarfile.TarInfo("to-etc")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    engine.docker("cp", "-", f"{name}:/tmp", input=buf.getvalue())
    assert engine.out("exec", name, "stat", "-c", "%u:%g %a", "/tmp/from-stdin.txt") == (
        "1234:5678 600\n"
    )
    # without -L the symlink itself comes out; with -L its target, under the link's name
    assert _names(engine.docker("cp", f"{name}:/tmp/to-etc", "-").stdout) == ["to-etc"]
    followed = engine.docker("cp", "-L", f"{name}:/tmp/to-etc", "-").stdout
    assert "etc/passwd" in _names(followed)  # "-" streams the tar as the engine sent it
    engine.docker("cp", "-L", f"{name}:/tmp/to-etc", str(tmp_path / "etc-copy"))
    assert (tmp_path / "etc-copy" / "passwd").read_text().startswith("root:")


def test_errors_match(engine: Engine, tmp_path: Path) -> None:
    name = _container(engine)
    missing = engine.docker("cp", f"{name}:/no/such", str(tmp_path), check=False)
    assert missing.returncode == 1
    assert f"Could not find the file /no/such in container {name}" in missing.stderr.decode()
    local = tmp_path / "f"
    local.write_text("x")
    into_file = engine.docker("cp", str(local), f"{name}:/etc/passwd/", check=False)
    assert into_file.returncode == 1
    status, _, body = engine.request("PUT", f"/containers/{name}/archive", {"path": "/etc/passwd"})
    assert json.loads(body)["message"] == "extraction point is not a directory"
    assert status == (500 if engine.name == "dockerd" else 400)
    status, _, body = engine.request("GET", f"/containers/{name}/archive", {})
    assert (status, json.loads(body)["message"]) == (400, "bad parameter: pathcannot be empty")
    status, _, body = engine.request("HEAD", "/containers/no-such-ctr/archive", {"path": "/"})
    assert status == 404
    status, _, body = engine.request("GET", "/containers/no-such-ctr/archive", {"path": "/"})
    assert json.loads(body)["message"] == "No such container: no-such-ctr"


def test_read_only_root_and_volumes(engine: Engine, tmp_path: Path) -> None:
    ro_dir, rw_dir = tmp_path / "ro", tmp_path / "rw"
    ro_dir.mkdir()
    rw_dir.mkdir()
    (ro_dir / "seen.txt").write_text("from a bind mount\n")
    vol = f"cpvol-{secrets.token_hex(4)}"
    name = _container(
        engine,
        "--read-only",
        "-v",
        f"{ro_dir}:/ro:ro",
        "-v",
        f"{rw_dir}:/rw",
        "-v",
        f"{vol}:/vol",
        run=False,
    )
    local = tmp_path / "f.txt"
    local.write_text("payload\n")
    for dest, message in (
        ("/tmp", "container rootfs is marked read-only"),
        ("/ro", "mounted volume is marked read-only"),
    ):
        refused = engine.docker("cp", str(local), f"{name}:{dest}", check=False)
        assert refused.returncode == 1
        assert message in refused.stderr.decode()
        status, _, body = engine.request("PUT", f"/containers/{name}/archive", {"path": dest})
        assert json.loads(body)["message"] == message
        assert status == (500 if engine.name == "dockerd" else 403)
    engine.docker("cp", str(local), f"{name}:/rw/")
    assert (rw_dir / "f.txt").read_text() == "payload\n"
    assert engine.docker("cp", f"{name}:/ro/seen.txt", "-").returncode == 0
    engine.docker("start", name)
    engine.docker("cp", str(local), f"{name}:/vol/in-volume.txt")
    engine.docker("cp", str(local), f"{name}:/rw/running.txt")
    assert (rw_dir / "running.txt").read_text() == "payload\n"
    assert engine.out("exec", name, "cat", "/vol/in-volume.txt") == "payload\n"
    engine.docker("rm", "-f", name)
    other = _container(engine, "-v", f"{vol}:/data", run=False)
    assert b"payload" in engine.docker("cp", f"{other}:/data/in-volume.txt", "-").stdout
    engine.docker("rm", "-f", other)
    engine.docker("volume", "rm", vol)


def test_stat_header(engine: Engine) -> None:
    name = _container(engine, run=False)
    seen = {}
    for path in ("/etc/passwd", "/bin/sh", "/tmp", "/tmp/", "/"):
        status, headers, _ = engine.request("HEAD", f"/containers/{name}/archive", {"path": path})
        assert status == 200, path
        seen[path] = decode_stat_header(headers["X-Docker-Container-Path-Stat"])
    assert seen["/etc/passwd"]["name"] == "passwd"
    assert seen["/etc/passwd"]["mode"] == 0o644
    assert seen["/etc/passwd"]["linkTarget"] == ""
    assert seen["/bin/sh"]["mode"] & MODE_SYMLINK
    assert seen["/bin/sh"]["linkTarget"] == "/bin/busybox"
    assert seen["/tmp"]["mode"] == MODE_DIR | 0o777 | (1 << 20)  # sticky
    assert seen["/tmp/"]["name"] == "tmp"
    assert seen["/"]["name"] == "/"
    assert seen["/"]["mode"] & MODE_DIR
    assert seen["/etc/passwd"]["mtime"].endswith("Z")
