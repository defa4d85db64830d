"""Engine connections: which engine to talk to, and an aiodocker client connected to it.

Order of choice: ``--host URL``, ``--context NAME`` (Docker's contexts, then the named hosts
of the config file), ``PORTSIDE_HOST``, a running ``portside serve`` on the default socket,
else the embedded engine started in this process on a private socket. Options that
configure an engine (``--root``, ``--insecure-registry``, ``--registry-mirror``) always
select the embedded engine. ``engine_choices`` lists every engine the in-app picker offers.

aiodocker (with aiohttp, ~140 ms of imports) is loaded only when a client is made: the
dashboard paints its first frame without it and ``open_client`` loads it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiodocker

LOCAL_SERVE = "portside serve"  # the name of a running local engine found on its socket


class EngineSelectionError(Exception):
    """The requested engine cannot be used (bad URL, unknown context)."""


@dataclass
class EngineOptions:
    """What the user asked for on the command line."""

    host: str | None = None
    context: str | None = None
    root: str | None = None
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)

    @property
    def configures_engine(self) -> bool:
        return bool(self.root or self.insecure_registries or self.registry_mirrors)


@dataclass
class EngineTarget:
    """A resolved choice: a URL to connect to, or None for the embedded engine."""

    url: str | None
    name: str


def docker_config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


def context_host(name: str, hosts: Mapping[str, str] | None = None) -> str:
    """The Docker endpoint of a docker context (``docker context create ...``), else of the
    config file's named host ``name``."""
    if name == "default":
        return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_SOCKET
    meta = (
        docker_config_dir()
        / "contexts"
        / "meta"
        / hashlib.sha256(name.encode()).hexdigest()
        / "meta.json"
    )
    try:
        data = json.loads(meta.read_text())
        return str(data["Endpoints"]["docker"]["Host"])
    except FileNotFoundError:
        if hosts and name in hosts:
            return hosts[name]
        raise EngineSelectionError(
            f"no docker context or configured host named {name!r}; "
            "list contexts with `docker context ls`, hosts are [hosts] in the config file"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise EngineSelectionError(f"docker context {name!r} has no docker endpoint") from None


def resolve_target(options: EngineOptions) -> EngineTarget:
    if options.host:
        return EngineTarget(normalise_url(options.host), options.host)
    if options.context:
        hosts = _config_hosts()
        return EngineTarget(normalise_url(context_host(options.context, hosts)), options.context)
    if options.configures_engine:
        return EngineTarget(None, "embedded")
    env = os.environ.get("PORTSIDE_HOST")
    if env:
        return EngineTarget(normalise_url(env), env)
    from engine.embedded import running_engine_socket

    running = running_engine_socket()
    if running:
        return EngineTarget(running, LOCAL_SERVE)
    return EngineTarget(None, "embedded")


def normalise_url(url: str) -> str:
    """``url`` as aiodocker takes it; a bare path becomes ``unix://PATH``."""
    if url.startswith("/"):
        return f"unix://{url}"
    if url.startswith(("unix://", "tcp://", "http://", "https://")):
        return url
    raise EngineSelectionError(
        f"unsupported engine address {url!r}: use unix:///path/to.sock or tcp://host:port"
    )


def _config_hosts() -> dict[str, str]:
    from tui.config import ConfigError, load_hosts

    try:
        return load_hosts()
    except ConfigError as err:
        raise EngineSelectionError(str(err)) from None


@dataclass(frozen=True)
class EngineChoice:
    """One engine the picker offers: ``url`` None is the embedded engine."""

    name: str
    url: str | None
    source: str  # "embedded", "DOCKER_HOST", "config", "context"
    note: str = ""

    @property
    def label(self) -> str:
        where = self.url or "in this process"
        note = f", {self.note}" if self.note else ""
        return f"{self.name}  ({self.source}: {where}{note})"


def docker_contexts() -> list[tuple[str, str, bool]]:
    """(name, docker endpoint, is Docker's current context) of every docker context.

    Reads ``~/.docker/contexts/meta/*/meta.json`` and ``currentContext`` of
    ``config.json`` (``DOCKER_CONFIG`` moves both); unreadable entries are skipped. The
    built-in ``default`` context comes first. Blocking file reads: call it in a thread.
    """
    base = docker_config_dir()
    current = "default"
    try:
        config = json.loads((base / "config.json").read_text())
        if isinstance(config, dict) and isinstance(config.get("currentContext"), str):
            current = config["currentContext"] or "default"
    except (OSError, ValueError):
        pass
    found = [("default", context_host("default"), current == "default")]
    try:
        metas = sorted((base / "contexts" / "meta").glob("*/meta.json"))
    except OSError:
        metas = []
    for meta in metas:
        try:
            data = json.loads(meta.read_text())
            name = str(data["Name"])
            host = str(data["Endpoints"]["docker"]["Host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if name != "default":
            found.append((name, host, name == current))
    return found


def engine_choices(
    hosts: Mapping[str, str], env: Mapping[str, str] | None = None
) -> list[EngineChoice]:
    """Every engine to offer: embedded, ``DOCKER_HOST``, named hosts, docker contexts.

    Blocking file reads (docker contexts): call it in a thread.
    """
    env = os.environ if env is None else env
    choices = [EngineChoice("embedded", None, "embedded")]
    if docker_host := env.get("DOCKER_HOST"):
        choices.append(EngineChoice("DOCKER_HOST", docker_host, "DOCKER_HOST"))
    for name, url in hosts.items():
        choices.append(EngineChoice(name, url, "config"))
    for name, url, current in docker_contexts():
        note = "docker's current context" if current else ""
        choices.append(EngineChoice(name, url, "context", note))
    return choices


def engine_config_overrides(options: EngineOptions) -> dict[str, object]:
    """Keyword overrides for the embedded engine's config."""
    return {
        "root": options.root,
        "insecure_registries": list(options.insecure_registries),
        "registry_mirrors": list(options.registry_mirrors),
    }


async def open_client(url: str) -> aiodocker.Docker:
    """An aiodocker client for ``url``; the first call imports aiodocker in a thread, so an
    event loop that is drawing a screen never stalls on those imports."""
    if "aiodocker" not in sys.modules:
        await asyncio.to_thread(importlib.import_module, "aiodocker")
    import aiodocker

    return aiodocker.Docker(url=url)


@contextlib.asynccontextmanager
async def connect(options: EngineOptions) -> AsyncIterator[tuple[aiodocker.Docker, str]]:
    """Yield a connected aiodocker client and the engine's display name."""
    target = resolve_target(options)
    if target.url is not None:
        docker = await open_client(target.url)
        try:
            yield docker, target.name
        finally:
            await docker.close()
        return
    from engine.embedded import embedded_engine

    async with embedded_engine(**engine_config_overrides(options)) as url:
        docker = await open_client(url)
        try:
            yield docker, target.name
        finally:
            await docker.close()
