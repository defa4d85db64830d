"""The Docker Engine API application: routing, version checks, error mapping, headers.

``create_app(engine)`` builds an aiohttp application whose routes answer both unversioned
paths and ``/v{version}/...`` like dockerd. Versions outside 1.24..1.44 get dockerd's 400
("client version X is too old/new"); engine errors become ``{"message": ...}`` with their
status; unknown paths and methods answer 404 ``{"message":"page not found"}``.
"""

from __future__ import annotations

import logging
import platform
from typing import TYPE_CHECKING

from aiohttp import web

from engine.api import (
    archive,
    attach_ws,
    auth,
    build,
    containers,
    events,
    images,
    images_archive,
    registry,
    system,
    volumes,
)
from engine.api import exec as exec_api
from engine.api import networks as networks_api
from engine.api.base import (
    API_VERSION,
    ENGINE,
    MIN_API_VERSION,
    Handler,
    Routes,
    compare_versions,
    error_reply,
)
from engine.api.host import host_facts
from engine.api.streams import setup_streams
from engine.api.system import HOST
from engine.errors import PortsideError

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)

_VERSION_PREFIX = "/v{version:[0-9.]+}"
# Request bodies the API accepts (JSON configs); build contexts are refused before reading.
_MAX_BODY = 16 * 1024 * 1024


def _server_header() -> str:
    from engine.engine import VERSION

    return f"portside/{VERSION} ({platform.system().lower()})"


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the requested API version and turn every failure into dockerd's JSON error."""
    version = request.match_info.get("version")
    if version is not None:
        if compare_versions(version, MIN_API_VERSION) < 0:
            return error_reply(
                400,
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
        if compare_versions(version, API_VERSION) > 0:
            return error_reply(
                400,
                f"client version {version} is too new. Maximum supported API version is "
                f"{API_VERSION}",
            )
    try:
        return await handler(request)
    except PortsideError as err:
        if err.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, err.message)
        return error_reply(err.status, err.message)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return error_reply(404, "page not found")
    except web.HTTPRequestEntityTooLarge:
        return error_reply(413, f"request body larger than {_MAX_BODY} bytes")
    except web.HTTPException as err:
        if err.status >= 400:
            return error_reply(err.status, err.text or err.reason)
        raise
    except ConnectionError:
        raise
    except Exception as err:
        log.exception("%s %s failed", request.method, request.path)
        return error_reply(500, f"internal error: {err}")


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers.setdefault("OSType", "linux")
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers["Server"] = request.app[_SERVER]


_SERVER: web.AppKey[str] = web.AppKey("server_header", str)


async def _load_host_facts(app: web.Application) -> None:
    app[HOST] = await host_facts()


def install_routes(app: web.Application, routes: Routes) -> None:
    """Add every route unversioned, then all again under ``/v{version}``.

    Each set keeps registration order, so literal paths (``/images/json``) are tried
    before the catch-all image-name patterns (``/images/{name:.+}/json``).
    """
    for prefix in ("", _VERSION_PREFIX):
        resources: dict[str, web.Resource] = {}
        for method, path, handler in routes.entries:
            full = prefix + path
            resource = resources.get(full)
            if resource is None:
                resource = app.router.add_resource(full)
                resources[full] = resource
            resource.add_route(method, handler)


def create_app(engine: Engine) -> web.Application:
    """The Docker Engine API over ``engine``'s services."""
    app = web.Application(middlewares=[api_middleware], client_max_size=_MAX_BODY)
    app[ENGINE] = engine
    app[_SERVER] = _server_header()
    setup_streams(app)
    app.on_startup.append(_load_host_facts)
    app.on_response_prepare.append(_common_headers)
    routes = Routes()
    system.register(routes)
    images_archive.register(routes)
    images.register(routes)
    attach_ws.register(routes)
    archive.register(routes)  # before the containers' catch-all patterns
    containers.register(routes)
    exec_api.register(routes)
    volumes.register(routes)
    networks_api.register(routes)
    events.register(routes)
    build.register(routes)
    auth.register(routes)
    registry.register(routes)
    install_routes(app, routes)
    return app
