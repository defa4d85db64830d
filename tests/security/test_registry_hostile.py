"""The registry client against registries that misbehave on purpose.

``HostileRegistry`` is a small real aiohttp server on 127.0.0.1 (a free port) whose answers
each test scripts: bad realms, cross-host redirects, descriptor ``urls``, oversized bodies,
ignored Range headers, trailing bytes, lying digests, 429/5xx storms. It records every
request it receives, so a test can prove that something was (or was never) sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from engine.config import EngineConfig
from engine.digest import Digest
from engine.errors import InvalidArgument, NotFound, RegistryError, Unauthorized, VerificationError
from engine.oci import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, parse_manifest
from engine.reference import Reference
from engine.registry import AuthConfig, RegistryClient
from engine.registry.auth import check_realm, parse_challenges
from engine.registry.hosts import Endpoint
from tests.fixtures.pki import TestCA
from tests.integration.test_registry_client import FileWriter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BIG = 5 * 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class HostileRegistry:
    """A scripted HTTP registry; ``handler`` answers, ``seen`` records."""

    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.seen.append(Seen(request.method, request.path, query, dict(request.headers)))
        if self.handler is None:
            return web.json_response({"errors": [{"code": "NOT_FOUND"}]}, status=404)
        return await self.handler(request)

    def requests_to(self, fragment: str) -> list[Seen]:
        return [s for s in self.seen if fragment in s.path]

    def add_blob(self, data: bytes) -> Descriptor:
        digest = Digest.of_bytes(data)
        self.blobs[str(digest)] = data
        return Descriptor(OCI_LAYER_GZIP, digest, len(data))

    def add_image(self, layer_extra: dict[str, Any] | None = None) -> tuple[bytes, Descriptor]:
        """A manifest (with one config and one layer blob) served by this registry."""
        config = self.add_blob(b'{"architecture":"amd64","os":"linux","rootfs":{}}')
        layer = self.add_blob(b"layer bytes " * 1000)
        layer_json = {"mediaType": OCI_LAYER_GZIP, "digest": str(layer.digest), "size": layer.size}
        layer_json.update(layer_extra or {})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(config.digest), "size": config.size},
            "layers": [layer_json],
        }
        raw = json.dumps(manifest).encode()
        self.blobs[str(Digest.of_bytes(raw))] = raw
        return raw, layer


def manifest_response(raw: bytes, **headers: str) -> web.Response:
    return web.Response(body=raw, headers={"Content-Type": OCI_MANIFEST, **headers})


def serve_store(reg: HostileRegistry) -> Handler:
    """A well-behaved registry over ``reg.blobs`` (manifests by digest or tag "1")."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/v2/":
            return web.json_response({})
        last = path.rsplit("/", 1)[-1]
        if "/manifests/" in path:
            manifests = [b for b in reg.blobs.values() if b.startswith(b'{"schemaVersion"')]
            body = reg.blobs.get(last) or (manifests[-1] if last == "1" and manifests else None)
            if body is None:
                return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
            return manifest_response(body, **{"Docker-Content-Digest": str(Digest.of_bytes(body))})
        if "/blobs/" in path and last in reg.blobs:
            return web.Response(body=reg.blobs[last], content_type="application/octet-stream")
        return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)

    return handle


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[], Awaitable[HostileRegistry]]]:
    started: list[HostileRegistry] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> HostileRegistry:
        reg = HostileRegistry()
        await reg.start(ssl_context)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        await reg.stop()


@pytest.fixture
async def hostile(servers) -> HostileRegistry:
    return await servers()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[RegistryClient]:
    client = RegistryClient(make_config(tmp_path), retries=2, backoff=0.01, max_retry_after=0.05)
    yield client
    await client.close()


def make_config(tmp_path: Path, **kw: Any) -> EngineConfig:
    docker = tmp_path / "docker-config"
    docker.mkdir(exist_ok=True)
    kw.setdefault("insecure_registries", ["127.0.0.0/8"])
    return EngineConfig(root=tmp_path / "root", docker_config=docker, system_certs_dirs=[], **kw)


def ref(reg: HostileRegistry, name: str = "evil/image:1") -> Reference:
    return Reference.parse(f"{reg.host}/{name}")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- token realms ----------------------------------------------------------------------------


