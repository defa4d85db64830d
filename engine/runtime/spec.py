"""OCI runtime-spec ``config.json`` from an image config plus docker's run options.

``merge_config`` applies docker's create-time rules once (the result is what ``inspect``
shows as ``Config``): env merged by key with the user winning, a given entrypoint drops the
image's cmd, working dir, user, labels, volumes and stop signal from the image unless given.

``build_spec`` produces the runtime's config at start: default mounts (/proc, /dev, /dev/pts,
/dev/shm, /dev/mqueue, /sys read-only), masked and read-only paths, docker's default
capability set, the default seccomp profile, device rules, namespaces (a prepared network
namespace to join for networked containers), cgroup limits and rlimits. ``process_spec``
builds the ``process`` of an exec.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument
from engine.runtime import caps as capabilities
from engine.runtime import fsroot, seccomp
from engine.runtime.hostconfig import DEFAULT_SHM, MountSpec, Rlimit, parse_ulimits
from engine.runtime.users import ExecUser

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_DEST = "/sbin/docker-init"
INIT_CANDIDATES = (
    "/usr/bin/docker-init",
    "/usr/bin/tini-static",
    "/usr/libexec/docker/docker-init",
)
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    *(
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2))
    ),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
]


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def merge_env(base: list[str] | None, override: list[str] | None) -> list[str]:
    """Environment lists merged by key, ``override`` winning, order of first appearance."""
    out: dict[str, str] = {}
    for item in [*(base or []), *(override or [])]:
        if not item:
            continue
        out[_env_key(item)] = item
    return list(out.values())


def merge_config(image_config: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """docker's create-time merge of the user's ``Config`` with the image's ``config``."""
    img = image_config.get("config") or {}
    out = dict(config)
    entry = config.get("Entrypoint")
    cmd = config.get("Cmd")
    if isinstance(entry, str):
        entry = [entry]
    if isinstance(cmd, str):
        cmd = [cmd]
    if not entry:
        if not cmd:
            cmd = img.get("Cmd")
        if entry is None:
            entry = img.get("Entrypoint")
    if entry == [""]:
        entry = None
    out["Entrypoint"] = list(entry) if entry else None
    out["Cmd"] = list(cmd) if cmd else None
    out["Env"] = merge_env(img.get("Env"), config.get("Env"))
    if not any(_env_key(e) == "PATH" for e in out["Env"]):
        out["Env"].insert(0, DEFAULT_PATH)
    for key in ("WorkingDir", "User", "StopSignal"):
        if not config.get(key) and img.get(key):
            out[key] = img[key]
    for key in ("Labels", "Volumes", "ExposedPorts"):
        merged = dict(img.get(key) or {})
        merged.update(config.get(key) or {})
        out[key] = merged or None
    if config.get("Healthcheck") is None and img.get("Healthcheck"):
        out["Healthcheck"] = img["Healthcheck"]
    if img.get("OnBuild"):
        out["OnBuild"] = img["OnBuild"]
    workdir = out.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    if not (out["Entrypoint"] or out["Cmd"]):
        raise InvalidArgument("No command specified: give a command or use an image with a CMD")
    return out


def check_workdir(workdir: str) -> None:
    """Refuse working directories under /proc (``/proc/self/fd/N``: CVE-2024-21626)."""
    clean = fsroot.clean(workdir)
    if clean == "/proc" or clean.startswith("/proc/"):
        raise InvalidArgument(
            f"the working directory {workdir} is inside /proc; use a directory of the image"
        )


def args_of(config: dict[str, Any]) -> list[str]:
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def _mount(dest: str, mtype: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": mtype, "source": source, "options": options}


def default_mounts(*, privileged: bool, host_network: bool, shm_size: int) -> list[dict[str, Any]]:
    ro = [] if privileged else ["ro"]
    sys_mount = (
        _mount("/sys", "bind", "/sys", ["rbind", "nosuid", "noexec", "nodev", *ro])
        if host_network
        else _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro])
    )
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        sys_mount,
        _mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", *ro]
        ),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        ),
    ]


def user_mount(m: MountSpec, host_source: str) -> dict[str, Any]:
    """The OCI mount of a validated bind, volume (``host_source`` = its data dir) or tmpfs."""
    if m.type == "tmpfs":
        opts = list(m.options)
        keys = {o.split("=", 1)[0] for o in opts}
        defaults = []
        if not keys & {"exec", "noexec"}:
            defaults.append("noexec")
        if not keys & {"suid", "nosuid"}:
            defaults.append("nosuid")
        if not keys & {"dev", "nodev"}:
            defaults.append("nodev")
        if "mode" not in keys:
            defaults.append("mode=1777")
        return _mount(m.destination, "tmpfs", "tmpfs", [*defaults, *opts])
    options = ["rbind", "ro" if m.read_only else "rw", m.propagation or "rprivate"]
    return _mount(m.destination, "bind", host_source, options)


