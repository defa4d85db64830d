"""``/containers/{id}/archive`` (``docker cp``): a thin translation onto the container service.

``HEAD`` answers the path's stat in ``X-Docker-Container-Path-Stat`` (base64 JSON), ``GET``
the same header plus a tar of the path, ``PUT ?path=&noOverwriteDirNonDir=&copyUIDGID=``
extracts the request body (a tar) under a directory. Errors are dockerd's: 400 for a
missing ``path`` or a target that is no directory, 404 "Could not find the file X in
container Y", 403 for a read-only root or volume (dockerd 20.10 says 500 with the same
message; the API documents 403).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of
from engine.api.params import query_bool, query_str
from engine.api.streams import tracked_stream
from engine.runtime.archive.paths import stat_header

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _service(request: web.Request) -> Any:
    return engine_of(request).containers


async def head_archive(request: web.Request) -> web.Response:
    info = await _service(request).stat_path(
        request.match_info["id"], query_str(request.query, "path")
    )
    return web.Response(status=200, headers={STAT_HEADER: stat_header(info)})


async def get_archive(request: web.Request) -> web.StreamResponse:
    name = request.match_info["id"]
    path = query_str(request.query, "path")
    async with _service(request).copy_from(name, path) as (info, chunks):
        response = web.StreamResponse(status=200, headers={STAT_HEADER: stat_header(info)})
        response.content_type = "application/x-tar"
        async with tracked_stream(request):
            await response.prepare(request)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
    return response


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_any():
        yield chunk


async def put_archive(request: web.Request) -> web.Response:
    query = request.query
    await _service(request).copy_to(
        request.match_info["id"],
        query_str(query, "path"),
        _body(request),
        no_overwrite_dir_non_dir=query_bool(query, "noOverwriteDirNonDir"),
        copy_uid_gid=query_bool(query, "copyUIDGID"),
    )
    return web.Response(status=200)


def register(routes: Routes) -> None:
    routes.add("HEAD", "/containers/{id}/archive", head_archive)
    routes.get("/containers/{id}/archive", get_archive)
    routes.add("PUT", "/containers/{id}/archive", put_archive)
