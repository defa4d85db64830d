"""Engine settings: where state lives, which runtime, which registries are insecure or mirrored.

Values come from ``config.toml`` (section ``[engine]``) and are overridden by command-line
flags. The config is plain data; services read it, nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidArgument
from engine.paths import default_config_file, default_root, docker_config_dir


@dataclass
class EngineConfig:
    """Settings of one engine instance."""

    root: Path = field(default_factory=default_root)
    runtime: str | None = None
    # Like dockerd, loopback registries are insecure (plain http allowed) by default.
    insecure_registries: list[str] = field(default_factory=lambda: ["127.0.0.0/8"])
    registry_mirrors: list[str] = field(default_factory=list)
    # Extra certs.d directories searched before /etc/docker/certs.d (HOST[:PORT]/ca.crt ...).
    certs_dirs: list[Path] = field(default_factory=list)
    # Docker's own certs.d convention, read too (tests set it empty to stay self-contained).
    system_certs_dirs: list[Path] = field(default_factory=lambda: [Path("/etc/docker/certs.d")])
    docker_config: Path = field(default_factory=docker_config_dir)
    # Registry credentials for requests that bring none (no X-Registry-Auth) come from
    # docker_config: None means yes for an embedded engine, which runs as its one user, and
    # no for ``portside serve``, whose socket users must not borrow the daemon's logins
    # (dockerd never reads a config.json either).
    daemon_credentials: bool | None = None
    max_concurrent_downloads: int = 4
    snapshotter: str | None = None  # "overlay" | "copy" | None for auto-detect
    # Pull policy (engine.policy): image name patterns; empty allowed list = all allowed.
    allowed_registries: list[str] = field(default_factory=list)
    denied_registries: list[str] = field(default_factory=list)
    require_digest: list[str] = field(default_factory=list)
    # The default "bridge" network: its device ("" = portside0 for the default root, else a
    # name derived from the root, so engines on one host never share a bridge) and the block
    # its subnet (a /default_subnet_size clear of the host's routes) comes from.
    default_bridge: str = ""
    default_address_pool: str = "10.213.0.0/16"
    default_subnet_size: int = 24

    @property
    def own_certs_dir(self) -> Path:
        return self.root / "certs.d"

    def all_certs_dirs(self) -> list[Path]:
        return [*self.certs_dirs, self.own_certs_dir, *self.system_certs_dirs]

    def bridge_name(self) -> str:
        """The default bridge's device name (see ``default_bridge``)."""
        if self.default_bridge:
            return self.default_bridge
        if self.root == default_root():
            return "portside0"
        return "psb" + hashlib.sha256(str(self.root.absolute()).encode()).hexdigest()[:10]


def load_config(path: Path | None = None, **overrides: object) -> EngineConfig:
    """Read ``[engine]`` from the config file (missing file = defaults), then apply overrides.

    Overrides whose value is None or an empty list are ignored, so CLI flags left unset keep
    the file's values; list flags extend the file's lists.
    """
    path = path or default_config_file()
    data: dict[str, object] = {}
    if path.is_file():
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh).get("engine", {})
        except (tomllib.TOMLDecodeError, OSError) as err:
            raise InvalidArgument(f"cannot read config {path}: {err}; fix or remove it") from None
    cfg = EngineConfig()
    known = set(EngineConfig.__dataclass_fields__)
    for key, value in data.items():
        key = key.replace("-", "_")
        if key not in known:
            raise InvalidArgument(f"unknown setting {key!r} in [engine] of {path}")
        setattr(cfg, key, _coerce(key, value))
    for key, value in overrides.items():
        if value is None or value == []:
            continue
        current = getattr(cfg, key)
        if isinstance(current, list) and isinstance(value, list):
            setattr(cfg, key, [*current, *(_coerce_item(key, v) for v in value)])
        else:
            setattr(cfg, key, _coerce(key, value))
    return cfg


def _coerce_item(key: str, value: object) -> object:
    return Path(str(value)) if key in ("certs_dirs", "system_certs_dirs") else value


def _coerce(key: str, value: object) -> object:
    if key in ("root", "docker_config"):
        return Path(str(value))
    if key in ("certs_dirs", "system_certs_dirs") and isinstance(value, list):
        return [Path(str(v)) for v in value]
    return value