def find_init() -> str:
    for path in INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return os.path.realpath(path)
    found = shutil.which("tini-static") or shutil.which("docker-init")
    if found:
        return os.path.realpath(found)
    raise InvalidArgument(
        "--init needs a static init binary (docker-init or tini-static): apt-get install tini"
    )


def _rlimits(items: list[Rlimit]) -> list[dict[str, Any]]:
    return [{"type": r.type, "soft": r.soft, "hard": r.hard} for r in items]


def _resources(host: dict[str, Any], privileged: bool) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if privileged else list(_DEFAULT_DEVICE_RULES)
    }
    memory: dict[str, Any] = {}
    if host.get("Memory"):
        limit = int(host["Memory"])
        memory["limit"] = limit
        swap = int(host.get("MemorySwap") or 0)
        memory["swap"] = limit * 2 if swap == 0 else swap
    if host.get("MemoryReservation"):
        memory["reservation"] = int(host["MemoryReservation"])
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if host.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(host["NanoCpus"]) * 100000 // 1_000_000_000
    if host.get("CpuQuota"):
        cpu["quota"] = int(host["CpuQuota"])
    if host.get("CpuPeriod"):
        cpu["period"] = int(host["CpuPeriod"])
    if host.get("CpuShares"):
        cpu["shares"] = int(host["CpuShares"])
    if host.get("CpusetCpus"):
        cpu["cpus"] = str(host["CpusetCpus"])
    if host.get("CpusetMems"):
        cpu["mems"] = str(host["CpusetMems"])
    if cpu:
        res["cpu"] = cpu
    pids = host.get("PidsLimit")
    if pids and int(pids) > 0:
        res["pids"] = {"limit": int(pids)}
    if host.get("BlkioWeight"):
        res["blockIO"] = {"weight": int(host["BlkioWeight"])}
    return res


