"""``login`` / ``logout`` against the real registries (htpasswd over TLS, token auth).

Credentials are verified by the registry before anything is stored; they land in a
temporary Docker config dir (``config.json`` mode 0600) or in a real credential-helper
program following the ``docker-credential-*`` protocol, and later pulls find them there.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import InvalidArgument, RegistryError, Unauthorized
from engine.registry import AuthConfig
from engine.registry.login import login, logout, registry_host
from tests.fixtures.engine import engine_config
from tests.fixtures.registry import RegistryFixture

# A file-backed credential store speaking the docker-credential-helpers protocol.
HELPER = """#!{python}
import json, os, sys
path = os.environ["PORTSIDE_TEST_CRED_FILE"]
try:
    with open(path) as fh:
        store = json.load(fh)
except FileNotFoundError:
    store = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "store":
    item = json.loads(data)
    store[item["ServerURL"]] = {{"Username": item["Username"], "Secret": item["Secret"]}}
elif action == "get":
    if data.strip() not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    item = store[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), **item}}))
elif action == "erase":
    if store.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
else:
    print("unknown action")
    sys.exit(1)
with open(path, "w") as fh:
    json.dump(store, fh)
"""


@pytest.fixture
async def tls_engine(tmp_path: Path, registry_tls: RegistryFixture) -> AsyncIterator[Engine]:
    assert registry_tls.certs_dir is not None
    eng = await Engine.open(engine_config(tmp_path / "root", certs_dirs=[registry_tls.certs_dir]))
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def token_engine(tmp_path: Path, registry_token: RegistryFixture) -> AsyncIterator[Engine]:
    assert registry_token.certs_dir is not None
    eng = await Engine.open(engine_config(tmp_path / "root", certs_dirs=[registry_token.certs_dir]))
    try:
        yield eng
    finally:
        await eng.close()


def alice(reg: RegistryFixture, password: str | None = None) -> AuthConfig:
    return AuthConfig(username=reg.username, password=password or reg.password)


def config_json(engine: Engine) -> Path:
    return engine.config.docker_config / "config.json"


async def test_basic_login_stores_0600_and_pulls_use_it(
    tls_engine: Engine,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = config_json(tls_engine)
    path.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other.example": {}}}))
    ref = pushed_images_tls["test/busybox:1"]
    with pytest.raises(Unauthorized):
        await tls_engine.images.pull(ref)

    message = await login(
        tls_engine.config,
        f"https://{registry_tls.host}/v2/",
        alice(registry_tls),
        client=tls_engine.registry,
    )
    assert message == "Login Succeeded"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["psFormat"] == "table {{.ID}}" and "other.example" in data["auths"]
    stored = base64.b64decode(data["auths"][registry_tls.host]["auth"]).decode()
    assert stored == f"alice:{registry_tls.password}"
    assert await tls_engine.images.pull(ref)  # found the stored credentials

    assert await logout(tls_engine.config, registry_tls.host, client=tls_engine.registry) == (
        f"Removing login credentials for {registry_tls.host}"
    )
    assert registry_tls.host not in json.loads(path.read_text())["auths"]
    assert await logout(tls_engine.config, registry_tls.host) == (
        f"Not logged in to {registry_tls.host}"
    )
    assert registry_tls.password not in caplog.text


async def test_wrong_password_is_refused_and_nothing_stored(
    tls_engine: Engine, registry_tls: RegistryFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Unauthorized) as info:
        await login(tls_engine.config, registry_tls.host, alice(registry_tls, "wrong-secret-42"))
    text = str(info.value)
    assert text.startswith(f"wrong credentials for {registry_tls.host}") and "\n" not in text
    assert "wrong-secret-42" not in text and "wrong-secret-42" not in caplog.text
    assert not config_json(tls_engine).exists()


async def test_token_login_success_and_failure(
    token_engine: Engine, registry_token: RegistryFixture, pushed_images_token: dict[str, str]
) -> None:
    before = len(registry_token.token_requests)
    assert await login(token_engine.config, registry_token.host, alice(registry_token)) == (
        "Login Succeeded"
    )
    assert any(r.user == "alice" for r in registry_token.token_requests[before:])
    with pytest.raises(Unauthorized) as info:
        await login(token_engine.config, registry_token.host, alice(registry_token, "nope-nope"))
    assert "token server refused" in str(info.value)
    assert registry_token.token_rejections[-1].user == "alice"
    # The stored login lets a private image be pulled without passing credentials.
    assert await token_engine.images.pull(pushed_images_token["test/busybox:1"])


async def test_credential_helper_stores_instead_of_config_json(
    tls_engine: Engine,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-portsidetest"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("PORTSIDE_TEST_CRED_FILE", str(store))
    config_json(tls_engine).write_text(json.dumps({"credsStore": "portsidetest"}))

    await login(tls_engine.config, registry_tls.host, alice(registry_tls))
    saved = json.loads(store.read_text())
    assert saved == {registry_tls.host: {"Username": "alice", "Secret": registry_tls.password}}
    assert registry_tls.password not in config_json(tls_engine).read_text()
    assert await tls_engine.images.pull(pushed_images_tls["test/busybox:1"])

    message = await logout(tls_engine.config, registry_tls.host)
    assert message == f"Removing login credentials for {registry_tls.host}"
    assert json.loads(store.read_text()) == {}


async def test_bad_addresses_and_missing_helper(
    tls_engine: Engine, registry_tls: RegistryFixture
) -> None:
    assert registry_host(None) == "docker.io"
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    with pytest.raises(InvalidArgument):
        registry_host("bad host!")
    with pytest.raises(InvalidArgument) as info:
        await login(tls_engine.config, registry_tls.host, AuthConfig(username="alice"))
    assert "--password-stdin" in str(info.value)
    config_json(tls_engine).write_text(json.dumps({"credsStore": "portside-absent-helper"}))
    with pytest.raises(RegistryError) as missing:
        await login(tls_engine.config, registry_tls.host, alice(registry_tls))
    assert "docker-credential-portside-absent-helper is not on PATH" in str(missing.value)
