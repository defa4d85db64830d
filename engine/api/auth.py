"""``POST /auth`` (what ``docker login`` asks the daemon) and the ``X-Registry-Auth`` header.

Like dockerd, ``/auth`` only verifies credentials against the registry and answers
``{"Status": "Login Succeeded", "IdentityToken": ""}``; storing them is the client's job
(the docker CLI and ``portside login`` write their own config.json). Refused credentials
get a 401 with dockerd's message (``login attempt to https://HOST/v2/ failed with status:
401 Unauthorized``). Credentials are never logged or echoed in an error.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from engine.api.base import Routes, engine_of, json_reply
from engine.errors import InvalidArgument, Unauthorized
from engine.registry.credentials import AuthConfig
from engine.registry.login import LOGIN_SUCCEEDED, registry_host

log = logging.getLogger(__name__)

AUTH_HEADER = "X-Registry-Auth"


def registry_auth(request: web.Request, *, lenient: bool = False) -> AuthConfig | None:
    """The credentials of a request's ``X-Registry-Auth`` header, None when absent.

    A header that does not decode is a 400, unless ``lenient``: dockerd's push treats it
    as anonymous (aiodocker sends ``placeholder`` for an anonymous push).
    """
    header = request.headers.get(AUTH_HEADER)
    if not header:
        return None
    try:
        return AuthConfig.from_header(header)
    except InvalidArgument:
        if lenient:
            return None
        raise


async def _auth_body(request: web.Request) -> AuthConfig:
    raw = await request.read()
    try:
        data: Any = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "invalid /auth request: expected a JSON object with username, password and "
            "serveraddress"
        ) from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid /auth request: expected a JSON object")
    return AuthConfig.from_dict(data)


async def post_auth(request: web.Request) -> web.Response:
    engine = engine_of(request)
    auth = await _auth_body(request)
    host = registry_host(auth.server_address)
    registry = engine.registry
    if auth.is_empty:
        raise Unauthorized(f"login to {host} needs a username and a password")
    try:
        await registry.check_login(host, auth)
    except Unauthorized as err:
        base = registry.endpoint_base(host) or f"https://{host}"
        log.info("login to %s refused: %s", host, err.message)
        raise Unauthorized(
            f"login attempt to {base}/v2/ failed with status: 401 Unauthorized"
        ) from None
    # The client stores the credentials next; a cached docker-config lookup must not hide them.
    registry.forget_credentials(host)
    return json_reply({"IdentityToken": "", "Status": LOGIN_SUCCEEDED})


def register(routes: Routes) -> None:
    routes.post("/auth", post_auth)
