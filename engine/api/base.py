"""Shared pieces of the API layer: supported versions, the route table, JSON replies.

Every resource module exposes ``register(routes: Routes)``; ``Routes`` records each
(method, path, handler) once and ``create_app`` installs it both unversioned and under
``/v{version}/`` the way dockerd does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine.errors import PortsideError

if TYPE_CHECKING:
    from engine.engine import Engine

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"

ENGINE: web.AppKey[Engine] = web.AppKey("engine")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NotImplementedYet(PortsideError):
    """A Docker API operation portside does not offer (yet); dockerd's 501."""

    status = 501


@dataclass
class Routes:
    """The API's route table, in registration order (which is also matching order)."""

    entries: list[tuple[str, str, Handler]] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.entries.append((method, path, handler))

    def get(self, path: str, handler: Handler) -> None:
        self.add("GET", path, handler)

    def post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add("DELETE", path, handler)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 like dockerd's ``versions.compare``: numeric parts, missing ones are 0."""
    pa = [int(p) if p.isdigit() else 0 for p in a.split(".")]
    pb = [int(p) if p.isdigit() else 0 for p in b.split(".")]
    width = max(len(pa), len(pb))
    pa += [0] * (width - len(pa))
    pb += [0] * (width - len(pb))
    return (pa > pb) - (pa < pb)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def json_reply(obj: Any, status: int = 200) -> web.Response:
    """A JSON response as dockerd sends it: ``application/json``, a trailing newline."""
    body = (_dumps(obj) + "\n").encode()
    return web.Response(body=body, status=status, content_type="application/json")


def error_reply(status: int, message: str) -> web.Response:
    """dockerd's error body: ``{"message": ...}``."""
    return json_reply({"message": message}, status=status)
