"""``GET /containers/{id}/attach/ws``: attach over a websocket (aiohttp's server side).

As in dockerd: API versions before 1.42 attach stdin, stdout and stderr whatever the query
says, later ones follow ``stdin``/``stdout``/``stderr``; ``logs``, ``stream`` and
``detachKeys`` as for the hijacked attach. Output is never multiplexed (with or without a
TTY each frame carries raw bytes), sent as binary frames from API 1.28 on and as text
frames before; every frame the client sends (text or binary) goes to the container's stdin.
The session ends when the process exits, the client detaches or closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from engine.api.base import API_VERSION, Routes, compare_versions, engine_of
from engine.api.params import query_bool, query_str
from engine.api.streams import SHUTDOWN, tracked_stream
from engine.errors import InvalidArgument

_CLOSE_WAIT = 2.0  # seconds the output may take to drain once the input side ended


async def attach_ws(request: web.Request) -> web.StreamResponse:
    query = request.query
    service = engine_of(request).containers
    name = request.match_info["id"]
    version = request.match_info.get("version") or API_VERSION
    info = await service.inspect(name)
    tty = bool((info.get("Config") or {}).get("Tty"))
    ws = web.WebSocketResponse(autoping=True)
    if not ws.can_prepare(request).ok:
        raise InvalidArgument("this endpoint needs a websocket upgrade (Upgrade: websocket)")
    selected = compare_versions(version, "1.42") >= 0
    att = await service.attach(
        name,
        stdin=query_bool(query, "stdin") if selected else True,
        stdout=query_bool(query, "stdout") if selected else True,
        stderr=query_bool(query, "stderr") if selected else True,
        logs=query_bool(query, "logs"),
        stream=query_bool(query, "stream"),
        detach_keys=query_str(query, "detachKeys") or None,
    )
    if not tty:
        att.detach_keys = b""  # dockerd watches for detach keys only on a TTY
    binary = compare_versions(version, "1.28") >= 0
    try:
        await ws.prepare(request)
    except BaseException:
        att.close()
        raise

    async def output() -> None:
        async for _kind, data in att.output():
            if not data:
                continue
            if binary:
                await ws.send_bytes(data)
            else:
                await ws.send_str(data.decode("utf-8", "replace"))

    async def feed_stdin() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await att.write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await att.write(msg.data.encode())
            if att.detached:
                return

    async with tracked_stream(request):
        out_task = asyncio.ensure_future(output())
        in_task = asyncio.ensure_future(feed_stdin())
        stop = asyncio.ensure_future(request.app[SHUTDOWN].wait())
        try:
            await asyncio.wait({out_task, in_task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not out_task.done():
                att.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(out_task), _CLOSE_WAIT)
        finally:
            for task in (out_task, in_task, stop):
                if not task.done():
                    task.cancel()
            await asyncio.gather(out_task, in_task, stop, return_exceptions=True)
            att.close()
            with contextlib.suppress(Exception):
                await ws.close()
    return ws


def register(routes: Routes) -> None:
    routes.get("/containers/{id}/attach/ws", attach_ws)
