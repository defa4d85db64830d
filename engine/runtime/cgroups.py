"""cgroups: how this host mounts them (v2, v1 or hybrid) and what a container uses.

Reading only: the runtime creates and configures cgroups, we find a container's through
``/proc/<pid>/cgroup`` and read usage for ``stats``, ``top`` and OOM detection. Works on
cgroup v1 (one mount per controller), v2 (one unified mount) and hybrid hosts (v1
controllers plus a cgroup2 mount at /sys/fs/cgroup/unified).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupHost:
    """How cgroups are mounted here."""

    mode: str  # "v2" | "v1" | "hybrid" | "none"
    v1_mounts: dict[str, Path] = field(default_factory=dict)  # controller -> mount point
    unified: Path | None = None  # the cgroup2 mount
    unified_controllers: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return "2" if self.mode == "v2" else "1"

    def describe(self) -> str:
        if self.mode == "hybrid":
            extra = (
                f" with controllers {', '.join(self.unified_controllers)} on cgroup2"
                if self.unified_controllers
                else ""
            )
            return f"hybrid (v1 controllers, cgroup2 at {self.unified}{extra})"
        return {"v2": "v2 (unified)", "v1": "v1 (legacy)"}.get(self.mode, "none")


def _mountinfo() -> list[tuple[Path, str, str]]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            point = Path(fields[4].encode().decode("unicode_escape"))
            out.append((point, rfields[0], rfields[2]))
    return out


@cache
def host() -> CgroupHost:
    """Probe once: which cgroup layout this machine has."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for point, fstype, opts in _mountinfo():
        if fstype == "cgroup2":
            if point == CGROUP_ROOT or unified is None:
                unified = point
        elif fstype == "cgroup":
            for opt in opts.split(","):
                if opt in ("rw", "ro") or opt.startswith(("relatime", "nosuid", "nodev")):
                    continue
                if opt.startswith("name=") or "=" not in opt:
                    v1.setdefault(opt, point)
    if unified == CGROUP_ROOT:
        return CgroupHost("v2", {}, unified, _controllers(unified))
    if v1 and unified is not None:
        return CgroupHost("hybrid", v1, unified, _controllers(unified))
    if v1:
        return CgroupHost("v1", v1, None, ())
    return CgroupHost("none")


def _controllers(unified: Path) -> tuple[str, ...]:
    try:
        return tuple((unified / "cgroup.controllers").read_text().split())
    except OSError:
        return ()


def process_cgroups(pid: int) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as {controller or "" (v2): path}."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                out[""] = path
            for c in ctrls.split(","):
                if c:
                    out[c] = path
    return out


