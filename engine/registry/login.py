"""Logging in to and out of registries, the way ``docker login`` / ``docker logout`` do.

``login`` first verifies the credentials against the registry (Basic, or the Bearer token
flow), then stores them: with the credential helper that Docker's ``config.json`` names for
that registry (``credHelpers``, else ``credsStore``: ``docker-credential-NAME store``), or
else in ``config.json`` ``auths`` as base64 ``user:password``. The file is rewritten
atomically with mode 0600, keeping every other setting in it. Secrets are never logged,
printed or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from engine.config import EngineConfig
from engine.errors import InvalidArgument, RegistryError
from engine.registry.client import RegistryClient
from engine.registry.credentials import (
    DOCKER_HUB_AUTH_KEY,
    AuthConfig,
    normalise_registry_key,
)

LOGIN_SUCCEEDED = "Login Succeeded"
_HELPER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_MAX_CONFIG_FILE = 4 * 1024 * 1024
_HELPER_TIMEOUT = 30.0


def registry_host(server: str | None) -> str:
    """``host[:port]`` for what a user typed (``https://host:5000/v2/``, ``host``, nothing
    for Docker Hub); InvalidArgument for anything else."""
    text = (server or "").strip()
    if not text:
        return "docker.io"
    host = normalise_registry_key(text)
    if not _HOST_RE.match(host):
        raise InvalidArgument(f"invalid registry address {text[:100]!r}: expected HOST[:PORT]")
    return host


def config_key(host: str) -> str:
    """The ``auths`` key docker uses for ``host``."""
    return DOCKER_HUB_AUTH_KEY if host == "docker.io" else host


async def login(
    config: EngineConfig,
    server: str | None,
    auth: AuthConfig,
    *,
    client: RegistryClient | None = None,
) -> str:
    """Verify ``auth`` against ``server`` and store it; returns ``"Login Succeeded"``.

    Raises Unauthorized for refused credentials (nothing is stored then), InvalidArgument
    for a bad address or missing username/password, RegistryError when the registry cannot
    be reached or the credential helper fails.
    """
    host = registry_host(server)
    if not auth.identity_token and not (auth.username and auth.password):
        raise InvalidArgument(
            "login needs a username and a password (use --password-stdin to pass it safely)"
        )
    verifier = client or RegistryClient(config)
    try:
        await verifier.check_login(host, auth)
    finally:
        if client is None:
            await verifier.close()
    data = await asyncio.to_thread(_read_config, config.docker_config)
    helper = _helper_for(data, host)
    if helper is not None:
        secret = auth.identity_token or auth.password or ""
        user = "<token>" if auth.identity_token else auth.username or ""
        payload = json.dumps({"ServerURL": config_key(host), "Username": user, "Secret": secret})
        await _run_helper(helper, "store", payload.encode(), host)
    else:
        entry: dict[str, str] = {}
        if auth.identity_token:
            entry["identitytoken"] = auth.identity_token
            if auth.username:
                entry["auth"] = _basic(auth.username, "")
        else:
            entry["auth"] = _basic(auth.username or "", auth.password or "")
        await asyncio.to_thread(_update_auths, config.docker_config, host, entry)
    if client is not None:
        client.forget_credentials(host)
    return LOGIN_SUCCEEDED


async def logout(
    config: EngineConfig, server: str | None, *, client: RegistryClient | None = None
) -> str:
    """Forget stored credentials for ``server``; returns docker's message for the outcome."""
    host = registry_host(server)
    data = await asyncio.to_thread(_read_config, config.docker_config)
    helper = _helper_for(data, host)
    erased = False
    if helper is not None:
        erased = await _run_helper(helper, "erase", config_key(host).encode(), host)
    removed = await asyncio.to_thread(_update_auths, config.docker_config, host, None)
    if client is not None:
        client.forget_credentials(host)
    if removed or erased:
        return f"Removing login credentials for {host}"
    return f"Not logged in to {host}"


# -- config.json -----------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


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


def _helper_for(data: dict[str, Any], host: str) -> str | None:
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalise_registry_key(str(key)) == host and isinstance(name, str) and name:
                return name
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def _update_auths(config_dir: Path, host: str, entry: dict[str, str] | None) -> bool:
    """Set (or with None, remove) the ``auths`` entry of ``host`` under a lock, rewriting
    config.json atomically with mode 0600. True when something was there to remove."""
    config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(
        config_dir / ".config.json.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        data = _read_config(config_dir)
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
        stale = [k for k in auths if normalise_registry_key(str(k)) == host]
        for key in stale:
            del auths[key]
        if entry is not None:
            auths[config_key(host)] = entry
        elif not stale:
            return False
        data["auths"] = auths
        _write_atomically(config_dir / "config.json", data)
        return bool(stale)
    finally:
        os.close(lock_fd)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent="\t")
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -- credential helpers ----------------------------------------------------------------------


async def _run_helper(name: str, action: str, stdin: bytes, host: str) -> bool:
    """Run ``docker-credential-NAME ACTION``; False when ``erase`` found nothing to erase."""
    if not _HELPER_NAME_RE.match(name):
        raise InvalidArgument(f"invalid credential helper name {name[:64]!r} in docker config")
    program = f"docker-credential-{name}"
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            action,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise RegistryError(
            f"credential helper {program} is not on PATH; install it or remove it from "
            "the docker config"
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), _HELPER_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RegistryError(
            f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode == 0:
        return True
    message = (out or err).decode(errors="replace").strip().splitlines()
    first = message[0][:200] if message else "no output"
    if action == "erase" and "credentials not found" in first.lower():
        return False
    raise RegistryError(f"credential helper {program} {action} failed for {host}: {first}")
