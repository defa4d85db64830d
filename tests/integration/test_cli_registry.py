"""The portside CLI's registry verbs end to end, as a user types them.

``portside login/logout/push/pull/registry .../scan`` run as real subprocesses against a
real ``portside serve`` (and once against the embedded engine) and the htpasswd-over-TLS
fixture registry, whose CA sits in the engine's own certs.d. Credentials go to a private
``DOCKER_CONFIG`` (config.json, mode 0600) or to a real ``docker-credential-*`` program,
and are checked to appear in no output and no engine log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import layers as L
from tests.fixtures.engine import portside
from tests.fixtures.portside import PortsideFixture, start_portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DPKG_STATUS = (
    "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\n\n"
)
# A file-backed store speaking the docker-credential-helpers protocol.
HELPER = """#!{python}
import json, os, sys
path = os.environ["WIRE8_CRED_FILE"]
try:
    with open(path) as fh:
        store = json.load(fh)
except FileNotFoundError:
    store = {{}}
action, data = sys.argv[1], sys.stdin.read()
if action == "store":
    item = json.loads(data)
    store[item["ServerURL"]] = {{"Username": item["Username"], "Secret": item["Secret"]}}
elif action == "get":
    if data.strip() not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data.strip(), **store[data.strip()]}}))
elif action == "erase":
    if store.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
with open(path, "w") as fh:
    json.dump(store, fh)
