"""Docker-shaped views of a container record: ``docker inspect`` and ``/containers/json``."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from engine.runtime.logs import parse_time
from engine.runtime.networking import list_ports, settings_ports
from engine.runtime.record import ZERO_TIME, Record
from engine.runtime.spec import MASKED_PATHS, READONLY_PATHS, args_of

_HOST_DEFAULTS: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "KernelMemory": 0,
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": None,
    "PidsLimit": None,
    "Ulimits": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "Init": None,
    "Tmpfs": None,
}


def human_duration(seconds: float) -> str:
    """docker's ``units.HumanDuration``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _since(stamp: str) -> float:
    if not stamp or stamp == ZERO_TIME:
        return 0.0
    return time.time() - parse_time(stamp) / 1e9


def status_text(rec: Record) -> str:
    st = rec.State
    if st.Status == "running":
        return f"Up {human_duration(_since(st.StartedAt))}"
    if st.Status == "paused":
        return f"Up {human_duration(_since(st.StartedAt))} (Paused)"
    if st.Status == "restarting":
        return f"Restarting ({st.ExitCode}) {human_duration(_since(st.FinishedAt))} ago"
    if st.Status == "exited":
        return f"Exited ({st.ExitCode}) {human_duration(_since(st.FinishedAt))} ago"
    if st.Status == "removing":
        return "Removal In Progress"
    if st.Status == "dead":
        return "Dead"
    return "Created"


def network_settings(network: str) -> dict[str, Any]:
    endpoint = {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": "",
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DriverOpts": None,
        "DNSNames": None,
    }
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {network: endpoint},
    }


def network_settings_of(rec: Record) -> dict[str, Any]:
    """NetworkSettings of a container: one entry per configured network, filled in with its
    live endpoint (address, gateway, MAC, aliases) while it runs; published Ports."""
    names = list(rec.Networks) or [rec.Network]
    out = network_settings(names[0])
    nets: dict[str, Any] = {}
    for name in names:
        ep = dict(out["Networks"][names[0]])
        live = rec.Attached.get(name) or {}
        aliases = (rec.Networks.get(name) or {}).get("Aliases") or []
        if live:
            aliases = live.get("Aliases") or aliases
            ep.update({k: live[k] for k in _EP_KEYS})
            ep["DNSNames"] = [rec.short_name, rec.Id[:12], *aliases]
        ep["Aliases"] = list(aliases) or None
        nets[name] = ep
    out["Networks"] = nets
    first = rec.Attached.get(names[0]) or {}
    if first:
        out.update({k: first[k] for k in _EP_KEYS if k != "NetworkID"})
        out["SandboxKey"] = rec.Netns
        out["SandboxID"] = rec.Id
    out["Ports"] = settings_ports(rec)
    return out


_EP_KEYS = ("NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress")


def mounts_view(rec: Record, volumes_root: Path) -> list[dict[str, Any]]:
    out = []
    for m in rec.Mounts:
        kind = m["type"]
        rw = not m.get("read_only")
        if kind == "bind":
            out.append(
                {
                    "Type": "bind",
                    "Source": m["source"],
                    "Destination": m["destination"],
                    "Mode": "" if rw else "ro",
                    "RW": rw,
                    "Propagation": m.get("propagation") or "rprivate",
                }
            )
        elif kind == "volume":
            out.append(
                {
                    "Type": "volume",
                    "Name": m["source"],
                    "Source": str(volumes_root / m["source"] / "_data"),
                    "Destination": m["destination"],
                    "Driver": "local",
                    "Mode": "z" if rw else "ro",
                    "RW": rw,
                    "Propagation": "",
                }
            )
        else:
            out.append(
                {
                    "Type": "tmpfs",
                    "Source": "",
                    "Destination": m["destination"],
                    "Mode": ",".join(m.get("options") or []),
                    "RW": "ro" not in (m.get("options") or []),
                    "Propagation": "",
                }
            )
    return out


def config_view(rec: Record) -> dict[str, Any]:
    c = rec.Config
    out: dict[str, Any] = {
        "Hostname": c.get("Hostname") or rec.Id[:12],
        "Domainname": c.get("Domainname", ""),
        "User": c.get("User", ""),
        "AttachStdin": bool(c.get("AttachStdin")),
        "AttachStdout": bool(c.get("AttachStdout")),
        "AttachStderr": bool(c.get("AttachStderr")),
        "Tty": bool(c.get("Tty")),
        "OpenStdin": bool(c.get("OpenStdin")),
        "StdinOnce": bool(c.get("StdinOnce")),
        "Env": c.get("Env"),
        "Cmd": c.get("Cmd"),
        "Image": rec.ImageName,
        "Volumes": c.get("Volumes"),
        "WorkingDir": c.get("WorkingDir", ""),
        "Entrypoint": c.get("Entrypoint"),
        "OnBuild": c.get("OnBuild"),
        "Labels": c.get("Labels") or {},
    }
    for key in ("ExposedPorts", "StopSignal", "StopTimeout", "Healthcheck", "ArgsEscaped"):
        if c.get(key) is not None:
            out[key] = c[key]
    return out


def inspect_view(
    rec: Record,
    *,
    cdir: Path,
    volumes_root: Path,
    graph: dict[str, str],
    driver: str,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    args = args_of(rec.Config)
    host = {**_HOST_DEFAULTS, **rec.HostConfig, "Runtime": rec.Runtime}
    if not host.get("Privileged"):
        host.setdefault("MaskedPaths", list(MASKED_PATHS))
        host.setdefault("ReadonlyPaths", list(READONLY_PATHS))
    log_type = (host.get("LogConfig") or {}).get("Type") or "json-file"
    out: dict[str, Any] = {
        "Id": rec.Id,
        "Created": rec.Created,
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": dict(rec.State.__dict__),
        "Image": rec.Image,
        "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"),
        "HostsPath": str(cdir / "hosts"),
        "LogPath": str(cdir / f"{rec.Id}-json.log") if log_type == "json-file" else "",
        "Name": rec.Name,
        "RestartCount": rec.RestartCount,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(rec.ExecIDs) or None,
        "HostConfig": host,
        "GraphDriver": {"Name": driver, "Data": graph},
        "Mounts": mounts_view(rec, volumes_root),
        "Config": config_view(rec),
        "NetworkSettings": network_settings_of(rec),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def command_text(rec: Record) -> str:
    return " ".join(shlex.quote(a) if (" " in a or not a) else a for a in args_of(rec.Config))


def list_item(rec: Record, volumes_root: Path) -> dict[str, Any]:
    return {
        "Id": rec.Id,
        "Names": [rec.Name],
        "Image": rec.ImageName,
        "ImageID": rec.Image,
        "Command": command_text(rec),
        "Created": int(parse_time(rec.Created) // 1_000_000_000),
        "Ports": list_ports(rec),
        "Labels": rec.Config.get("Labels") or {},
        "State": rec.State.Status,
        "Status": status_text(rec),
        "HostConfig": {"NetworkMode": rec.HostConfig.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": network_settings_of(rec)["Networks"]},
        "Mounts": mounts_view(rec, volumes_root),
    }
