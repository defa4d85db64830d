"""Image endpoints: list, pull (``/images/create``), inspect, history, tag, remove, prune;
push is routed here and implemented in ``engine.api.push``.

Image names in paths may contain slashes and colons (``/images/127.0.0.1:5000/a/b:1/json``);
routes use dockerd's greedy ``{name:.+}`` patterns, registered after the literal paths.
A pull streams dockerd's JSON progress lines; the 200 is sent only once the registry has
answered (dockerd writes "Pulling from" after resolving the manifest), so a missing image
or a refused login still gets a plain 404/401 status, and later failures arrive in the
stream as ``errorDetail`` lines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of, json_reply
from engine.api.params import query_bool, query_filters, query_str
from engine.api.push import push_image
from engine.api.streams import (
    SHUTDOWN,
    JsonStream,
    error_message,
    progress_message,
    tracked_stream,
)
from engine.digest import Digest
from engine.errors import InvalidArgument, PortsideError
from engine.progress import ProgressEvent
from engine.reference import Reference
from engine.registry.credentials import AuthConfig

log = logging.getLogger(__name__)

LIST_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"dangling", "label", "label!", "until"})
_HELD_STATUS = "Pulling from "


async def list_images(request: web.Request) -> web.Response:
    query = request.query
    filters = query_filters(query, allowed=LIST_FILTERS)
    legacy = query_str(query, "filter")
    if legacy:
        filters.setdefault("reference", []).append(legacy)
    before = filters.pop("before", [])
    since = filters.pop("since", [])
    images = engine_of(request).images
    items = await images.list_images(all=query_bool(query, "all"), filters=filters)
    if before or since:
        items = await _created_window(request, items, before, since)
    return json_reply(items)


async def _created_window(
    request: web.Request, items: list[dict[str, Any]], before: list[str], since: list[str]
) -> list[dict[str, Any]]:
    """dockerd's ``before``/``since`` filters: images created before/after the named ones."""
    images = engine_of(request).images
    for name in before:
        ref = await images.inspect(name)
        items = [i for i in items if i["Created"] < _created_of(items, ref["Id"])]
    for name in since:
        ref = await images.inspect(name)
        items = [i for i in items if i["Created"] > _created_of(items, ref["Id"])]
    return items


def _created_of(items: list[dict[str, Any]], image_id: str) -> int:
    for item in items:
        if item["Id"] == image_id:
            return int(item["Created"])
    return 0


def _pull_reference(from_image: str, tag: str) -> Reference:
    """``fromImage`` plus ``tag`` (which may be a digest) as dockerd combines them."""
    ref = Reference.parse(from_image, default_tag=not tag)
    if not tag:
        return ref
    if ":" in tag:  # tags never contain ':', digests always do
        return Reference(ref.registry, ref.repository, None, Digest.parse(tag))
    return ref.with_tag(tag)


def _registry_auth(request: web.Request) -> AuthConfig | None:
    header = request.headers.get("X-Registry-Auth")
    return AuthConfig.from_header(header) if header else None


async def create_image(request: web.Request) -> web.StreamResponse:
    query = request.query
    from_image = query_str(query, "fromImage")
    if query_str(query, "fromSrc"):
        from engine.api.images_archive import import_image

        return await import_image(request)
    if not from_image:
        raise InvalidArgument("give fromImage=NAME to pull, or fromSrc=-|URL to import")
    ref = _pull_reference(from_image, query_str(query, "tag"))
    auth = _registry_auth(request)
    platform = query_str(query, "platform") or None
    async with tracked_stream(request):
        return await _PullStream(request).run(str(ref), platform, auth)


class _PullStream:
    """Runs one pull and forwards its progress as JSON lines."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.stream = JsonStream(request)
        self.queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        self.held: list[ProgressEvent] = []

    async def _forward(self) -> None:
        while (event := await self.queue.get()) is not None:
            if not self.stream.started and event.status.startswith(_HELD_STATUS):
                self.held.append(event)
                continue
            await self._flush_held()
            await self.stream.send(progress_message(event))

    async def _flush_held(self) -> None:
        held, self.held = self.held, []
        for event in held:
            await self.stream.send(progress_message(event))

    async def run(
        self, ref: str, platform: str | None, auth: AuthConfig | None
    ) -> web.StreamResponse:
        images = engine_of(self.request).images
        pull = asyncio.ensure_future(
            images.pull(ref, platform=platform, auth=auth, progress=self.queue.put_nowait)
        )
        writer = asyncio.ensure_future(self._forward())
        stop = asyncio.ensure_future(self.request.app[SHUTDOWN].wait())
        try:
            await asyncio.wait({pull, writer, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not pull.done():
                pull.cancel()
                await asyncio.wait({pull})
            if writer.done():
                writer.result()  # the client went away: let its error end the handler
            self.queue.put_nowait(None)
            await writer
        failure: PortsideError | None = None
        if pull.cancelled():
            failure = PortsideError("the engine is shutting down; the pull was interrupted")
        elif (err := pull.exception()) is not None:
            if isinstance(err, PortsideError):
                failure = err
            else:
                log.error("pull of %s failed", ref, exc_info=err)
                failure = PortsideError(f"internal error: {err}")
        if failure is not None:
            if not self.stream.started:
                raise failure
            await self.stream.send(error_message(failure.message))
        else:
            await self._flush_held()
        return await self.stream.finish()


async def inspect_image(request: web.Request) -> web.Response:
    return json_reply(await engine_of(request).images.inspect(request.match_info["name"]))


async def image_history(request: web.Request) -> web.Response:
    return json_reply(await engine_of(request).images.history(request.match_info["name"]))


async def tag_image(request: web.Request) -> web.Response:
    query = request.query
    await engine_of(request).images.tag(
        request.match_info["name"], query_str(query, "repo"), query_str(query, "tag") or None
    )
    return web.Response(status=201)


async def remove_image(request: web.Request) -> web.Response:
    query = request.query
    removed = await engine_of(request).images.remove(
        request.match_info["name"],
        force=query_bool(query, "force"),
        noprune=query_bool(query, "noprune"),
    )
    return json_reply(removed)


async def prune_images(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=PRUNE_FILTERS)
    return json_reply(await engine_of(request).images.prune(filters=filters))


def register(routes: Routes) -> None:
    routes.get("/images/json", list_images)
    routes.post("/images/create", create_image)
    routes.post("/images/prune", prune_images)
    routes.get("/images/{name:.+}/json", inspect_image)
    routes.get("/images/{name:.+}/history", image_history)
    routes.post("/images/{name:.+}/tag", tag_image)
    routes.post("/images/{name:.+}/push", push_image)
    routes.delete("/images/{name:.+}", remove_image)
