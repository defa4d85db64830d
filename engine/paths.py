"""Default locations of engine state and sockets (DESIGN.md "Process model")."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """``PORTSIDE_ROOT``, else /var/lib/portside as root, else $XDG_DATA_HOME/portside."""
    env = os.environ.get("PORTSIDE_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/portside")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "portside"


def default_socket() -> Path:
    """/run/portside/engine.sock as root, else $XDG_RUNTIME_DIR/portside/engine.sock."""
    if os.geteuid() == 0:
        return Path("/run/portside/engine.sock")
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/portside-{os.getuid()}"
    return Path(base) / "portside" / "engine.sock"


def default_config_file() -> Path:
    """``PORTSIDE_CONFIG``, else $XDG_CONFIG_HOME/portside/config.toml."""
    env = os.environ.get("PORTSIDE_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "portside" / "config.toml"


def docker_config_dir() -> Path:
    """Docker's client config directory (``DOCKER_CONFIG``, else ~/.docker)."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"
