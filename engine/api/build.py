"""Image builds (``POST /build``): not offered yet, refused with a clear 501.

The build service plugs in here; until then the handler answers before reading the
uploaded build context.
"""

from __future__ import annotations

from aiohttp import web

from engine.api.base import NotImplementedYet, Routes


async def build(request: web.Request) -> web.Response:
    del request
    raise NotImplementedYet(
        "portside cannot build images yet (POST /build is not supported); "
        "build with another engine and pull the image from a registry"
    )


def register(routes: Routes) -> None:
    routes.post("/build", build)
