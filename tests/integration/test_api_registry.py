"""Registry work over the Engine API: ``/auth``, ``/images/{name}/push`` and portside's own
``/portside/v1/`` endpoints, driven by the real docker CLI, docker-py and aiodocker.

The htpasswd-over-TLS fixture registry is trusted the way an operator would: its CA in
``<root>/certs.d/<host>/ca.crt`` of ``portside serve`` (and ``/etc/docker/certs.d`` for
dockerd). ``portside serve`` runs twice: with the default config (127.0.0.0/8 insecure, so
TLS is tried without verification) and with ``insecure_registries = []`` from a config
file (TLS verified against that CA). Docker API tests run the same client calls against
both and against the reference dockerd.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import docker
import pytest

from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    start_portside,
    unix_request,
)
from tests.fixtures.procs import ServiceError, short_tempdir
from tests.fixtures.registry import RegistryFixture, start_registry

BUSYBOX = "test/busybox:1"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


# -- engines ---------------------------------------------------------------------------------


@dataclass
class Engine:
    """One engine as the docker CLI sees it, with a private client config dir."""

    name: str
    host: str
    env: dict[str, str]
    config_dir: Path
    serve: PortsideFixture | None = None

    @property
    def socket_path(self) -> str:
        return self.host.removeprefix("unix://")

    def docker(self, *args: str, check: bool = True, input: str | None = None) -> Any:
        result = subprocess.run(
            [docker_cli(), *args],
            env=self.env,
            input=input,
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
    ) -> tuple[int, Any, bytes]:
        return unix_request(self.socket_path, method, path, query=query, headers=headers)

    def stored_auths(self) -> dict[str, Any]:
        data = json.loads((self.config_dir / "config.json").read_text())
        return data.get("auths") or {}


def trusting_serve(base: Path, reg: RegistryFixture, *args: str) -> Any:
    """``portside serve`` with ``reg``'s CA in its own certs.d."""
    assert reg.ca_file is not None
    certs = base / "root" / "certs.d" / reg.host
    certs.mkdir(parents=True)
    shutil.copyfile(reg.ca_file, certs / "ca.crt")
    return start_portside(base, *args)


@pytest.fixture(scope="module")
def serve_default(registry: RegistryFixture, registry_tls: RegistryFixture) -> Iterator[Any]:
    """Default config: 127.0.0.0/8 counts as insecure (like dockerd)."""
    base = short_tempdir("ps-reg-")
    try:
        with trusting_serve(base, registry_tls, "--debug") as serve:
            yield serve
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def serve_strict(registry_tls: RegistryFixture) -> Iterator[Any]:
    """No insecure registries at all: the fixture's TLS must verify against certs.d."""
    base = short_tempdir("ps-regs-")
    config = base / "strict.toml"
    config.write_text("[engine]\ninsecure_registries = []\n")
    try:
        with trusting_serve(base, registry_tls, "--config", str(config)) as serve:
            yield serve
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(
    scope="module",
    params=[
        "portside",
        "portside-strict",
        pytest.param("dockerd", marks=pytest.mark.dockerd),
    ],
)
def engine(
    request: pytest.FixtureRequest,
    registry_tls: RegistryFixture,
    tmp_path_factory: pytest.TempPathFactory,
) -> Engine:
    serve: PortsideFixture | None = None
    if request.param == "portside":
        serve = request.getfixturevalue("serve_default")
        host = serve.host
    elif request.param == "portside-strict":
        serve = request.getfixturevalue("serve_strict")
        host = serve.host
    else:
        daemon = request.getfixturevalue("dockerd")
        daemon.trust(registry_tls)
        host = daemon.host
    config_dir = tmp_path_factory.mktemp(f"client-{request.param}")
    return Engine(request.param, host, client_env(host, config_dir), config_dir, serve)


@pytest.fixture(scope="module")
def busybox_tls(pushed_images_tls: dict[str, str]) -> str:
    return pushed_images_tls[BUSYBOX]


# -- helpers ---------------------------------------------------------------------------------


