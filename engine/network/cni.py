"""Invoking CNI plugins (the CNI 1.0 protocol) with asyncio subprocesses.

A network is a CNI "conflist": a list of plugin configs run in order for ADD (each one gets
the previous result as ``prevResult``) and in reverse order for DEL. The plugins are the
executables of Debian's containernetworking-plugins (bridge, host-local, portmap, firewall,
loopback); nothing here knows what they do.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import PortsideError

CNI_VERSION = "1.0.0"
PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"), Path("/usr/libexec/cni"))
PLUGIN_TIMEOUT = 60.0


class CNIError(PortsideError):
    """A CNI plugin failed or is missing."""


@dataclass(frozen=True)
class CNIRuntime:
    """What one plugin invocation is about: the container, its netns and interface."""

    container_id: str
    netns: str
    ifname: str = "eth0"


def find_plugin_dir(dirs: tuple[Path, ...] = PLUGIN_DIRS) -> Path:
    """The first directory holding the bridge plugin; a clear error when none does."""
    env = os.environ.get("CNI_PATH")
    candidates = (*(Path(p) for p in env.split(":") if p), *dirs) if env else dirs
    for d in candidates:
        if (d / "bridge").is_file():
            return d
    searched = ", ".join(str(d) for d in candidates)
    raise CNIError(
        f"CNI plugins not found (looked in {searched}); "
        "install containernetworking-plugins or set CNI_PATH"
    )


async def invoke(
    plugin_dir: Path,
    command: str,
    config: dict[str, Any],
    rt: CNIRuntime,
) -> dict[str, Any]:
    """Run one plugin (``config["type"]``) with ``CNI_COMMAND=command``; its parsed result.

    ADD returns the plugin's result; DEL and CHECK return {}. A plugin error (non-zero exit,
    with the CNI error JSON on stdout) becomes a one-line CNIError.
    """
    ptype = str(config.get("type", ""))
    exe = plugin_dir / ptype
    if not ptype or "/" in ptype or not exe.is_file():
        raise CNIError(f"CNI plugin {ptype!r} not found in {plugin_dir}")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": rt.container_id,
        "CNI_NETNS": rt.netns,
        "CNI_IFNAME": rt.ifname,
        "CNI_PATH": str(plugin_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        str(exe),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        close_fds=True,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(json.dumps(config).encode()), PLUGIN_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CNIError(
            f"CNI plugin {ptype} {command} timed out after {PLUGIN_TIMEOUT:.0f}s"
        ) from None
    if proc.returncode != 0:
        raise CNIError(f"CNI plugin {ptype} {command} failed: {_error_text(out, err)}")
    if command != "ADD" or not out.strip():
        return {}
    try:
        result = json.loads(out)
    except json.JSONDecodeError:
        raise CNIError(f"CNI plugin {ptype} {command} printed invalid JSON") from None
    if not isinstance(result, dict):
        raise CNIError(f"CNI plugin {ptype} {command} printed a non-object result")
    return result


def _error_text(out: bytes, err: bytes) -> str:
    try:
        data = json.loads(out)
        msg = str(data.get("msg", "")).strip()
        details = str(data.get("details", "")).strip()
        text = f"{msg}: {details}" if details and details not in msg else msg
    except (json.JSONDecodeError, AttributeError):
        text = (out or err).decode(errors="replace").strip()
    text = " ".join(text.split()) or "no error message"
    return text[:500]


def _plugin_config(conflist: dict[str, Any], plugin: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(plugin)
    cfg["cniVersion"] = conflist["cniVersion"]
    cfg["name"] = conflist["name"]
    return cfg


def _with_runtime_config(
    cfg: dict[str, Any], runtime_config: dict[str, Any] | None
) -> dict[str, Any]:
    caps = cfg.pop("capabilities", None) or {}
    if runtime_config:
        wanted = {k: v for k, v in runtime_config.items() if caps.get(k)}
        if wanted:
            cfg["runtimeConfig"] = wanted
    return cfg


async def add_list(
    plugin_dir: Path,
    conflist: dict[str, Any],
    rt: CNIRuntime,
    runtime_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ADD every plugin of ``conflist`` in order; the final result. Undone on failure."""
    result: dict[str, Any] | None = None
    done: list[dict[str, Any]] = []
    try:
        for plugin in conflist["plugins"]:
            cfg = _with_runtime_config(_plugin_config(conflist, plugin), runtime_config)
            if result is not None:
                cfg["prevResult"] = result
            result = await invoke(plugin_dir, "ADD", cfg, rt) or result
            done.append(plugin)
    except BaseException:
        partial = {**conflist, "plugins": [*done, conflist["plugins"][len(done)]]}
        await del_list(plugin_dir, partial, rt, runtime_config, prev_result=result, quiet=True)
        raise
    return result or {}


async def del_list(
    plugin_dir: Path,
    conflist: dict[str, Any],
    rt: CNIRuntime,
    runtime_config: dict[str, Any] | None = None,
    *,
    prev_result: dict[str, Any] | None = None,
    quiet: bool = False,
) -> None:
    """DEL every plugin of ``conflist`` in reverse order; all are tried, first error raised."""
    first: CNIError | None = None
    for plugin in reversed(conflist["plugins"]):
        cfg = _with_runtime_config(_plugin_config(conflist, plugin), runtime_config)
        if prev_result:
            cfg["prevResult"] = prev_result
        try:
            await invoke(plugin_dir, "DEL", cfg, rt)
        except CNIError as err:
            first = first or err
    if first is not None and not quiet:
        raise first


async def check_list(
    plugin_dir: Path,
    conflist: dict[str, Any],
    rt: CNIRuntime,
    prev_result: dict[str, Any],
    runtime_config: dict[str, Any] | None = None,
) -> None:
    """CHECK every plugin of ``conflist`` against ``prev_result``; raises CNIError if broken."""
    for plugin in conflist["plugins"]:
        cfg = _with_runtime_config(_plugin_config(conflist, plugin), runtime_config)
        cfg["prevResult"] = prev_result
        await invoke(plugin_dir, "CHECK", cfg, rt)
