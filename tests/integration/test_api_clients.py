"""The Docker Engine API as real clients see it: the docker CLI, docker-py and aiodocker.

Every test here runs against ``portside serve`` (a real subprocess) AND the reference
dockerd, with the same client calls and the same assertions: a test that dockerd fails is a
wrong test. Images come from the fixture registry; tests use unique tags so they do not
depend on each other's leftovers.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import platform
import queue
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import docker
import docker.errors
import pytest

from tests.fixtures import layers as L
from tests.fixtures.images import BuiltImage
from tests.fixtures.oci import OCI_LAYER_GZIP, OciLayout
from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    private_portside,
    unix_request,
)
from tests.fixtures.procs import ServiceError, short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"


# -- engines under test -----------------------------------------------------------------------


@dataclass
class Engine:
    """One engine as a client sees it: an address, a CLI environment, a raw HTTP helper."""

    name: str  # "portside" | "dockerd"
    host: str  # unix:///...
    env: dict[str, str]
    cli: str

    @property
    def socket_path(self) -> str:
        return self.host.removeprefix("unix://")

    def docker(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Any:
        import subprocess

        result = subprocess.run(
            [self.cli, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServiceError(
                f"[{self.name}] docker {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip()}"
            )
        return result

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """A raw HTTP request on the engine's unix socket."""
        return unix_request(self.socket_path, method, path, query=query, headers=headers)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=300)


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    """One ``portside serve`` for this module, with request logging on (``--debug``)."""
    with private_portside("ps-cli-", "--insecure-registry", registry.host, "--debug") as engine:
        yield engine


@pytest.fixture(
    scope="module",
    params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)],
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if request.param == "portside":
        host = request.getfixturevalue("portside").host
    else:
        host = request.getfixturevalue("dockerd").host
    config_dir = tmp_path_factory.mktemp(f"cli-{request.param}")
    return Engine(request.param, host, client_env(host, config_dir), docker_cli())


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


@pytest.fixture(scope="module")
def busybox_id(test_images: dict[str, BuiltImage]) -> str:
    image_id = test_images[BUSYBOX].config_digest
    assert image_id is not None
    return image_id


def _unique(prefix: str = "api") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _message(body: bytes) -> str:
    """An error body's message: dockerd's JSON ``{"message"}`` (or, for some, plain text)."""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode().strip()


def _json_lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _unique_image(directory: Path, size: int = 0) -> tuple[Path, str]:
    """A one-layer image nobody has pulled before; returns its layout and layer digest."""
    payload = secrets.token_bytes(size) if size else secrets.token_hex(16).encode()
    items = [L.directory("data"), L.file("data/payload", payload)]
    tar = L.layer_tar(items)
    layout = OciLayout(directory)
    layer = layout.add_layer(tar, L.compress(tar, "gzip"), OCI_LAYER_GZIP)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]}}
    manifest, _config = layout.add_image([layer], config)
    layout.tag(manifest, "1")
    return directory, layer.descriptor.digest


# -- system ----------------------------------------------------------------------------------


def test_ping_headers(engine: Engine) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = engine.request(method, "/_ping")
        assert status == 200
        assert headers["OSType"] == "linux"
        assert headers["Api-Version"]
        assert headers["Docker-Experimental"] == "false"
        assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert body == (b"OK" if method == "GET" else b"")


def test_portside_ping_and_version_specifics(portside: PortsideFixture) -> None:
    engine = Engine("portside", portside.host, portside.env, docker_cli())
    status, headers, _ = engine.request("HEAD", "/_ping")
    assert status == 200
    assert headers["Api-Version"] == "1.44"
    assert headers["Builder-Version"] == "1"
    version = json.loads(engine.request("GET", "/version")[2])
    assert version["ApiVersion"] == "1.44"
    assert version["MinAPIVersion"] == "1.24"
    status, _, body = engine.request("GET", "/v1.23/version")
    assert status == 400
    assert json.loads(body)["message"] == (
        "client version 1.23 is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version"
    )
    for version_prefix in ("/v1.24", "/v1.44", ""):
        assert engine.request("GET", f"{version_prefix}/version")[0] == 200


