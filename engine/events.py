"""The engine's event bus: what happened to images (and later containers, networks, volumes).

Events have Docker's ``/events`` shape. The bus keeps a bounded in-memory history so
``since`` can replay recent events, and hands live events to every subscriber through its
own bounded queue (a slow subscriber loses its oldest events, never blocks the engine).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

_HISTORY = 1024
_QUEUE = 4096


def _matches(event: dict[str, Any], filters: dict[str, list[str]] | None) -> bool:
    if not filters:
        return True
    actor = event.get("Actor", {})
    attrs = actor.get("Attributes", {})
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key == "type":
            ok = event.get("Type") in wanted
        elif key == "event":
            ok = event.get("Action") in wanted or event.get("Action", "").split(":")[0] in wanted
        elif key in ("image", "container", "volume", "network"):
            ok = event.get("Type") == key and (
                actor.get("ID") in wanted
                or attrs.get("name") in wanted
                or any(actor.get("ID", "").startswith(w) for w in wanted if len(w) >= 3)
            )
        elif key == "label":
            ok = any(
                (w.split("=", 1)[0] in attrs)
                if "=" not in w
                else attrs.get(w.split("=", 1)[0]) == w.split("=", 1)[1]
                for w in wanted
            )
        elif key == "scope":
            ok = event.get("scope", "local") in wanted
        else:
            ok = True
        if not ok:
            return False
    return True


class EventBus:
    """Publish engine events; subscribe with Docker's since/until/filters semantics."""

    def __init__(self) -> None:
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(
        self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> dict[str, Any]:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": type,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        # Fields of the pre-1.22 format that docker's CLI still prints.
        if type in ("container", "image"):
            event["status"] = action
            event["id"] = actor_id
            if "name" in event["Actor"]["Attributes"] and type == "container":
                event["from"] = event["Actor"]["Attributes"].get("image", "")
        self._history.append(event)
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
        return event

    async def subscribe(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        filters: dict[str, list[str]] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield past events from ``since`` and then live ones until ``until`` (unix seconds)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE)
        self._subscribers.add(queue)
        replayed: set[int] = set()
        try:
            if since is not None:
                for event in list(self._history):
                    replayed.add(id(event))
                    if event["timeNano"] < since * 1e9:
                        continue
                    if until is not None and event["timeNano"] > until * 1e9:
                        return
                    if _matches(event, filters):
                        yield event
            while True:
                if until is not None:
                    remaining = until - time.time()
                    if remaining <= 0:
                        return
                    try:
                        event = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        return
                else:
                    event = await queue.get()
                if id(event) in replayed:
                    continue
                if since is not None and event["timeNano"] < since * 1e9:
                    continue
                if _matches(event, filters):
                    yield event
        finally:
            self._subscribers.discard(queue)
