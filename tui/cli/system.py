"""``portside version``: this client's version and the engine's, as ``docker version``.

The client part is printed first and always; the engine part comes from ``GET /version``.
An engine that cannot be reached is said after the client part, with exit status 1, as the
docker CLI does. ``--format json`` prints both parts as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiodocker

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def client_info() -> dict[str, str]:
    try:
        mine = package_version("portside")
    except PackageNotFoundError:
        mine = "unknown"
    machine = platform.machine()
    return {
        "Version": mine,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": _ARCH.get(machine, machine),
    }


def _client_lines(info: dict[str, str]) -> list[str]:
    return [
        "Client: portside",
        f" Version:           {info['Version']}",
        f" Python version:    {info['PythonVersion']}",
        f" OS/Arch:           {info['Os']}/{info['Arch']}",
    ]


def _server_lines(info: dict[str, Any]) -> list[str]:
    name = (info.get("Platform") or {}).get("Name") or "Engine"
    api = str(info.get("ApiVersion", ""))
    if info.get("MinAPIVersion"):
        api += f" (minimum version {info['MinAPIVersion']})"
    lines = [
        f"Server: {name}",
        f" Version:           {info.get('Version', '')}",
        f" API version:       {api}",
        f" OS/Arch:           {info.get('Os', '')}/{info.get('Arch', '')}",
    ]
    if info.get("KernelVersion"):
        lines.append(f" Kernel version:    {info['KernelVersion']}")
    for component in info.get("Components") or []:
        if component.get("Name") and component.get("Version"):
            lines.append(f" {component['Name'] + ':':18} {component['Version']}")
    return lines


async def version(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    from aiodocker import DockerError

    client = client_info()
    try:
        server: dict[str, Any] | None = await docker.version()
        problem = ""
    except (DockerError, OSError) as err:
        server = None
        problem = getattr(err, "message", "") or str(err)
    if args.format == "json":
        print(json.dumps({"Client": client, "Server": server}))
    else:
        print("\n".join(_client_lines(client)))
        if server is not None:
            print()
            print("\n".join(_server_lines(server)))
    if server is None:
        print(f"portside: cannot reach the engine: {problem}", file=sys.stderr)
        return 1
    return 0