def test_version_with_every_client(engine: Engine) -> None:
    out = json.loads(engine.docker("version", "--format", "{{json .Server}}").stdout)
    assert out["Os"] == "linux"
    assert out["KernelVersion"] == os.uname().release
    client = engine.client()
    try:
        assert client.ping() is True
        version = client.version()
        assert version["Os"] == "linux"
        assert version["ApiVersion"] == out["ApiVersion"]
    finally:
        client.close()


async def test_version_and_info_with_aiodocker(engine: Engine) -> None:
    async with aiodocker.Docker(url=engine.host) as client:
        version = await client.version()
        assert version["Os"] == "linux"
        info = await client.system.info()
        assert info["OSType"] == "linux"
        assert info["NCPU"] == os.cpu_count()


def test_info_with_cli_and_docker_py(engine: Engine) -> None:
    info = json.loads(engine.docker("info", "--format", "{{json .}}").stdout)
    assert info["OSType"] == "linux"
    assert info["NCPU"] == os.cpu_count()
    assert info["MemTotal"] > 0
    assert info["KernelVersion"] == os.uname().release
    assert info["Name"] == socket.gethostname()
    assert info["Driver"]
    assert os.path.isabs(info["DockerRootDir"])
    assert isinstance(info["Images"], int)
    assert info["ServerVersion"]
    client = engine.client()
    try:
        assert client.info()["ID"] == info["ID"]
    finally:
        client.close()


@pytest.mark.parametrize(("version", "word"), [("1.99", "new"), ("1.11", "old")])
def test_unsupported_api_versions_are_refused(engine: Engine, version: str, word: str) -> None:
    status, _, body = engine.request("GET", f"/v{version}/version")
    assert status == 400
    assert _message(body).startswith(f"client version {version} is too {word}")


def test_unknown_paths_answer_404(engine: Engine) -> None:
    status, headers, body = engine.request("GET", "/no/such/endpoint")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"message": "page not found"}
    status, _, body = engine.request("POST", "/_ping")
    assert status == 404
    assert json.loads(body) == {"message": "page not found"}
    assert engine.request("GET", "/v1.41/no/such/endpoint")[0] == 404


# -- images ----------------------------------------------------------------------------------


def test_pull_inspect_history_with_cli(engine: Engine, busybox: str, busybox_id: str) -> None:
    out = engine.docker("pull", busybox).stdout
    assert "1: Pulling from test/busybox" in out
    assert "Digest: sha256:" in out
    assert f"Status: Downloaded newer image for {busybox}" in out or (
        f"Status: Image is up to date for {busybox}" in out
    )
    assert out.strip().splitlines()[-1] == busybox
    again = engine.docker("pull", busybox).stdout
    assert f"Status: Image is up to date for {busybox}" in again

    inspected = json.loads(engine.docker("image", "inspect", busybox).stdout)[0]
    assert inspected["Id"] == busybox_id
    assert busybox in inspected["RepoTags"]
    assert inspected["Os"] == "linux"
    assert inspected["Config"]["Cmd"] == ["sh"]
    assert len(inspected["RootFS"]["Layers"]) == 1

    history = engine.docker("history", "--no-trunc", "--format", "{{json .}}", busybox).stdout
    rows = [json.loads(line) for line in history.splitlines()]
    assert rows[0]["ID"] == busybox_id
    assert "portside test fixture" in rows[0]["CreatedBy"]

    listed = engine.docker("images", "--no-trunc", "--format", "{{json .}}").stdout
    entries = [json.loads(line) for line in listed.splitlines()]
    assert any(
        e["ID"] == busybox_id and f"{e['Repository']}:{e['Tag']}" == busybox for e in entries
    )


