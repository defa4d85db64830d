"""Image builds: ``POST /build`` (dockerd's legacy builder answer) and ``/build/prune``.

The query is checked before the body is read (bad JSON in ``buildargs``/``labels`` is a
400); the body (a plain or compressed tar) streams into ``BuildContext.from_tar``, which
applies ``.dockerignore``. Progress goes out as ``{"stream": ...}`` JSON lines; the image id
as ``{"aux":{"ID":...}}`` just before "Successfully built"; a failure after the first line
as an ``errorDetail`` line (with the RUN's exit code, which the docker CLI exits with).
``X-Registry-Config`` is accepted and ignored: FROM pulls use the engine's own credentials.
``POST /build/prune`` (``all``, ``keep-storage``, filter ``until``: a Go duration like
``24h`` or a time) drops build cache entries and answers ``{CachesDeleted, SpaceReclaimed}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from engine.api.base import NotImplementedYet, Routes, engine_of, json_reply
from engine.api.params import query_bool, query_filters, query_int, query_str
from engine.api.streams import SHUTDOWN, JsonStream, error_message, tracked_stream
from engine.build.context import BuildContext
from engine.build.secrets import HEADER as SECRETS_HEADER
from engine.build.secrets import decode_header
from engine.errors import InvalidArgument, PortsideError
from engine.reference import Reference
from engine.runtime.logs import parse_timestamp_arg

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)$")
_BUILT = "Successfully built "
_BLOCK = 512
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
PRUNE_FILTERS = frozenset({"until"})


def _json_map(query: Any, key: str) -> dict[str, str]:
    """A JSON object parameter (``buildargs``, ``labels``); empty or ``null`` gives {}."""
    text = query_str(query, key).strip()
    if not text or text == "null":
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"invalid {key!r}: {text!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {key!r}: expected a JSON object of strings")
    out: dict[str, str] = {}
    for name, item in value.items():
        if item is None:  # docker sends null for "--build-arg NAME" with NAME unset
            continue
        if not isinstance(item, str):
            raise InvalidArgument(f"invalid {key!r}: the value of {name!r} is not a string")
        out[name] = item
    return out


def _tags(query: Any) -> list[str]:
    tags = [t for t in query.getall("t", []) if t]
    for tag in tags:
        ref = Reference.parse(tag)
        if ref.digest is not None:
            raise InvalidArgument(f"invalid tag {tag!r}: a build cannot tag with a digest")
    return tags


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The uploaded context; a plain tar cut short of its last block's padding is padded.

    The docker CLI sends a ``-f`` Dockerfile from outside the context appended to the tar
    without the final padding or end-of-archive blocks (dockerd's reader accepts that).
    """
    total = 0
    first = b""
    async for chunk in request.content.iter_chunked(_CHUNK):
        if not first:
            first = chunk[:6]
        total += len(chunk)
        yield chunk
    if total % _BLOCK and first and not first.startswith(_COMPRESSED):
        yield bytes(_BLOCK - total % _BLOCK)


def _failure_line(err: PortsideError) -> dict[str, Any]:
    line = error_message(err.message)
    match = _EXIT_CODE.search(err.message)
    code = getattr(err, "exit_code", None) or (int(match.group(1)) if match else None)
    if code:
        line["errorDetail"]["code"] = code
    return line


class _BuildStream:
    """Runs one build and forwards its progress lines as dockerd's JSON stream."""

    def __init__(self, request: web.Request, quiet: bool) -> None:
        self.request = request
        self.quiet = quiet
        self.stream = JsonStream(request)
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.tail: list[str] = []  # "Successfully built/tagged" wait for the aux line

    def progress(self, line: str) -> None:
        self.queue.put_nowait(line)

    async def _forward(self) -> None:
        while (line := await self.queue.get()) is not None:
            if self.tail or line.startswith(_BUILT):
                self.tail.append(line)
            elif not self.quiet:
                await self.stream.send({"stream": line})

    async def run(self, context: BuildContext, **options: Any) -> web.StreamResponse:
        builds = engine_of(self.request).builds
        job = asyncio.ensure_future(builds.build(context, progress=self.progress, **options))
        writer = asyncio.ensure_future(self._forward())
        stop = asyncio.ensure_future(self.request.app[SHUTDOWN].wait())
        try:
            await asyncio.wait({job, writer, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not job.done():
                job.cancel()
                await asyncio.wait({job})
            if writer.done():
                writer.result()  # the client went away: let its error end the handler
            self.queue.put_nowait(None)
            await writer
        failure: PortsideError | None = None
        if job.cancelled():
            failure = PortsideError("the engine is shutting down; the build was interrupted")
        elif (err := job.exception()) is not None:
            if isinstance(err, PortsideError):
                failure = err
            else:
                log.error("build failed", exc_info=err)
                failure = PortsideError(f"internal error: {err}")
        if failure is not None:
            if not self.stream.started and not self.tail:
                raise failure
            await self.stream.send(_failure_line(failure))
            return await self.stream.finish()
        image_id = str(job.result())
        await self.stream.send({"aux": {"ID": image_id}})
        if self.quiet:
            await self.stream.send({"stream": image_id + "\n"})
        else:
            for line in self.tail:
                await self.stream.send({"stream": line})
        return await self.stream.finish()


async def build(request: web.Request) -> web.StreamResponse:
    query = request.query
    tags = _tags(query)
    build_args = _json_map(query, "buildargs")
    labels = _json_map(query, "labels")
    dockerfile = query_str(query, "dockerfile") or None
    if query_str(query, "remote"):
        raise NotImplementedYet(
            "portside cannot build from a remote URL (remote=); send the context as a tar"
        )
    options: dict[str, Any] = {
        "dockerfile": dockerfile,
        "tags": tags,
        "build_args": build_args,
        "target": query_str(query, "target") or None,
        "no_cache": query_bool(query, "nocache"),
        "pull": query_bool(query, "pull"),
        "labels": labels,
    }
    if SECRETS_HEADER in request.headers:
        options["secrets"] = decode_header(request.headers[SECRETS_HEADER])
    async with tracked_stream(request):
        context = await BuildContext.from_tar(_body(request), dockerfile)
        async with context:
            return await _BuildStream(request, query_bool(query, "q")).run(context, **options)


def _cutoff(value: str) -> float:
    """A prune ``until`` value: a Go duration before now (``24h``, ``1h30m``) or a time."""
    text = value.strip()
    if _DURATION.match(text):
        ago = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        return time.time() - ago
    try:
        ns = parse_timestamp_arg(text)
    except ValueError:
        ns = None
    if ns is None:
        raise InvalidArgument(
            f"invalid until filter {value!r}: use a duration like 24h or 90m, or a timestamp"
        )
    return ns / 1e9


async def prune(request: web.Request) -> web.Response:
    query = request.query
    filters = query_filters(query, allowed=PRUNE_FILTERS)
    cutoffs = [_cutoff(v) for v in filters.get("until", [])]
    keep = query_int(query, "keep-storage", 0) or 0
    if keep < 0:
        raise InvalidArgument(f"invalid keep-storage {keep}: must be 0 or more bytes")
    result = await engine_of(request).builds.cache.prune(
        everything=query_bool(query, "all"),
        until=min(cutoffs) if cutoffs else None,
        keep_storage=keep,
    )
    return json_reply({"CachesDeleted": result.deleted or None, "SpaceReclaimed": result.reclaimed})


def register(routes: Routes) -> None:
    routes.post("/build", build)
    routes.post("/build/prune", prune)
