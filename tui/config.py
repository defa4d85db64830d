"""Dashboard settings: the ``[dashboard]`` and ``[hosts]`` tables of portside's config file.

The file is ``$PORTSIDE_CONFIG`` if set, else ``$XDG_CONFIG_HOME/portside/config.toml``
(``~/.config/portside/config.toml``). Other tables (engine settings) belong to other
readers and are ignored here. ``[hosts]`` names engines for ``--context NAME`` and the
engine picker (a URL string, or a table with ``url``). Example::

    [dashboard]
    theme = "light"
    refresh_interval = 20

    [dashboard.keymap]
    "container.stop" = "x"
    "table.down" = ["j", "ctrl+n"]

    [hosts]
    build-box = "tcp://10.0.0.5:2376"
    lab = { url = "unix:///run/lab/docker.sock" }
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Events keep the lists current; the full reconciliation is a safety net. Each one redraws
# every row (500 containers: about 0.1 s of CPU), so it stays rare: idle CPU well under 1 %.
DEFAULT_REFRESH_INTERVAL = 60.0
MIN_REFRESH_INTERVAL = 2.0
MAX_REFRESH_INTERVAL = 600.0
KNOWN_SETTINGS = ("theme", "keymap", "refresh_interval")


class ConfigError(Exception):
    """The config file cannot be used; the message says where and how to fix it."""


@dataclass(frozen=True)
class DashboardConfig:
    """What ``[dashboard]`` asks for, plus warnings about settings that were ignored."""

    theme: str | None = None
    keymap: Mapping[str, str] = field(default_factory=dict)
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    path: Path | None = None
    problems: tuple[str, ...] = ()
    hosts: Mapping[str, str] = field(default_factory=dict)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives for this environment."""
    env = os.environ if env is None else env
    explicit = env.get("PORTSIDE_CONFIG")
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "portside" / "config.toml"


def _read_document(env: Mapping[str, str]) -> tuple[Path, dict[str, Any] | None]:
    """The parsed config file, or None when the default file does not exist."""
    path = config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if env.get("PORTSIDE_CONFIG"):
            raise ConfigError(
                f"config file {path} (from PORTSIDE_CONFIG) does not exist; "
                "create it or unset PORTSIDE_CONFIG"
            ) from None
        return path, None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return path, document


def load_dashboard_config(env: Mapping[str, str] | None = None) -> DashboardConfig:
    """Read ``[dashboard]`` and ``[hosts]``; a missing default file means defaults, anything
    broken raises."""
    path, document = _read_document(os.environ if env is None else env)
    if document is None:
        return DashboardConfig(path=None)
    config = parse_dashboard_table(document.get("dashboard", {}), path)
    hosts = parse_hosts_table(document.get("hosts", {}), path)
    return DashboardConfig(
        theme=config.theme,
        keymap=config.keymap,
        refresh_interval=config.refresh_interval,
        path=path,
        problems=config.problems,
        hosts=hosts,
    )


def load_hosts(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Only the ``[hosts]`` table (name -> engine URL) of the config file."""
    path, document = _read_document(os.environ if env is None else env)
    if document is None:
        return {}
    return parse_hosts_table(document.get("hosts", {}), path)


HOST_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://")


def parse_hosts_table(table: Any, path: Path | None) -> dict[str, str]:
    """Validate ``[hosts]``: each entry is a URL string or a table with a ``url`` string."""
    where = f"[hosts] in {path}" if path else "[hosts]"
    if not isinstance(table, dict):
        raise ConfigError(f'{where} must be a table of name = "unix:///path.sock" entries')
    hosts: dict[str, str] = {}
    for name, entry in table.items():
        url = entry.get("url") if isinstance(entry, dict) else entry
        if not isinstance(url, str) or not url.startswith((*HOST_SCHEMES, "/")):
            raise ConfigError(
                f"{where}: host {name!r} needs a URL such as unix:///path.sock or tcp://host:port"
            )
        hosts[str(name)] = f"unix://{url}" if url.startswith("/") else url
    return hosts


def parse_dashboard_table(table: Any, path: Path | None) -> DashboardConfig:
    """Validate the ``[dashboard]`` table of an already parsed document."""
    where = f"[dashboard] in {path}" if path else "[dashboard]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of settings")
    problems = [
        f"{where}: unknown setting {key!r} ignored (known: {', '.join(KNOWN_SETTINGS)})"
        for key in table
        if key not in KNOWN_SETTINGS
    ]

    theme = table.get("theme")
    if theme is not None and (not isinstance(theme, str) or not theme.strip()):
        raise ConfigError(f'{where}: theme must be a theme name such as "dark"')

    interval = table.get("refresh_interval", DEFAULT_REFRESH_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise ConfigError(f"{where}: refresh_interval must be a number of seconds")
    if not MIN_REFRESH_INTERVAL <= interval <= MAX_REFRESH_INTERVAL:
        raise ConfigError(
            f"{where}: refresh_interval must be between {MIN_REFRESH_INTERVAL:g} and "
            f"{MAX_REFRESH_INTERVAL:g} seconds, not {interval:g}"
        )

    keymap_table = table.get("keymap", {})
    if not isinstance(keymap_table, dict):
        raise ConfigError(f'{where}: keymap must be a table of binding id = "keys"')
    keymap: dict[str, str] = {}
    for binding_id, keys in keymap_table.items():
        if isinstance(keys, str):
            keymap[binding_id] = keys
        elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keymap[binding_id] = ",".join(keys)
        else:
            raise ConfigError(
                f"{where}: keymap.{binding_id} must be a key string or a list of them"
            )
    return DashboardConfig(
        theme=theme.strip() if isinstance(theme, str) else None,
        keymap=keymap,
        refresh_interval=float(interval),
        path=path,
        problems=tuple(problems),
    )
