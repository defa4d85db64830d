"""Image archive endpoints: ``GET /images/get``, ``GET /images/{name}/get`` (save),
``POST /images/load`` and the tarball import of ``POST /images/create?fromSrc=...``.

A save resolves every name and checks every blob before the 200 is sent, so a missing
image is a plain 404; the tar then streams (``application/x-tar``). A load or an import
reads the whole upload first, so a bad archive is a plain 400 and nothing is stored;
success answers with dockerd's JSON lines (``{"stream":"Loaded image: NAME\\n"}`` for a
load, ``{"status":"sha256:..."}`` for an import).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.api.base import Routes, engine_of
from engine.api.params import query_bool, query_str
from engine.api.streams import JsonStream, tracked_stream
from engine.images_archive.fsimport import download, import_tarball, target_name
from engine.images_archive.load import load_archive
from engine.images_archive.save import plan_save, stream_archive

_CHUNK = 1 << 16


def _workdir(request: web.Request) -> Path:
    return engine_of(request).config.root / "tmp-archives"


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    images = engine_of(request).images
    plan = await plan_save(images, names)
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    async with tracked_stream(request), images.gc.lease():
        await response.prepare(request)
        async for chunk in stream_archive(images, plan):
            await response.write(chunk)
        await response.write_eof()
    return response


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, [n for n in request.query.getall("names", []) if n])


async def load_images(request: web.Request) -> web.StreamResponse:
    query_bool(request.query, "quiet")  # accepted; a load reports only its result lines
    images = engine_of(request).images
    async with tracked_stream(request):
        lines = await load_archive(images, request.content.iter_chunked(_CHUNK), _workdir(request))
    stream = JsonStream(request)
    for line in lines:
        await stream.send({"stream": line + "\n"})
    return await stream.finish()


async def import_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromSrc=-|URL``: called by the pull handler for ``fromSrc``."""
    query = request.query
    source = query_str(query, "fromSrc")
    target = target_name(query_str(query, "repo"), query_str(query, "tag"))
    body = request.content.iter_chunked(_CHUNK) if source == "-" else download(source)
    async with tracked_stream(request):
        image_id = await import_tarball(
            engine_of(request).images,
            body,
            _workdir(request),
            source=source,
            target=target,
            changes=[c for c in query.getall("changes", []) if c],
            message=query_str(query, "message"),
            platform=query_str(query, "platform") or None,
        )
    stream = JsonStream(request)
    await stream.send({"status": image_id})
    return await stream.finish()


def register(routes: Routes) -> None:
    routes.get("/images/get", save_many)
    routes.post("/images/load", load_images)
    routes.get("/images/{name:.+}/get", save_one)
