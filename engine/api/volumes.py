"""Volume endpoints: ``/volumes`` create, list, inspect, remove and prune over
``engine.volumes`` (local volumes only), plus the volume entries of ``/system/df``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of, json_reply
from engine.api.containers import _body
from engine.api.params import query_bool, query_filters
from engine.errors import InvalidArgument

LIST_FILTERS = frozenset({"dangling", "driver", "label", "name"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})


def _volumes(request: web.Request) -> Any:
    return engine_of(request).volumes


async def create_volume(request: web.Request) -> web.Response:
    body = await _body(request)
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument("volume Labels must be an object of strings")
    if body.get("DriverOpts"):
        raise InvalidArgument("the local volume driver of portside takes no options")
    shape = await _volumes(request).create(
        body.get("Name") or None, labels=labels, driver=body.get("Driver") or None
    )
    return json_reply(shape, status=201)


async def list_volumes(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=LIST_FILTERS)
    found = await _volumes(request).list(filters)
    return json_reply({"Volumes": found, "Warnings": None})


async def inspect_volume(request: web.Request) -> web.Response:
    return json_reply(await _volumes(request).inspect(request.match_info["name"]))


async def remove_volume(request: web.Request) -> web.Response:
    await _volumes(request).remove(
        request.match_info["name"], force=query_bool(request.query, "force")
    )
    return web.Response(status=204)


async def prune_volumes(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=PRUNE_FILTERS)
    every = any(v.lower() in ("1", "true") for v in filters.get("all", []))
    if filters.get("label") or filters.get("label!"):
        raise InvalidArgument("portside prunes volumes without label filters; drop --filter")
    return json_reply(await _volumes(request).prune(all=every))


async def disk_usage(engine: Any) -> list[dict[str, Any]]:
    """``/system/df`` volume entries: the volume shape plus ``UsageData``."""
    out = []
    for vol in await engine.volumes.list():
        users = await engine.containers.volume_users(vol["Name"])
        size = await asyncio.to_thread(_du, Path(vol["Mountpoint"]))
        out.append({**vol, "UsageData": {"Size": size, "RefCount": len(users)}})
    return out


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def register(routes: Routes) -> None:
    routes.post("/volumes/create", create_volume)
    routes.post("/volumes/prune", prune_volumes)
    routes.get("/volumes", list_volumes)
    routes.get("/volumes/{name}", inspect_volume)
    routes.delete("/volumes/{name}", remove_volume)