"""


def _trusting_root(root: Path, reg: RegistryFixture) -> None:
    assert reg.ca_file is not None
    certs = root / "certs.d" / reg.host
    certs.mkdir(parents=True)
    shutil.copyfile(reg.ca_file, certs / "ca.crt")


@pytest.fixture(scope="module")
def serve(registry_tls: RegistryFixture) -> Iterator[PortsideFixture]:
    base = short_tempdir("ps-cli8-")
    _trusting_root(base / "root", registry_tls)
    try:
        with start_portside(base, "--debug") as engine:
            yield engine
    finally:
        shutil.rmtree(base, ignore_errors=True)


class User:
    """Someone at a terminal: a DOCKER_CONFIG of their own, verbs aimed at ``host``."""

    def __init__(self, home: Path, host: str, extra_env: dict[str, str] | None = None) -> None:
        self.config_dir = home / "docker-config"
        self.host = host
        self.env = {"DOCKER_CONFIG": str(self.config_dir), **(extra_env or {})}
        self.outputs: list[str] = []

    def run(self, verb: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        words = verb.split()
        result = portside(*words, "--host", self.host, *args, env=self.env, input=input)
        self.outputs += [result.stdout, result.stderr]
        return result

    def ok(self, verb: str, *args: str, input: str | None = None) -> str:
        result = self.run(verb, *args, input=input)
        assert result.returncode == 0, (verb, args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result.stdout

    def fails(self, verb: str, *args: str, input: str | None = None) -> str:
        result = self.run(verb, *args, input=input)
        assert result.returncode != 0, (verb, args, result.stdout)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    def config(self) -> dict:
        path = self.config_dir / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}


def remote_digest(reg: RegistryFixture, repo: str, tag: str) -> str | None:
    req = urllib.request.Request(
        f"{reg.url}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT}
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


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_login_push_pull_browse_logout(
    serve: PortsideFixture,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    tmp_path: Path,
) -> None:
    user = User(tmp_path, serve.host)
    host, password = registry_tls.host, str(registry_tls.password)

    line = user.fails("login", "-u", "alice", "--password-stdin", host, input="wrong\n")
    assert line == (
        "Error response from daemon: login attempt to https://"
        f"{host}/v2/ failed with status: 401 Unauthorized"
    )
    assert host not in user.config().get("auths", {})

    out = user.ok("login", "-u", "alice", "--password-stdin", host, input=password + "\n")
    assert out.strip() == "Login Succeeded"
    config_file = user.config_dir / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    entry = user.config()["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == f"alice:{password}"
    out = user.ok("login", host)
    assert out.splitlines() == ["Authenticating with existing credentials...", "Login Succeeded"]

    # pull (credentials from config.json), tag, push, pull back
    source = pushed_images_tls[BUSYBOX]
    user.ok("pull", source)
    repo_path = f"wire8/{_unique('cli')}"
    repo = f"{host}/{repo_path}"
    user.ok("tag", source, f"{repo}:1")
    image_id = user.ok("inspect", "-f", "{{.Id}}", f"{repo}:1").strip()
    out = user.ok("push", f"{repo}:1")
    digest = remote_digest(registry_tls, repo_path, "1")
    assert digest is not None
    assert f"The push refers to repository [{repo}]" in out
    assert f"1: digest: {digest} size:" in out
    assert user.ok("push", "-q", f"{repo}:1") == f"{repo}:1\n"
    user.ok("rmi", f"{repo}:1")
    user.ok("pull", f"{repo}:1")
    assert user.ok("inspect", "-f", "{{.Id}}", f"{repo}:1").strip() == image_id

    # browse and delete
    assert repo_path in user.ok("registry ls", host).splitlines()
    assert json.loads(user.ok("registry ls", host, "--json")) == sorted(
        json.loads(user.ok("registry ls", host, "--json"))
    )
    assert user.ok("registry tags", repo).splitlines() == ["1"]
    details = json.loads(user.ok("registry inspect", f"{repo}:1"))
    assert details["Digest"] == digest and details["Layers"]
    out = user.ok("registry rm", f"{repo}:1")
    assert digest in out
    assert remote_digest(registry_tls, repo_path, "1") is None
    line = user.fails("registry inspect", f"{repo}:1")
    assert line.startswith("Error response from daemon: ") and "not found" in line

    # logout
    assert user.ok("logout", host).strip() == f"Removing login credentials for {host}"
    assert host not in user.config()["auths"]
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert user.ok("logout", host).strip() == f"Not logged in to {host}"
    line = user.fails("push", f"{repo}:1")
    assert line.startswith("Error response from daemon: ")
    line = user.fails("registry tags", repo)
    assert line.startswith("Error response from daemon: ")

    for text in [*user.outputs, serve.log_text()]:
        assert password not in text
        assert base64.b64encode(f"alice:{password}".encode()).decode() not in text


def test_bad_input_gets_one_line(serve: PortsideFixture, tmp_path: Path) -> None:
    user = User(tmp_path, serve.host)
    line = user.fails("login", "--password-stdin", "127.0.0.1:1", input="x")
    assert line == "Must provide --username with --password-stdin"
    line = user.fails("login", "-u", "bob", "127.0.0.1:1")  # no TTY to ask on
    assert "non TTY" in line
    line = user.fails("registry ls", "bad host!")
    assert line.startswith("Error: invalid registry address")
    line = user.fails("push", "127.0.0.1:1/x@sha256:" + "a" * 64)
    assert "digest" in line
    line = user.fails("scan", "no/such:image")
    assert line == "Error response from daemon: No such image: no/such:image"
    (user.config_dir).mkdir()
    (user.config_dir / "config.json").write_text("{not json")
    line = user.fails("logout", "127.0.0.1:1")
    assert line.startswith("Error: ") and "not valid JSON" in line


def test_scan_json_and_text(serve: PortsideFixture, push_image, tmp_path: Path) -> None:
    items = [
        L.directory("var"),
        L.directory("var/lib"),
        L.directory("var/lib/dpkg"),
        L.file("var/lib/dpkg/status", DPKG_STATUS),
        L.directory("usr"),
        L.directory("usr/bin"),
        L.file("usr/bin/suid-helper", "#!/bin/sh\n", 0o4755),
    ]
    ref = push_image(f"wire8/{_unique('scan')}:1", [items])
    user = User(tmp_path, serve.host)
    user.ok("pull", ref)
    report = json.loads(user.ok("scan", "--json", "--no-external", ref))
    assert report["Image"] == ref and report["Layers"] == 1
    assert {(p["Type"], p["Name"]) for p in report["Packages"]} == {("deb", "libc6")}
    kinds = {f["Kind"] for f in report["Findings"]}
    assert "setuid" in kinds
    text = user.ok("scan", "--no-external", ref)
    assert text.startswith(f"Image: {ref} (")
    assert "Packages: 1 deb" in text and "suid-helper is setuid" in text


def test_credential_helper_and_embedded_engine(
    registry_tls: RegistryFixture, pushed_images_tls: dict[str, str], tmp_path: Path
) -> None:
    """credsStore: the secret goes to the helper; the embedded engine trusts its certs.d."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-wire8"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    store = tmp_path / "helper-store.json"
    root = tmp_path / "root"
    _trusting_root(root, registry_tls)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "WIRE8_CRED_FILE": str(store),
        "PORTSIDE_CONFIG": str(tmp_path / "none.toml"),
    }
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "wire8"}))
    env["DOCKER_CONFIG"] = str(config_dir)
    host, password = registry_tls.host, str(registry_tls.password)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        verb, rest = args[0], args[1:]
        result = portside(verb, "--root", str(root), *rest, env=env, input=input)
        assert "Traceback" not in result.stderr
        assert password not in result.stdout + result.stderr
        return result

    result = run("login", "-u", "alice", "--password-stdin", host, input=password)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Login Succeeded"
    assert "unencrypted" not in result.stderr
    assert json.loads(store.read_text()) == {host: {"Username": "alice", "Secret": password}}
    assert password not in (config_dir / "config.json").read_text()

    result = run("pull", pushed_images_tls[BUSYBOX])  # credentials from the helper
    assert result.returncode == 0, result.stderr

    result = run("logout", host)
    assert result.stdout.strip() == f"Removing login credentials for {host}"
    assert json.loads(store.read_text()) == {}