async def test_link_local_realm_is_refused(hostile: HostileRegistry, client) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={
                "WWW-Authenticate": 'Bearer realm="http://169.254.169.254/latest/meta-data",'
                'service="x",scope="repository:evil/image:pull"'
            },
        )

    hostile.handler = handle
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(ref(hostile), auth=AuthConfig("alice", "secret"))
    assert "refusing token realm 169.254.169.254" in str(info.value)
    assert client.token_requests == 0


def test_realm_rules() -> None:
    secure = Endpoint("reg.example", URL("https://reg.example"), None)
    insecure = Endpoint("10.1.2.3:5000", URL("http://10.1.2.3:5000"), None, insecure=True)
    assert str(check_realm("https://auth.example/token", secure)) == "https://auth.example/token"
    for realm in (
        "http://auth.example/token",  # plain http for a secure registry
        "https://169.254.169.254/",  # link-local
        "https://10.0.0.1/token",  # private literal that is not the registry
        "https://[::1]/token",
        "https://127.0.0.1/token",
        "ftp://auth.example/",
        "https://user:pw@auth.example/",
        "not a url",
    ):
        with pytest.raises(RegistryError):
            check_realm(realm, secure)
    # The registry's own address is fine, on any port, even over http when it is insecure.
    assert check_realm("http://10.1.2.3:5001/token", insecure).port == 5001
    with pytest.raises(RegistryError):
        check_realm("http://10.9.9.9/token", insecure)


def test_challenge_parsing() -> None:
    (bearer,) = parse_challenges(
        [
            'Bearer realm="https://a.example/t",service="reg",scope="repository:a:pull '
            'repository:b:pull,push"'
        ]
    )
    assert bearer.scheme == "bearer" and bearer.realm == "https://a.example/t"
    assert bearer.scopes == {"repository:a:pull", "repository:b:pull,push"}
    both = parse_challenges(['Basic realm="x", Bearer realm="https://t/",service="s"'])
    assert [c.scheme for c in both] == ["basic", "bearer"]
    escaped = parse_challenges(['Bearer realm="https://t/\\"q\\"",error="insufficient_scope"'])
    assert escaped[0].realm == 'https://t/"q"'


# -- tokens from the registry's own token endpoint -------------------------------------------


def token_registry(
    reg: HostileRegistry,
    token_body: Callable[[list[str]], bytes],
    *,
    required_scopes: set[str] | None = None,
) -> None:
    """A registry that wants ``Bearer scopes:...`` and issues tokens at /token."""
    realm = f"http://{reg.host}/token"
    required = required_scopes or {"repository:evil/image:pull"}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            scopes = sorted(request.query.getall("scope", []))
            return web.Response(body=token_body(scopes), content_type="application/json")
        auth = request.headers.get("Authorization", "")
        granted = set(auth.removeprefix("Bearer scopes:").split("|")) if auth else set()
        if not required <= granted:
            scope = " ".join(sorted(required))
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED"}]},
                status=401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="{realm}",service="hostile",scope="{scope}"'
                },
            )
        return await serve_store(reg)(request)

    reg.handler = handle


def scoped_token(scopes: list[str], *, key: str = "token", expires: int = 1) -> bytes:
    return json.dumps({key: "scopes:" + "|".join(scopes), "expires_in": expires}).encode()


async def test_oversized_token_is_refused(hostile: HostileRegistry, client) -> None:
    hostile.add_image()
    token_registry(hostile, lambda scopes: b'{"token":"' + b"a" * BIG + b'"}')
    with pytest.raises(RegistryError, match=r"token response .*over the 1048576 byte limit"):
        await client.get_manifest(ref(hostile))


async def test_access_token_field_and_expiry_floor(hostile: HostileRegistry, client) -> None:
    hostile.add_image()
    token_registry(hostile, lambda scopes: scoped_token(scopes, key="access_token", expires=1))
    await client.get_manifest(ref(hostile))
    await client.get_manifest(ref(hostile))
    # expires_in=1 is floored to 60 s: the second pull reuses the token.
    assert len(hostile.requests_to("/token")) == 1
    assert client.token_requests == 1


async def test_more_scope_on_a_later_401_asks_for_the_union(
    hostile: HostileRegistry, client
) -> None:
    hostile.add_image()
    extra = "repository:other/base:pull"
    token_registry(hostile, scoped_token, required_scopes={"repository:evil/image:pull", extra})
    await client.get_manifest(ref(hostile))
    token_calls = hostile.requests_to("/token")
    assert token_calls[-1].query["scope"] == sorted(["repository:evil/image:pull", extra])