def test_tag_and_rmi_with_cli(engine: Engine, busybox: str, busybox_id: str) -> None:
    engine.docker("pull", "-q", busybox)
    target = f"localhost/api-test/{_unique('tag')}:v1"
    engine.docker("tag", busybox, target)
    assert engine.docker("image", "inspect", "--format", "{{.Id}}", target).stdout.strip() == (
        busybox_id
    )
    removed = engine.docker("rmi", target).stdout
    assert f"Untagged: {target}" in removed
    assert "Deleted" not in removed  # the image keeps its other tag
    gone = engine.docker("image", "inspect", target, check=False)
    assert gone.returncode != 0
    assert "No such image" in gone.stderr
    assert engine.docker("image", "inspect", "--format", "{{.Id}}", busybox).stdout.strip() == (
        busybox_id
    )


def test_missing_images_are_404_everywhere(engine: Engine) -> None:
    name = f"localhost/{_unique('missing')}:1"
    result = engine.docker("image", "inspect", name, check=False)
    assert result.returncode != 0
    assert "No such image" in result.stderr
    result = engine.docker("rmi", name, check=False)
    assert result.returncode != 0
    assert "No such image" in result.stderr
    status, _, body = engine.request("DELETE", f"/images/{name}")
    assert status == 404
    assert "No such image" in json.loads(body)["message"]
    status, _, body = engine.request("GET", f"/v1.41/images/{name}/history")
    assert status == 404
    client = engine.client()
    try:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(name)
    finally:
        client.close()


def test_docker_py_images(engine: Engine, busybox: str, busybox_id: str) -> None:
    repo, _, tag = busybox.rpartition(":")
    client = engine.client()
    try:
        image = client.images.pull(repo, tag=tag)
        assert image.id == busybox_id
        assert busybox in image.tags
        assert client.images.get(busybox_id).id == busybox_id
        assert image.history()[0]["Id"] == busybox_id
        target = f"localhost/api-test/{_unique('py')}"
        assert image.tag(target, "t1") is True
        assert f"{target}:t1" in client.images.get(busybox_id).tags
        listed = client.images.list(name=target)
        assert [i.id for i in listed] == [busybox_id]
        not_dangling = client.images.list(filters={"dangling": False})
        assert busybox_id in [i.id for i in not_dangling]
        client.images.remove(f"{target}:t1")
        assert f"{target}:t1" not in client.images.get(busybox_id).tags
        pruned = client.images.prune(filters={"dangling": True})
        assert "SpaceReclaimed" in pruned
        df = client.df()
        assert busybox_id in [i["Id"] for i in df["Images"]]
        assert isinstance(df["LayersSize"], int)
    finally:
        client.close()


async def test_aiodocker_images(engine: Engine, busybox: str, busybox_id: str) -> None:
    repo, _, tag = busybox.rpartition(":")
    async with aiodocker.Docker(url=engine.host) as client:
        lines = await client.images.pull(repo, tag=tag)
        assert any(line.get("status", "").startswith("Status: ") for line in lines)
        inspected = await client.images.inspect(busybox)
        assert inspected["Id"] == busybox_id
        target = f"localhost/api-test/{_unique('aio')}"
        await client.images.tag(busybox, target, tag="t2")
        listed = await client.images.list(filters={"reference": [f"{target}:t2"]})
        assert [i["Id"] for i in listed] == [busybox_id]
        history = await client.images.history(busybox)
        assert history[0]["Id"] == busybox_id
        deleted = await client.images.delete(f"{target}:t2")
        assert {"Untagged": f"{target}:t2"} in deleted
        with pytest.raises(aiodocker.DockerError) as err:
            await client.images.inspect(f"{target}:t2")
        assert err.value.status == 404


def test_image_prune_and_system_df_with_cli(engine: Engine, busybox: str) -> None:
    engine.docker("pull", "-q", busybox)
    pruned = engine.docker("image", "prune", "-f").stdout
    assert "Total reclaimed space:" in pruned
    rows = [
        json.loads(line)
        for line in engine.docker("system", "df", "--format", "{{json .}}").stdout.splitlines()
    ]
    images = next(r for r in rows if r["Type"] == "Images")
    assert int(images["TotalCount"]) >= 1
    assert any(r["Type"] == "Containers" for r in rows)