def _host_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev (for --privileged), as docker adds them."""
    out = []
    skip = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/fd")
    for path in sorted(glob.glob("/dev/**", recursive=True)):
        if path.startswith(skip) or path in ("/dev/tty", "/dev/null", "/dev/zero"):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        import stat as st_mod

        if st_mod.S_ISCHR(st.st_mode):
            kind = "c"
        elif st_mod.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            continue
        out.append(
            {
                "path": path,
                "type": kind,
                "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev),
                "fileMode": st.st_mode & 0o7777,
                "uid": 0,
                "gid": 0,
            }
        )
    return out


def security_options(host: dict[str, Any]) -> dict[str, Any]:
    """``SecurityOpt`` entries: no-new-privileges, seccomp=unconfined|<json>, label/apparmor."""
    out: dict[str, Any] = {"no_new_privileges": False, "seccomp": None, "unconfined": False}
    for opt in host.get("SecurityOpt") or []:
        key, _sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        key = key.strip()
        if key == "no-new-privileges":
            out["no_new_privileges"] = value.strip().lower() in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                out["unconfined"] = True
            else:
                out["seccomp"] = seccomp.parse_user_profile(value)
        elif key in ("label", "apparmor", "systempaths"):
            if key == "systempaths" and value == "unconfined":
                out["systempaths_unconfined"] = True
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt {opt!r}")
    return out


def capabilities_for(host: dict[str, Any]) -> list[str]:
    return capabilities.effective_set(
        privileged=bool(host.get("Privileged")),
        cap_add=host.get("CapAdd"),
        cap_drop=host.get("CapDrop"),
    )


def _caps_object(caps: list[str], uid: int) -> dict[str, list[str]]:
    # Like docker >= 23: non-root users get a bounding set but no effective/permitted caps.
    active = caps if uid == 0 else []
    return {"bounding": caps, "effective": active, "permitted": active}


def process_env(
    config_env: list[str], *, hostname: str, user: ExecUser, tty: bool, extra: list[str]
) -> list[str]:
    env = merge_env([f"HOSTNAME={hostname}"] if hostname else [], config_env)
    env = merge_env(env, extra)
    keys = {_env_key(e) for e in env}
    if "PATH" not in keys:
        env.insert(0, DEFAULT_PATH)
    if "HOME" not in keys:
        env.append(f"HOME={user.home or '/'}")
    if tty and "TERM" not in keys:
        env.append("TERM=xterm")
    return env


def build_spec(
    *,
    cid: str,
    config: dict[str, Any],
    host: dict[str, Any],
    user: ExecUser,
    rootfs: Path,
    network: str,
    etc_files: dict[str, Path],
    mounts: list[dict[str, Any]],
    cgroup_v2: bool,
    console_size: tuple[int, int] | None = None,
    netns_path: str = "",
) -> dict[str, Any]:
    """The OCI runtime config of a container (see the module docstring); ``netns_path`` is
    a network namespace to join (the container's own, attached to its networks, or the
    one of the container named by ``container:NAME``)."""
    privileged = bool(host.get("Privileged"))
    sec = security_options(host)
    caps = capabilities_for(host)
    host_net = network == "host"
    uts_host = host_net or host.get("UTSMode") == "host"
    hostname = "" if uts_host else (config.get("Hostname") or cid[:12])
    tty = bool(config.get("Tty"))
    args = args_of(config)
    if host.get("Init"):
        args = [INIT_DEST, "--", *args]
    process: dict[str, Any] = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": process_env(
            config.get("Env") or [], hostname=hostname, user=user, tty=tty, extra=[]
        ),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": _caps_object(caps, user.uid),
        "noNewPrivileges": sec["no_new_privileges"],
    }
    if tty and console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    rlimits, _ = parse_ulimits(host.get("Ulimits"))
    if rlimits:
        process["rlimits"] = _rlimits(rlimits)
    if host.get("OomScoreAdj"):
        process["oomScoreAdj"] = int(host["OomScoreAdj"])

    shm = int(host.get("ShmSize") or DEFAULT_SHM)
    all_mounts = default_mounts(privileged=privileged, host_network=host_net, shm_size=shm)
    user_dests = {m["destination"] for m in mounts}
    all_mounts = [m for m in all_mounts if m["destination"] not in user_dests]
    etc_ro = ["ro"] if host.get("ReadonlyRootfs") else []
    for dest, key in (
        ("/etc/resolv.conf", "resolv.conf"),
        ("/etc/hostname", "hostname"),
        ("/etc/hosts", "hosts"),
    ):
        if dest not in user_dests and key in etc_files:
            all_mounts.append(
                _mount(dest, "bind", str(etc_files[key]), ["rbind", "rprivate", *etc_ro])
            )
    if host.get("Init"):
        all_mounts.append(_mount(INIT_DEST, "bind", find_init(), ["bind", "ro", "nosuid"]))
    all_mounts.extend(sorted(mounts, key=lambda m: m["destination"].rstrip("/").count("/")))

    namespaces = [{"type": "mount"}]
    if host.get("PidMode") != "host":
        namespaces.append({"type": "pid"})
    if host.get("IpcMode") != "host":
        namespaces.append({"type": "ipc"})
    if not uts_host:
        namespaces.append({"type": "uts"})
    if netns_path:
        namespaces.append({"type": "network", "path": netns_path})
    elif not host_net:
        namespaces.append({"type": "network"})
    if cgroup_v2 and host.get("CgroupnsMode") != "host":
        namespaces.append({"type": "cgroup"})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(host, privileged),
        "cgroupsPath": f"/portside/{cid}",
    }
    if not privileged and not sec.get("systempaths_unconfined"):
        masked = list(MASKED_PATHS)
        masked.extend(sorted(glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle")))
        linux["maskedPaths"] = masked
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if not privileged and not sec["unconfined"]:
        linux["seccomp"] = seccomp.profile_for(caps, sec["seccomp"])
    if host.get("Sysctls"):
        linux["sysctl"] = {str(k): str(v) for k, v in host["Sysctls"].items()}
    if privileged:
        linux["devices"] = _host_devices()
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": bool(host.get("ReadonlyRootfs"))},
        "mounts": all_mounts,
        "linux": linux,
    }
    if hostname:
        spec["hostname"] = hostname
    if config.get("Domainname") and not uts_host:
        spec["domainname"] = config["Domainname"]
    return spec


def process_spec(
    *,
    base: dict[str, Any],
    args: list[str],
    env: list[str],
    user: ExecUser,
    cwd: str,
    tty: bool,
    privileged: bool,
    host: dict[str, Any],
    hostname: str,
    console_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The ``process`` of an exec: the container's settings with the exec's overrides."""
    if not args:
        raise InvalidArgument("No exec command specified")
    caps = (
        list(capabilities.available())
        if privileged
        else base.get("capabilities", {}).get("bounding") or capabilities_for(host)
    )
    proc: dict[str, Any] = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": process_env(env, hostname=hostname, user=user, tty=tty, extra=[]),
        "cwd": cwd or "/",
        "capabilities": _caps_object(caps, user.uid),
        "noNewPrivileges": bool(base.get("noNewPrivileges")),
    }
    if tty and console_size:
        proc["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if base.get("rlimits"):
        proc["rlimits"] = base["rlimits"]
    return proc