async def test_refused_token_is_not_retried_forever(hostile: HostileRegistry, client) -> None:
    hostile.add_image()
    # Tokens never carry the scope the registry wants: the client must give up.
    token_registry(hostile, lambda scopes: scoped_token(["nothing"]))
    with pytest.raises(Unauthorized, match="authentication required"):
        await client.get_manifest(ref(hostile))
    assert len(hostile.requests_to("/manifests/")) <= 3


async def test_identity_token_uses_the_oauth2_refresh_grant(
    hostile: HostileRegistry, client
) -> None:
    hostile.add_image()
    forms: list[dict[str, str]] = []
    realm = f"http://{hostile.host}/token"

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            form = dict(await request.post())
            forms.append({k: str(v) for k, v in form.items()})
            if request.method != "POST" or form.get("refresh_token") != "id-token-123":
                return web.json_response({"error": "invalid_grant"}, status=401)
            return web.json_response({"access_token": "granted", "expires_in": 300})
        if request.headers.get("Authorization") != "Bearer granted":
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="svc"'},
            )
        return await serve_store(hostile)(request)

    hostile.handler = handle
    await client.get_manifest(ref(hostile), auth=AuthConfig(identity_token="id-token-123"))
    assert forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "id-token-123",
            "service": "svc",
            "client_id": "portside",
            "scope": "repository:evil/image:pull",
        }
    ]
    assert all("Authorization" not in s.headers for s in hostile.requests_to("/token"))


# -- credentials never cross hosts -----------------------------------------------------------


async def test_cross_host_blob_redirect_drops_authorization(servers, client) -> None:
    registry, storage = await servers(), await servers()
    _, layer = registry.add_image()
    blob = registry.blobs[str(layer.digest)]
    secret = basic("alice", "s3cret")

    async def registry_handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != secret:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if "/blobs/" in request.path:
            raise web.HTTPTemporaryRedirect(f"http://localhost:{storage.port}/bucket/blob?sig=1")
        return await serve_store(registry)(request)

    async def storage_handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=blob)

    registry.handler, storage.handler = registry_handler, storage_handler
    writer = FileWriter(Path(client.config.root.parent / "blob"))
    client.config.root.parent.mkdir(parents=True, exist_ok=True)
    await client.fetch_blob(ref(registry), layer, writer, auth=AuthConfig("alice", "s3cret"))
    assert writer.digest == layer.digest
    assert [s.path for s in storage.seen] == ["/bucket/blob"]
    assert all("Authorization" not in s.headers for s in storage.seen)
    assert any(s.headers.get("Authorization") == secret for s in registry.requests_to("/blobs/"))
    data = await client.get_blob(
        ref(registry), layer, max_size=10**6, auth=AuthConfig("alice", "s3cret")
    )
    assert data == blob
    assert all("Authorization" not in s.headers for s in storage.seen)


