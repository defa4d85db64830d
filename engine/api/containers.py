"""Container endpoints, and the seam where the container service plugs in.

The engine exposes its containers as ``engine.containers`` (``ContainerService`` below).
An engine without one has no containers: the list is empty, every
``/containers/{id}/...`` and ``/exec/{id}/...`` operation answers dockerd's 404
("No such container: ID"), and creating a container answers 501. Operations the service
does not offer through this layer yet answer 501 once the container is known to exist.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from engine.api.base import NotImplementedYet, Routes, engine_of, json_reply
from engine.api.params import Filters, query_bool, query_filters, query_int
from engine.errors import NotFound

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

# (method, path under /containers/{id}) of the operations still waiting for the service.
_OPERATIONS = (
    ("GET", "top"),
    ("GET", "logs"),
    ("GET", "changes"),
    ("GET", "export"),
    ("GET", "stats"),
    ("GET", "archive"),
    ("HEAD", "archive"),
    ("PUT", "archive"),
    ("GET", "attach/ws"),
    ("POST", "start"),
    ("POST", "stop"),
    ("POST", "restart"),
    ("POST", "kill"),
    ("POST", "update"),
    ("POST", "rename"),
    ("POST", "pause"),
    ("POST", "unpause"),
    ("POST", "attach"),
    ("POST", "wait"),
    ("POST", "resize"),
    ("POST", "exec"),
)
_EXEC_OPERATIONS = (("POST", "start"), ("POST", "resize"), ("GET", "json"))


class ContainerService(Protocol):
    """What this layer needs from ``engine.containers`` (docker-shaped dicts)."""

    async def list_containers(
        self, *, all: bool, limit: int | None, size: bool, filters: Filters
    ) -> list[dict[str, Any]]: ...

    async def inspect(self, name: str, *, size: bool = False) -> dict[str, Any]: ...

    async def prune(self, *, filters: Filters) -> dict[str, Any]: ...


def _service(request: web.Request) -> ContainerService | None:
    return getattr(engine_of(request), "containers", None)


async def list_containers(request: web.Request) -> web.Response:
    query = request.query
    filters = query_filters(query, allowed=LIST_FILTERS)
    service = _service(request)
    if service is None:
        return json_reply([])
    limit = query_int(query, "limit")
    return json_reply(
        await service.list_containers(
            all=query_bool(query, "all"),
            limit=limit if limit and limit > 0 else None,
            size=query_bool(query, "size"),
            filters=filters,
        )
    )


async def inspect_container(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    service = _service(request)
    if service is None:
        raise NotFound(f"No such container: {name}")
    return json_reply(await service.inspect(name, size=query_bool(request.query, "size")))


async def create_container(request: web.Request) -> web.Response:
    del request
    raise NotImplementedYet(
        "portside cannot create containers yet (POST /containers/create is not supported)"
    )


async def prune_containers(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=PRUNE_FILTERS)
    service = _service(request)
    if service is None:
        return json_reply({"ContainersDeleted": None, "SpaceReclaimed": 0})
    return json_reply(await service.prune(filters=filters))


async def container_operation(request: web.Request) -> web.Response:
    """An operation on one container that this layer does not translate yet."""
    name = request.match_info["id"]
    service = _service(request)
    if service is None:
        raise NotFound(f"No such container: {name}")
    await service.inspect(name)  # 404 for unknown containers, as dockerd answers
    raise NotImplementedYet(
        f"portside does not support {request.method} /containers/{{id}}/"
        f"{request.match_info.get('op', '')} yet"
    )


async def remove_container(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    service = _service(request)
    if service is None:
        raise NotFound(f"No such container: {name}")
    await service.inspect(name)
    raise NotImplementedYet("portside does not support removing containers yet")


async def exec_operation(request: web.Request) -> web.Response:
    """Exec instances belong to containers; without the service there are none."""
    raise NotFound(f"No such exec instance: {request.match_info['id']}")


def register(routes: Routes) -> None:
    routes.get("/containers/json", list_containers)
    routes.post("/containers/create", create_container)
    routes.post("/containers/prune", prune_containers)
    routes.get("/containers/{id}/json", inspect_container)
    for method, op in _OPERATIONS:
        routes.add(method, "/containers/{id}/{op:" + op + "}", container_operation)
    routes.delete("/containers/{id}", remove_container)
    for method, op in _EXEC_OPERATIONS:
        routes.add(method, "/exec/{id}/" + op, exec_operation)
