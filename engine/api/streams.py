"""Streaming responses: JSON lines exactly as dockerd writes them, and their shutdown.

``JsonStream`` sends the 200 headers only with its first line (or on ``start()``), so an
operation that fails before it produced anything can still answer with a plain error
status, as dockerd does; later errors go into the stream as ``errorDetail`` lines.
Every open stream is registered with the application; on shutdown the streams are told to
end (events finish cleanly, a pull in flight is cancelled and reports it) instead of the
daemon waiting for idle clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web

from engine.progress import ProgressEvent

STREAM_TASKS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("stream_tasks", set)
SHUTDOWN: web.AppKey[asyncio.Event] = web.AppKey("shutdown", asyncio.Event)
T = TypeVar("T")

_STREAM_GRACE = 5.0  # seconds open streams get to end on shutdown
_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BAR_WIDTH = 50
# Statuses dockerd sends as plain messages (no progressDetail) although they carry an id.
_MESSAGE_PREFIXES = ("Pulling from ",)


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, four significant digits (``32.77kB``)."""
    unit = 0
    while size >= 1000.0 and unit < len(_SIZE_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.4g}{_SIZE_UNITS[unit]}"


def progress_bar(current: int, total: int | None) -> str:
    """The ``progress`` string of a dockerd JSON message (``[==>   ]  1.2MB/3.4MB``)."""
    if current <= 0 and not total:
        return ""
    if not total or total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, _BAR_WIDTH)
    bar = "[" + "=" * percentage + ">" + " " * max(_BAR_WIDTH - percentage, 0) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def progress_message(event: ProgressEvent) -> dict[str, Any]:
    """A pull/push progress line with fields in dockerd's order (status, ..., id)."""
    out: dict[str, Any] = {"status": event.status}
    if event.id is not None and not event.status.startswith(_MESSAGE_PREFIXES):
        detail: dict[str, int] = {}
        if event.current is not None:
            detail["current"] = event.current
            if event.total:
                detail["total"] = event.total
        out["progressDetail"] = detail
        bar = progress_bar(event.current, event.total) if event.current is not None else ""
        if bar:
            out["progress"] = bar
    if event.id is not None:
        out["id"] = event.id
    return out


def error_message(message: str) -> dict[str, Any]:
    """The line that reports a failure after a stream has started."""
    return {"errorDetail": {"message": message}, "error": message}


def encode_line(obj: Any) -> bytes:
    """Compact JSON plus newline, escaping ``<``, ``>`` and ``&`` like Go's encoder."""
    text = json.dumps(obj, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


class JsonStream:
    """A chunked ``application/json`` response written one JSON object per line."""

    def __init__(self, request: web.Request, content_type: str = "application/json") -> None:
        self._request = request
        self._response = web.StreamResponse(status=200)
        self._response.content_type = content_type

    @property
    def started(self) -> bool:
        return self._response.prepared

    async def start(self) -> None:
        """Send the 200 and the headers now (aiohttp flushes them at once)."""
        if not self._response.prepared:
            await self._response.prepare(self._request)

    async def send(self, obj: Any) -> None:
        await self.start()
        await self._response.write(encode_line(obj))

    async def finish(self) -> web.StreamResponse:
        await self.start()
        await self._response.write_eof()
        return self._response


class ShuttingDown(Exception):
    """The engine began to shut down while a stream was waiting."""


async def unless_shutdown(app: web.Application, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``; if ``app`` starts shutting down first, cancel it, raise ShuttingDown."""
    stop = app[SHUTDOWN]
    task = asyncio.ensure_future(awaitable)
    if stop.is_set():
        task.cancel()
        raise ShuttingDown
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled() and stop.is_set():
        raise ShuttingDown
    return task.result()


@asynccontextmanager
async def tracked_stream(request: web.Request) -> AsyncIterator[None]:
    """Register the current handler as an open stream that shutdown waits for."""
    task = asyncio.current_task()
    assert task is not None
    tasks = request.app[STREAM_TASKS]
    tasks.add(task)
    try:
        yield
    finally:
        tasks.discard(task)


def setup_streams(app: web.Application) -> None:
    """Give ``app`` its stream registry and the shutdown hook that ends open streams."""
    app[STREAM_TASKS] = set()
    app[SHUTDOWN] = asyncio.Event()
    app.on_shutdown.append(close_streams)


async def close_streams(app: web.Application) -> None:
    """``on_shutdown`` hook: tell open streams (events, pulls) to end, and wait for them.

    A stream stuck writing to a client that stopped reading is cancelled after a grace
    period.
    """
    app[SHUTDOWN].set()
    tasks = list(app[STREAM_TASKS])
    if not tasks:
        return
    _done, stuck = await asyncio.wait(tasks, timeout=_STREAM_GRACE)
    for task in stuck:
        task.cancel()
    if stuck:
        await asyncio.wait(stuck)
