"""Registry authentication: WWW-Authenticate challenges, Basic, and the Bearer token flow.

The ``Authenticator`` remembers each endpoint's challenge, fetches tokens from the realm
(GET with Basic credentials, or an OAuth2 POST with an identity token), caches them by
(endpoint, service, sorted scopes, credentials) for at least 60 s, and deduplicates
concurrent fetches with one lock per key. Realms are checked before any request: https for
a secure registry, and never a private or link-local IP literal other than the registry's
own host (the 169.254.169.254 case).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from engine.errors import RegistryError, Unauthorized
from engine.registry.credentials import AuthConfig
from engine.registry.hosts import Endpoint, HostResolver, host_port, is_internal_literal
from engine.registry.responses import (
    MAX_TOKEN_BODY,
    Transient,
    connection_error,
    error_message,
    read_bounded,
)

log = logging.getLogger(__name__)

MIN_TOKEN_LIFETIME = 60.0
_EXPIRY_MARGIN = 10.0
_CLIENT_ID = "portside"
_TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=30)
_TOKEN68_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*")
_PARAM_RE = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(,?)'
)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lowercase) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.params.get("scope", "").split())


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """Every challenge in the given WWW-Authenticate header values (RFC 7235 syntax)."""
    out: list[Challenge] = []
    for header in headers:
        pos = 0
        while pos < len(header):
            match = _TOKEN68_RE.match(header, pos)
            if not match:
                break
            scheme = match.group(1).lower()
            pos = match.end()
            params: dict[str, str] = {}
            while pos < len(header):
                param = _PARAM_RE.match(header, pos)
                if not param:
                    break
                value = param.group(2)
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params[param.group(1).lower()] = value
                pos = param.end()
                if not param.group(3):
                    break
            out.append(Challenge(scheme, params))
            while pos < len(header) and header[pos] in ", ":
                pos += 1
    return out


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Bearer if offered, else Basic; None when neither is."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def check_realm(realm: str, endpoint: Endpoint) -> URL:
    """The realm as a URL, or RegistryError when it must not be contacted."""
    try:
        url = URL(realm)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.raw_host:
        raise RegistryError(f"registry {endpoint.host} sent an invalid token realm; refusing it")
    if url.user or url.password:
        raise RegistryError(f"registry {endpoint.host} sent a token realm with credentials")
    if url.scheme != "https" and not endpoint.insecure:
        raise RegistryError(
            f"refusing token realm {url.scheme}://{url.raw_host}/ from {endpoint.host}: a "
            "secure registry must use an https realm"
        )
    realm_host = (url.raw_host or "").lower()
    registry_host = (endpoint.base.raw_host or "").lower()
    if is_internal_literal(realm_host) and realm_host != registry_host:
        raise RegistryError(
            f"refusing token realm {url.raw_host} from {endpoint.host}: it points at a private "
            "or link-local address that is not the registry itself"
        )
    return url


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization headers for registry requests, with challenge and token caches."""

    def __init__(
        self,
        resolver: HostResolver,
        session: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self._resolver = resolver
        self._session = session
        # Keyed by endpoint base URL; None means "answered without a challenge" (anonymous).
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens: dict[tuple[str, str, tuple[str, ...], str], _Token] = {}
        self._locks: dict[tuple[str, str, tuple[str, ...], str], asyncio.Lock] = {}
        self._extra_scopes: dict[tuple[str, str], set[str]] = {}
        self.token_requests = 0  # how many times a realm was asked (tests and diagnostics)

    def challenge_for(self, endpoint: Endpoint) -> Challenge | None:
        return self._challenges.get(str(endpoint.base))

    def knows(self, endpoint: Endpoint) -> bool:
        return str(endpoint.base) in self._challenges

    def set_challenge(self, endpoint: Endpoint, challenge: Challenge | None) -> None:
        self._challenges[str(endpoint.base)] = challenge

    def scopes(self, endpoint: Endpoint, repository: str | None, actions: str = "pull") -> set[str]:
        if repository is None:
            return set()
        base = {f"repository:{repository}:{actions}"}
        return base | self._extra_scopes.get((str(endpoint.base), repository), set())

    async def header(
        self,
        endpoint: Endpoint,
        repository: str | None,
        auth: AuthConfig | None,
        *,
        refresh: bool = False,
        actions: str = "pull",
        extra_scopes: frozenset[str] = frozenset(),
    ) -> str | None:
        """The Authorization value for a request to ``endpoint`` (None for anonymous).

        ``actions`` are asked for on ``repository`` (``pull,push`` for a push) and
        ``extra_scopes`` besides (a mount source's pull, ``registry:catalog:*``).
        """
        challenge = self.challenge_for(endpoint)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if auth is None or not auth.username or auth.password is None:
                return None
            raw = f"{auth.username}:{auth.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if auth is not None and auth.registry_token:
            return f"Bearer {auth.registry_token}"
        scopes = self.scopes(endpoint, repository, actions) | extra_scopes
        token = await self.token(endpoint, challenge, scopes, auth, refresh=refresh)
        return f"Bearer {token}"

    def on_unauthorized(
        self,
        endpoint: Endpoint,
        repository: str | None,
        headers: list[str],
        actions: str = "pull",
        extra_scopes: frozenset[str] = frozenset(),
    ) -> bool:
        """Learn from a 401's challenge; True when it asks for something new (scheme, realm,
        service or more scope), so that a retry with fresh credentials can succeed."""
        challenge = pick_challenge(parse_challenges(headers))
        if challenge is None:
            return False
        previous = self.challenge_for(endpoint)
        self.set_challenge(endpoint, challenge)
        changed = previous is None or (previous.scheme, previous.realm, previous.service) != (
            challenge.scheme,
            challenge.realm,
            challenge.service,
        )
        if challenge.scheme == "bearer" and repository is not None:
            wanted = set(challenge.scopes) - self.scopes(endpoint, repository, actions)
            wanted -= extra_scopes
            if wanted:
                # More scope than we asked for: ask for the union next time.
                key = (str(endpoint.base), repository)
                self._extra_scopes.setdefault(key, set()).update(wanted)
                changed = True
        return changed

    async def token(
        self,
        endpoint: Endpoint,
        challenge: Challenge,
        scopes: set[str],
        auth: AuthConfig | None,
        *,
        refresh: bool = False,
    ) -> str:
        """A cached or freshly fetched bearer token for ``scopes`` at ``endpoint``."""
        ident = auth.identity() if auth is not None and not auth.is_empty else "anonymous"
        key = (str(endpoint.base), challenge.service, tuple(sorted(scopes)), ident)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            cached = self._tokens.get(key)
            if cached is not None and not refresh and cached.expires > loop.time():
                return cached.value
            value, lifetime = await self._fetch_token(endpoint, challenge, scopes, auth)
            margin = min(_EXPIRY_MARGIN, lifetime / 4)
            self._tokens[key] = _Token(value, loop.time() + lifetime - margin)
            return value

    async def _fetch_token(
        self,
        endpoint: Endpoint,
        challenge: Challenge,
        scopes: set[str],
        auth: AuthConfig | None,
    ) -> tuple[str, float]:
        realm = check_realm(challenge.realm, endpoint)
        self.token_requests += 1
        realm_host = host_port(realm)
        ssl_ctx: ssl.SSLContext | None = None
        if realm.scheme == "https":
            if realm_host.lower() == endpoint.host.lower() and endpoint.ssl is not None:
                ssl_ctx = endpoint.ssl
            else:
                # The registry's certs.d trust applies to its token server (one transport in
                # docker), plus anything configured for the realm host itself.
                ssl_ctx = endpoint.ssl or await self._resolver.ssl_context(realm_host)
        scope_list = sorted(scopes)
        has_basic = auth is not None and bool(auth.username) and auth.password is not None
        try:
            if auth is not None and auth.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": auth.identity_token,
                    "service": challenge.service,
                    "client_id": _CLIENT_ID,
                    "scope": " ".join(scope_list),
                }
                status, body, message = await self._token_call("POST", realm, ssl_ctx, data=form)
                if status in (404, 405):
                    status, body, message = await self._token_get(
                        realm, ssl_ctx, challenge, scope_list, auth if has_basic else None
                    )
            else:
                status, body, message = await self._token_get(
                    realm, ssl_ctx, challenge, scope_list, auth if has_basic else None
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            problem = connection_error(realm_host, err)
            message = f"cannot get a token for {endpoint.host} from {realm_host}: {problem.reason}"
            if problem.tls:
                raise RegistryError(message) from None
            raise Transient(message) from None
        host = endpoint.registry
        if status in (401, 403):
            if auth is not None and not auth.is_empty:
                raise Unauthorized(
                    f"wrong credentials for {host}: the token server refused them; "
                    f"run portside login {host}"
                )
            raise Unauthorized(
                f"authentication required for {host}: the token server refused anonymous "
                f"access; run portside login {host}"
            )
        if status != 200:
            detail = f": {message}" if message else ""
            text = f"token server for {host} answered {status}{detail}"
            if status == 429 or status >= 500:
                raise Transient(text)
            raise RegistryError(text)
        return _parse_token(body, host)

    async def _token_get(
        self,
        realm: URL,
        ssl_ctx: ssl.SSLContext | None,
        challenge: Challenge,
        scopes: list[str],
        auth: AuthConfig | None,
    ) -> tuple[int, bytes, str]:
        query: list[tuple[str, str]] = list(realm.query.items())
        if challenge.service:
            query.append(("service", challenge.service))
        query.extend(("scope", scope) for scope in scopes)
        headers = {}
        if auth is not None and auth.username:
            query.append(("account", auth.username))
            raw = f"{auth.username}:{auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        url = realm.with_query(query)
        return await self._token_call("GET", url, ssl_ctx, headers=headers)

    async def _token_call(
        self,
        method: str,
        url: URL,
        ssl_ctx: ssl.SSLContext | None,
        *,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        kwargs: dict[str, object] = {}
        if ssl_ctx is not None:
            kwargs["ssl"] = ssl_ctx
        async with self._session().request(
            method,
            url,
            headers={"Accept-Encoding": "identity", **(headers or {})},
            data=data,
            allow_redirects=False,
            timeout=_TOKEN_TIMEOUT,
            **kwargs,  # type: ignore[arg-type]
        ) as resp:
            if resp.status == 200:
                body = await read_bounded(resp, MAX_TOKEN_BODY, "token response")
                return 200, body, ""
            return resp.status, b"", await error_message(resp)


def _parse_token(body: bytes, host: str) -> tuple[str, float]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"token server for {host} sent invalid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"token server for {host} sent invalid JSON")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token or any(ch in token for ch in "\r\n"):
        raise RegistryError(f"token server for {host} sent no usable token")
    expires = doc.get("expires_in")
    lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else 0.0
    return token, max(MIN_TOKEN_LIFETIME, lifetime)
