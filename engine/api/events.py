"""``GET /events``: the engine's event bus as a stream of JSON objects, one per line.

The subscription is registered before the 200 goes out, so a client that acts as soon as
the headers arrive sees the events of its own actions. Each event is flushed on its own;
the stream ends at ``until`` or when the engine shuts down.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of
from engine.api.params import query_filters, query_timestamp
from engine.api.streams import JsonStream, ShuttingDown, tracked_stream, unless_shutdown
from engine.errors import InvalidArgument


async def events(request: web.Request) -> web.StreamResponse:
    query = request.query
    since = query_timestamp(query, "since")
    until = query_timestamp(query, "until")
    filters = query_filters(query)  # dockerd ignores unknown names here
    if since is not None and until is not None and until < since:
        raise InvalidArgument("`since` time is after `until` time; swap them")
    subscription = engine_of(request).events.subscribe(since=since, until=until, filters=filters)
    stream = JsonStream(request)
    async with tracked_stream(request):
        # Start the subscription (it registers on its first step) before answering.
        pending: asyncio.Future[Any] = asyncio.ensure_future(anext(subscription))
        try:
            await asyncio.sleep(0)
            await stream.start()
            while True:
                try:
                    event = await unless_shutdown(request.app, pending)
                except (StopAsyncIteration, ShuttingDown):
                    break
                await stream.send(event)
                pending = asyncio.ensure_future(anext(subscription))
        finally:
            pending.cancel()
            await asyncio.wait({pending})
            close = getattr(subscription, "aclose", None)
            if close is not None:
                await close()
        return await stream.finish()


def register(routes: Routes) -> None:
    routes.get("/events", events)
