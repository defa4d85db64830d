"""portside's own endpoints for what the Docker Engine API lacks: browsing registries, scans.

All live under ``/portside/v1/`` (a prefix no Docker API path starts with), answer JSON and
use dockerd's ``{"message": ...}`` errors. Registry credentials come from the
``X-Registry-Auth`` header (as for a pull), else from the engine's own docker config.

- ``GET /portside/v1/registries/{host}/catalog[?n=N&last=NAME]``:
  ``{"Registry", "Repositories": [...], "Next": NAME|null}``; without ``n`` the whole
  catalog, with ``n`` one page whose ``Next`` is the ``last`` of the following one.
  403 when the registry does not offer its catalog.
- ``GET /portside/v1/repositories/{name}/tags[?n=N&last=TAG]``: ``{"Name", "Tags",
  "Next"}``; ``name`` is ``[HOST/]REPOSITORY`` (docker's normalisation).
- ``GET /portside/v1/manifests/{ref}``: what ``NAME[:TAG|@DIGEST]`` points at in its
  registry: ``{"Reference", "Digest", "MediaType", "Size"}`` plus ``"Platforms"`` for an
  index, or ``"Config"``, ``"Layers"`` and ``"TotalSize"`` for an image.
- ``DELETE /portside/v1/manifests/{ref}``: delete a tag or a manifest in the registry:
  ``{"Reference", "Digest", "TagOnly", "Message"}``.
- ``GET /portside/v1/images/{name}/scan[?format=text&external=0]``: scan a local image:
  the report as JSON (``Image``, ``Id``, ``Packages``, ``Findings``, ``Vulnerabilities``,
  ...), or as plain text with ``format=text``; ``external=0`` skips trivy/grype.

The dashboard calls them with aiodocker's raw ``_query_json`` (``versioned_api=False``);
they also answer under ``/v{version}/`` like every route.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import web

from engine.api.auth import registry_auth
from engine.api.base import Routes, engine_of, json_reply
from engine.api.params import query_bool, query_int, query_str
from engine.errors import InvalidArgument
from engine.registry.browse import Page
from engine.registry.login import registry_host
from engine.scan import format_text

PREFIX = "/portside/v1"
MAX_PAGE_SIZE = 10_000
_FORMATS = ("json", "text")


def _page_size(request: web.Request) -> int | None:
    n = query_int(request.query, "n")
    if n is not None and not 0 < n <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"invalid value for 'n': {n}; give 1 to {MAX_PAGE_SIZE}")
    return n


def _next_of(page: Page) -> str | None:
    """The ``last`` value that fetches the page after ``page`` (None at the end)."""
    if page.next is None:
        return None
    values = parse_qs(page.next).get("last")
    if values:
        return values[0]
    return page.items[-1] if page.items else None


async def catalog(request: web.Request) -> web.Response:
    engine = engine_of(request)
    host = registry_host(request.match_info["host"])
    auth = registry_auth(request)
    n = _page_size(request)
    browser = engine.browser
    if n is None:
        names = await browser.catalog(host, auth=auth)
        return json_reply({"Registry": host, "Repositories": names, "Next": None})
    after = query_str(request.query, "last") or None
    page = await browser.catalog_page(host, auth=auth, page_size=n, after=after)
    return json_reply({"Registry": host, "Repositories": page.items, "Next": _next_of(page)})


async def tags(request: web.Request) -> web.Response:
    engine = engine_of(request)
    name = request.match_info["name"]
    auth = registry_auth(request)
    n = _page_size(request)
    browser = engine.browser
    if n is None:
        found = await browser.tags(name, auth=auth)
        return json_reply({"Name": name, "Tags": found, "Next": None})
    after = query_str(request.query, "last") or None
    page = await browser.tags_page(name, auth=auth, page_size=n, after=after)
    return json_reply({"Name": name, "Tags": page.items, "Next": _next_of(page)})


async def inspect_manifest(request: web.Request) -> web.Response:
    engine = engine_of(request)
    details = await engine.browser.inspect(request.match_info["ref"], auth=registry_auth(request))
    return json_reply(details.to_json())


async def delete_manifest(request: web.Request) -> web.Response:
    engine = engine_of(request)
    result = await engine.browser.delete(request.match_info["ref"], auth=registry_auth(request))
    return json_reply(
        {
            "Reference": result.reference,
            "Digest": result.digest,
            "TagOnly": result.tag_only,
            "Message": result.message,
        }
    )


async def scan_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    fmt = query_str(request.query, "format", "json") or "json"
    if fmt not in _FORMATS:
        raise InvalidArgument(f"invalid format {fmt[:20]!r}: use json or text")
    external = query_bool(request.query, "external", default=True)
    report = await engine.scanner.scan(request.match_info["name"], external=external)
    if fmt == "text":
        return web.Response(text=format_text(report), content_type="text/plain")
    return json_reply(report.to_json())


def register(routes: Routes) -> None:
    routes.get(PREFIX + "/registries/{host}/catalog", catalog)
    routes.get(PREFIX + "/repositories/{name:.+}/tags", tags)
    routes.get(PREFIX + "/manifests/{ref:.+}", inspect_manifest)
    routes.delete(PREFIX + "/manifests/{ref:.+}", delete_manifest)
    routes.get(PREFIX + "/images/{name:.+}/scan", scan_image)