async def test_redirect_to_link_local_is_refused(hostile: HostileRegistry, client, tmp_path):
    _, layer = hostile.add_image()

    async def handle(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    hostile.handler = handle
    with pytest.raises(RegistryError, match="link-local"):
        await client.fetch_blob(ref(hostile), layer, FileWriter(tmp_path / "b"))


async def test_descriptor_urls_are_never_contacted(servers, client, tmp_path: Path) -> None:
    registry, elsewhere = await servers(), await servers()
    registry.add_image({"urls": [f"http://{elsewhere.host}/foreign-layer"]})
    registry.handler = serve_store(registry)
    got, media_type, _ = await client.get_manifest(ref(registry))
    manifest = parse_manifest(got, media_type)
    layer = manifest.layers[0]  # type: ignore[union-attr]
    writer = FileWriter(tmp_path / "layer")
    await client.fetch_blob(ref(registry), layer, writer, auth=AuthConfig("u", "p"))
    assert writer.digest == layer.digest
    # Even when the registry does not have the blob, the urls stay untouched.
    del registry.blobs[str(layer.digest)]
    with pytest.raises(NotFound):
        await client.fetch_blob(ref(registry), layer, FileWriter(tmp_path / "again"))
    assert elsewhere.seen == []


async def test_mirror_never_gets_upstream_credentials(servers, tmp_path: Path) -> None:
    mirror = await servers()
    mirror.add_image()
    challenged: set[str] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path not in challenged:  # challenge once per path, then serve anyway
            challenged.add(request.path)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="m"'})
        return await serve_store(mirror)(request)

    mirror.handler = handle
    config = make_config(tmp_path, registry_mirrors=[f"http://{mirror.host}"])
    async with RegistryClient(config) as client:
        await client.get_manifest(
            Reference.parse("docker.io/library/busybox:1"), auth=AuthConfig("hub-user", "hub-pw")
        )
    assert mirror.seen and all("Authorization" not in s.headers for s in mirror.seen)
    assert mirror.seen[-1].path == "/v2/library/busybox/manifests/1"
    # Credentials configured for the mirror itself are used there.
    encoded = base64.b64encode(b"mirror-user:mirror-pw").decode()
    (config.docker_config / "config.json").write_text(
        json.dumps({"auths": {mirror.host: {"auth": encoded}}})
    )
    challenged.clear()
    async with RegistryClient(config) as client:
        await client.get_manifest(
            Reference.parse("docker.io/library/busybox:1"), auth=AuthConfig("hub-user", "hub-pw")
        )
    sent = {s.headers.get("Authorization") for s in mirror.seen} - {None}
    assert sent == {basic("mirror-user", "mirror-pw")}


# -- digests and bodies ----------------------------------------------------------------------


async def test_traversal_digest_is_refused_before_any_request(
    hostile: HostileRegistry, client, tmp_path: Path
) -> None:
    hostile.handler = serve_store(hostile)
    for bad in (Digest("sha256", "../../../../etc/passwd"), Digest("sha256", "a" * 63 + "/..")):
        desc = Descriptor(OCI_LAYER_GZIP, bad, 10)
        with pytest.raises(InvalidArgument, match="invalid digest"):
            await client.fetch_blob(ref(hostile), desc, FileWriter(tmp_path / "x"))
        with pytest.raises(InvalidArgument, match="invalid digest"):
            await client.get_blob(ref(hostile), desc, max_size=100)
        with pytest.raises(InvalidArgument):
            await client.get_manifest(Reference(hostile.host, "evil/image", None, bad))
    with pytest.raises(VerificationError, match="invalid digest"):
        parse_manifest(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": "sha256:/..", "size": 1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
        )
    assert hostile.seen == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_manifest_is_refused(
    hostile: HostileRegistry, client, chunked: bool
) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = b'{"schemaVersion":2,"pad":"' + b"x" * BIG + b'"}'
        if not chunked:
            return manifest_response(body)
        resp = web.StreamResponse(headers={"Content-Type": OCI_MANIFEST})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 65536):
            await resp.write(body[start : start + 65536])
        await resp.write_eof()
        return resp

    hostile.handler = handle
    with pytest.raises(RegistryError, match="over the 4194304 byte limit"):
        await client.get_manifest(ref(hostile))


async def test_wrong_docker_content_digest_is_refused(hostile: HostileRegistry, client):
    raw, _ = hostile.add_image()

    async def handle(request: web.Request) -> web.StreamResponse:
        lie = str(Digest.of_bytes(b"something else"))
        return manifest_response(raw, **{"Docker-Content-Digest": lie})

    hostile.handler = handle
    with pytest.raises(VerificationError, match="Docker-Content-Digest"):
        await client.get_manifest(ref(hostile))


async def test_manifest_not_matching_requested_digest_is_refused(
    hostile: HostileRegistry, client
) -> None:
    raw, _ = hostile.add_image()
    other = raw.replace(b"schemaVersion", b"schemaVersion", 1) + b" "

    async def handle(request: web.Request) -> web.StreamResponse:
        return manifest_response(other)  # no Docker-Content-Digest to hide behind

    hostile.handler = handle
    pinned = ref(hostile, f"evil/image@{Digest.of_bytes(raw)}")
    with pytest.raises(VerificationError, match="does not match the requested digest"):
        await client.get_manifest(pinned)


async def test_schema1_answer_is_refused_clearly(hostile: HostileRegistry, client) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b'{"schemaVersion":1}',
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        )

    hostile.handler = handle
    with pytest.raises(VerificationError, match="schema 1"):
        await client.get_manifest(ref(hostile))


@pytest.mark.parametrize("with_length", [True, False])
async def test_trailing_bytes_beyond_size_are_refused(
    hostile: HostileRegistry, client, tmp_path: Path, with_length: bool
) -> None:
    _, layer = hostile.add_image()
    blob = hostile.blobs[str(layer.digest)]

    async def handle(request: web.Request) -> web.StreamResponse:
        body = blob + b"TRAILING GARBAGE"
        if with_length:
            return web.Response(body=body)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp

    hostile.handler = handle
    writer = FileWriter(tmp_path / "blob")
    with pytest.raises(VerificationError, match="longer than"):
        await client.fetch_blob(ref(hostile), layer, writer)
    assert writer.offset <= layer.size
    with pytest.raises(VerificationError, match="longer than"):
        await client.get_blob(ref(hostile), layer, max_size=10**6)


