"""The default seccomp profile (``seccomp.json``, data) turned into an OCI ``linux.seccomp``.

Rules in the data file carry conditions: ``caps`` (apply when the container holds one of
them), ``notCaps`` (apply when it holds none) and ``arches`` (docker architecture names).
``profile_for(caps)`` resolves them for one container on this machine's architecture. A
user profile given with ``--security-opt seccomp=<json>`` in docker's format goes through
the same resolution; ``unconfined`` disables filtering.
"""

from __future__ import annotations

import json
import platform
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument

_DATA = Path(__file__).with_name("seccomp.json")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}


def host_arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


@cache
def _default() -> dict[str, Any]:
    return json.loads(_DATA.read_text())


def _docker_format(profile: dict[str, Any]) -> dict[str, Any]:
    """Docker/podman profiles (``syscalls`` with includes/excludes) in our rule format."""
    if "rules" in profile:
        return profile
    rules = []
    for entry in profile.get("syscalls") or []:
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        rule: dict[str, Any] = {"names": names, "action": entry.get("action", "SCMP_ACT_ALLOW")}
        for key in ("args", "errnoRet"):
            if entry.get(key) not in (None, []):
                rule[key] = entry[key]
        inc = entry.get("includes") or {}
        exc = entry.get("excludes") or {}
        if inc.get("caps"):
            rule["caps"] = inc["caps"]
        if inc.get("arches"):
            rule["arches"] = inc["arches"]
        if exc.get("caps"):
            rule["notCaps"] = exc["caps"]
        if exc.get("arches"):
            rule["notArches"] = exc["arches"]
        rules.append(rule)
    arches: dict[str, list[str]] = {}
    for item in profile.get("archMap") or []:
        arch = item.get("architecture", "")
        arches[arch] = [arch, *(item.get("subArchitectures") or [])]
    out = {
        "defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
        "rules": rules,
        "scmpArchitectures": [a for group in arches.values() for a in group]
        or list(profile.get("architectures") or []),
    }
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out


def parse_user_profile(text: str) -> dict[str, Any]:
    """A ``--security-opt seccomp=`` value (the JSON docker's CLI sends)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidArgument(f"invalid seccomp profile: {err.msg}; give a JSON profile") from None
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise InvalidArgument("invalid seccomp profile: it has no defaultAction")
    return _docker_format(data)


def profile_for(caps: list[str], profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for a container holding ``caps``."""
    data = profile or _default()
    arch = host_arch()
    held = set(caps)
    syscalls: list[dict[str, Any]] = []
    for rule in data["rules"]:
        if rule.get("arches") and arch not in rule["arches"]:
            continue
        if rule.get("notArches") and arch in rule["notArches"]:
            continue
        if rule.get("caps") and not held.intersection(rule["caps"]):
            continue
        if rule.get("notCaps") and held.intersection(rule["notCaps"]):
            continue
        entry: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [
                {
                    "index": a["index"],
                    "value": a["value"],
                    "valueTwo": a.get("valueTwo", 0),
                    "op": a["op"],
                }
                for a in rule["args"]
            ]
        syscalls.append(entry)
    if "scmpArchitectures" in data:
        architectures = list(data["scmpArchitectures"])
    else:
        architectures = list(data.get("architectures", {}).get(arch, []))
    out: dict[str, Any] = {
        "defaultAction": data["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    }
    if "defaultErrnoRet" in data:
        out["defaultErrnoRet"] = data["defaultErrnoRet"]
    return out