def _unique(prefix: str = "wire") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _header(auth: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def alice(reg: RegistryFixture) -> dict[str, str]:
    assert reg.username is not None and reg.password is not None
    return {"username": reg.username, "password": reg.password, "serveraddress": reg.host}


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def remote_digest(reg: RegistryFixture, repo: str, tag: str) -> str | None:
    """The digest the registry holds for ``repo:tag`` (asked directly, over verified TLS)."""
    req = urllib.request.Request(
        f"{reg.url}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_ACCEPT}
    )
    token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    ctx: ssl.SSLContext | None = reg.ssl_context()
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def login(engine: Engine, reg: RegistryFixture) -> None:
    out = engine.docker(
        "login", "-u", str(reg.username), "--password-stdin", reg.host, input=reg.password
    )
    assert "Login Succeeded" in out.stdout


def local_copy(engine: Engine, busybox: str, target: str) -> str:
    """Pull ``busybox`` through the engine and tag it ``target``; returns the image id."""
    engine.docker("pull", busybox)
    engine.docker("tag", busybox, target)
    return engine.docker("image", "inspect", "-f", "{{.Id}}", target).stdout.strip()


# -- /auth -----------------------------------------------------------------------------------


def test_auth_verifies_and_stores_nothing(engine: Engine, registry_tls: RegistryFixture) -> None:
    good = alice(registry_tls)
    body = json.dumps(good).encode()
    status, _, reply = _post_auth(engine, body)
    assert status == 200, reply
    assert json.loads(reply) == {"IdentityToken": "", "Status": "Login Succeeded"}

    wrong = {**good, "password": "wrong-" + secrets.token_hex(6)}
    status, _, reply = _post_auth(engine, json.dumps(wrong).encode())
    message = json.loads(reply)["message"]
    assert message == (
        f"login attempt to https://{registry_tls.host}/v2/ failed with status: 401 Unauthorized"
    )
    assert wrong["password"] not in message
    # dockerd 20.10 answers 500 here (newer dockerd and portside: 401).
    assert status == (401 if engine.serve else 500)
    if engine.serve is not None:
        assert wrong["password"] not in engine.serve.log_text()
        assert not (engine.serve.root / "config.json").exists()

    status, _, reply = _post_auth(engine, b"[1, 2]")
    assert status in (400, 500)
    assert "message" in json.loads(reply)


def _post_auth(engine: Engine, body: bytes) -> tuple[int, Any, bytes]:
    from tests.fixtures.portside import UnixHTTPConnection

    conn = UnixHTTPConnection(engine.socket_path)
    try:
        conn.request("POST", "/v1.41/auth", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


# -- docker login / push / pull --------------------------------------------------------------


def test_docker_login_push_and_pull_back(
    engine: Engine, registry_tls: RegistryFixture, busybox_tls: str
) -> None:
    bad = engine.docker(
        "login", "-u", "alice", "--password-stdin", registry_tls.host, input="nope", check=False
    )
    assert bad.returncode != 0
    assert "401 Unauthorized" in bad.stderr
    assert registry_tls.host not in engine.stored_auths()

    login(engine, registry_tls)
    entry = engine.stored_auths()[registry_tls.host]
    assert base64.b64decode(entry["auth"]).decode() == f"alice:{registry_tls.password}"

    repo = f"{registry_tls.host}/wire8/{_unique(engine.name)}"
    image_id = local_copy(engine, busybox_tls, f"{repo}:1")
    out = engine.docker("push", f"{repo}:1")
    digest = remote_digest(registry_tls, repo.split("/", 1)[1], "1")
    assert digest is not None
    assert f"1: digest: {digest} size:" in out.stdout
    assert f"The push refers to repository [{repo}]" in out.stdout
    repo_digests = json.loads(
        engine.docker("image", "inspect", "-f", "{{json .RepoDigests}}", f"{repo}:1").stdout
    )
    assert f"{repo}@{digest}" in repo_digests

    engine.docker("rmi", f"{repo}:1")
    engine.docker("pull", f"{repo}:1")
    pulled = engine.docker("image", "inspect", "-f", "{{.Id}}", f"{repo}:1").stdout.strip()
    assert pulled == image_id

    engine.docker("logout", registry_tls.host)
    denied = engine.docker("push", f"{repo}:1", check=False)
    assert denied.returncode != 0
    assert "digest:" not in denied.stdout
    if engine.serve is not None:
        assert str(registry_tls.password) not in engine.serve.log_text()


def test_push_streams_like_dockerd(
    engine: Engine, registry_tls: RegistryFixture, busybox_tls: str
) -> None:
    """Raw stream shape: repository line, layers, digest line, aux; errors after the 200."""
    login(engine, registry_tls)
    repo = f"{registry_tls.host}/wire8/{_unique('raw')}"
    local_copy(engine, busybox_tls, f"{repo}:a")
    engine.docker("tag", f"{repo}:a", f"{repo}:b")
    header = {"X-Registry-Auth": _header(alice(registry_tls))}

    status, headers, body = engine.request(
        "POST", f"/v1.41/images/{repo}/push", query={"tag": "a"}, headers=header
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    lines = _lines(body)
    assert lines[0] == {"status": f"The push refers to repository [{repo}]"}
    digest = remote_digest(registry_tls, repo.split("/", 1)[1], "a")
    assert lines[-1]["aux"]["Tag"] == "a" and lines[-1]["aux"]["Digest"] == digest
    assert lines[-1]["progressDetail"] == {}
    assert lines[-2]["status"].startswith(f"a: digest: {digest} size: ")
    layer_ids = {line["id"] for line in lines if line.get("status") == "Preparing"}
    assert layer_ids and all(len(i) == 12 for i in layer_ids)

    # No tag: every local tag of the repository, one repository line.
    status, _, body = engine.request("POST", f"/v1.41/images/{repo}/push", headers=header)
    lines = _lines(body)
    assert status == 200
    assert [line["aux"]["Tag"] for line in lines if "aux" in line] == ["a", "b"]
    assert sum("The push refers" in line.get("status", "") for line in lines) == 1

    # A tag that is not here: the 200 is sent, the error is in the stream.
    status, _, body = engine.request(
        "POST", f"/v1.41/images/{repo}/push", query={"tag": "missing"}, headers=header
    )
    lines = _lines(body)
    assert status == 200
    assert lines[0] == {"status": f"The push refers to repository [{repo}]"}
    assert lines[-1]["errorDetail"]["message"] == f"tag does not exist: {repo}:missing"

    # Wrong credentials: refused by the registry, reported in the stream, no aux.
    wrong = {"X-Registry-Auth": _header({**alice(registry_tls), "password": "wrong"})}
    status, _, body = engine.request(
        "POST", f"/v1.41/images/{repo}/push", query={"tag": "a"}, headers=wrong
    )
    lines = _lines(body)
    assert status == 200
    assert "errorDetail" in lines[-1] and not any("aux" in line for line in lines)


def test_docker_py_push(engine: Engine, registry_tls: RegistryFixture, busybox_tls: str) -> None:
    login(engine, registry_tls)
    repo = f"{registry_tls.host}/wire8/{_unique('py')}"
    local_copy(engine, busybox_tls, f"{repo}:py")
    client = docker.DockerClient(base_url=engine.host, version="auto", timeout=300)
    try:
        auth = {"username": registry_tls.username, "password": registry_tls.password}
        lines = list(client.images.push(repo, tag="py", auth_config=auth, stream=True, decode=True))
    finally:
        client.close()
    assert not any("error" in line for line in lines), lines
    aux = [line["aux"] for line in lines if "aux" in line]
    assert aux and aux[0]["Digest"] == remote_digest(registry_tls, repo.split("/", 1)[1], "py")


async def test_aiodocker_push(
    engine: Engine, registry_tls: RegistryFixture, busybox_tls: str
) -> None:
    login(engine, registry_tls)
    repo = f"{registry_tls.host}/wire8/{_unique('aio')}"
    local_copy(engine, busybox_tls, f"{repo}:aio")
    client = aiodocker.Docker(url=engine.host)
    try:
        lines = await client.images.push(repo, tag="aio", auth=alice(registry_tls))
        with pytest.raises(aiodocker.DockerError):  # anonymous: "placeholder" header, refused
            await client.images.push(repo, tag="aio")
    finally:
        await client.close()
    aux = [line["aux"] for line in lines if "aux" in line]
    assert aux and aux[0]["Digest"] == remote_digest(registry_tls, repo.split("/", 1)[1], "aio")


def test_push_refuses_bad_names(engine: Engine, registry_tls: RegistryFixture) -> None:
    for name, query in (("name/UPPER", {"tag": "1"}), (f"{registry_tls.host}/x", {"tag": "a b"})):
        status, _, body = engine.request("POST", f"/v1.41/images/{name}/push", query=query)
        assert status in (400, 404) or b"errorDetail" in body, (status, body)
        if engine.serve is not None:
            assert status == 400 and "invalid" in json.loads(body)["message"]


# -- portside's own endpoints ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browse_repos(registry_tls: RegistryFixture, pushed_images_tls: dict[str, str]) -> list[str]:
    names = [f"wire8/browse{i}" for i in range(3)]
    source = pushed_images_tls[BUSYBOX]
    for name in names:
        for tag in ("1", "2"):
            subprocess.run(
                [
                    "skopeo",
                    "--insecure-policy",
                    "copy",
                    "--quiet",
                    *registry_tls.skopeo_flags("src"),
                    *registry_tls.skopeo_flags("dest"),
                    f"docker://{source}",
                    f"docker://{registry_tls.host}/{name}:{tag}",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
    return names


def _get(serve: PortsideFixture, path: str, auth: dict[str, str] | None, **query: str) -> Any:
    headers = {"X-Registry-Auth": _header(auth)} if auth else {}
    status, _, body = unix_request(
        serve.socket_path, "GET", path, query=query or None, headers=headers
    )
    return status, json.loads(body) if body.startswith(b"{") else body.decode()


def test_catalog_and_tags_pages(
    serve_strict: PortsideFixture, registry_tls: RegistryFixture, browse_repos: list[str]
) -> None:
    auth = alice(registry_tls)
    path = f"/portside/v1/registries/{registry_tls.host}/catalog"
    status, everything = _get(serve_strict, path, auth)
    assert status == 200 and everything["Registry"] == registry_tls.host
    assert set(browse_repos) <= set(everything["Repositories"])
    assert everything["Next"] is None

    seen: list[str] = []
    last: str | None = None
    for _ in range(100):
        query = {"n": "2", **({"last": last} if last else {})}
        status, page = _get(serve_strict, path, auth, **query)
        assert status == 200 and len(page["Repositories"]) <= 2
        seen += page["Repositories"]
        last = page["Next"]
        if last is None:
            break
    assert seen == sorted(everything["Repositories"])

    status, versioned = _get(serve_strict, "/v1.44" + path, auth)
    assert status == 200 and versioned == everything

    status, reply = _get(serve_strict, path, None)  # anonymous: the registry refuses
    assert status == 403 and "authentication required" in reply["message"]

    tags_path = f"/portside/v1/repositories/{registry_tls.host}/{browse_repos[0]}/tags"
    status, tags = _get(serve_strict, tags_path, auth)
    assert status == 200 and tags["Tags"] == ["1", "2"]
    # Pages of one tag, in the registry's order, followed through ``Next``.
    collected: list[str] = []
    last = None
    for _ in range(10):
        status, page = _get(
            serve_strict, tags_path, auth, n="1", **({"last": last} if last else {})
        )
        assert status == 200
        collected += page["Tags"]
        last = page["Next"]
        if last is None:
            break
    assert sorted(collected) == ["1", "2"]

    missing = f"/portside/v1/repositories/{registry_tls.host}/wire8/nothing-here/tags"
    status, reply = _get(serve_strict, missing, auth)
    assert status == 404 and "not found" in reply["message"]
    status, reply = _get(serve_strict, path, auth, n="0")
    assert status == 400 and "'n'" in reply["message"]
    status, reply = _get(serve_strict, "/portside/v1/registries/bad_host!/catalog", auth)
    assert status == 400 and "invalid registry address" in reply["message"]


def test_manifest_inspect_and_delete(
    serve_strict: PortsideFixture, registry_tls: RegistryFixture, browse_repos: list[str]
) -> None:
    auth = alice(registry_tls)
    repo = browse_repos[1]
    ref = f"{registry_tls.host}/{repo}:2"
    status, details = _get(serve_strict, f"/portside/v1/manifests/{ref}", auth)
    assert status == 200, details
    digest = remote_digest(registry_tls, repo, "2")
    assert details["Digest"] == digest and details["Reference"] == ref
    assert details["Layers"] and details["Config"]["Digest"].startswith("sha256:")
    assert details["TotalSize"] > 0

    status, by_digest = _get(
        serve_strict, f"/portside/v1/manifests/{registry_tls.host}/{repo}@{digest}", auth
    )
    assert status == 200 and by_digest["Digest"] == digest

    headers = {"X-Registry-Auth": _header(auth)}
    status, _, body = unix_request(
        serve_strict.socket_path, "DELETE", f"/portside/v1/manifests/{ref}", headers=headers
    )
    reply = json.loads(body)
    assert status == 200, reply
    assert reply["Reference"] == ref and reply["Digest"] == digest and reply["Message"]
    assert remote_digest(registry_tls, repo, "2") is None
    status, reply = _get(serve_strict, f"/portside/v1/manifests/{ref}", auth)
    assert status == 404

    status, _, body = unix_request(
        serve_strict.socket_path,
        "DELETE",
        f"/portside/v1/manifests/{registry_tls.host}/{repo}",
        headers=headers,
    )
    assert status == 400 and ":TAG or @DIGEST" in json.loads(body)["message"]


def test_scan_endpoint(
    serve_default: PortsideFixture, registry_tls: RegistryFixture, busybox_tls: str
) -> None:
    header = {"X-Registry-Auth": _header(alice(registry_tls))}
    repo, _, tag = busybox_tls.rpartition(":")
    status, _, body = unix_request(
        serve_default.socket_path,
        "POST",
        "/images/create",
        query={"fromImage": repo, "tag": tag},
        headers=header,
    )
    assert status == 200 and b"errorDetail" not in body
    path = f"/portside/v1/images/{busybox_tls}/scan"
    status, report = _get(serve_default, path, None, external="0")
    assert status == 200, report
    assert report["Image"] == busybox_tls and report["Id"].startswith("sha256:")
    assert report["Layers"] >= 1 and report["Files"] > 0
    assert report["Vulnerabilities"] is None
    status, text = _get(serve_default, path, None, format="text", external="0")
    assert status == 200 and text.startswith(f"Image: {busybox_tls} ") and "Packages:" in text
    status, reply = _get(serve_default, "/portside/v1/images/no/such:image/scan", None)
    assert status == 404 and reply["message"] == "No such image: no/such:image"
    status, reply = _get(serve_default, path, None, format="xml")
    assert status == 400 and "json or text" in reply["message"]


def test_strict_config_really_verifies_tls(tmp_path: Path) -> None:
    """Without the CA in certs.d and with nothing insecure, the same login must fail.

    A registry of its own, whose CA no other test can have put in /etc/docker/certs.d.
    """
    base = short_tempdir("ps-nca-")
    config = base / "strict.toml"
    config.write_text("[engine]\ninsecure_registries = []\n")
    try:
        with (
            start_registry("tls", tmp_path / "reg") as reg,
            start_portside(base, "--config", str(config)) as serve,
        ):
            engine = Engine("portside", serve.host, {}, base, serve)
            status, _, reply = _post_auth(engine, json.dumps(alice(reg)).encode())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert status >= 500
    message = json.loads(reply)["message"]
    assert "certificate verify failed" in message and reg.host in message


def test_auth_with_token_registry(
    serve_default: PortsideFixture, registry_token: RegistryFixture
) -> None:
    """Bearer-token registries: /auth asks the token server with the credentials."""
    engine = Engine("portside", serve_default.host, {}, serve_default.root, serve_default)
    status, _, reply = _post_auth(engine, json.dumps(alice(registry_token)).encode())
    assert status == 200, reply
    assert json.loads(reply)["Status"] == "Login Succeeded"
    wrong = {**alice(registry_token), "password": "nope-" + secrets.token_hex(4)}
    rejected = len(registry_token.token_rejections)
    status, _, reply = _post_auth(engine, json.dumps(wrong).encode())
    assert status == 401
    assert json.loads(reply)["message"].startswith("login attempt to https://")
    assert len(registry_token.token_rejections) > rejected  # the token server said no


def test_push_policy_is_enforced(registry_tls: RegistryFixture) -> None:
    """A registry refused by the engine's policy gets a plain 403 before any stream."""
    base = short_tempdir("ps-pol-")
    config = base / "policy.toml"
    config.write_text(f'[engine]\ndenied_registries = ["{registry_tls.host}"]\n')
    try:
        with start_portside(base, "--config", str(config)) as serve:
            status, _, body = unix_request(
                serve.socket_path,
                "POST",
                f"/images/{registry_tls.host}/x/y/push",
                query={"tag": "1"},
                headers={"X-Registry-Auth": _header(alice(registry_tls))},
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert status == 403
    assert "refused by rule denied_registries" in json.loads(body)["message"]


@pytest.mark.parametrize("daemon_credentials", [None, True])
def test_serve_lends_its_own_logins_only_when_told(
    registry_tls: RegistryFixture,
    busybox_tls: str,
    daemon_credentials: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pull that brings no X-Registry-Auth: dockerd has no logins of its own to offer, and
    neither has ``portside serve`` by default (every socket user would borrow them), even
    with the daemon user's config.json holding one; ``daemon_credentials = true`` opts in."""
    base = short_tempdir("ps-cred-")
    try:
        daemon_config = base / "daemon-docker-config"
        daemon_config.mkdir()
        auth = base64.b64encode(f"{registry_tls.username}:{registry_tls.password}".encode())
        (daemon_config / "config.json").write_text(
            json.dumps({"auths": {registry_tls.host: {"auth": auth.decode()}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(daemon_config))
        config = base / "engine.toml"
        setting = "" if daemon_credentials is None else "daemon_credentials = true\n"
        config.write_text(f"[engine]\n{setting}")
        with trusting_serve(base, registry_tls, "--config", str(config)) as serve:
            status, _, body = unix_request(
                serve.socket_path, "POST", "/images/create", query={"fromImage": busybox_tls}
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if daemon_credentials:
        assert status == 200
        last = _lines(body)[-1]
        assert "error" not in last, last
        assert "Status: Downloaded newer image" in last["status"]
    else:  # refused before any progress, as dockerd answers a pull it cannot authorise
        assert status == 401
        assert "authentication required" in json.loads(body)["message"]
