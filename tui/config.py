"""Dashboard settings: the ``[dashboard]`` table of portside's config file.

The file is ``$PORTSIDE_CONFIG`` if set, else ``$XDG_CONFIG_HOME/portside/config.toml``
(``~/.config/portside/config.toml``). Other tables (engine settings, hosts) belong to other
readers and are ignored here. Example::

    [dashboard]
    theme = "light"
    refresh_interval = 20

    [dashboard.keymap]
    "container.stop" = "x"
    "table.down" = ["j", "ctrl+n"]
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REFRESH_INTERVAL = 15.0
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


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives for this environment."""
    env = os.environ if env is None else env
    explicit = env.get("PORTSIDE_CONFIG")
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "portside" / "config.toml"


def load_dashboard_config(env: Mapping[str, str] | None = None) -> DashboardConfig:
    """Read ``[dashboard]``; a missing default file means defaults, anything broken raises."""
    env = os.environ if env is None else env
    path = config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if env.get("PORTSIDE_CONFIG"):
            raise ConfigError(
                f"config file {path} (from PORTSIDE_CONFIG) does not exist; "
                "create it or unset PORTSIDE_CONFIG"
            ) from None
        return DashboardConfig(path=None)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return parse_dashboard_table(document.get("dashboard", {}), path)


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
