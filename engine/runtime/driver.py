"""The OCI runtime driver: find crun/runc, report versions and known escapes, pick one per
container, and run its short commands (``state``, ``kill``, ``pause``, ``resume``,
``delete``). ``create``/``start``/``exec`` are run by the monitor process.

Hybrid cgroup hosts (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified): crun
1.8 refuses to create containers there as soon as the cgroup2 mount has any controller,
and refuses resource limits otherwise, while runc 1.1 uses the v1 controllers. As root, the
monitor runs ``crun create`` in a private mount namespace where the cgroup2 mount is
unmounted, so crun sees a plain v1 host and applies v1 limits (``legacy_view``). Without
that possibility, containers that need cgroups go to runc, and the reason is given.

Every runtime gets its own state directory under the engine root (``--root``), no stray
file descriptors (asyncio subprocesses close them), and its error messages are passed on.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Conflict, NotFound, PortsideError
from engine.runtime import cgroups

KNOWN = ("crun", "runc")
# (runtime, CVE, {release branch: first fixed version}, fixed for everything at or above)
_ESCAPES: tuple[tuple[str, str, dict[str, str], str], ...] = (
    ("runc", "CVE-2019-5736", {}, "1.0.0"),
    ("runc", "CVE-2021-30465", {}, "1.0.0"),
    ("runc", "CVE-2024-21626", {"1.1": "1.1.12"}, "1.2.0"),
    ("runc", "CVE-2025-31133", {"1.2": "1.2.8", "1.3": "1.3.3"}, "1.4.0"),
    ("runc", "CVE-2025-52565", {"1.2": "1.2.8", "1.3": "1.3.3"}, "1.4.0"),
    ("runc", "CVE-2025-52881", {"1.2": "1.2.8", "1.3": "1.3.3"}, "1.4.0"),
    ("crun", "CVE-2022-27650", {}, "1.4.4"),
)


def _vtuple(version: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", version.split("-")[0].split("+")[0])
    return tuple(int(n) for n in nums[:3]) or (0,)


def _fixed(version: str, branches: dict[str, str], floor: str) -> bool:
    v = _vtuple(version)
    if v >= _vtuple(floor):
        return True
    branch = ".".join(str(x) for x in v[:2])
    return branch in branches and v >= _vtuple(branches[branch])


def _distro_changelog(path: str, name: str) -> str:
    """The Debian changelog of the package that ships this binary, if it is one."""
    real = os.path.realpath(path)
    if os.path.dirname(real) not in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        return ""
    log = Path("/usr/share/doc") / name / "changelog.Debian.gz"
    try:
        with gzip.open(log, "rt", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError:
        return ""


def security_warnings(kind: str, version: str, path: str) -> list[str]:
    """Known container escapes this runtime build is open to (distro backports count)."""
    changelog: str | None = None
    open_cves = []
    for rt, cve, branches, floor in _ESCAPES:
        if rt != kind or _fixed(version, branches, floor):
            continue
        if changelog is None:
            changelog = _distro_changelog(path, kind)
        if cve in changelog:
            continue  # the distribution backported the fix
        open_cves.append(cve)
    if not open_cves:
        return []
    return [
        f"{kind} {version} at {path} has known container escapes ({', '.join(open_cves)}); "
        f"upgrade {kind}"
    ]


@dataclass(frozen=True)
class Runtime:
    """One OCI runtime binary as this engine uses it."""

    name: str
    kind: str  # "crun" | "runc" (flags and quirks)
    path: str
    version: str
    commit: str
    state_root: Path
    legacy_view: bool = False  # create inside a mount ns without the cgroup2 mount
    warnings: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.state_root), *args]

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version,
            "commit": self.commit,
            "legacy_cgroup_view": self.legacy_view,
            "warnings": list(self.warnings),
        }


def _clean_error(kind: str, text: str) -> str:
    """The runtime's own message, without log decoration."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("level") in ("error", "fatal") or "msg" in entry:
                return str(entry.get("msg", line))
        m = re.search(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"', line)
        if m:
            return m.group(1).encode().decode("unicode_escape")
    if not lines:
        return ""
    last = lines[-1]
    return last[len(kind) + 2 :] if last.startswith(kind + ": ") else last


async def _run(argv: list[str], timeout: float = 60) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PortsideError(f"{argv[0]} {argv[3] if len(argv) > 3 else ''} timed out") from None
    return proc.returncode or 0, out, err


async def _version(path: str) -> tuple[str, str]:
    try:
        _, out, _ = await _run([path, "--version"], timeout=20)
    except (OSError, PortsideError):
        return "", ""
    text = out.decode(errors="replace")
    m = re.search(r"version\s+(\S+)", text)
    c = re.search(r"commit:\s*(\S+)", text)
    return (m.group(1) if m else ""), (c.group(1) if c else "")


@dataclass
class Runtimes:
    """The runtimes this engine can use and the rules for choosing one."""

    available: dict[str, Runtime] = field(default_factory=dict)
    default: str = ""
    cgroup: cgroups.CgroupHost = field(default_factory=lambda: cgroups.CgroupHost("none"))
    notes: list[str] = field(default_factory=list)

    @classmethod
    async def probe(
        cls, state_base: Path, configured: str | None = None, *, hide_unified: bool = True
    ) -> Runtimes:
        """Find runtimes (``configured`` first: crun, runc or a path) and probe them."""
        cg = await asyncio.to_thread(cgroups.host)
        found: dict[str, Runtime] = {}
        candidates: list[tuple[str, str]] = []
        if configured:
            path = configured if "/" in configured else shutil.which(configured)
            if path is None or not os.access(path, os.X_OK):
                pkg = configured if configured in KNOWN else "crun or runc"
                raise PortsideError(
                    f"OCI runtime {configured!r} not found: install it (apt-get install {pkg}) "
                    "or give its path with --runtime"
                )
            candidates.append((os.path.basename(path), path))
        for name in KNOWN:
            path = shutil.which(name)
            if path and all(p != path for _, p in candidates):
                candidates.append((name, path))
        notes: list[str] = []
        can_hide = hide_unified and os.geteuid() == 0
        for name, path in candidates:
            version, commit = await _version(path)
            kind = "crun" if "crun" in name else "runc" if "runc" in name else name
            legacy = False
            if kind == "crun" and cg.mode == "hybrid" and can_hide:
                legacy = True
                notes.append(
                    f"crun: cgroups are {cg.describe()}; crun runs containers in a private "
                    "mount namespace without the cgroup2 mount, so it applies v1 limits"
                )
            warnings = await asyncio.to_thread(security_warnings, kind, version, path)
            found[name] = Runtime(
                name=name,
                kind=kind,
                path=path,
                version=version,
                commit=commit,
                state_root=state_base / name,
                legacy_view=legacy,
                warnings=tuple(warnings),
            )
        if not found:
            raise PortsideError(
                "no OCI runtime found: install one (apt-get install crun, or runc) or give "
                "its path with --runtime"
            )
        default = candidates[0][0]
        return cls(available=found, default=default, cgroup=cg, notes=notes)

    def crun_limitation(self, runtime: Runtime, needs_limits: bool) -> str | None:
        """Why ``runtime`` cannot run a container here, or None when it can."""
        if runtime.kind != "crun" or self.cgroup.mode != "hybrid" or runtime.legacy_view:
            return None
        if self.cgroup.unified_controllers:
            return (
                f"crun cannot create containers on this hybrid cgroup host (the cgroup2 mount "
                f"at {self.cgroup.unified} has controllers "
                f"{', '.join(self.cgroup.unified_controllers)})"
            )
        if needs_limits:
            return "crun cannot apply resource limits on a hybrid cgroup host"
        return None

    def select(self, requested: str | None, needs_limits: bool) -> tuple[Runtime, str | None]:
        """The runtime for one container, and a note when it is not the one asked for."""
        name = requested or self.default
        runtime = self.available.get(name)
        if runtime is None:
            raise NotFound(f"unknown runtime {name!r}: this engine has {', '.join(self.available)}")
        reason = self.crun_limitation(runtime, needs_limits)
        if reason is None:
            return runtime, None
        fallback = next((r for r in self.available.values() if r.kind == "runc"), None)
        if fallback is None:
            raise PortsideError(f"{reason}, and runc is not installed: apt-get install runc")
        return fallback, f"{reason}; using runc {fallback.version} instead"

    def info(self) -> dict[str, Any]:
        return {
            "Runtimes": {name: {"path": r.path} for name, r in self.available.items()},
            "DefaultRuntime": self.default,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": self.cgroup.version,
            "CgroupMode": self.cgroup.mode,
            "RuntimeDetails": {name: r.describe() for name, r in self.available.items()},
            "Warnings": [w for r in self.available.values() for w in r.warnings] + self.notes,
        }


class RuntimeError_(PortsideError):
    """A runtime command failed; the message is the runtime's own."""


async def state(runtime: Runtime, cid: str) -> dict[str, Any] | None:
    code, out, err = await _run(runtime.argv("state", cid))
    if code != 0:
        msg = _clean_error(runtime.kind, err.decode(errors="replace"))
        if "does not exist" in msg or "not exist" in msg or "No such" in msg.title():
            return None
        if "not found" in msg.lower():
            return None
        raise RuntimeError_(f"{runtime.name} state {cid[:12]}: {msg}")
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return None


async def _simple(runtime: Runtime, *args: str) -> None:
    code, _, err = await _run(runtime.argv(*args))
    if code != 0:
        msg = _clean_error(runtime.kind, err.decode(errors="replace"))
        low = msg.lower()
        if "not running" in low or "is paused" in low or "stopped" in low:
            raise Conflict(f"{runtime.name} {args[0]}: {msg}")
        if "does not exist" in low or "not found" in low:
            raise NotFound(f"{runtime.name} {args[0]}: {msg}")
        raise RuntimeError_(f"{runtime.name} {args[0]}: {msg}")


async def kill(runtime: Runtime, cid: str, sig: int, *, all_procs: bool = False) -> None:
    args = ["kill", *(["--all"] if all_procs and runtime.kind == "runc" else []), cid, str(sig)]
    await _simple(runtime, *args)


async def pause(runtime: Runtime, cid: str) -> None:
    await _simple(runtime, "pause", cid)


async def resume(runtime: Runtime, cid: str) -> None:
    await _simple(runtime, "resume", cid)


async def delete(runtime: Runtime, cid: str, *, force: bool = False) -> None:
    try:
        await _simple(runtime, "delete", *(["--force"] if force else []), cid)
    except NotFound:
        pass
