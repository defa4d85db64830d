"""System endpoints: ``/_ping``, ``/version``, ``/info`` and ``/system/df``."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from engine.api import containers as containers_api
from engine.api import volumes as volumes_api
from engine.api.base import (
    API_VERSION,
    MIN_API_VERSION,
    Routes,
    engine_of,
    json_reply,
)
from engine.api.host import HostFacts
from engine.errors import InvalidArgument

HOST: web.AppKey[HostFacts] = web.AppKey("host_facts", HostFacts)

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "OSType": "linux",
    "Builder-Version": "1",
    "Docker-Experimental": "false",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}
_DF_TYPES = ("container", "image", "volume", "build-cache")


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    response = web.Response(body=body, headers=_PING_HEADERS)
    response.content_type = "text/plain"
    response.charset = "utf-8"
    if request.method == "HEAD":
        response.headers["Content-Length"] = "0"
    return response


def _server_version() -> str:
    from engine.engine import VERSION

    return VERSION


async def version(request: web.Request) -> web.Response:
    host = request.app[HOST]
    ver = _server_version()
    details = {
        "ApiVersion": API_VERSION,
        "Arch": host.go_arch,
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": host.kernel_version,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    components: list[dict[str, Any]] = [{"Name": "Engine", "Version": ver, "Details": details}]
    for name, (path, runtime_version) in host.runtimes.items():
        components.append(
            {"Name": name, "Version": runtime_version, "Details": {"GitCommit": "", "Path": path}}
        )
    return json_reply(
        {
            "Platform": {"Name": "portside"},
            "Components": components,
            "Version": ver,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": host.go_arch,
            "KernelVersion": host.kernel_version,
            "BuildTime": "",
        }
    )


def _registry_config(engine_value: dict[str, Any] | None, config: Any) -> dict[str, Any]:
    """dockerd's ``RegistryConfig`` block, completed from the engine's registry settings."""
    out: dict[str, Any] = dict(engine_value or {})
    insecure = list(getattr(config, "insecure_registries", []) or [])
    mirrors = list(getattr(config, "registry_mirrors", []) or [])
    out.setdefault("AllowNondistributableArtifactsCIDRs", [])
    out.setdefault("AllowNondistributableArtifactsHostnames", [])
    out.setdefault("InsecureRegistryCIDRs", [r for r in insecure if "/" in r])
    out.setdefault("Mirrors", mirrors)
    index = dict(out.get("IndexConfigs") or {})
    index.setdefault(
        "docker.io", {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}
    )
    for host in insecure:
        if "/" not in host:
            index.setdefault(
                host, {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
            )
    out["IndexConfigs"] = index
    return out


async def info(request: web.Request) -> web.Response:
    engine = engine_of(request)
    host = request.app[HOST]
    known = engine.info()
    if inspect.isawaitable(known):
        known = await known
    runtimes = {name: {"path": path} for name, (path, _ver) in host.runtimes.items()}
    configured = getattr(engine.config, "runtime", None)
    default_runtime = configured or next(iter(runtimes), "")
    out: dict[str, Any] = {
        "ID": "",
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": "",
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": False,
        "NFd": 0,
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": host.cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
        "GenericResources": None,
        "DockerRootDir": str(engine.config.root),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": host.hostname,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": _server_version(),
        "Runtimes": runtimes,
        "DefaultRuntime": default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": None,
    }
    out.update(known)
    out["RegistryConfig"] = _registry_config(known.get("RegistryConfig"), engine.config)
    return json_reply(out)


async def system_df(request: web.Request) -> web.Response:
    engine = engine_of(request)
    wanted = request.query.getall("type", [])
    for kind in wanted:
        if kind not in _DF_TYPES:
            raise InvalidArgument(f"unknown type {kind!r}; use one of {', '.join(_DF_TYPES)}")
    want = set(wanted) or set(_DF_TYPES)
    out: dict[str, Any] = {
        "LayersSize": 0,
        "Images": None,
        "Containers": None,
        "Volumes": None,
        "BuildCache": None,
        "BuilderSize": 0,
    }
    if "image" in want:
        out["Images"] = await engine.images.disk_usage()
        md = engine.metadata
        out["LayersSize"] = sum(layer.size for layer in await md.run(md.list_layers))
    if "container" in want:
        out["Containers"] = await containers_api.disk_usage(engine)
    if "volume" in want:
        out["Volumes"] = await volumes_api.disk_usage(engine)
    if "build-cache" in want:
        out["BuildCache"] = await engine.builds.cache.records()
        out["BuilderSize"] = sum(r["Size"] for r in out["BuildCache"])
    return json_reply(out)


def register(routes: Routes) -> None:
    routes.get("/_ping", ping)
    routes.add("HEAD", "/_ping", ping)
    routes.get("/version", version)
    routes.get("/info", info)
    routes.get("/system/df", system_df)
