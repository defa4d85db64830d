"""``portside network create|rm|ls|inspect|connect|disconnect|prune``: docker's network verbs
over the Engine API (aiodocker), for the embedded engine or any other one."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiodocker

from tui.cli.images import VerbError
from tui.cli.output import table


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if not key:
            raise VerbError(f"invalid {what} {item!r}: use KEY=VALUE", 125)
        out[key] = value
    return out


def _filters(items: list[str] | None) -> dict[str, str] | None:
    filters: dict[str, list[str]] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    return {"filters": json.dumps(filters)} if filters else None


async def _each(names: list[str], action: Callable[[str], Awaitable[Any]], echo: bool) -> int:
    code = 0
    for name in names:
        try:
            await action(name)
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
            continue
        if echo:
            print(name)
    return code


async def network_create(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    ipam: dict[str, Any] = {"Driver": "default", "Config": []}
    if args.subnet or args.gateway or args.ip_range:
        cfg = {"Subnet": args.subnet, "Gateway": args.gateway, "IPRange": args.ip_range}
        ipam["Config"] = [{k: v for k, v in cfg.items() if v}]
    body = {
        "Name": args.name,
        "Driver": args.driver,
        "Internal": args.internal,
        "EnableIPv6": args.ipv6,
        "Labels": _pairs(args.label, "label"),
        "Options": _pairs(args.opt, "option"),
        "IPAM": ipam,
    }
    found = await docker._query_json("networks/create", method="POST", data=json.dumps(body))
    if found.get("Warning"):
        print(f"WARNING: {found['Warning']}", file=sys.stderr)
    print(found["Id"])
    return 0


async def network_ls(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    found = await docker._query_json("networks", params=_filters(args.filter))
    if args.quiet:
        for n in found:
            print(n["Id"] if args.no_trunc else n["Id"][:12])
        return 0
    rows = [
        [n["Id"] if args.no_trunc else n["Id"][:12], n["Name"], n["Driver"], n["Scope"]]
        for n in found
    ]
    print(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    return 0


async def network_inspect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    found: list[Any] = []
    code = 0
    for name in args.networks:
        try:
            found.append(await docker._query_json(f"networks/{name}"))
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
    print(json.dumps(found, indent=4))
    return code


async def network_rm(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    async def one(name: str) -> None:
        async with docker._query(f"networks/{name}", method="DELETE"):
            pass

    return await _each(args.networks, one, echo=True)


async def network_connect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    body = {"Container": args.container, "EndpointConfig": {"Aliases": args.alias or []}}
    async with docker._query(
        f"networks/{args.network}/connect", method="POST", data=json.dumps(body)
    ):
        pass
    return 0


async def network_disconnect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    body = {"Container": args.container, "Force": args.force}
    async with docker._query(
        f"networks/{args.network}/disconnect", method="POST", data=json.dumps(body)
    ):
        pass
    return 0


async def network_prune(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    if not args.force:
        print("WARNING! This will remove all custom networks not used by at least one container.")
        answer = await asyncio.to_thread(input, "Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    found = await docker._query_json("networks/prune", method="POST", params=_filters(args.filter))
    deleted = found.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
    return 0


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``portside network ...`` to the ``portside`` subparsers."""
    net = sub.add_parser("network", help="manage networks")
    nsub = net.add_subparsers(dest="network_verb", metavar="COMMAND", required=True)

    def verb(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = nsub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        engine_options(p)
        return p

    p = verb("create", network_create, "create a network")
    p.add_argument("name")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet")
    p.add_argument("--gateway")
    p.add_argument("--ip-range")
    p.add_argument("--internal", action="store_true")
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--label", action="append")
    p.add_argument("-o", "--opt", action="append")
    p = verb("ls", network_ls, "list networks")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append")
    p.add_argument("--no-trunc", action="store_true")
    p = verb("inspect", network_inspect, "show networks")
    p.add_argument("networks", nargs="+")
    p = verb("rm", network_rm, "remove networks")
    p.add_argument("networks", nargs="+")
    p = verb("connect", network_connect, "connect a container to a network")
    p.add_argument("--alias", action="append")
    p.add_argument("network")
    p.add_argument("container")
    p = verb("disconnect", network_disconnect, "disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    p = verb("prune", network_prune, "remove unused networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append")
