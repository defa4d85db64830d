"""The user's registry credentials, kept the way the docker CLI keeps them.

Credentials live in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker``): with the
credential helper it names for a registry (``credHelpers``, else ``credsStore``: the
``docker-credential-NAME`` program and its get/store/erase protocol), or else as base64
``user:password`` in ``auths``. The file is rewritten atomically (temporary file, fsync,
rename) with mode 0600 under a lock, keeping every other setting in it. ``portside login``
stores here, ``portside logout`` erases, and push/pull/registry verbs read the entry of the
image's registry to send as ``X-Registry-Auth``, exactly like the docker CLI. Secrets are
never printed, logged or put in an error message.

File work runs in threads and helpers run as asyncio subprocesses, so callers on the
event loop never block.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.client import docker_config_dir

DOCKER_HUB = "docker.io"
HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_HELPER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_FILE = 4 * 1024 * 1024
_MAX_HELPER_OUTPUT = 1024 * 1024
_HELPER_TIMEOUT = 30.0


class CredentialError(Exception):
    """The docker config or a credential helper cannot be used; a one-line message."""


@dataclass
class Credentials:
    """What is stored for one registry; the secret never shows in repr."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def auth_config(self, host: str) -> dict[str, str]:
        """docker's AuthConfig JSON for ``X-Registry-Auth`` (and aiodocker's ``auth=``)."""
        if self.identity_token:
            return {"identitytoken": self.identity_token, "serveraddress": host}
        return {"username": self.username, "password": self.password, "serveraddress": host}

    def header(self, host: str) -> str:
        """The ``X-Registry-Auth`` value: base64url of the AuthConfig JSON."""
        raw = json.dumps(self.auth_config(host)).encode()
        return base64.urlsafe_b64encode(raw).decode()


# -- names -----------------------------------------------------------------------------------


def registry_host(server: str | None) -> str:
    """``host[:port]`` for what a user typed (``https://host:5000/v2/``, ``host``, nothing
    for Docker Hub), like the docker CLI's ConvertToHostname."""
    text = (server or "").strip()
    if not text:
        return DOCKER_HUB
    host = text.split("://", 1)[1] if "://" in text else text
    host = host.split("/", 1)[0].lower()
    if host in _HUB_ALIASES:
        return DOCKER_HUB
    if not _HOST_RE.match(host):
        raise CredentialError(f"invalid registry address {text[:100]!r}: expected HOST[:PORT]")
    return host


def config_key(host: str) -> str:
    """The ``auths`` key (and helper ServerURL) the docker CLI uses for ``host``."""
    return HUB_KEY if host == DOCKER_HUB else host


def image_registry(name: str) -> str:
    """The registry an image name lives in, by docker's rule for the first component."""
    first, sep, _rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return registry_host(first)
    return DOCKER_HUB


def qualified(name: str) -> str:
    """``name`` with its registry spelled out (``busybox`` -> ``docker.io/library/busybox``)."""
    first, sep, _rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"{DOCKER_HUB}/{name}" if sep else f"{DOCKER_HUB}/library/{name}"


def _normalise_key(key: str) -> str:
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _HUB_ALIASES else text


# -- config.json -----------------------------------------------------------------------------


def config_file(config_dir: Path | None = None) -> Path:
    return (config_dir or docker_config_dir()) / "config.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CredentialError(f"cannot read {path}: {err.strerror}; fix its permissions") from None
    if len(raw) > _MAX_FILE:
        raise CredentialError(f"{path} is larger than 4 MiB; is it really a docker config?")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise CredentialError(f"{path} is not valid JSON; fix or remove it") from None
    if not isinstance(data, dict):
        raise CredentialError(f"{path} must contain a JSON object")
    return data


