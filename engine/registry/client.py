"""The registry client: ping, manifests and blobs over the distribution (OCI) HTTP API.

One aiohttp session per client (pooled connections, no transparent decompression: a blob is
its compressed bytes). Every request goes through the same path: endpoint choice (mirrors,
https then http for insecure registries), authentication (``engine.registry.auth``), redirects
followed by hand so Authorization never reaches another host, bounded retries with backoff for
5xx/429/dropped connections, and one-line errors. Everything received is verified: manifests
against the requested digest and Docker-Content-Digest, blobs against their exact size (and
digest when read whole), all bodies read with caps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import aiohttp
from yarl import URL

from engine.config import EngineConfig
from engine.digest import Digest, is_digest
from engine.errors import (
    InvalidArgument,
    NotFound,
    PortsideError,
    RegistryError,
    VerificationError,
)
from engine.oci import (
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    SCHEMA1_MEDIA_TYPES,
    Descriptor,
    InvalidManifest,
    base_media_type,
)
from engine.reference import Reference
from engine.registry.auth import Authenticator
from engine.registry.credentials import AuthConfig, load_docker_credentials_async
from engine.registry.hosts import Endpoint, HostResolver, host_port, is_link_local_literal
from engine.registry.responses import (
    Transient,
    Unreachable,
    clean,
    connection_error,
    error_codes,
    error_for_status,
    error_message,
    parse_retry_after,
    read_bounded,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "portside/0.1"
CHUNK_SIZE = 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_NOT_FOUND_CODES = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND"}
_SMALL_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=30, sock_read=60)
_BLOB_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_CREDENTIAL_TTL = 30.0
_REGISTRY_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
# A request body: bytes, or a factory called for each attempt (a fresh stream each time).
Body = bytes | Callable[[], object] | None
# Network failures that happen below HTTP (DNS, refused, reset, TLS, timeouts).
_NET_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class BlobWriter(Protocol):
    """One in-progress ingest of a known digest and size (the content store provides it)."""

    offset: int

    async def write(self, data: bytes) -> None: ...

    async def truncate(self) -> None: ...


class RegistryClient:
    """Talks to registries for one engine; safe to use from many tasks at once."""

    def __init__(
        self,
        config: EngineConfig,
        session: aiohttp.ClientSession | None = None,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self.config = config
        self._own_session = session is None
        self._session_obj = session
        self._hosts = HostResolver(config)
        self._auth = Authenticator(self._hosts, self._session)
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_retry_after = max_retry_after
        self._good: set[str] = set()  # endpoints that have answered HTTP at least once
        self._preferred: dict[tuple[str, str | None], str] = {}
        self._credentials: dict[str, tuple[float, AuthConfig | None]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._session_obj is None or self._session_obj.closed:
            connector = aiohttp.TCPConnector(limit=64, limit_per_host=16, ttl_dns_cache=300)
            self._session_obj = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                read_bufsize=CHUNK_SIZE,
                headers={"User-Agent": USER_AGENT},
            )
            self._own_session = True
        return self._session_obj

    async def close(self) -> None:
        if self._own_session and self._session_obj is not None:
            await self._session_obj.close()
        self._session_obj = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def token_requests(self) -> int:
        """How many token requests this client has made (diagnostics and tests)."""
        return self._auth.token_requests

    # -- public operations -------------------------------------------------------------------

    async def ping(self, registry: str) -> None:
        """Check that ``registry`` (host[:port]) speaks the /v2/ API; learn its auth scheme."""
        _check_registry(registry)
        last: PortsideError | None = None
        for endpoint in await self._hosts.registry_endpoints(registry):
            try:
                await self._ping_endpoint(endpoint)
                self._preferred[(registry, None)] = str(endpoint.base)
                return
            except Unreachable as err:
                last = _more_telling(last, err)
        assert last is not None
        raise last

    async def check_login(self, registry: str, auth: AuthConfig) -> None:
        """Verify ``auth`` against ``registry`` (what ``docker login`` does); raise if refused."""
        _check_registry(registry)
        await self.ping(registry)
        endpoint = await self._endpoint_by_base(registry, self._preferred[(registry, None)])
        challenge = self._auth.challenge_for(endpoint)
        if challenge is None:
            return
        if challenge.scheme == "bearer":
            await self._auth.token(endpoint, challenge, set(), auth, refresh=True)
            return
        resp = await self._open(
            endpoint, "/v2/", repository=None, auth=auth, what=f"registry {registry}"
        )
        resp.release()

    async def get_manifest(
        self, ref: Reference, *, auth: AuthConfig | None = None
    ) -> tuple[bytes, str, Digest]:
        """The manifest bytes for ``ref``, their media type and digest, verified."""
        ref = _checked_reference(ref)
        ident = str(ref.digest) if ref.digest else ref.tag
        if not ident:
            raise InvalidArgument(f"invalid reference {ref}: give a tag or a digest")
        path = f"/v2/{ref.repository}/manifests/{ident}"

        async def attempt(
            endpoint: Endpoint, creds: AuthConfig | None
        ) -> tuple[bytes, str, Digest]:
            resp = await self._open(
                endpoint,
                path,
                repository=ref.repository,
                auth=creds,
                accept=MANIFEST_ACCEPT,
                what=f"manifest of {ref}",
                not_found=f"image not found: {ref.familiar()}",
                timeout=_SMALL_TIMEOUT,
            )
            try:
                media_type = base_media_type(resp.headers.get("Content-Type")) or ""
                if media_type in SCHEMA1_MEDIA_TYPES:
                    raise InvalidManifest(
                        f"{ref.familiar()} uses a Docker schema 1 manifest, which is deprecated "
                        "and not supported; push the image again with a current docker"
                    )
                header_digest = resp.headers.get("Docker-Content-Digest")
                body = await self._read_small(resp, MAX_MANIFEST_SIZE, "manifest", endpoint)
            finally:
                resp.release()
            digest = _verify_manifest(ref, body, header_digest)
            if media_type not in MANIFEST_MEDIA_TYPES:
                media_type = _sniff_media_type(body) or media_type
            return body, media_type, digest

        return await self._on_endpoints(ref, auth, attempt)

    async def get_blob(
        self,
        ref: Reference,
        desc: Descriptor,
        *,
        max_size: int,
        auth: AuthConfig | None = None,
    ) -> bytes:
        """A small blob (an image config) read whole and verified against size and digest."""
        ref = _checked_reference(ref)
        digest = _checked_digest(desc)
        if desc.size > max_size:
            raise VerificationError(
                f"blob {digest} is {desc.size} bytes, over the {max_size} byte limit; refusing it"
            )
        path = f"/v2/{ref.repository}/blobs/{digest}"

        async def attempt(endpoint: Endpoint, creds: AuthConfig | None) -> bytes:
            resp = await self._open(
                endpoint,
                path,
                repository=ref.repository,
                auth=creds,
                what=f"blob {digest}",
                not_found=f"blob {digest} not found in {ref.name}",
                timeout=_SMALL_TIMEOUT,
            )
            chunks: list[bytes] = []
            received = 0
            try:
                _check_length(resp, desc.size, digest)
                async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
                    received += len(chunk)
                    if received > desc.size:
                        raise _too_long(digest, desc.size)
                    chunks.append(chunk)
            except _NET_ERRORS as err:
                resp.close()
                raise Transient(f"download of {digest} from {endpoint.host} broke: {err}") from None
            finally:
                resp.release()
            if received < desc.size:
                raise Transient(
                    f"download of {digest} from {endpoint.host} ended after {received} of "
                    f"{desc.size} bytes"
                )
            data = b"".join(chunks)
            if Digest.of_bytes(data, digest.algorithm) != digest:
                raise VerificationError(
                    f"blob {digest} from {endpoint.host} does not match its digest; refusing it"
                )
            return data

        return await self._on_endpoints(ref, auth, attempt)

    async def fetch_blob(
        self,
        ref: Reference,
        desc: Descriptor,
        writer: BlobWriter,
        progress: Callable[[int], None] | None = None,
        auth: AuthConfig | None = None,
    ) -> None:
        """Stream a blob into ``writer``, resuming from ``writer.offset`` when the server
        honours Range; stops at exactly ``desc.size`` bytes (a longer body is an error).

        ``progress`` is called with the number of bytes the writer holds. The digest is
        checked by the writer's owner when it commits (the writer hashes what it gets).
        """
        ref = _checked_reference(ref)
        digest = _checked_digest(desc)
        path = f"/v2/{ref.repository}/blobs/{digest}"
        size = desc.size

        async def attempt(endpoint: Endpoint, creds: AuthConfig | None) -> None:
            if writer.offset > size:
                await writer.truncate()
            offset = writer.offset
            if offset == size:
                if progress is not None:
                    progress(offset)
                return
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            resp = await self._open(
                endpoint,
                path,
                repository=ref.repository,
                auth=creds,
                what=f"blob {digest}",
                not_found=f"blob {digest} not found in {ref.name}",
                headers=headers,
                ok=(200, 206, 416) if offset else (200,),
                timeout=_BLOB_TIMEOUT,
            )
            try:
                if offset and not (
                    resp.status == 206
                    and _content_range_matches(resp.headers.get("Content-Range"), offset, size)
                ):
                    # Range ignored or answered wrongly: start again from 0, never splice.
                    await writer.truncate()
                    if resp.status != 200:
                        resp.close()
                        await attempt(endpoint, creds)
                        return
                    offset = 0
                await self._stream(resp, writer, offset, size, digest, endpoint, progress)
            finally:
                resp.release()

        await self._on_endpoints(ref, auth, attempt)

    async def send(
        self,
        method: str,
        registry: str,
        path: str,
        *,
        repository: str | None,
        what: str,
        auth: AuthConfig | None = None,
        query: str | None = None,
        headers: dict[str, str] | None = None,
        body: Body = None,
        ok: tuple[int, ...] = (200,),
        not_found: str | None = None,
        actions: str = "pull",
        extra_scopes: frozenset[str] = frozenset(),
        retry: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """One authenticated request to ``registry``'s own endpoints (never a mirror): the
        building block of push, browse and delete. The caller releases the response.

        ``path`` starts with ``/v2/`` and holds only validated names; ``query`` is encoded.
        ``actions`` is the token scope asked for on ``repository`` (``pull,push``,
        ``delete``...). Transient failures are retried with backoff when ``retry`` is set
        (a callable ``body`` is called again for each attempt); other failures raise the
        usual one-line errors (NotFound, Unauthorized, Forbidden, RegistryError).
        """
        _check_registry(registry)
        endpoints = await self._hosts.registry_endpoints(registry)
        preferred = self._preferred.get((registry, None))
        if preferred is not None:
            endpoints.sort(key=lambda ep: str(ep.base) != preferred)
        last: PortsideError | None = None
        for endpoint in endpoints:
            creds = await self._credentials_for(endpoint, auth)

            async def attempt(ep: Endpoint = endpoint, c: AuthConfig | None = creds) -> object:
                return await self._open(
                    ep,
                    path,
                    repository=repository,
                    auth=c,
                    what=what,
                    not_found=not_found,
                    headers=headers,
                    ok=ok,
                    timeout=timeout or (_BLOB_TIMEOUT if callable(body) else _SMALL_TIMEOUT),
                    method=method,
                    query=query,
                    body=body,
                    actions=actions,
                    extra_scopes=extra_scopes,
                )

            try:
                resp = await self._retrying(attempt, retries=self._retries if retry else 0)
            except Unreachable as err:
                last = _more_telling(last, err)
                continue
            self._preferred[(registry, None)] = str(endpoint.base)
            return resp  # type: ignore[return-value]
        assert last is not None
        raise last

    def endpoint_base(self, registry: str) -> str | None:
        """The base URL that last answered for ``registry`` (after a ping or a request)."""
        return self._preferred.get((registry, None))

    def forget_credentials(self, registry: str) -> None:
        """Drop cached config.json credentials of ``registry`` (after a login or logout)."""
        self._credentials.pop(registry, None)

    # -- the request path --------------------------------------------------------------------

    async def _stream(
        self,
        resp: aiohttp.ClientResponse,
        writer: BlobWriter,
        offset: int,
        size: int,
        digest: Digest,
        endpoint: Endpoint,
        progress: Callable[[int], None] | None,
    ) -> None:
        _check_length(resp, size - offset, digest)
        have = offset
        try:
            async for chunk in resp.content.iter_chunked(CHUNK_SIZE):
                if have + len(chunk) > size:
                    raise _too_long(digest, size)
                await writer.write(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(have)
        except _NET_ERRORS as err:
            resp.close()
            raise Transient(
                f"download of {digest} from {endpoint.host} broke at {have} of {size} bytes: "
                f"{clean(str(err)) or type(err).__name__}"
            ) from None
        if have < size:
            raise Transient(
                f"download of {digest} from {endpoint.host} ended after {have} of {size} bytes"
            )

    async def _on_endpoints(
        self,
        ref: Reference,
        auth: AuthConfig | None,
        attempt: Callable[[Endpoint, AuthConfig | None], Awaitable[T]],
    ) -> T:
        """Run ``attempt`` on the endpoints of ``ref``'s registry until one succeeds."""
        endpoints = await self._hosts.endpoints(ref.registry)
        preferred = self._preferred.get((ref.registry, ref.repository)) or self._preferred.get(
            (ref.registry, None)
        )
        if preferred is not None:
            endpoints.sort(key=lambda ep: str(ep.base) != preferred)
        last: PortsideError | None = None
        for endpoint in endpoints:
            creds = await self._credentials_for(endpoint, auth)
            try:
                # A failing mirror is skipped at once rather than retried.
                result = await self._retrying(
                    lambda ep=endpoint, c=creds: attempt(ep, c),
                    retries=0 if endpoint.mirror else self._retries,
                )
            except Unreachable as err:
                log.info("registry endpoint %s unreachable: %s", endpoint, err)
                last = _more_telling(last, err)
                continue
            except PortsideError as err:
                if not endpoint.mirror:
                    raise
                log.warning("mirror %s failed for %s, trying the next: %s", endpoint, ref, err)
                last = err
                continue
            self._preferred[(ref.registry, ref.repository)] = str(endpoint.base)
            if not endpoint.mirror:
                self._preferred[(ref.registry, None)] = str(endpoint.base)
            return result
        assert last is not None
        raise last

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, retries: int) -> T:
        failures = 0
        while True:
            try:
                return await call()
            except Transient as err:
                failures += 1
                if failures > retries:
                    raise RegistryError(str(err)) from None
                delay = min(self._backoff * 2 ** (failures - 1), self._max_backoff)
                delay *= 0.75 + random.random() / 2
                if err.retry_after is not None:
                    delay = min(max(err.retry_after, delay), self._max_retry_after)
                log.info("retrying in %.1f s after: %s", delay, err)
                await asyncio.sleep(delay)

    async def _credentials_for(
        self, endpoint: Endpoint, auth: AuthConfig | None
    ) -> AuthConfig | None:
        """Caller's credentials for the registry itself; a mirror only gets its own."""
        if endpoint.mirror:
            return await self._docker_credentials(endpoint.host)
        if auth is not None and not auth.is_empty:
            return auth
        return await self._docker_credentials(endpoint.registry)

    async def _docker_credentials(self, host: str) -> AuthConfig | None:
        if self.config.daemon_credentials is False:
            return None
        now = time.monotonic()
        cached = self._credentials.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await load_docker_credentials_async(self.config.docker_config, host)
        self._credentials[host] = (now + _CREDENTIAL_TTL, found)
        return found

    async def _endpoint_by_base(self, registry: str, base: str) -> Endpoint:
        for endpoint in await self._hosts.registry_endpoints(registry):
            if str(endpoint.base) == base:
                return endpoint
        raise RegistryError(f"no endpoint {base} for {registry}")

    async def _ping_endpoint(self, endpoint: Endpoint) -> None:
        try:
            resp = await self._follow(
                endpoint, endpoint.url("/v2/"), {"Accept-Encoding": "identity"}, _SMALL_TIMEOUT
            )
        except _NET_ERRORS as err:
            raise connection_error(endpoint.host, err) from None
        try:
            self._good.add(str(endpoint.base))
            if resp.status == 200:
                self._auth.set_challenge(endpoint, None)
                return
            if resp.status == 401:
                self._auth.on_unauthorized(
                    endpoint, None, resp.headers.getall("WWW-Authenticate", [])
                )
                return
            message = await error_message(resp)
        finally:
            resp.release()
        if resp.status == 404:
            raise Unreachable(
                f"{endpoint.host} is not a registry: GET {endpoint.url('/v2/')} answered 404; "
                "check the registry address",
                answered=True,
            )
        error = error_for_status(
            resp.status,
            message,
            host=endpoint.host,
            what=f"GET {endpoint.url('/v2/')}",
            repository="/v2/",
            has_credentials=False,
        )
        raise error

    async def _open(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        repository: str | None,
        auth: AuthConfig | None,
        what: str,
        not_found: str | None = None,
        accept: str | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        timeout: aiohttp.ClientTimeout = _SMALL_TIMEOUT,
        method: str = "GET",
        query: str | None = None,
        body: Body = None,
        actions: str = "pull",
        extra_scopes: frozenset[str] = frozenset(),
    ) -> aiohttp.ClientResponse:
        """``method`` ``path`` (GET unless told) with authentication; a response with an
        ``ok`` status, or an error. ``query`` is an already-encoded query string; ``body``
        is bytes, or a callable giving a fresh body for each attempt (streamed uploads)."""
        url = endpoint.url(path)
        if query:
            url = URL(f"{url}?{query}", encoded=True)
        refresh = False
        for round_ in range(3):
            request_headers = {"Accept-Encoding": "identity", **(headers or {})}
            if accept:
                request_headers["Accept"] = accept
            authorization = await self._auth.header(
                endpoint,
                repository,
                auth,
                refresh=refresh,
                actions=actions,
                extra_scopes=extra_scopes,
            )
            if authorization:
                request_headers["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                resp = await self._follow(endpoint, url, request_headers, timeout, method, data)
            except _NET_ERRORS as err:
                unreachable = connection_error(endpoint.host, err)
                if str(endpoint.base) in self._good and not unreachable.tls:
                    raise Transient(str(unreachable)) from None
                raise unreachable from None
            first_contact = str(endpoint.base) not in self._good
            self._good.add(str(endpoint.base))
            same_origin = _origin(resp.url) == _origin(endpoint.base)
            if resp.status in ok:
                if first_contact and not self._auth.knows(endpoint):
                    self._auth.set_challenge(endpoint, None)
                return resp
            if resp.status == 401 and same_origin and round_ < 2:
                challenges = resp.headers.getall("WWW-Authenticate", [])
                changed = self._auth.on_unauthorized(
                    endpoint, repository, challenges, actions, extra_scopes
                )
                if challenges and (round_ == 0 or changed):
                    resp.release()
                    refresh = True
                    continue
            message = await error_message(resp)
            resp.release()
            raise await self._status_error(
                endpoint, resp, message, repository, auth, what, not_found
            )
        raise AssertionError("unreachable")

    async def _status_error(
        self,
        endpoint: Endpoint,
        resp: aiohttp.ClientResponse,
        message: str,
        repository: str | None,
        auth: AuthConfig | None,
        what: str,
        not_found: str | None,
    ) -> PortsideError:
        status = resp.status
        if status == 404:
            if error_codes(message) not in _NOT_FOUND_CODES:
                # No distribution error code: is this a registry at all?
                await self._ping_endpoint(endpoint)
            detail = f" ({message})" if message else ""
            return NotFound(f"{not_found or what + ' not found'}{detail}")
        if status == 416:
            return RegistryError(f"registry {endpoint.host} refused the range request for {what}")
        return error_for_status(
            status,
            message,
            host=endpoint.registry if not endpoint.mirror else endpoint.host,
            what=what,
            repository=repository or "/v2/",
            has_credentials=auth is not None and not auth.is_empty,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )

    async def _follow(
        self,
        endpoint: Endpoint,
        url: URL,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
        method: str = "GET",
        data: object = None,
    ) -> aiohttp.ClientResponse:
        """GET ``url`` (or ``method``), following redirects of GET and HEAD here so that
        Authorization never changes hosts; other methods get the redirect itself back."""
        headers = dict(headers)
        home = _origin(endpoint.base)
        for _ in range(MAX_REDIRECTS + 1):
            ssl_param = await self._ssl_for(endpoint, url)
            resp = await self._session().request(
                method,
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                ssl=ssl_param,
                auto_decompress=False,
                read_bufsize=CHUNK_SIZE,
            )
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return resp
            resp.release()
            try:
                target = url.join(URL(location))
            except ValueError:
                raise RegistryError(
                    f"registry {endpoint.host} sent an invalid redirect; refusing it"
                ) from None
            if target.scheme not in ("http", "https") or not target.raw_host:
                raise RegistryError(f"registry {endpoint.host} redirected to a non-http URL")
            if url.scheme == "https" and target.scheme == "http" and not endpoint.insecure:
                raise RegistryError(
                    f"registry {endpoint.host} redirected from https to plain http; refusing it"
                )
            if is_link_local_literal(target.raw_host or "") and target.raw_host != (
                endpoint.base.raw_host
            ):
                raise RegistryError(
                    f"registry {endpoint.host} redirected to link-local address "
                    f"{target.raw_host}; refusing it"
                )
            if _origin(target) != home:
                # Credentials belong to the registry: none for storage backends or CDNs.
                headers.pop("Authorization", None)
            url = target
        raise RegistryError(f"registry {endpoint.host} redirected more than {MAX_REDIRECTS} times")

    async def _ssl_for(self, endpoint: Endpoint, url: URL) -> object:
        if url.scheme != "https":
            return True
        if _origin(url) == _origin(endpoint.base) and endpoint.ssl is not None:
            return endpoint.ssl
        return await self._hosts.ssl_context(host_port(url))

    async def _read_small(
        self, resp: aiohttp.ClientResponse, limit: int, what: str, endpoint: Endpoint
    ) -> bytes:
        try:
            return await read_bounded(resp, limit, what)
        except _NET_ERRORS as err:
            resp.close()
            raise Transient(f"reading {what} from {endpoint.host} failed: {err}") from None


def _more_telling(previous: PortsideError | None, new: Unreachable) -> PortsideError:
    """Keep "not a registry" (a server answered) over a later "cannot connect"."""
    if isinstance(previous, Unreachable) and previous.answered and not new.answered:
        return previous
    return new


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.raw_host or "").lower(), url.port)


