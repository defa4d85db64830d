"""Validation of docker's ContainerCreate options into plain values the spec builder uses.

Every option a user can get wrong fails here, at create time, with a one-line message: bind
and volume specs, ``--tmpfs`` options (a fixed allow list: no ``bind-propagation`` games,
CVE-2024-9407), ``--ulimit`` (clamped to this process's hard limit: raising one needs
CAP_SYS_RESOURCE, which these hosts lack), ``--memory``, ``--cpus``, ``--pids-limit``,
restart policies, log options, network modes and stop signals.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidArgument
from engine.network.model import parse_network_mode
from engine.network.ports import from_docker_bindings, parse_exposed
from engine.runtime.fsroot import clean
from engine.runtime.signals import parse_signal

NETWORK_MODES = ("none", "host")
# docker's default: the engine's own "bridge" network (engine/runtime/networking.py)
DEFAULT_NETWORK = "bridge"
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
LOG_DRIVERS = ("json-file", "none")
MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_SHM = 64 * 1024 * 1024
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_TMPFS_FLAGS = ("rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime")
_TMPFS_FLAGS += ("noatime", "relatime", "norelatime", "strictatime", "nostrictatime")
_TMPFS_KEYS = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "tmpcopyup")
_ULIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
    "as": "RLIMIT_AS",
}


@dataclass
class MountSpec:
    """One mount of a container, as validated at create time."""

    type: str  # "bind" | "volume" | "tmpfs"
    destination: str
    source: str = ""  # host path (bind) or volume name (volume)
    read_only: bool = False
    propagation: str = ""
    options: list[str] = field(default_factory=list)  # tmpfs options
    anonymous: bool = False
    create_source: bool = False  # -v /missing:/x creates the host dir, as docker does
    nocopy: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MountSpec:
        return cls(**data)


def parse_size(value: str | int, what: str) -> int:
    """``512m``, ``1g``, ``100k``, ``123`` (bytes) -> bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", value.lower())
    if not m:
        raise InvalidArgument(f"invalid {what} {value!r}: use a size like 512m or 1g")
    number = float(m.group(1))
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(number * scale[m.group(2)])


