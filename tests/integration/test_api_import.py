"""``docker import``: a filesystem tarball becomes a one-layer image, through the docker CLI,
docker-py and aiodocker, against ``portside serve`` AND the reference dockerd.

The tarball is a busybox root built by the fixtures (the same bytes for both engines), so
the imported layer's DiffID is known: the sha256 of the plain tar, however it was sent.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import docker
import pytest

from tests.fixtures import layers as L
from tests.fixtures.images import busybox_base_items, busybox_binary_items, busybox_link_items
from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    private_portside,
)
from tests.fixtures.procs import ServiceError

REPO_ROOT = Path(__file__).resolve().parents[2]


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
            raise ServiceError(f"[{self.name}] docker {' '.join(args)}: {result.stderr!r}")
        return result

    def inspect(self, name: str) -> dict:
        return json.loads(self.docker("image", "inspect", name).stdout)[0]

    def image_ids(self) -> set[str]:
        return set(self.docker("images", "-aq", "--no-trunc").stdout.decode().split())


@pytest.fixture(scope="module")
def portside() -> Iterator[PortsideFixture]:
    with private_portside("ps-import-") as engine:
        yield engine


@pytest.fixture(
    scope="module", params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)]
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    host = request.getfixturevalue(request.param).host
    config = tmp_path_factory.mktemp(f"import-{request.param}")
    return Engine(request.param, host, client_env(host, config), docker_cli())


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem as a plain tar."""
    items = [*busybox_base_items(), *busybox_binary_items(), *busybox_link_items()]
    items.append(L.file("etc/motd", b"imported by a test\n"))
    path = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    path.write_bytes(L.layer_tar(items))
    return path


def _diff_id(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _name() -> str:
    return f"imported/fs-{secrets.token_hex(4)}"


def test_import_file_with_changes_and_message(engine: Engine, rootfs: Path) -> None:
    name = f"{_name()}:1"
    out = engine.docker(
        "import",
        "--change",
        'CMD ["/bin/sh", "-c", "echo $GREETING; cat /etc/motd"]',
        "--change",
        "ENV GREETING=hello",
        "--change",
        "WORKDIR /tmp",
        "--change",
        "LABEL origin=test",
        "-m",
        "from a test",
        str(rootfs),
        name,
    ).stdout.decode()
    image_id = out.strip().splitlines()[-1]
    info = engine.inspect(name)
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [_diff_id(rootfs)]
    assert info["Comment"] == "from a test"
    assert info["Os"] == "linux"
    assert info["Config"]["Cmd"] == ["/bin/sh", "-c", "echo $GREETING; cat /etc/motd"]
    assert "GREETING=hello" in info["Config"]["Env"]
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert info["Config"]["Labels"] == {"origin": "test"}
    history = json.loads(engine.docker("history", "--format", "{{json .}}", name).stdout)
    assert history["Comment"] == "from a test"
    run = engine.docker("run", "--rm", "--network", "none", name).stdout.decode()
    assert run == "hello\nimported by a test\n"


def test_import_compressed_stdin(engine: Engine, rootfs: Path) -> None:
    name = _name()
    engine.docker("import", "-", name, input=gzip.compress(rootfs.read_bytes(), 1))
    info = engine.inspect(name)  # no tag given: latest
    assert f"{name}:latest" in info["RepoTags"]
    assert info["RootFS"]["Layers"] == [_diff_id(rootfs)]
    assert info["Comment"] == "Imported from -"
    out = engine.docker("run", "--rm", "--network", "none", name, "cat", "/etc/motd").stdout
    assert out == b"imported by a test\n"


def test_import_from_a_loopback_url(engine: Engine, rootfs: Path) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(rootfs.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{rootfs.name}"
        name = f"{_name()}:url"
        engine.docker("import", url, name)
        info = engine.inspect(name)
        assert info["RootFS"]["Layers"] == [_diff_id(rootfs)]
        assert info["Comment"] == f"Imported from {url}"
        missing = engine.docker("import", url + ".missing", f"{name}2", check=False)
        assert missing.returncode != 0
        assert b"404" in missing.stderr or b"Not Found" in missing.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_import_refuses_garbage_and_keeps_nothing(engine: Engine) -> None:
    before = engine.image_ids()
    name = _name()
    bad = engine.docker("import", "-", name, input=secrets.token_bytes(3000), check=False)
    assert bad.returncode != 0
    assert bad.stderr.decode().startswith("Error response from daemon: ")
    assert len(bad.stderr.decode().strip().splitlines()) == 1
    change = engine.docker("import", "--change", "FROB x", "-", name, input=b"", check=False)
    assert change.returncode != 0
    assert b"frob is not a valid change command" in change.stderr.lower()
    assert engine.image_ids() == before


def test_import_with_docker_py_and_aiodocker_raw_api(engine: Engine, rootfs: Path) -> None:
    client = docker.DockerClient(base_url=engine.host, version="auto", timeout=300)
    name = _name()
    try:
        out = client.api.import_image_from_data(
            rootfs.read_bytes(), repository=name, tag="py", changes=["USER 1000"]
        )
        image_id = json.loads(out.strip().splitlines()[-1])["status"]
        image = client.images.get(f"{name}:py")
        assert image.id == image_id
        assert image.attrs["Config"]["User"] == "1000"
    finally:
        client.close()


async def test_import_with_aiodocker(engine: Engine, rootfs: Path) -> None:
    name = _name()
    async with aiodocker.Docker(url=engine.host) as client:
        response = await client._query_json(
            "images/create",
            method="POST",
            params={"fromSrc": "-", "repo": name, "tag": "aio", "message": "aio"},
            data=rootfs.read_bytes(),
            headers={"Content-Type": "application/x-tar"},
        )
        image = await client.images.inspect(f"{name}:aio")
        assert response["status"] == image["Id"]
        assert image["Comment"] == "aio"
        assert image["RootFS"]["Layers"] == [_diff_id(rootfs)]


def test_portside_import_verb(portside: PortsideFixture, rootfs: Path) -> None:
    name = f"{_name()}:verb"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tui.main", "--host", portside.host, "import"),
            *("--change", "USER 1000", "-m", "by the verb", "-", name),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        input=gzip.compress(rootfs.read_bytes(), 1),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.decode().strip()
    info = json.loads(portside.docker("image", "inspect", name).stdout)[0]
    assert info["Id"] == image_id
    assert info["Config"]["User"] == "1000"
    assert info["Comment"] == "by the verb"