@dataclass(frozen=True)
class ContainerCgroup:
    """Where one container's cgroup files are (resolved while it runs)."""

    v2: Path | None = None  # the unified dir on a v2 host
    v1: dict[str, Path] = field(default_factory=dict)

    def dir(self, controller: str) -> Path | None:
        if self.v2 is not None:
            return self.v2
        return self.v1.get(controller)

    def to_json(self) -> dict[str, object]:
        return {
            "v2": str(self.v2) if self.v2 else None,
            "v1": {k: str(v) for k, v in self.v1.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> ContainerCgroup:
        if not data:
            return cls()
        v2 = data.get("v2")
        v1 = data.get("v1") or {}
        return cls(Path(str(v2)) if v2 else None, {k: Path(v) for k, v in dict(v1).items()})  # type: ignore[call-overload]


def container_cgroup(pid: int) -> ContainerCgroup:
    """The cgroup directories of a running process."""
    info = host()
    cgs = process_cgroups(pid)
    if info.mode == "v2":
        return ContainerCgroup(v2=info.unified / cgs.get("", "/").lstrip("/"))  # type: ignore[operator]
    dirs: dict[str, Path] = {}
    for ctrl, point in info.v1_mounts.items():
        key = ctrl
        if key in cgs:
            dirs[ctrl] = point / cgs[key].lstrip("/")
    # cpu,cpuacct may be co-mounted: any mount whose options list the controller
    return ContainerCgroup(v1=dirs)


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def oom_kills(cg: ContainerCgroup) -> int:
    """How many processes the kernel OOM-killed in this cgroup."""
    d = cg.dir("memory")
    if d is None:
        return 0
    if cg.v2 is not None:
        return _kv(_read(d / "memory.events")).get("oom_kill", 0)
    return _kv(_read(d / "memory.oom_control")).get("oom_kill", 0)


def pids(cg: ContainerCgroup) -> list[int]:
    """Processes in the container's cgroup."""
    d = cg.v2 or cg.v1.get("pids") or cg.v1.get("memory") or next(iter(cg.v1.values()), None)
    text = _read(d / "cgroup.procs") if d else None
    return [int(p) for p in (text or "").split() if p.isdigit()]


def freezer_state(cg: ContainerCgroup) -> str | None:
    if cg.v2 is not None:
        value = _read(cg.v2 / "cgroup.freeze")
        return None if value is None else ("FROZEN" if value.strip() == "1" else "THAWED")
    value = _read(cg.v1["freezer"] / "freezer.state") if "freezer" in cg.v1 else None
    return value.strip() if value else None


def _system_cpu_ns() -> int:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    return 0


def stats(cg: ContainerCgroup) -> dict[str, object]:
    """Usage counters in the shape of docker's stats (cpu, memory, pids, blkio)."""
    cpu: dict[str, object] = {}
    memory: dict[str, object] = {}
    pids_stats: dict[str, object] = {}
    blkio: list[dict[str, object]] = []
    if cg.v2 is not None:
        d = cg.v2
        cs = _kv(_read(d / "cpu.stat"))
        cpu = {
            "cpu_usage": {
                "total_usage": cs.get("usage_usec", 0) * 1000,
                "usage_in_kernelmode": cs.get("system_usec", 0) * 1000,
                "usage_in_usermode": cs.get("user_usec", 0) * 1000,
            },
            "throttling_data": {
                "periods": cs.get("nr_periods", 0),
                "throttled_periods": cs.get("nr_throttled", 0),
                "throttled_time": cs.get("throttled_usec", 0) * 1000,
            },
        }
        ms = _kv(_read(d / "memory.stat"))
        limit = _int(_read(d / "memory.max"))
        memory = {"usage": _int(_read(d / "memory.current")) or 0, "stats": ms}
        if limit is not None:
            memory["limit"] = limit
        pids_stats = {"current": _int(_read(d / "pids.current")) or 0}
        plimit = _int(_read(d / "pids.max"))
        if plimit is not None:
            pids_stats["limit"] = plimit
        for line in (_read(d / "io.stat") or "").splitlines():
            dev, *pairs = line.split()
            major, _, minor = dev.partition(":")
            values = dict(p.split("=", 1) for p in pairs if "=" in p)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if key in values:
                    blkio.append(
                        {
                            "major": int(major),
                            "minor": int(minor),
                            "op": op,
                            "value": int(values[key]),
                        }
                    )
    else:
        acct = cg.v1.get("cpuacct")
        total = _int(_read(acct / "cpuacct.usage")) if acct else None
        percpu = (
            [int(x) for x in (_read(acct / "cpuacct.usage_percpu") or "").split()] if acct else []
        )
        st = _kv(_read(acct / "cpuacct.stat")) if acct else {}
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        cpu_dir = cg.v1.get("cpu")
        throttle = _kv(_read(cpu_dir / "cpu.stat")) if cpu_dir else {}
        cpu = {
            "cpu_usage": {
                "total_usage": total or 0,
                "percpu_usage": percpu,
                "usage_in_kernelmode": st.get("system", 0) * tick,
                "usage_in_usermode": st.get("user", 0) * tick,
            },
            "throttling_data": {
                "periods": throttle.get("nr_periods", 0),
                "throttled_periods": throttle.get("nr_throttled", 0),
                "throttled_time": throttle.get("throttled_time", 0),
            },
        }
        mem = cg.v1.get("memory")
        if mem is not None:
            memory = {
                "usage": _int(_read(mem / "memory.usage_in_bytes")) or 0,
                "max_usage": _int(_read(mem / "memory.max_usage_in_bytes")) or 0,
                "failcnt": _int(_read(mem / "memory.failcnt")) or 0,
                "limit": _int(_read(mem / "memory.limit_in_bytes")) or 0,
                "stats": _kv(_read(mem / "memory.stat")),
            }
        pd = cg.v1.get("pids")
        if pd is not None:
            pids_stats = {"current": _int(_read(pd / "pids.current")) or 0}
            plimit = _int(_read(pd / "pids.max"))
            if plimit is not None:
                pids_stats["limit"] = plimit
        bd = cg.v1.get("blkio")
        if bd is not None:
            text = _read(bd / "blkio.throttle.io_service_bytes_recursive") or _read(
                bd / "blkio.throttle.io_service_bytes"
            )
            for line in (text or "").splitlines():
                parts = line.split()
                if len(parts) == 3 and ":" in parts[0]:
                    major, _, minor = parts[0].partition(":")
                    blkio.append(
                        {
                            "major": int(major),
                            "minor": int(minor),
                            "op": parts[1].lower(),
                            "value": int(parts[2]),
                        }
                    )
    cpu["system_cpu_usage"] = _system_cpu_ns()
    cpu["online_cpus"] = os.cpu_count() or 1
    return {
        "cpu_stats": cpu,
        "memory_stats": memory,
        "pids_stats": pids_stats,
        "blkio_stats": {"io_service_bytes_recursive": blkio or None},
    }


def network_stats(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the process's network namespace (``/proc/<pid>/net/dev``)."""
    out: dict[str, dict[str, int]] = {}
    try:
        text = Path(f"/proc/{pid}/net/dev").read_text()
    except OSError:
        return out
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if len(values) < 16 or name == "lo":
            continue
        nums = [int(v) for v in values[:16]]
        out[name] = {
            "rx_bytes": nums[0],
            "rx_packets": nums[1],
            "rx_errors": nums[2],
            "rx_dropped": nums[3],
            "tx_bytes": nums[8],
            "tx_packets": nums[9],
            "tx_errors": nums[10],
            "tx_dropped": nums[11],
        }
    return out
