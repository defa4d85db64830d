"""Registry credentials: the AuthConfig shape and Docker's ``config.json`` / credential helpers.

``AuthConfig`` mirrors docker's ``X-Registry-Auth`` header and ``auths`` entries; its repr
never shows a secret. Credentials are looked up for one registry host only and are never
handed to another (see ``engine.registry.auth``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument, RegistryError

log = logging.getLogger(__name__)

# The key docker uses for Docker Hub in config.json and when calling credential helpers.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_HELPER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_CONFIG_FILE = 4 * 1024 * 1024
_MAX_HELPER_OUTPUT = 1024 * 1024
_HELPER_TIMEOUT = 30.0


@dataclass
class AuthConfig:
    """Credentials for one registry (docker's AuthConfig); secrets are hidden from repr."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    server_address: str | None = None

    def __repr__(self) -> str:
        secrets = [
            name for name in ("password", "identity_token", "registry_token") if getattr(self, name)
        ]
        return (
            f"AuthConfig(username={self.username!r}, server_address={self.server_address!r}, "
            f"secrets={'+'.join(secrets) or 'none'})"
        )

    __str__ = __repr__

    @property
    def is_empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def identity(self) -> str:
        """A stable key for caches (tokens obtained with these credentials), not a secret."""
        raw = "\0".join(
            x or ""
            for x in (self.username, self.password, self.identity_token, self.registry_token)
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthConfig:
        """Docker's JSON shape: username/password, base64 ``auth``, identitytoken, ..."""
        lowered = {str(k).lower(): v for k, v in data.items()}

        def text(key: str) -> str | None:
            value = lowered.get(key)
            return value if isinstance(value, str) and value else None

        username, password = text("username"), text("password")
        encoded = text("auth")
        if encoded and not (username and password):
            username, password = _decode_basic(encoded)
        return cls(
            username=username,
            password=password,
            identity_token=text("identitytoken"),
            registry_token=text("registrytoken"),
            server_address=text("serveraddress"),
        )

    @classmethod
    def from_header(cls, header: str) -> AuthConfig | None:
        """Decode an ``X-Registry-Auth`` header (base64url JSON); None when empty."""
        header = header.strip()
        if not header:
            return None
        try:
            padded = header + "=" * (-len(header) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidArgument(
                "invalid X-Registry-Auth header: expected base64url-encoded JSON"
            ) from None
        if not isinstance(data, dict):
            raise InvalidArgument("invalid X-Registry-Auth header: expected a JSON object")
        auth = cls.from_dict(data)
        return None if auth.is_empty else auth


def _decode_basic(encoded: str) -> tuple[str | None, str | None]:
    try:
        raw = base64.b64decode(encoded, validate=False).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(
            "invalid 'auth' entry in docker config: not base64 of USER:PASSWORD; run "
            "portside login again"
        ) from None
    user, sep, password = raw.partition(":")
    if not sep:
        raise InvalidArgument(
            "invalid 'auth' entry in docker config: expected USER:PASSWORD; run portside login"
        )
    return user or None, password or None


def normalise_registry_key(key: str) -> str:
    """A config.json key as a host: ``https://index.docker.io/v1/`` -> ``docker.io``."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    return "docker.io" if text in _HUB_ALIASES else text


def _read_config(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "config.json"
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise InvalidArgument(f"cannot read {path}: {err.strerror}; fix its permissions") from None
    if len(raw) > _MAX_CONFIG_FILE:
        raise InvalidArgument(f"{path} is larger than 4 MiB; is it really a docker config?")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidArgument(f"{path} is not valid JSON; fix or remove it") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path} must contain a JSON object")
    return data


def _lookup_auths(data: dict[str, Any], registry: str) -> AuthConfig | None:
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return None
    want = normalise_registry_key(registry)
    exact: AuthConfig | None = None
    loose: AuthConfig | None = None
    for key, entry in auths.items():
        if not isinstance(entry, dict) or normalise_registry_key(str(key)) != want:
            continue
        auth = AuthConfig.from_dict(entry)
        if auth.is_empty:
            continue
        auth.server_address = auth.server_address or str(key)
        if str(key).strip().lower() in (want, DOCKER_HUB_AUTH_KEY if want == "docker.io" else ""):
            exact = exact or auth
        else:
            loose = loose or auth
    return exact or loose


def _helper_for(data: dict[str, Any], registry: str) -> str | None:
    want = normalise_registry_key(registry)
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalise_registry_key(str(key)) == want and isinstance(name, str) and name:
                return name
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def load_docker_credentials(config_dir: Path, registry: str) -> AuthConfig | None:
    """Credentials for ``registry`` from ``config_dir/config.json`` ``auths`` (no helpers).

    Blocking file read: call it from a thread, or use ``load_docker_credentials_async``
    which also runs ``credsStore`` / ``credHelpers`` programs.
    """
    return _lookup_auths(_read_config(config_dir), registry)


async def load_docker_credentials_async(config_dir: Path, registry: str) -> AuthConfig | None:
    """Like ``load_docker_credentials`` but honours credential helpers (docker's order)."""
    data = await asyncio.to_thread(_read_config, config_dir)
    helper = _helper_for(data, registry)
    if helper:
        found = await run_credential_helper(helper, registry)
        if found is not None:
            return found
    return _lookup_auths(data, registry)


async def run_credential_helper(name: str, registry: str) -> AuthConfig | None:
    """Run ``docker-credential-NAME get``; None when it has nothing for ``registry``."""
    if not _HELPER_NAME_RE.match(name):
        raise InvalidArgument(f"invalid credential helper name {name[:64]!r} in docker config")
    program = f"docker-credential-{name}"
    server = DOCKER_HUB_AUTH_KEY if normalise_registry_key(registry) == "docker.io" else registry
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
    except FileNotFoundError:
        log.warning("credential helper %s not found on PATH; using config.json only", program)
        return None
    try:
        out, err = await asyncio.wait_for(proc.communicate(server.encode()), _HELPER_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RegistryError(
            f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode != 0:
        message = (out or err).decode(errors="replace").strip()
        if "credentials not found" in message.lower():
            return None
        raise RegistryError(
            f"credential helper {program} failed for {registry}: {message[:200] or 'no output'}"
        )
    if len(out) > _MAX_HELPER_OUTPUT:
        raise RegistryError(f"credential helper {program} printed too much output")
    try:
        data = json.loads(out)
        user, secret = data.get("Username"), data.get("Secret")
    except (ValueError, AttributeError):
        raise RegistryError(f"credential helper {program} printed invalid JSON") from None
    if not isinstance(secret, str) or not secret:
        return None
    if user == "<token>":
        return AuthConfig(identity_token=secret, server_address=server)
    return AuthConfig(
        username=user if isinstance(user, str) else None,
        password=secret,
        server_address=server,
    )
