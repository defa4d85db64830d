"""Network endpoints: ``/networks`` list, inspect, create, remove, prune, connect and
disconnect over ``engine.networks`` (NetworkService) and ``engine.containers`` (run-time
connect/disconnect), with dockerd's shapes, status codes and messages."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of, json_reply
from engine.api.params import query_filters
from engine.errors import InvalidArgument

LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
PRUNE_FILTERS = frozenset({"label", "until"})


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body, or {} when there is none; a one-line 400 when it is not an object."""
    raw = await request.read() if request.can_read_body else b""
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


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"network {what} must be an object of strings")
    return {str(k): str(v) for k, v in value.items()}


async def list_networks(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=LIST_FILTERS)
    scope = filters.pop("scope", [])
    found = await engine_of(request).networks.list(filters)
    if scope and "local" not in scope:
        found = []
    return json_reply(found)


async def inspect_network(request: web.Request) -> web.Response:
    return json_reply(await engine_of(request).networks.inspect(request.match_info["id"]))


async def create_network(request: web.Request) -> web.Response:
    body = await _body(request)
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("network create needs a Name: give the network a name")
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported by portside: drop --ipv6")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("network IPAM must be an object")
    if (ipam.get("Driver") or "default") != "default":
        raise InvalidArgument(f"IPAM driver {ipam['Driver']!r} is not supported: use default")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise InvalidArgument("portside networks take at most one IPAM config (one --subnet)")
    cfg = configs[0] if configs else {}
    if not isinstance(cfg, dict):
        raise InvalidArgument("network IPAM config entries must be objects")
    result = await engine_of(request).networks.create(
        name,
        driver=str(body.get("Driver") or "bridge"),
        subnet=cfg.get("Subnet") or None,
        gateway=cfg.get("Gateway") or None,
        ip_range=cfg.get("IPRange") or None,
        internal=bool(body.get("Internal")),
        labels=_strings(body.get("Labels"), "Labels"),
        options=_strings(body.get("Options"), "Options"),
    )
    eng = engine_of(request)
    net = eng.networks.get(result["Id"])
    eng.events.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
    return json_reply(result, status=201)


async def remove_network(request: web.Request) -> web.Response:
    eng = engine_of(request)
    net = eng.networks.get(request.match_info["id"])
    await eng.networks.remove(net.id)
    eng.events.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})
    return web.Response(status=204)


async def prune_networks(request: web.Request) -> web.Response:
    filters = query_filters(request.query, allowed=PRUNE_FILTERS)
    if filters.get("until"):
        raise InvalidArgument("portside prunes networks without the until filter; drop it")
    removed = await engine_of(request).networks.prune(filters)
    return json_reply({"NetworksDeleted": removed or None})


async def connect_network(request: web.Request) -> web.Response:
    body = await _body(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise InvalidArgument("network connect needs a Container: name one by name or id")
    endpoint = body.get("EndpointConfig") or {}
    if not isinstance(endpoint, dict):
        raise InvalidArgument("EndpointConfig must be an object")
    aliases = endpoint.get("Aliases") or []
    if not isinstance(aliases, list):
        raise InvalidArgument("EndpointConfig.Aliases must be a list of names")
    if endpoint.get("IPAMConfig"):
        raise InvalidArgument("portside does not assign static addresses: drop --ip")
    await engine_of(request).containers.connect(
        container, request.match_info["id"], aliases=[str(a) for a in aliases]
    )
    return web.Response(status=200)


async def disconnect_network(request: web.Request) -> web.Response:
    body = await _body(request)
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise InvalidArgument("network disconnect needs a Container: name one by name or id")
    await engine_of(request).containers.disconnect(
        container, request.match_info["id"], force=bool(body.get("Force"))
    )
    return web.Response(status=200)


def register(routes: Routes) -> None:
    routes.get("/networks", list_networks)
    routes.post("/networks/create", create_network)
    routes.post("/networks/prune", prune_networks)
    routes.get("/networks/{id}", inspect_network)
    routes.delete("/networks/{id}", remove_network)
    routes.post("/networks/{id}/connect", connect_network)
    routes.post("/networks/{id}/disconnect", disconnect_network)