def _helper_for(data: dict[str, Any], host: str) -> str | None:
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _normalise_key(str(key)) == host and isinstance(name, str) and name:
                return name
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def _from_entry(entry: dict[str, Any]) -> Credentials | None:
    token = entry.get("identitytoken")
    encoded = entry.get("auth")
    user, password = "", ""
    if isinstance(encoded, str) and encoded:
        try:
            raw = base64.b64decode(encoded, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialError(
                "invalid 'auth' entry in the docker config: not base64 of USER:PASSWORD; "
                "run portside login again"
            ) from None
        user, _, password = raw.partition(":")
    user = str(entry.get("username") or user)
    password = str(entry.get("password") or password)
    if isinstance(token, str) and token:
        return Credentials(username=user, identity_token=token)
    if user or password:
        return Credentials(username=user, password=password)
    return None


def _lookup(data: dict[str, Any], host: str) -> Credentials | None:
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return None
    loose: Credentials | None = None
    for key, entry in auths.items():
        if not isinstance(entry, dict) or _normalise_key(str(key)) != host:
            continue
        found = _from_entry(entry)
        if found is None:
            continue
        if str(key).strip().lower() == config_key(host).lower():
            return found
        loose = loose or found
    return loose


def _update(path: Path, host: str, entry: dict[str, str] | None) -> bool:
    """Set (or with None remove) the ``auths`` entry of ``host``; True when one was removed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.parent / ".config.json.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read(path)
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
        stale = [k for k in auths if _normalise_key(str(k)) == host]
        for key in stale:
            del auths[key]
        if entry is not None:
            auths[config_key(host)] = entry
        elif not stale:
            return False
        data["auths"] = auths
        _write_atomically(path, data)
        return bool(stale)
    finally:
        os.close(lock)


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


async def _helper(name: str, action: str, stdin: bytes, host: str) -> tuple[bool, bytes]:
    """Run ``docker-credential-NAME ACTION``: (succeeded, stdout)."""
    if not _HELPER_RE.match(name):
        raise CredentialError(f"invalid credential helper name {name[:64]!r} in docker config")
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
        raise CredentialError(
            f"credential helper {program} is not on PATH; install it or remove it from "
            f"{config_file()}"
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), _HELPER_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CredentialError(
            f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode == 0:
        return True, out[:_MAX_HELPER_OUTPUT]
    lines = (out or err).decode(errors="replace").strip().splitlines()
    first = lines[0][:200] if lines else "no output"
    if action in ("get", "erase") and "credentials not found" in first.lower():
        return False, b""
    raise CredentialError(f"credential helper {program} {action} failed for {host}: {first}")


def _helper_credentials(out: bytes, program: str) -> Credentials | None:
    try:
        data = json.loads(out)
    except (ValueError, UnicodeDecodeError):
        raise CredentialError(f"credential helper {program} sent invalid JSON") from None
    if not isinstance(data, dict):
        raise CredentialError(f"credential helper {program} sent invalid JSON")
    user, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
    if not secret:
        return None
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=user, password=secret)


# -- the operations --------------------------------------------------------------------------


async def load(host: str, config_dir: Path | None = None) -> Credentials | None:
    """Stored credentials for ``host`` (helper first, then ``auths``), None when there are none."""
    path = config_file(config_dir)
    data = await asyncio.to_thread(_read, path)
    helper = _helper_for(data, host)
    if helper is not None:
        ok, out = await _helper(helper, "get", config_key(host).encode(), host)
        if ok:
            found = _helper_credentials(out, f"docker-credential-{helper}")
            if found is not None:
                return found
    return _lookup(data, host)


async def store(host: str, creds: Credentials, config_dir: Path | None = None) -> Path | None:
    """Save ``creds`` for ``host``; returns the file when they went into it unencrypted
    (None when a credential helper holds them)."""
    path = config_file(config_dir)
    data = await asyncio.to_thread(_read, path)
    helper = _helper_for(data, host)
    if helper is not None:
        token = bool(creds.identity_token)
        payload = {
            "ServerURL": config_key(host),
            "Username": "<token>" if token else creds.username,
            "Secret": creds.identity_token if token else creds.password,
        }
        await _helper(helper, "store", json.dumps(payload).encode(), host)
        return None
    if creds.identity_token:
        entry = {"identitytoken": creds.identity_token}
        if creds.username:
            entry["auth"] = _basic(creds.username, "")
    else:
        entry = {"auth": _basic(creds.username, creds.password)}
    await asyncio.to_thread(_update, path, host, entry)
    return path


async def erase(host: str, config_dir: Path | None = None) -> bool:
    """Forget what is stored for ``host``; False when nothing was."""
    path = config_file(config_dir)
    data = await asyncio.to_thread(_read, path)
    helper = _helper_for(data, host)
    erased = False
    if helper is not None:
        erased, _ = await _helper(helper, "erase", config_key(host).encode(), host)
    removed = await asyncio.to_thread(_remove, path, host)
    return removed or erased


def _remove(path: Path, host: str) -> bool:
    return path.exists() and _update(path, host, None)


async def request_auth(name: str) -> tuple[str, dict[str, str] | None]:
    """For a pull or push of ``name``: the name to send (registry spelled out when there
    are credentials, as aiodocker wants) and the stored AuthConfig, or None."""
    host = image_registry(name)
    creds = await load(host)
    if creds is None:
        return name, None
    return qualified(name), creds.auth_config(host)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