def _check_registry(registry: str) -> None:
    if not isinstance(registry, str) or not _REGISTRY_RE.match(registry):
        shown = registry[:100] if isinstance(registry, str) else registry
        raise InvalidArgument(f"invalid registry {shown!r}: expected HOST[:PORT]")


def _checked_reference(ref: Reference) -> Reference:
    """Re-validate a Reference built by hand before any part of it goes into a URL."""
    try:
        again = Reference.parse(str(ref), default_tag=False)
    except InvalidArgument as err:
        raise InvalidArgument(f"invalid reference: {err}") from None
    if again != ref:
        raise InvalidArgument(f"invalid reference {str(ref)[:120]!r}: not in normal form")
    return ref


def _checked_digest(desc: Descriptor) -> Digest:
    digest = desc.digest
    if not isinstance(digest, Digest) or not is_digest(str(digest)):
        shown = str(digest)[:100]
        raise InvalidArgument(f"invalid digest {shown!r}: expected sha256:<64 hex>; refusing it")
    if not isinstance(desc.size, int) or isinstance(desc.size, bool) or desc.size < 0:
        raise InvalidArgument(f"invalid size {desc.size!r} for blob {digest}")
    return digest


def _verify_manifest(ref: Reference, body: bytes, header_digest: str | None) -> Digest:
    if header_digest:
        try:
            claimed = Digest.parse(header_digest.strip())
        except InvalidArgument:
            raise VerificationError(
                f"registry sent an invalid Docker-Content-Digest for {ref.familiar()}"
            ) from None
        if Digest.of_bytes(body, claimed.algorithm) != claimed:
            raise VerificationError(
                f"manifest of {ref.familiar()} does not match the Docker-Content-Digest "
                f"{claimed} the registry sent; refusing it"
            )
    if ref.digest is not None:
        if Digest.of_bytes(body, ref.digest.algorithm) != ref.digest:
            raise VerificationError(
                f"manifest of {ref.familiar()} does not match the requested digest; refusing it"
            )
        return ref.digest
    return Digest.of_bytes(body)


def _sniff_media_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = doc.get("mediaType") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _content_range_matches(value: str | None, offset: int, size: int) -> bool:
    match = _CONTENT_RANGE_RE.match(value or "")
    if not match:
        return False
    start, end, total = int(match.group(1)), int(match.group(2)), match.group(3)
    return start == offset and end == size - 1 and total in ("*", str(size))


def _check_length(resp: aiohttp.ClientResponse, expected: int, digest: Digest) -> None:
    length = resp.content_length
    if length is not None and length > expected:
        raise _too_long(digest, expected)


def _too_long(digest: Digest, size: int) -> VerificationError:
    return VerificationError(
        f"blob {digest} is longer than the {size} bytes its descriptor says; refusing it"
    )
