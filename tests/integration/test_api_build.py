"""``POST /build`` as real clients drive it: the docker CLI's legacy builder and docker-py.

The client tests run against ``portside serve`` AND the reference dockerd with the same
calls and assertions; portside-only tests check the raw stream shape and bad input.
The Dockerfiles start FROM the fixture busybox image in the local registry.
"""

from __future__ import annotations

import http.client
import io
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.fixtures.portside import (
    PortsideFixture,
    UnixHTTPConnection,
    client_env,
    docker_cli,
    private_portside,
)
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
LEGACY = {"DOCKER_BUILDKIT": "0"}


class Client:
    """One engine as the docker CLI and docker-py see it."""

    def __init__(self, name: str, host: str, env: dict[str, str]) -> None:
        self.name = name
        self.host = host
        self.env = env
        self.cli = docker_cli()

    def docker(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.cli, *args],
            env={**self.env, **LEGACY},
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
            check=False,
        )

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=300)


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    # --debug: the log says when an uploaded context is written to disk
    with private_portside("ps-bld-", "--debug", "--insecure-registry", registry.host) as engine:
        yield engine


@pytest.fixture(
    scope="module",
    params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)],
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Client:
    if request.param == "portside":
        host = request.getfixturevalue("portside").host
    else:
        host = request.getfixturevalue("dockerd").host
    config_dir = tmp_path_factory.mktemp(f"bld-{request.param}")
    return Client(request.param, host, client_env(host, config_dir))


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