def test_list_query_parameters_are_lenient(engine: Engine, busybox: str, busybox_id: str) -> None:
    engine.docker("pull", "-q", busybox)
    variants = [
        {"filters": json.dumps({"dangling": ["false"]})},
        {"filters": json.dumps({"dangling": {"false": True}})},
        {"filters": ""},
        {"filters": "null"},
        {"all": "1"},
        {"all": "true"},
        {"all": ""},
        {"all": "0", "filter": busybox.rpartition(":")[0]},
    ]
    for query in variants:
        status, _, body = engine.request("GET", "/images/json", query=query)
        assert status == 200, (query, body)
        assert busybox_id in [i["Id"] for i in json.loads(body)], query
    dangling_only = {"filters": json.dumps({"dangling": {"true": True}})}
    body = engine.request("GET", "/images/json", query=dangling_only)[2]
    assert busybox_id not in [i["Id"] for i in json.loads(body)]
    status, _, body = engine.request("GET", "/images/json", query={"filters": "{not json"})
    assert 400 <= status < 600  # dockerd 20.10 answers 500, newer ones 400
    assert _message(body)
    status, _, body = engine.request(
        "GET", "/images/json", query={"filters": json.dumps({"nonsense": ["x"]})}
    )
    assert status == 400
    assert json.loads(body)["message"] == "Invalid filter 'nonsense'"


def test_before_and_since_filters(engine: Engine, busybox: str, busybox_id: str) -> None:
    engine.docker("pull", "-q", busybox)
    for name in ("before", "since"):
        out = engine.docker(
            "images", "-q", "--no-trunc", "--filter", f"{name}={busybox}"
        ).stdout.split()
        assert busybox_id not in out, name
    missing = f"localhost/{_unique('nope')}:1"
    result = engine.docker("images", "--filter", f"before={missing}", check=False)
    assert result.returncode != 0
    assert "No such image" in result.stderr


# -- pulls: errors and streaming -------------------------------------------------------------


def test_pull_of_a_missing_image_fails_before_the_stream(
    engine: Engine, registry: RegistryFixture
) -> None:
    repo = f"{registry.host}/test/{_unique('nothere')}"
    status, _, body = engine.request(
        "POST", "/images/create", query={"fromImage": repo, "tag": "1"}
    )
    assert status == 404
    assert "not found" in json.loads(body)["message"].lower() or "unknown" in body.decode()
    result = engine.docker("pull", f"{repo}:1", check=False)
    assert result.returncode != 0
    assert repo in result.stderr
    client = engine.client()
    try:
        with pytest.raises(docker.errors.NotFound):
            client.images.pull(repo, tag="1")
    finally:
        client.close()


