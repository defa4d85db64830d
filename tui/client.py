"""Engine connections: which engine to talk to, and an aiodocker client connected to it.

Order of choice: ``--host URL``, ``--context NAME`` (Docker's contexts), ``PORTSIDE_HOST``,
a running ``portside serve`` on the default socket, else the embedded engine started in
this process on a private socket. Options that configure an engine (``--root``,
``--insecure-registry``, ``--registry-mirror``) always select the embedded engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker


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


def context_host(name: str) -> str:
    """The Docker endpoint of a docker context (``docker context create ...``)."""
    if name == "default":
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
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
        raise EngineSelectionError(
            f"no docker context named {name!r}; list them with `docker context ls`"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise EngineSelectionError(f"docker context {name!r} has no docker endpoint") from None


def resolve_target(options: EngineOptions) -> EngineTarget:
    if options.host:
        return EngineTarget(_normalise_url(options.host), options.host)
    if options.context:
        return EngineTarget(_normalise_url(context_host(options.context)), options.context)
    if options.configures_engine:
        return EngineTarget(None, "embedded")
    env = os.environ.get("PORTSIDE_HOST")
    if env:
        return EngineTarget(_normalise_url(env), env)
    from engine.embedded import running_engine_socket

    running = running_engine_socket()
    if running:
        return EngineTarget(running, "portside serve")
    return EngineTarget(None, "embedded")


def _normalise_url(url: str) -> str:
    if url.startswith("/"):
        return f"unix://{url}"
    if url.startswith(("unix://", "tcp://", "http://", "https://")):
        return url
    raise EngineSelectionError(
        f"unsupported engine address {url!r}: use unix:///path/to.sock or tcp://host:port"
    )


def engine_config_overrides(options: EngineOptions) -> dict[str, object]:
    """Keyword overrides for the embedded engine's config."""
    return {
        "root": options.root,
        "insecure_registries": list(options.insecure_registries),
        "registry_mirrors": list(options.registry_mirrors),
    }


@contextlib.asynccontextmanager
async def connect(options: EngineOptions) -> AsyncIterator[tuple[aiodocker.Docker, str]]:
    """Yield a connected aiodocker client and the engine's display name."""
    target = resolve_target(options)
    if target.url is not None:
        docker = aiodocker.Docker(url=target.url)
        try:
            yield docker, target.name
        finally:
            await docker.close()
        return
    from engine.embedded import embedded_engine

    async with embedded_engine(**engine_config_overrides(options)) as url:
        docker = aiodocker.Docker(url=url)
        try:
            yield docker, target.name
        finally:
            await docker.close()
