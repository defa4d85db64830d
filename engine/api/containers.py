"""Container endpoints: a thin translation of ``/containers/...`` and ``POST /commit`` onto
``engine.containers`` (the ``ContainerService``).

Status codes follow dockerd: 201 for create and commit, 204 for lifecycle operations, 304
when start/stop change nothing, 404/409 from the service's errors. Attach is a hijacked
stream (``engine/api/hijack.py``); logs stream with multiplexed framing unless the container
has a TTY; ``/wait`` flushes its 200 headers before it blocks. Archive (``docker cp``)
lives in ``engine/api/archive.py``, the websocket attach in ``engine/api/attach_ws.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from engine.api.base import NotImplementedYet, Routes, engine_of, json_reply
from engine.api.hijack import finished_response, frame, hijack, pump, stream_content_type
from engine.api.params import (
    Filters,
    query_bool,
    query_filters,
    query_int,
    query_str,
)
from engine.api.streams import JsonStream, ShuttingDown, tracked_stream, unless_shutdown
from engine.errors import InvalidArgument

LIST_FILTERS = frozenset(
    {
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    }
)
PRUNE_FILTERS = frozenset({"label", "label!", "until"})
_QUIET_LOG = 0.2  # seconds a followed log may stay silent before the headers go out
# HostConfig fields ``docker update`` may send that this engine cannot change live.
_UPDATE_UNSUPPORTED = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "BlkioWeight",
    "PidsLimit",
    "KernelMemory",
)


def _service(request: web.Request) -> Any:
    return engine_of(request).containers


def _name(request: web.Request) -> str:
    return request.match_info["id"]


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body, or {} when there is none; a one-line 400 when it is not JSON."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidArgument(f"invalid JSON body: {err}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON body: expected an object")
    return body


def _no_content(changed: bool = True) -> web.Response:
    return web.Response(status=204 if changed else 304)


# -- list, inspect, create, prune ----------------------------------------------------------------


async def list_containers(request: web.Request) -> web.Response:
    query = request.query
    filters: Filters = query_filters(query, allowed=LIST_FILTERS)
    limit = query_int(query, "limit")
    return json_reply(
        await _service(request).list_containers(
            all=query_bool(query, "all"),
            limit=limit if limit and limit > 0 else None,
            size=query_bool(query, "size"),
            filters=filters,
        )
    )


async def inspect_container(request: web.Request) -> web.Response:
    return json_reply(
        await _service(request).inspect(_name(request), size=query_bool(request.query, "size"))
    )


async def create_container(request: web.Request) -> web.Response:
    body = await _body(request)
    name = query_str(request.query, "name") or None
    return json_reply(await _service(request).create(body, name=name), status=201)


async def prune_containers(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=PRUNE_FILTERS)
    return json_reply(await _service(request).prune(filters=filters))


# -- lifecycle ----------------------------------------------------------------------------------


async def start_container(request: web.Request) -> web.Response:
    return _no_content(await _service(request).start(_name(request)))


def _stop_args(request: web.Request) -> tuple[int | None, str | None]:
    timeout = query_int(request.query, "t")
    if timeout is None:
        timeout = query_int(request.query, "timeout")
    return timeout, query_str(request.query, "signal") or None


async def stop_container(request: web.Request) -> web.Response:
    timeout, sig = _stop_args(request)
    return _no_content(await _service(request).stop(_name(request), timeout, sig))


async def restart_container(request: web.Request) -> web.Response:
    timeout, sig = _stop_args(request)
    await _service(request).restart(_name(request), timeout, sig)
    return _no_content()


async def kill_container(request: web.Request) -> web.Response:
    await _service(request).kill(_name(request), query_str(request.query, "signal") or None)
    return _no_content()


async def pause_container(request: web.Request) -> web.Response:
    await _service(request).pause(_name(request))
    return _no_content()


async def unpause_container(request: web.Request) -> web.Response:
    await _service(request).unpause(_name(request))
    return _no_content()


async def rename_container(request: web.Request) -> web.Response:
    new_name = query_str(request.query, "name")
    if not new_name:
        raise InvalidArgument("rename needs a new name: give ?name=NEW")
    await _service(request).rename(_name(request), new_name)
    return _no_content()


async def update_container(request: web.Request) -> web.Response:
    body = await _body(request)
    service = _service(request)
    await service.inspect(_name(request))
    unsupported = [k for k in _UPDATE_UNSUPPORTED if body.get(k)]
    if unsupported:
        raise NotImplementedYet(
            f"portside cannot change {', '.join(unsupported)} of an existing container; "
            "recreate it with the new limits"
        )
    policy = body.get("RestartPolicy")
    if policy:
        await service.update_restart_policy(_name(request), policy)
    return json_reply({"Warnings": []})


async def remove_container(request: web.Request) -> web.Response:
    query = request.query
    if query_bool(query, "link"):
        raise NotImplementedYet("portside has no container links to remove")
    await _service(request).remove(
        _name(request), force=query_bool(query, "force"), volumes=query_bool(query, "v")
    )
    return _no_content()


async def wait_container(request: web.Request) -> web.StreamResponse:
    """Register the waiter, flush the 200 headers at once, then answer when it resolves."""
    condition = query_str(request.query, "condition") or "not-running"
    fut = _service(request).waiter(_name(request), condition)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    async with tracked_stream(request):
        await response.prepare(request)
        try:
            result = await unless_shutdown(request.app, fut)
        except ShuttingDown:
            result = {"StatusCode": -1, "Error": {"Message": "the engine is shutting down"}}
        await response.write((json.dumps(result) + "\n").encode())
        await response.write_eof()
    return response


# -- streams ------------------------------------------------------------------------------------


async def attach_container(request: web.Request) -> web.StreamResponse:
    query = request.query
    service = _service(request)
    info = await service.inspect(_name(request))
    tty = bool((info.get("Config") or {}).get("Tty"))
    att = await service.attach(
        _name(request),
        stdin=query_bool(query, "stdin"),
        stdout=query_bool(query, "stdout"),
        stderr=query_bool(query, "stderr"),
        logs=query_bool(query, "logs"),
        stream=query_bool(query, "stream"),
        detach_keys=query_str(query, "detachKeys") or None,
    )
    if not tty:
        att.detach_keys = b""  # dockerd watches for detach keys only on a TTY
    try:
        conn = await hijack(request, tty=tty)
    except ConnectionError:
        att.close()
        raise
    async with tracked_stream(request):
        await pump(request, conn, att, tty=tty)
    return finished_response()


async def resize_container(request: web.Request) -> web.Response:
    height = query_int(request.query, "h") or 0
    width = query_int(request.query, "w") or 0
    await _service(request).resize(_name(request), height, width)
    return web.Response(status=200)


async def container_logs(request: web.Request) -> web.StreamResponse:
    query = request.query
    stdout = query_bool(query, "stdout")
    stderr = query_bool(query, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    service = _service(request)
    info = await service.inspect(_name(request))
    tty = bool((info.get("Config") or {}).get("Tty"))
    follow = query_bool(query, "follow")
    lines = service.logs(
        _name(request),
        stdout=stdout,
        stderr=stderr,
        since=query_str(query, "since") or None,
        until=query_str(query, "until") or None,
        tail=query_str(query, "tail") or None,
        follow=follow,
        timestamps=query_bool(query, "timestamps"),
    )
    response = web.StreamResponse(status=200)
    response.content_type = stream_content_type(request, tty)
    async with tracked_stream(request):
        iterator = lines.__aiter__()
        pending: asyncio.Future[tuple[str, bytes]] = asyncio.ensure_future(iterator.__anext__())
        try:
            # A bad option fails the first step: a plain 400 while no header is sent yet.
            # When following a quiet log the headers go out without waiting for output.
            await asyncio.wait({pending}, timeout=_QUIET_LOG if follow else None)
            failed = pending.exception() if pending.done() else None
            if failed is not None and not isinstance(failed, StopAsyncIteration):
                raise failed
            await response.prepare(request)
            while True:
                try:
                    kind, data = await unless_shutdown(request.app, pending)
                except (StopAsyncIteration, ShuttingDown):
                    break
                await response.write(data if tty else frame(kind, data))
                pending = asyncio.ensure_future(iterator.__anext__())
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await lines.aclose()
        await response.write_eof()
    return response


async def container_stats(request: web.Request) -> web.StreamResponse:
    query = request.query
    stream = query_bool(query, "stream", default=True)
    one_shot = query_bool(query, "one-shot")
    samples = _service(request).stats(_name(request), stream=stream, one_shot=one_shot)
    if not stream:
        async for sample in samples:
            return json_reply(sample)
        return json_reply({})
    out = JsonStream(request)
    async with tracked_stream(request):
        iterator = samples.__aiter__()
        while True:
            try:
                sample = await unless_shutdown(request.app, iterator.__anext__())
            except (StopAsyncIteration, ShuttingDown):
                break
            await out.send(sample)
        return await out.finish()


async def container_top(request: web.Request) -> web.Response:
    ps_args = query_str(request.query, "ps_args") or "-ef"
    return json_reply(await _service(request).top(_name(request), ps_args))


async def container_changes(request: web.Request) -> web.Response:
    found = await _service(request).changes(_name(request))
    return json_reply(found or None)


async def container_export(request: web.Request) -> web.StreamResponse:
    chunks = _service(request).export(_name(request)).__aiter__()
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    async with tracked_stream(request):
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    return response


async def commit_container(request: web.Request) -> web.Response:
    query = request.query
    container = query_str(query, "container")
    if not container:
        raise InvalidArgument("commit needs a container: give ?container=NAME")
    body = await _body(request)
    result = await _service(request).commit(
        container,
        repo=query_str(query, "repo") or None,
        tag=query_str(query, "tag") or None,
        comment=query_str(query, "comment"),
        author=query_str(query, "author"),
        changes=query.getall("changes", []),
        pause=query_bool(query, "pause", default=True),
        config=body or None,
    )
    return json_reply(result, status=201)


# -- system df ---------------------------------------------------------------------------------


async def disk_usage(engine: Any) -> list[dict[str, Any]]:
    """``/system/df`` container entries: the list shape with sizes."""
    return await engine.containers.list_containers(all=True, limit=None, size=True, filters={})


def register(routes: Routes) -> None:
    routes.get("/containers/json", list_containers)
    routes.post("/containers/create", create_container)
    routes.post("/containers/prune", prune_containers)
    routes.get("/containers/{id}/json", inspect_container)
    routes.post("/containers/{id}/start", start_container)
    routes.post("/containers/{id}/stop", stop_container)
    routes.post("/containers/{id}/restart", restart_container)
    routes.post("/containers/{id}/kill", kill_container)
    routes.post("/containers/{id}/pause", pause_container)
    routes.post("/containers/{id}/unpause", unpause_container)
    routes.post("/containers/{id}/rename", rename_container)
    routes.post("/containers/{id}/update", update_container)
    routes.post("/containers/{id}/wait", wait_container)
    routes.post("/containers/{id}/attach", attach_container)
    routes.post("/containers/{id}/resize", resize_container)
    routes.get("/containers/{id}/logs", container_logs)
    routes.get("/containers/{id}/stats", container_stats)
    routes.get("/containers/{id}/top", container_top)
    routes.get("/containers/{id}/changes", container_changes)
    routes.get("/containers/{id}/export", container_export)
    routes.delete("/containers/{id}", remove_container)
    routes.post("/commit", commit_container)