@pytest.fixture(scope="module")
def broken_image(
    registry: RegistryFixture, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """An image whose manifest resolves but whose layer the registry serves corrupted."""
    layout, layer_digest = _unique_image(tmp_path_factory.mktemp("broken"))
    name = f"api/{_unique('broken')}"
    ref = registry.push(f"oci:{layout}:1", f"{name}:1")
    algorithm, _, hexpart = layer_digest.partition(":")
    blob = registry.data_dir / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart
    data = blob / "data"
    assert data.is_file(), f"registry storage layout changed: {data} missing"
    # Same size, other bytes: the layer is unique to this image, nothing else is affected.
    data.write_bytes(secrets.token_bytes(data.stat().st_size))
    return ref, layer_digest


def test_pull_error_after_the_stream_started(engine: Engine, broken_image: tuple[str, str]) -> None:
    ref, layer_digest = broken_image
    repo, _, tag = ref.rpartition(":")
    status, headers, body = engine.request(
        "POST", "/images/create", query={"fromImage": repo, "tag": tag}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    lines = _json_lines(body)
    assert lines[0] == {"status": f"Pulling from {repo.split('/', 1)[1]}", "id": tag}
    assert any(line.get("status") == "Pulling fs layer" for line in lines)
    last = lines[-1]
    assert set(last) == {"errorDetail", "error"}
    assert last["errorDetail"]["message"] == last["error"]
    assert layer_digest in last["error"]
    result = engine.docker("pull", ref, check=False)
    assert result.returncode != 0
    assert layer_digest in result.stderr
    gone = engine.docker("image", "inspect", ref, check=False)
    assert gone.returncode != 0


def _auth_header(auth: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def test_x_registry_auth_is_accepted(engine: Engine, busybox: str, busybox_id: str) -> None:
    repo, _, tag = busybox.rpartition(":")
    auth = {"username": "api-user", "password": "pw", "serveraddress": repo.split("/")[0]}
    status, _, body = engine.request(
        "POST",
        "/images/create",
        query={"fromImage": repo, "tag": tag},
        headers={"X-Registry-Auth": _auth_header(auth)},
    )
    assert status == 200
    assert "errorDetail" not in body.decode()
    client = engine.client()
    try:
        image = client.images.pull(repo, tag=tag, auth_config=auth)
        assert image.id == busybox_id
    finally:
        client.close()


def test_x_registry_auth_never_reaches_the_log(portside: PortsideFixture, busybox: str) -> None:
    engine = Engine("portside", portside.host, portside.env, docker_cli())
    secret = "pw-" + secrets.token_hex(12)
    repo, _, tag = busybox.rpartition(":")
    auth = {"username": "api-user", "password": secret, "serveraddress": repo.split("/")[0]}
    header = _auth_header(auth)
    status, _, body = engine.request(
        "POST",
        "/images/create",
        query={"fromImage": repo, "tag": tag},
        headers={"X-Registry-Auth": header},
    )
    assert status == 200, body
    garbage = base64.urlsafe_b64encode(b"{not json " + secret.encode()).decode()
    status, _, body = engine.request(
        "POST",
        "/images/create",
        query={"fromImage": repo, "tag": tag},
        headers={"X-Registry-Auth": garbage},
    )
    assert status == 400
    assert "X-Registry-Auth" in json.loads(body)["message"]
    assert secret not in body.decode()
    log = portside.log_text()
    assert "POST /images/create" in log  # request logging was on (--debug)
    for leaked in (secret, header, garbage, base64.b64encode(secret.encode()).decode()):
        assert leaked not in log


def test_progress_strings_match_dockerd(
    engine: Engine, registry: RegistryFixture, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Byte counts are rendered exactly like dockerd renders them."""
    from engine.api.streams import progress_bar

    layout, _layer = _unique_image(tmp_path_factory.mktemp("fresh"), size=600_000)
    ref = registry.push(f"oci:{layout}:1", f"api/{_unique('fresh')}:1")
    repo, _, tag = ref.rpartition(":")
    status, _, body = engine.request(
        "POST", "/images/create", query={"fromImage": repo, "tag": tag}
    )
    assert status == 200
    lines = _json_lines(body)
    counted = [line for line in lines if line.get("progressDetail", {}).get("total")]
    assert counted, lines
    for line in counted:
        detail = line["progressDetail"]
        assert line["progress"] == progress_bar(detail["current"], detail["total"]), line
    statuses = [line.get("status") for line in lines]
    assert "Pulling fs layer" in statuses
    assert "Pull complete" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {ref}"
    assert any(line.get("status", "").startswith("Downloading") for line in counted)


# -- events ----------------------------------------------------------------------------------


def test_events_since_until_with_cli(engine: Engine, busybox: str, busybox_id: str) -> None:
    engine.docker("pull", "-q", busybox)
    since = time.time()
    target = f"localhost/api-test/{_unique('ev')}:e1"
    engine.docker("tag", busybox, target)
    engine.docker("rmi", target)
    until = time.time() + 1
    out = engine.docker(
        "events",
        "--since",
        f"{since:.9f}",
        "--until",
        f"{until:.9f}",
        "--filter",
        "type=image",
        "--format",
        "{{json .}}",
    ).stdout
    events = [json.loads(line) for line in out.splitlines()]
    actions = [
        (e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"].get("name")) for e in events
    ]
    assert ("tag", busybox_id, target) in actions
    assert any(a == "untag" and i == busybox_id for a, i, _ in actions)
    assert all(e["Type"] == "image" for e in events)


def test_live_events_with_docker_py(engine: Engine, busybox: str, busybox_id: str) -> None:
    engine.docker("pull", "-q", busybox)
    client = engine.client()
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    stream = client.events(decode=True, filters={"type": "image", "event": "tag"})

    def read() -> None:
        try:
            for event in stream:
                received.put(event)
        except Exception:  # the stream is closed by the test
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        target = f"localhost/api-test/{_unique('live')}:l1"
        engine.docker("tag", busybox, target)
        event = received.get(timeout=60)
        assert event["Type"] == "image"
        assert event["Action"] == "tag"
        assert event["Actor"]["ID"] == busybox_id
        assert event["Actor"]["Attributes"]["name"] == target
        assert event["timeNano"] // 1_000_000_000 == event["time"]
        engine.docker("rmi", target)
    finally:
        stream.close()
        client.close()
        reader.join(timeout=60)


def test_events_filters_are_lenient(engine: Engine) -> None:
    window = {"since": "0", "until": "1"}
    status, _, _body = engine.request(
        "GET", "/events", query={**window, "filters": '{"bogus":["x"]}'}
    )
    assert status == 200  # unknown event filters are ignored, as dockerd does
    status, _, _body = engine.request(
        "GET", "/events", query={**window, "filters": '{"type":{"image":true}}'}
    )
    assert status == 200
    status, _, body = engine.request("GET", "/events", query={**window, "filters": "{bad"})
    assert 400 <= status < 600
    assert _message(body)


# -- containers (the service is not there yet: the engine has none) --------------------------


def test_container_endpoints_without_containers(engine: Engine) -> None:
    label = f"api-test={_unique('label')}"
    out = engine.docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.ID}}").stdout
    assert out.strip() == ""
    name = _unique("nosuch")
    result = engine.docker("container", "inspect", name, check=False)
    assert result.returncode != 0
    assert f"No such container: {name}" in result.stderr
    result = engine.docker("start", name, check=False)
    assert result.returncode != 0
    assert f"No such container: {name}" in result.stderr
    for method, path in (
        ("GET", f"/containers/{name}/json"),
        ("POST", f"/v1.41/containers/{name}/stop"),
        ("DELETE", f"/containers/{name}"),
        ("GET", f"/containers/{name}/logs?stdout=1"),
    ):
        status, _, body = engine.request(method, path)
        assert status == 404, (method, path)
        assert json.loads(body) == {"message": f"No such container: {name}"}
    status, _, body = engine.request(
        "GET", "/containers/json", query={"all": "1", "filters": json.dumps({"label": [label]})}
    )
    assert status == 200
    assert json.loads(body) == []
    status, _, body = engine.request(
        "GET", "/containers/json", query={"filters": json.dumps({"nonsense": ["x"]})}
    )
    assert status == 400


def test_portside_lists_no_containers_and_refuses_empty_builds(portside: PortsideFixture) -> None:
    engine = Engine("portside", portside.host, portside.env, docker_cli())
    assert engine.docker("ps", "-aq").stdout.strip() == ""
    client = engine.client()
    try:
        assert client.containers.list(all=True) == []
    finally:
        client.close()
    context = short_tempdir("ps-build-")
    try:
        (context / "Dockerfile").write_text("FROM scratch\n")
        result = engine.docker(
            "build", "-q", str(context), check=False, env={"DOCKER_BUILDKIT": "0"}
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    assert result.returncode != 0
    assert "a FROM scratch stage needs a step" in result.stderr