async def test_short_body_is_not_accepted(hostile: HostileRegistry, client, tmp_path: Path):
    _, layer = hostile.add_image()
    blob = hostile.blobs[str(layer.digest)]

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=blob[:-10])

    hostile.handler = handle
    with pytest.raises(RegistryError, match="ended after"):
        await client.fetch_blob(ref(hostile), layer, FileWriter(tmp_path / "b"))
    assert len(hostile.requests_to("/blobs/")) == 3  # first try + 2 retries


async def test_config_blob_with_wrong_digest_is_refused(hostile: HostileRegistry, client):
    _, layer = hostile.add_image()

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * layer.size)

    hostile.handler = handle
    with pytest.raises(VerificationError, match="does not match its digest"):
        await client.get_blob(ref(hostile), layer, max_size=10**6)


# -- Range handling --------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["ignore", "wrong-range", "416"])
async def test_bad_range_answers_restart_from_zero(
    hostile: HostileRegistry, client, tmp_path: Path, answer: str
) -> None:
    _, layer = hostile.add_image()
    blob = hostile.blobs[str(layer.digest)]

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Range"):
            if answer == "wrong-range":  # claims a range, but from the start
                return web.Response(
                    status=206,
                    body=blob[: len(blob) // 2],
                    headers={"Content-Range": f"bytes 0-{len(blob) // 2 - 1}/{len(blob)}"},
                )
            if answer == "416":
                return web.Response(status=416)
        return web.Response(body=blob)  # Range ignored: the whole blob with 200

    hostile.handler = handle
    # The partial file holds garbage: splicing would produce a wrong blob.
    writer = FileWriter(tmp_path / "partial", prefill=b"G" * (len(blob) // 3))
    await client.fetch_blob(ref(hostile), layer, writer)
    assert writer.truncations == 1
    assert writer.data() == blob and writer.digest == layer.digest
    assert hostile.requests_to("/blobs/")[0].headers["Range"] == f"bytes={len(blob) // 3}-"


async def test_dropped_connection_resumes_with_range(
    hostile: HostileRegistry, client, tmp_path: Path
) -> None:
    _, layer = hostile.add_image()
    blob = hostile.blobs[str(layer.digest)]
    half = len(blob) // 2

    async def handle(request: web.Request) -> web.StreamResponse:
        wanted = request.headers.get("Range")
        if wanted:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            return web.Response(
                status=206,
                body=blob[start:],
                headers={"Content-Range": f"bytes {start}-{len(blob) - 1}/{len(blob)}"},
            )
        resp = web.StreamResponse(headers={"Content-Length": str(len(blob))})
        await resp.prepare(request)
        await resp.write(blob[:half])
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # the connection dies mid-blob
        return resp

    hostile.handler = handle
    writer = FileWriter(tmp_path / "blob")
    await client.fetch_blob(ref(hostile), layer, writer)
    assert writer.data() == blob and writer.truncations == 0
    ranges = [s.headers.get("Range") for s in hostile.requests_to("/blobs/")]
    assert ranges[0] is None and ranges[-1] == f"bytes={half}-"


# -- retries and error bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (503, {}, "failed with 503"),
        (500, {}, "failed with 500"),
        (429, {"Retry-After": "3600"}, "too many requests"),
    ],
)
async def test_retried_then_clear_error(
    hostile: HostileRegistry, client, status: int, headers: dict[str, str], message: str
) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"errors": [{"code": "UNAVAILABLE", "message": "go away"}]},
            status=status,
            headers=headers,
        )

    hostile.handler = handle
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(ref(hostile))
    assert message in str(info.value) and "go away" in str(info.value)
    assert "\n" not in str(info.value)
    assert len(hostile.requests_to("/manifests/")) == 3  # 1 + 2 retries


async def test_transient_failures_then_success(hostile: HostileRegistry, client) -> None:
    raw, _ = hostile.add_image()
    failures = iter([502, 429])

    async def handle(request: web.Request) -> web.StreamResponse:
        status = next(failures, None)
        if status is not None:
            return web.Response(status=status, headers={"Retry-After": "0"})
        return manifest_response(raw)

    hostile.handler = handle
    got, _, digest = await client.get_manifest(ref(hostile))
    assert got == raw and digest == Digest.of_bytes(raw)


