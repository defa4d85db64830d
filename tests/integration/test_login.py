"""Verifying logins against the real registries, and pulls using stored credentials.

``check_login`` is what ``POST /auth`` runs (Basic over TLS, and the token flow); storing
credentials is the client's job (tests/integration/test_cli_registry.py covers the CLI's
store). Here the engine finds what a client stored: ``config.json`` ``auths`` or a real
credential-helper program following the ``docker-credential-*`` protocol.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import InvalidArgument, Unauthorized
from engine.registry import AuthConfig
from engine.registry.login import registry_host
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


def _store_auth(engine: Engine, reg: RegistryFixture) -> None:
    """What ``docker login`` / ``portside login`` leave behind: an ``auths`` entry."""
    token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    config_json(engine).write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))


async def test_basic_login_is_verified_and_stored_credentials_are_used(
    tls_engine: Engine,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ref = pushed_images_tls["test/busybox:1"]
    with pytest.raises(Unauthorized):
        await tls_engine.images.pull(ref)
    await tls_engine.registry.check_login(registry_tls.host, alice(registry_tls))
    _store_auth(tls_engine, registry_tls)
    tls_engine.registry.forget_credentials(registry_tls.host)
    assert await tls_engine.images.pull(ref)  # found the stored credentials
    assert registry_tls.password not in caplog.text


async def test_wrong_password_is_refused(
    tls_engine: Engine, registry_tls: RegistryFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Unauthorized) as info:
        await tls_engine.registry.check_login(
            registry_tls.host, alice(registry_tls, "wrong-secret-42")
        )
    text = str(info.value)
    assert text.startswith(f"wrong credentials for {registry_tls.host}") and "\n" not in text
    assert "wrong-secret-42" not in text and "wrong-secret-42" not in caplog.text


async def test_token_login_success_and_failure(
    token_engine: Engine, registry_token: RegistryFixture, pushed_images_token: dict[str, str]
) -> None:
    before = len(registry_token.token_requests)
    await token_engine.registry.check_login(registry_token.host, alice(registry_token))
    assert any(r.user == "alice" for r in registry_token.token_requests[before:])
    with pytest.raises(Unauthorized) as info:
        await token_engine.registry.check_login(
            registry_token.host, alice(registry_token, "nope-nope")
        )
    assert "token server refused" in str(info.value)
    assert registry_token.token_rejections[-1].user == "alice"
    # A stored login lets a private image be pulled without passing credentials.
    _store_auth(token_engine, registry_token)
    assert await token_engine.images.pull(pushed_images_token["test/busybox:1"])


async def test_pulls_use_a_credential_helper(
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
    store.write_text(
        json.dumps({registry_tls.host: {"Username": "alice", "Secret": registry_tls.password}})
    )
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("PORTSIDE_TEST_CRED_FILE", str(store))
    config_json(tls_engine).write_text(json.dumps({"credsStore": "portsidetest"}))
    assert await tls_engine.images.pull(pushed_images_tls["test/busybox:1"])


def test_registry_addresses() -> None:
    assert registry_host(None) == "docker.io"
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    with pytest.raises(InvalidArgument):
        registry_host("bad host!")