def _destination(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount {spec!r}: the destination must be an absolute path")
    dest = clean(dest)
    if dest == "/":
        raise InvalidArgument(f"invalid mount {spec!r}: the destination can't be '/'")
    return dest


def parse_bind(spec: str) -> MountSpec:
    """``-v /host:/ctr[:opts]``, ``-v name:/ctr[:opts]`` or ``-v /ctr`` (anonymous volume)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountSpec("volume", _destination(parts[0], spec), anonymous=True)
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: {spec!r}")
    source, dest = parts[0], _destination(parts[1], spec)
    opts = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    mount = MountSpec("bind" if source.startswith("/") else "volume", dest, source)
    for opt in opts:
        if opt in ("ro", "rw"):
            mount.read_only = opt == "ro"
        elif opt in _PROPAGATIONS:
            if mount.type != "bind":
                raise InvalidArgument(f"invalid volume specification {spec!r}: {opt} is for binds")
            mount.propagation = opt
        elif opt in ("z", "Z", "consistent", "cached", "delegated"):
            continue
        elif opt == "nocopy":
            mount.nocopy = True
        else:
            raise InvalidArgument(f"invalid mode {opt!r} in volume specification {spec!r}")
    if mount.type == "bind":
        mount.source = clean(source)
        mount.create_source = True
    elif not _VOLUME_NAME.match(source):
        raise InvalidArgument(
            f"invalid volume name {source!r}: use letters, digits, '_', '.', '-' "
            "(or an absolute host path for a bind mount)"
        )
    return mount


def parse_mount(item: dict[str, Any]) -> MountSpec:
    """One entry of ``HostConfig.Mounts`` (``--mount type=...``)."""
    kind = item.get("Type") or "volume"
    target = item.get("Target") or item.get("Destination") or ""
    dest = _destination(target, f"--mount target={target}")
    read_only = bool(item.get("ReadOnly"))
    if kind == "bind":
        source = item.get("Source") or ""
        if not source.startswith("/"):
            raise InvalidArgument("invalid mount: a bind mount needs an absolute source path")
        opts = item.get("BindOptions") or {}
        prop = opts.get("Propagation") or ""
        if prop and prop not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid bind propagation {prop!r}")
        if not os.path.exists(source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {source}'
            )
        return MountSpec("bind", dest, clean(source), read_only, prop)
    if kind == "volume":
        source = item.get("Source") or ""
        if source and not _VOLUME_NAME.match(source):
            raise InvalidArgument(f"invalid volume name {source!r}")
        nocopy = bool((item.get("VolumeOptions") or {}).get("NoCopy"))
        return MountSpec("volume", dest, source, read_only, anonymous=not source, nocopy=nocopy)
    if kind == "tmpfs":
        opts = item.get("TmpfsOptions") or {}
        options = []
        if opts.get("SizeBytes"):
            options.append(f"size={int(opts['SizeBytes'])}")
        if opts.get("Mode"):
            options.append(f"mode={int(opts['Mode']):o}")
        if read_only:
            options.append("ro")
        return MountSpec("tmpfs", dest, options=_tmpfs_options(",".join(options), dest))
    raise InvalidArgument(f"unsupported mount type {kind!r}: use bind, volume or tmpfs")


def _tmpfs_options(text: str, dest: str) -> list[str]:
    out = []
    for opt in filter(None, (o.strip() for o in text.split(","))):
        key, eq, value = opt.partition("=")
        if not eq and key in _TMPFS_FLAGS:
            out.append(key)
        elif eq and key in _TMPFS_KEYS:
            if key == "size":
                value = str(parse_size(value, "tmpfs size"))
            elif key == "mode" and not re.fullmatch(r"[0-7]{1,4}", value):
                raise InvalidArgument(f"invalid tmpfs mode {value!r} for {dest}: use octal")
            elif key in ("uid", "gid", "nr_inodes", "nr_blocks") and not value.isdigit():
                raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}")
            out.append(f"{key}={value}")
        else:
            raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}")
    return out


def parse_tmpfs(tmpfs: dict[str, str]) -> list[MountSpec]:
    return [
        MountSpec("tmpfs", _destination(dest, dest), options=_tmpfs_options(opts or "", dest))
        for dest, opts in (tmpfs or {}).items()
    ]


def collect_mounts(config: dict[str, Any], host: dict[str, Any]) -> list[MountSpec]:
    """Every mount of a container: ``Binds``, ``Mounts``, ``Tmpfs`` and ``Config.Volumes``
    (image volumes included by the caller); one mount per destination."""
    mounts: list[MountSpec] = []
    mounts.extend(parse_bind(b) for b in host.get("Binds") or [])
    mounts.extend(parse_mount(m) for m in host.get("Mounts") or [])
    mounts.extend(parse_tmpfs(host.get("Tmpfs") or {}))
    seen: dict[str, MountSpec] = {}
    for m in mounts:
        if m.destination in seen:
            raise InvalidArgument(f"duplicate mount point: {m.destination}")
        seen[m.destination] = m
    for dest in config.get("Volumes") or {}:
        d = _destination(dest, dest)
        if d not in seen:
            seen[d] = MountSpec("volume", d, anonymous=True)
            mounts.append(seen[d])
    return mounts


@dataclass(frozen=True)
class Rlimit:
    type: str
    soft: int
    hard: int


def parse_ulimits(items: list[dict[str, Any]] | None) -> tuple[list[Rlimit], list[str]]:
    """``--ulimit`` entries; values above this process's hard limit are clamped (warnings)."""
    out: list[Rlimit] = []
    warnings: list[str] = []
    for item in items or []:
        name = str(item.get("Name", "")).lower()
        if name not in _ULIMITS:
            raise InvalidArgument(f"invalid ulimit type {name!r}")
        soft, hard = int(item.get("Soft", 0)), int(item.get("Hard", 0))
        if soft > hard and hard >= 0:
            raise InvalidArgument(
                f"invalid ulimit {name}: soft limit {soft} is above hard limit {hard}"
            )
        rtype = _ULIMITS[name]
        current_hard = resource.getrlimit(getattr(resource, rtype))[1]
        if current_hard != resource.RLIM_INFINITY:
            if hard < 0 or hard > current_hard:
                warnings.append(
                    f"ulimit {name} hard limit {hard} lowered to {current_hard}: the engine "
                    "cannot raise a hard limit on this host"
                )
                hard = current_hard
            soft = min(soft if soft >= 0 else hard, hard)
        out.append(Rlimit(rtype, soft, hard))
    return out, warnings


def validate(config: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """Check resource, restart, log, network and signal options; returns warnings."""
    warnings: list[str] = []
    memory = int(host.get("Memory") or 0)
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = int(host.get("MemorySwap") or 0)
    if memory and swap > 0 and swap < memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if swap > 0 and not memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit")
    ncpu = os.cpu_count() or 1
    nano = int(host.get("NanoCpus") or 0)
    if nano and (nano < 10_000_000 or nano > ncpu * 1_000_000_000):
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if nano and (host.get("CpuQuota") or host.get("CpuPeriod")):
        raise InvalidArgument(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set"
        )
    if host.get("PidsLimit") is not None and int(host["PidsLimit"]) < -1:
        raise InvalidArgument("invalid pids limit: use a positive number, or 0/-1 for none")
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy {name!r}: use no, always, unless-stopped or on-failure[:N]"
        )
    retries = int(policy.get("MaximumRetryCount") or 0)
    if retries and name != "on-failure":
        raise InvalidArgument(
            f"maximum retry count cannot be used with restart policy {name or 'no'!r}"
        )
    if retries < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if host.get("AutoRemove") and name not in ("", "no"):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    log = host.get("LogConfig") or {}
    driver = log.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f"logging driver {driver!r} is not supported: use json-file or none")
    log_opts = log.get("Config") or {}
    for key in log_opts:
        if key not in ("max-size", "max-file", "compress", "labels", "env", "tag"):
            raise InvalidArgument(f"unknown log opt {key!r} for json-file log driver")
    if "max-size" in log_opts and parse_size(log_opts["max-size"], "max-size") <= 0:
        raise InvalidArgument("max-size must be a positive size")
    if "max-file" in log_opts:
        value = str(log_opts["max-file"])
        if not value.isdigit() or int(value) < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if int(value) > 1 and "max-size" not in log_opts:
            raise InvalidArgument("max-file cannot be set without max-size")
    mode = network_mode(host)
    if host.get("PortBindings") or host.get("PublishAllPorts"):
        if mode in ("host", "none"):
            warnings.append(f"Published ports are discarded when using {mode} network mode")
        elif mode.startswith("container:"):
            if host.get("PublishAllPorts") or any(host["PortBindings"].values()):
                raise InvalidArgument(
                    "conflicting options: port publishing and the container type network "
                    f"mode {mode!r}; use a bridge or user-defined network"
                )
        else:
            from_docker_bindings(host.get("PortBindings") or {})
    for key in (config.get("ExposedPorts") or {}) if host.get("PublishAllPorts") else ():
        parse_exposed(key)
    for key in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"):
        value = host.get(key) or ""
        if value not in ("", "private", "shareable", "host"):
            raise InvalidArgument(f"{key} {value!r} is not supported yet: use host or leave it out")
    if config.get("StopSignal"):
        parse_signal(config["StopSignal"])
    if host.get("ShmSize") is not None and int(host["ShmSize"]) < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    _, ulimit_warnings = parse_ulimits(host.get("Ulimits"))
    warnings.extend(ulimit_warnings)
    return warnings


def network_mode(host: dict[str, Any]) -> str:
    """HostConfig.NetworkMode checked for syntax: none, host, container:NAME, or a network's
    name ("default" is DEFAULT_NETWORK); whether the network exists is checked by the caller."""
    mode = host.get("NetworkMode") or "default"
    if mode == "default":
        return DEFAULT_NETWORK
    parse_network_mode(mode)
    return str(mode)


def restart_policy(host: dict[str, Any]) -> tuple[str, int]:
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    return name, int(policy.get("MaximumRetryCount") or 0)


def has_resource_limits(host: dict[str, Any]) -> bool:
    """Whether the container asks for cgroup limits (memory, cpu, pids, blkio)."""
    keys = (
        "Memory",
        "MemorySwap",
        "MemoryReservation",
        "NanoCpus",
        "CpuShares",
        "CpuPeriod",
        "CpuQuota",
        "CpusetCpus",
        "CpusetMems",
        "BlkioWeight",
        "KernelMemory",
    )
    if any(host.get(k) for k in keys):
        return True
    pids = host.get("PidsLimit")
    return bool(pids and int(pids) > 0)