@pytest.mark.parametrize("status", [404, 500, 400])
async def test_huge_error_bodies_are_capped(hostile: HostileRegistry, client, status: int):
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/v2/":
            return web.json_response({})
        return web.Response(status=status, body=b"E" * BIG, content_type="text/plain")

    hostile.handler = handle
    with pytest.raises(RegistryError if status != 404 else NotFound) as info:
        await client.get_manifest(ref(hostile))
    assert len(str(info.value)) < 400


async def test_not_a_registry(hostile: HostileRegistry, client) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="<html>Not Found</html>", content_type="text/html")

    hostile.handler = handle
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(ref(hostile))
    assert f"{hostile.host} is not a registry" in str(info.value)
    with pytest.raises(RegistryError, match="is not a registry"):
        await client.ping(hostile.host)


async def test_credentials_are_hidden_from_repr() -> None:
    auth = AuthConfig("alice", "hunter2", identity_token="idtok", registry_token="regtok")
    for text in (repr(auth), str(auth), f"{auth}", repr([auth])):
        assert "hunter2" not in text and "idtok" not in text and "regtok" not in text
    assert "alice" in repr(auth)


# -- TLS details: client certificates, no downgrades ------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> tuple[TestCA, ssl.SSLContext]:
    """A test CA and a server context for 127.0.0.1 that demands a client certificate."""
    ca = TestCA(tmp_path / "pki")
    server = ca.issue_loopback_server()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.cert, server.key)
    ctx.load_verify_locations(cafile=str(ca.cert_path))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ca, ctx


def certs_d(tmp_path: Path, ca: TestCA, host: str, *, client: bool) -> Path:
    base = tmp_path / "certs.d"
    directory = base / host
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    if client:
        files = ca.issue("client", common_name="portside client", server=False)
        (directory / "client.cert").write_bytes(files.cert.read_bytes())
        (directory / "client.key").write_bytes(files.key.read_bytes())
    return base


@pytest.mark.parametrize("client_cert", [True, False])
async def test_client_certificate_from_certs_d(
    servers, pki, tmp_path: Path, client_cert: bool
) -> None:
    ca, ctx = pki
    reg = await servers(ctx)
    reg.add_image()
    reg.handler = serve_store(reg)
    config = make_config(
        tmp_path,
        insecure_registries=[],
        certs_dirs=[certs_d(tmp_path, ca, reg.host, client=client_cert)],
    )
    async with RegistryClient(config, retries=0) as client:
        if client_cert:
            await client.ping(reg.host)
            await client.get_manifest(ref(reg))
            assert reg.seen
        else:
            with pytest.raises(RegistryError, match=f"cannot reach registry {reg.host}"):
                await client.get_manifest(ref(reg))
            assert reg.seen == []


async def test_client_key_without_certificate_is_a_clear_error(
    servers, pki, tmp_path: Path
) -> None:
    ca, ctx = pki
    reg = await servers(ctx)
    base = certs_d(tmp_path, ca, reg.host, client=True)
    (base / reg.host / "client.cert").unlink()
    config = make_config(tmp_path, insecure_registries=[], certs_dirs=[base])
    async with RegistryClient(config) as client:
        with pytest.raises(RegistryError, match=r"client key .*client.key has no matching"):
            await client.ping(reg.host)


async def test_secure_registry_refuses_http_realm_and_downgrade_redirects(
    servers, pki, tmp_path: Path
) -> None:
    ca, ctx = pki
    reg, plain = await servers(ctx), await servers()
    _, layer = reg.add_image()

    async def handle(request: web.Request) -> web.StreamResponse:
        if "/manifests/" in request.path:
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": f'Bearer realm="http://{reg.host}/token"'},
            )
        raise web.HTTPTemporaryRedirect(f"http://{plain.host}/blob")

    reg.handler = handle
    config = make_config(
        tmp_path,
        insecure_registries=[],
        certs_dirs=[certs_d(tmp_path, ca, reg.host, client=True)],
    )
    async with RegistryClient(config) as client:
        with pytest.raises(RegistryError, match="must use an https realm"):
            await client.get_manifest(ref(reg))
    async with RegistryClient(config) as client:
        with pytest.raises(RegistryError, match="from https to plain http"):
            await client.fetch_blob(ref(reg), layer, FileWriter(tmp_path / "blob"))
    assert reg.requests_to("/token") == [] and plain.seen == []
