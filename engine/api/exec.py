"""Exec endpoints: ``POST /containers/{id}/exec`` and ``/exec/{id}/start|resize|json``.

A thin translation onto the container service's exec operations; ``start`` without
``Detach`` hijacks the connection (raw bytes with a TTY, multiplexed frames without one)
and pumps the session until the process exits.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of, json_reply
from engine.api.containers import _body
from engine.api.hijack import finished_response, frame, hijack, pump
from engine.api.params import query_int
from engine.api.streams import tracked_stream
from engine.errors import Conflict, PortsideError


def _service(request: web.Request) -> Any:
    return engine_of(request).containers


async def create_exec(request: web.Request) -> web.Response:
    body = await _body(request)
    result = await _service(request).exec_create(request.match_info["id"], body)
    return json_reply(result, status=201)


async def start_exec(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    eid = request.match_info["id"]
    service = _service(request)
    detach = bool(body.get("Detach"))
    tty_value = body.get("Tty")
    size = body.get("ConsoleSize")
    console = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None
    info = await service.exec_inspect(eid)
    tty = bool(info["ProcessConfig"]["tty"] if tty_value is None else tty_value)
    tty_arg = tty if tty_value is not None else None
    if detach:
        await service.exec_start(eid, detach=True, tty=tty_arg, console_size=console)
        return web.Response(status=200)
    # Refuse what exec_start would refuse while a plain error status can still be sent.
    if info["Running"] or info["ExitCode"] is not None or info["Pid"]:
        raise Conflict(f"exec {eid} has already been started")
    container = await engine_of(request).containers.inspect(info["ContainerID"])
    if not container["State"]["Running"]:
        raise Conflict(f"Container {info['ContainerID']} is not running")
    # The preamble goes out before the process starts, as dockerd does: a client that reads
    # the 101 through a buffered reader then never finds output hidden in that buffer.
    conn = await hijack(request, tty=tty)
    async with tracked_stream(request):
        try:
            att = await service.exec_start(eid, detach=False, tty=tty_arg, console_size=console)
        except PortsideError as err:
            message = (err.message + "\r\n").encode()
            with contextlib.suppress(ConnectionError):
                await conn.write(message if tty else frame("stderr", message))
            conn.close()
            return finished_response()
        assert att is not None
        if not tty:
            att.detach_keys = b""  # dockerd watches for detach keys only on a TTY
        await pump(request, conn, att, tty=tty, before_close=service.exec_wait(eid))
    return finished_response()


async def resize_exec(request: web.Request) -> web.Response:
    height = query_int(request.query, "h") or 0
    width = query_int(request.query, "w") or 0
    await _service(request).exec_resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def inspect_exec(request: web.Request) -> web.Response:
    return json_reply(await _service(request).exec_inspect(request.match_info["id"]))


def register(routes: Routes) -> None:
    routes.post("/containers/{id}/exec", create_exec)
    routes.post("/exec/{id}/start", start_exec)
    routes.post("/exec/{id}/resize", resize_exec)
    routes.get("/exec/{id}/json", inspect_exec)
