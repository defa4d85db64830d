"""``POST /images/{name}/push?tag=``: pushing an image, streamed like dockerd.

Credentials come from ``X-Registry-Auth`` (an undecodable header counts as anonymous, as
in dockerd, which is what aiodocker's ``placeholder`` relies on) or, without the header,
from a JSON AuthConfig body (dockerd's old form); with neither, the engine's own docker
config is used. A bad name or a refused policy is a plain 400/403; once the stream has
started (``The push refers to repository [...]``), failures arrive as ``errorDetail``
lines. Without ``tag`` every local tag of the repository is pushed, one after another.
Each pushed tag ends with dockerd's ``{"progressDetail":{},"aux":{"Tag","Digest","Size"}}``
line, is recorded as a repo digest of the image, and is published as an ``image push``
event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.api.auth import registry_auth
from engine.api.base import engine_of
from engine.api.params import query_str
from engine.api.streams import (
    SHUTDOWN,
    JsonStream,
    error_message,
    progress_message,
    tracked_stream,
)
from engine.errors import InvalidArgument, NotFound, PortsideError
from engine.policy import ImagePolicy
from engine.progress import ProgressEvent
from engine.reference import Reference
from engine.registry.credentials import AuthConfig

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.registry.push import PushResult

log = logging.getLogger(__name__)

_REPOSITORY_LINE = "The push refers to repository "


async def _body_auth(request: web.Request) -> AuthConfig | None:
    """dockerd's pre-header form: the AuthConfig as the JSON request body."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "Bad parameters and missing X-Registry-Auth: the body is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise InvalidArgument("Bad parameters and missing X-Registry-Auth: expected an object")
    auth = AuthConfig.from_dict(data)
    return None if auth.is_empty else auth


def _push_target(name: str, tag: str) -> Reference:
    ref = Reference.parse(name, default_tag=False)
    if tag:
        if ref.digest is not None:
            raise InvalidArgument(f"cannot push {ref.familiar()}: give a tag, not a digest")
        ref = Reference.parse(f"{ref.name}:{tag}")  # validates the tag too
    elif ref.digest is not None:
        raise InvalidArgument(
            f"cannot push {ref.familiar()}: give a tag (NAME[:TAG]); a digest is what the "
            "registry computes"
        )
    return ref


def _check_policy(engine: Engine, ref: Reference) -> None:
    """allowed/denied registries apply to pushes too (require_digest cannot: pushes tag)."""
    policy = dataclasses.replace(ImagePolicy.from_config(engine.config), require_digest=())
    policy.check(ref, "push")


async def _local_tags(engine: Engine, ref: Reference) -> list[Reference]:
    """``ref`` itself when it has a tag, else every local tag of its repository."""
    if ref.tag:
        return [ref]
    md = engine.metadata
    found: list[Reference] = []
    for names in (await md.run(md.all_tags)).values():
        for name in names:
            try:
                tagged = Reference.parse(name)
            except PortsideError:
                continue
            if tagged.name == ref.name:
                found.append(tagged)
    return sorted(found, key=lambda r: r.tag or "")


class _PushStream:
    """Runs the pushes of one request and forwards their progress as JSON lines."""

    def __init__(self, request: web.Request, engine: Engine) -> None:
        self.request = request
        self.engine = engine
        self.stream = JsonStream(request)
        self.queue: asyncio.Queue[ProgressEvent | dict[str, Any] | None] = asyncio.Queue()
        self.announced = False

    async def _forward(self) -> None:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, dict):
                await self.stream.send(item)
                continue
            if item.status.startswith(_REPOSITORY_LINE):
                if self.announced:
                    continue
                self.announced = True
            await self.stream.send(progress_message(item))

    def _announce(self, ref: Reference) -> None:
        self.queue.put_nowait(ProgressEvent(f"{_REPOSITORY_LINE}[{ref.name}]"))

    async def _push_all(self, ref: Reference, auth: AuthConfig | None) -> None:
        targets = await _local_tags(self.engine, ref)
        if not targets:
            self._announce(ref)
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
        md = self.engine.metadata
        for target in targets:
            image_id = await md.run(md.tag_target, target.tagged_str())
            if image_id is None:
                self._announce(target)
                raise NotFound(f"tag does not exist: {target.familiar()}")
            result = await self.engine.pusher.push(
                target, image_id, auth=auth, progress=self.queue.put_nowait
            )
            await self._record(target, image_id, result)
            self.queue.put_nowait({"progressDetail": {}, "aux": result.aux()})

    async def _record(self, target: Reference, image_id: str, result: PushResult) -> None:
        md = self.engine.metadata
        await md.run(md.add_repo_digest, f"{target.name}@{result.digest}", image_id)
        shown = target.familiar()
        self.engine.events.publish("image", "push", shown, {"name": shown})

    async def run(self, ref: Reference, auth: AuthConfig | None) -> web.StreamResponse:
        await self.stream.start()
        work = asyncio.ensure_future(self._push_all(ref, auth))
        writer = asyncio.ensure_future(self._forward())
        stop = asyncio.ensure_future(self.request.app[SHUTDOWN].wait())
        try:
            await asyncio.wait({work, writer, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
            if writer.done():
                writer.result()  # the client went away: let its error end the handler
            self.queue.put_nowait(None)
            await writer
        failure: str | None = None
        if work.cancelled():
            failure = "the engine is shutting down; the push was interrupted"
        elif (err := work.exception()) is not None:
            if isinstance(err, PortsideError):
                failure = err.message
            else:
                log.error("push of %s failed", ref, exc_info=err)
                failure = f"internal error: {err}"
        if failure is not None:
            await self.stream.send(error_message(failure))
        return await self.stream.finish()


async def push_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = _push_target(request.match_info["name"], query_str(request.query, "tag"))
    _check_policy(engine, ref)
    auth = registry_auth(request, lenient=True)
    if request.headers.get("X-Registry-Auth") is None:
        auth = await _body_auth(request)
    async with tracked_stream(request):
        return await _PushStream(request, engine).run(ref, auth)