def _context(directory: Path, dockerfile: str, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def _tag() -> str:
    return f"built-{secrets.token_hex(4)}:1"


def test_cli_legacy_build_runs(engine: Client, busybox: str, tmp_path: Path) -> None:
    salt = secrets.token_hex(4)
    ctx = _context(
        tmp_path / "ctx",
        f"FROM {busybox}\nENV GREETING=hello-{salt}\nCOPY data.txt /data.txt\n"
        'RUN echo "$GREETING" > /file && cat /data.txt >> /file\n',
        {"data.txt": "from-context\n", ".dockerignore": "secret.txt\n", "secret.txt": "no\n"},
    )
    tag = _tag()
    result = engine.docker("build", "-t", tag, str(ctx))
    assert result.returncode == 0, result.stderr
    assert "Step 1/4 : FROM " in result.stdout
    assert "Step 4/4 : RUN " in result.stdout
    assert "Successfully built " in result.stdout
    assert f"Successfully tagged {tag}" in result.stdout
    run = engine.docker("run", "--rm", "--network", "none", tag, "cat", "/file")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"hello-{salt}\nfrom-context\n"
    quiet = engine.docker("build", "-q", str(ctx))
    assert quiet.returncode == 0, quiet.stderr
    image_id = quiet.stdout.strip()
    assert image_id.startswith("sha256:")
    inspect = engine.docker("image", "inspect", "--format", "{{.Id}}", tag)
    assert inspect.stdout.strip() == image_id  # the second build hit the cache
    engine.docker("rmi", tag)


def test_cli_failing_run(engine: Client, busybox: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {busybox}\nRUN echo before\nRUN exit 3\n", {})
    result = engine.docker("build", str(ctx))
    assert result.returncode == 3
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in result.stderr


def test_cli_build_args_target_and_outside_dockerfile(
    engine: Client, busybox: str, tmp_path: Path
) -> None:
    ctx = _context(tmp_path / "ctx", "", {"a.txt": "A\n"})
    (ctx / "Dockerfile").unlink()
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text(
        f"FROM {busybox} AS first\nARG WHO=nobody\nCOPY . /ctx/\n"
        "RUN echo $WHO > /who && ls -A /ctx >> /who\n"
        f"FROM {busybox} AS second\nRUN exit 1\n"
    )
    tag = _tag()
    result = engine.docker(
        "build", "-f", str(outside), "--build-arg", "WHO=arg-given", "--target", "first",
        "--label", "made.by=test", "-t", tag, str(ctx),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = engine.docker("run", "--rm", "--network", "none", tag, "cat", "/who")
    assert run.stdout == "arg-given\na.txt\n"  # the added Dockerfile is not context
    labels = engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag)
    assert json.loads(labels.stdout)["made.by"] == "test"
    engine.docker("rmi", tag)


def test_docker_py_build(engine: Client, busybox: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {busybox}\nRUN echo py > /py\n", {})
    client = engine.client()
    tag = _tag()
    image, logs = client.images.build(path=str(ctx), tag=tag, rm=True, cache_from=[])
    lines = [entry.get("stream", "") for entry in logs]
    assert any(line.startswith("Step 1/2 : FROM") for line in lines)
    assert image.id.startswith("sha256:")
    assert tag in image.tags
    out = client.containers.run(tag, ["cat", "/py"], remove=True, network_mode="none")
    assert out == b"py\n"
    with pytest.raises(docker.errors.BuildError) as failed:
        bad = _context(tmp_path / "bad", f"FROM {busybox}\nRUN exit 2\n", {})
        client.images.build(path=str(bad))
    assert "returned a non-zero code: 2" in str(failed.value)
    client.images.remove(tag)
    client.close()


# -- portside-specific stream shape and bad input ----------------------------------------------


def _post_build(
    socket_path: Path, query: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(str(socket_path))
    try:
        conn.request(
            "POST",
            "/v1.41/build?" + query,
            body=body,
            headers={"Content-Type": "application/x-tar", **(headers or {})},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _tar(files: dict[str, str], gzip: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_raw_stream_shape(portside: PortsideFixture, busybox: str) -> None:
    body = _tar({"Dockerfile": f"FROM {busybox}\nLABEL x=1\n"}, gzip=True)
    tag = _tag()
    status, raw = _post_build(
        portside.socket_path,
        f"t={tag}&t=other-{tag}&cachefrom=%5B%5D&rm=1&forcerm=1&buildargs=&labels=null&q=",
        body,
        {"X-Registry-Config": "e30="},
    )
    assert status == 200, raw
    lines = _lines(raw)
    streams = [m["stream"] for m in lines if "stream" in m]
    assert streams[0].startswith("Step 1/2 : FROM ")
    aux = [i for i, m in enumerate(lines) if "aux" in m]
    assert len(aux) == 1
    image_id = lines[aux[0]]["aux"]["ID"]
    assert image_id.startswith("sha256:")
    after = [m["stream"] for m in lines[aux[0] + 1 :]]
    short = image_id.removeprefix("sha256:")[:12]
    assert after == [
        f"Successfully built {short}\n",
        f"Successfully tagged {tag}\n",
        f"Successfully tagged other-{tag}\n",
    ]
    status, raw = _post_build(portside.socket_path, "q=1", body)
    assert status == 200
    assert _lines(raw) == [{"aux": {"ID": image_id}}, {"stream": image_id + "\n"}]


def test_raw_failures(portside: PortsideFixture, busybox: str) -> None:
    body = _tar({"Dockerfile": f"FROM {busybox}\nRUN exit 4\n"})
    status, raw = _post_build(portside.socket_path, "", body)
    assert status == 200
    last = _lines(raw)[-1]
    assert last["errorDetail"]["code"] == 4
    assert last["error"] == "The command '/bin/sh -c exit 4' returned a non-zero code: 4"
    for query, needle in [
        ("buildargs=%7Bnope", "'buildargs'"),
        ("labels=%5B1%5D", "'labels'"),
        ("t=Bad%20Tag", "Bad Tag"),
    ]:
        status, raw = _post_build(portside.socket_path, query, body)
        assert status == 400, raw
        assert needle in json.loads(raw)["message"]
    status, raw = _post_build(portside.socket_path, "dockerfile=Missing", body)
    assert status == 400
    assert "Missing" in json.loads(raw)["message"]
    status, raw = _post_build(portside.socket_path, "", b"not a tar at all" * 64)
    assert status == 400
    status, raw = _post_build(portside.socket_path, "", b"")
    assert status == 400
    assert "Dockerfile" in json.loads(raw)["message"]
    conn = UnixHTTPConnection(str(portside.socket_path))
    try:
        conn.request("POST", "/build/prune?filters=%7B%22color%22%3A%5B%22red%22%5D%7D")
        resp: http.client.HTTPResponse = conn.getresponse()
        assert resp.status == 400
        assert "color" in json.loads(resp.read())["message"]
    finally:
        conn.close()


def test_unchanged_rebuild_writes_no_context(portside: PortsideFixture, busybox: str) -> None:
    """An all-cached rebuild answers from the uploaded tar's index: no context directory is
    written; a changed file reruns from its COPY on, with the context written once."""
    files = {
        "Dockerfile": f"FROM {busybox}\nCOPY app /app\nRUN cat /app/a > /copy\nCOPY b.txt /b\n",
        "app/a": secrets.token_hex(8),
        "app/sub/c": "c",
        "b.txt": "b",
    }

    def written() -> int:
        return portside.log_text().count("build context written to ")

    before = written()
    status, raw = _post_build(portside.socket_path, "q=1", _tar(files))
    assert status == 200, raw
    image_id = _lines(raw)[0]["aux"]["ID"]
    assert written() == before + 1  # the COPY steps missed the cache: files were needed
    status, raw = _post_build(portside.socket_path, "q=1", _tar(files, gzip=True))
    assert status == 200 and _lines(raw)[0]["aux"]["ID"] == image_id
    assert written() == before + 1
    files["b.txt"] = "changed"
    status, raw = _post_build(portside.socket_path, "", _tar(files))
    assert status == 200, raw
    text = "".join(m.get("stream", "") for m in _lines(raw))
    steps = text.split("Step ")[1:]
    assert [" ---> Using cache" in step for step in steps] == [False, True, True, False]
    assert written() == before + 2
