"""RegistryClient against real registries: plain HTTP, htpasswd over TLS, and token auth.

Images are built from busybox-static by the fixtures and pushed with skopeo under ``client/``
(and ``public/`` on the token registry, where anonymous pulls are allowed). Every check
compares what the client returns with the bytes of the OCI layout the image came from.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import EngineConfig
from engine.digest import Digest
from engine.errors import InvalidArgument, NotFound, RegistryError, Unauthorized, VerificationError
from engine.oci import (
    DOCKER_MANIFEST,
    MAX_CONFIG_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    parse_manifest,
)
from engine.platform import Platform, is_attestation, select_manifest
from engine.reference import Reference
from engine.registry import AuthConfig, RegistryClient, load_docker_credentials
from tests.fixtures.images import BuiltImage
from tests.fixtures.registry import RegistryFixture


class FileWriter:
    """The content store's BlobWriter contract, on a plain file: appends and hashes."""

    def __init__(self, path: Path, prefill: bytes = b"") -> None:
        self.path = path
        self.path.write_bytes(prefill)
        self.offset = len(prefill)
        self._hash = hashlib.sha256(prefill)
        self.truncations = 0
        self.writes = 0

    async def write(self, data: bytes) -> None:
        def append() -> None:
            with self.path.open("ab") as fh:
                fh.write(data)

        await asyncio.to_thread(append)
        self._hash.update(data)
        self.offset += len(data)
        self.writes += 1

    async def truncate(self) -> None:
        await asyncio.to_thread(self.path.write_bytes, b"")
        self._hash = hashlib.sha256()
        self.offset = 0
        self.truncations += 1

    @property
    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())

    def data(self) -> bytes:
        return self.path.read_bytes()


def make_config(tmp: Path, **kw: Any) -> EngineConfig:
    """A config touching nothing outside ``tmp`` (own docker config dir and certs.d).

    Nothing is insecure unless the test says so (the engine's default trusts 127.0.0.0/8).
    """
    docker = tmp / "docker-config"
    docker.mkdir(parents=True, exist_ok=True)
    kw.setdefault("insecure_registries", [])
    return EngineConfig(root=tmp / "root", docker_config=docker, system_certs_dirs=[], **kw)


def layout_blob(image: BuiltImage, digest: str) -> bytes:
    algorithm, _, hexpart = digest.partition(":")
    return (image.layout / "blobs" / algorithm / hexpart).read_bytes()


def descriptor(layer_or_desc: Any) -> Descriptor:
    """An engine Descriptor from a fixture descriptor (or fixture Layer)."""
    desc = getattr(layer_or_desc, "descriptor", layer_or_desc)
    return Descriptor(desc.media_type, Digest.parse(desc.digest), desc.size)


def write_docker_config(config: EngineConfig, data: dict[str, Any]) -> None:
    path = config.docker_config / "config.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)


# -- images pushed for this module -----------------------------------------------------------


@pytest.fixture(scope="module")
def built(test_images: dict[str, BuiltImage]) -> dict[str, BuiltImage]:
    return {
        "busybox": test_images["test/busybox:1"],
        "layered": test_images["test/layered:1"],
        "docker": test_images["test/docker-mt:1"],
        "multi": test_images["test/multi:1"],
    }


@pytest.fixture(scope="module")
def plain(
    registry: RegistryFixture, pushed_images: dict[str, str], built: dict[str, BuiltImage]
) -> RegistryFixture:
    # docker.io/library/busybox:mirrored, served by this registry acting as a mirror.
    registry.push(built["busybox"].skopeo_source, "library/busybox:mirrored")
    return registry


@pytest.fixture(scope="module")
def tls(registry_tls: RegistryFixture, pushed_images_tls: dict[str, str]) -> RegistryFixture:
    return registry_tls


@pytest.fixture(scope="module")
def token(registry_token: RegistryFixture, pushed_images_token: dict[str, str]) -> RegistryFixture:
    return registry_token


@pytest.fixture
async def client_factory(tmp_path: Path) -> AsyncIterator[Any]:
    clients: list[RegistryClient] = []

    def make(**kw: Any) -> RegistryClient:
        client = RegistryClient(make_config(tmp_path / f"c{len(clients)}", **kw))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def alice(reg: RegistryFixture, password: str | None = None) -> AuthConfig:
    return AuthConfig(username=reg.username, password=password or reg.password)


def ref(reg: RegistryFixture, name: str) -> Reference:
    return Reference.parse(f"{reg.host}/{name}")


# -- plain HTTP registry ---------------------------------------------------------------------


async def test_ping_insecure_by_host_and_by_cidr(plain: RegistryFixture, client_factory) -> None:
    await client_factory(insecure_registries=[plain.host]).ping(plain.host)
    await client_factory(insecure_registries=["127.0.0.0/8"]).ping(plain.host)


async def test_http_registry_not_marked_insecure_is_refused(
    plain: RegistryFixture, client_factory
) -> None:
    client = client_factory()
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(ref(plain, "test/busybox:1"))
    assert f"cannot reach registry {plain.host}" in str(info.value)
    assert "\n" not in str(info.value)


async def test_manifest_by_tag_and_digest(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    image = built["busybox"]
    client = client_factory(insecure_registries=[plain.host])
    raw, media_type, digest = await client.get_manifest(ref(plain, "test/busybox:1"))
    assert raw == layout_blob(image, image.digest)
    assert media_type == OCI_MANIFEST
    assert str(digest) == image.digest
    by_digest = ref(plain, f"test/busybox@{image.digest}")
    assert await client.get_manifest(by_digest) == (raw, media_type, digest)
    manifest = parse_manifest(raw, media_type)
    assert isinstance(manifest, Manifest)
    assert str(manifest.config.digest) == image.config_digest


async def test_index_platform_selection_skips_attestation(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    image = built["multi"]
    client = client_factory(insecure_registries=[plain.host])
    raw, media_type, digest = await client.get_manifest(ref(plain, "test/multi:1"))
    assert media_type == OCI_INDEX and str(digest) == image.digest
    index = parse_manifest(raw, media_type)
    assert isinstance(index, Index)
    assert sum(is_attestation(d) for d in index.manifests) == 1
    for plat, sub in image.platforms.items():
        chosen = select_manifest(index, Platform.parse(plat))
        assert str(chosen.digest) == sub.digest
        assert not is_attestation(chosen)
        sub_raw, sub_type, sub_digest = await client.get_manifest(
            ref(plain, f"test/multi@{chosen.digest}")
        )
        assert sub_digest == chosen.digest and sub_type == OCI_MANIFEST
        assert isinstance(parse_manifest(sub_raw, sub_type), Manifest)
    with pytest.raises(NotFound, match="available: linux/amd64, linux/arm64"):
        select_manifest(index, Platform.parse("linux/s390x"))


async def test_docker_media_types_and_config_blob(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    image = built["docker"]
    client = client_factory(insecure_registries=[plain.host])
    target = ref(plain, "test/docker-mt:1")
    raw, media_type, _ = await client.get_manifest(target)
    assert media_type == DOCKER_MANIFEST
    manifest = parse_manifest(raw, media_type)
    assert isinstance(manifest, Manifest)
    config = await client.get_blob(target, manifest.config, max_size=MAX_CONFIG_SIZE)
    assert config == layout_blob(image, image.config_digest or "")
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]


async def test_get_blob_refuses_over_max_size_before_asking(
    plain: RegistryFixture, client_factory
) -> None:
    # A digest nobody else uses: if it shows up in the registry's log, we asked for it.
    blob = os.urandom(2000)
    layer = Descriptor(OCI_MANIFEST, Digest.of_bytes(blob), len(blob))
    client = client_factory(insecure_registries=["127.0.0.0/8"])
    with pytest.raises(VerificationError, match="over the 1000 byte limit"):
        await client.get_blob(ref(plain, "test/busybox:1"), layer, max_size=1000)
    await client.get_manifest(ref(plain, "test/busybox:1"))  # the log is current up to here
    assert layer.digest.hex not in plain.log_text()


async def test_fetch_gzip_plain_and_zstd_layers_byte_for_byte(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory, tmp_path: Path
) -> None:
    image = built["layered"]
    media_types = {layer.descriptor.media_type for layer in image.layers}
    assert any(m.endswith("+zstd") for m in media_types)
    assert any(m.endswith(".tar") for m in media_types)
    client = client_factory(insecure_registries=[plain.host])
    target = ref(plain, "test/layered:1")

    async def fetch(i: int, layer: Descriptor) -> FileWriter:
        writer = FileWriter(tmp_path / f"layer{i}")
        seen: list[int] = []
        await client.fetch_blob(target, layer, writer, progress=seen.append)
        assert seen and seen[-1] == layer.size and seen == sorted(seen)
        return writer

    layers = [descriptor(layer) for layer in image.layers]
    writers = await asyncio.gather(*(fetch(i, layer) for i, layer in enumerate(layers)))
    for layer, writer in zip(layers, writers, strict=True):
        # The compressed bytes exactly (no transparent decompression).
        assert writer.digest == layer.digest
        assert writer.data() == layout_blob(image, str(layer.digest))
        assert writer.truncations == 0


async def test_resumed_fetch_uses_range_and_206(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory, tmp_path: Path
) -> None:
    image = built["busybox"]
    layer = descriptor(image.layers[0])
    blob = layout_blob(image, str(layer.digest))
    half = len(blob) // 2
    writer = FileWriter(tmp_path / "partial", prefill=blob[:half])
    client = client_factory(insecure_registries=[plain.host])
    seen: list[int] = []
    await client.fetch_blob(ref(plain, "test/busybox:1"), layer, writer, progress=seen.append)
    assert writer.truncations == 0
    assert writer.data() == blob and writer.digest == layer.digest
    assert seen[0] > half and seen[-1] == len(blob)
    log = plain.log_text()
    assert re.search(rf"GET /v2/test/busybox/blobs/{layer.digest} HTTP/1.1\" 206", log), (
        "the registry never answered a ranged request"
    )


async def test_complete_writer_needs_no_request(
    plain: RegistryFixture, client_factory, tmp_path: Path
) -> None:
    blob = os.urandom(3000)
    desc = Descriptor(OCI_MANIFEST, Digest.of_bytes(blob), len(blob))
    writer = FileWriter(tmp_path / "full", prefill=blob)
    client = client_factory(insecure_registries=[plain.host])
    seen: list[int] = []
    await client.fetch_blob(ref(plain, "test/busybox:1"), desc, writer, progress=seen.append)
    assert writer.data() == blob and writer.truncations == 0 and seen == [len(blob)]
    await client.get_manifest(ref(plain, "test/busybox:1"))
    assert desc.digest.hex not in plain.log_text()


async def test_not_found_errors(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory, tmp_path: Path
) -> None:
    client = client_factory(insecure_registries=[plain.host])
    with pytest.raises(NotFound) as info:
        await client.get_manifest(ref(plain, "client/nothing-here:1"))
    assert str(info.value).startswith(f"image not found: {plain.host}/client/nothing-here:1")
    with pytest.raises(NotFound, match=r"image not found: .*test/busybox:no-such-tag"):
        await client.get_manifest(ref(plain, "test/busybox:no-such-tag"))
    missing = Descriptor(OCI_MANIFEST, Digest.of_bytes(b"no such blob"), 12)
    with pytest.raises(NotFound, match=f"blob {missing.digest} not found"):
        await client.fetch_blob(
            ref(plain, "test/busybox:1"), missing, FileWriter(tmp_path / "missing")
        )


async def test_unreachable_registry(client_factory) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_factory(insecure_registries=["127.0.0.0/8"])
    with pytest.raises(RegistryError) as info:
        await client.ping(f"127.0.0.1:{port}")
    assert str(info.value).startswith(f"cannot reach registry 127.0.0.1:{port}")
    with pytest.raises(RegistryError, match="cannot reach registry"):
        await client.get_manifest(Reference.parse(f"127.0.0.1:{port}/x/y:1"))


async def test_docker_io_names_go_to_mirrors_in_order(
    plain: RegistryFixture, built: dict[str, BuiltImage], client_factory, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    image = built["busybox"]
    client = client_factory(registry_mirrors=[f"http://127.0.0.1:{dead}", f"http://{plain.host}/"])
    target = Reference.parse("busybox:mirrored")
    assert target.registry == "docker.io"
    raw, _, digest = await client.get_manifest(target)
    assert str(digest) == image.digest and raw == layout_blob(image, image.digest)
    layer = descriptor(image.layers[0])
    writer = FileWriter(tmp_path / "mirrored")
    await client.fetch_blob(target, layer, writer)
    assert writer.digest == layer.digest
    assert "GET /v2/library/busybox/manifests/mirrored" in plain.log_text()


# -- htpasswd over TLS -----------------------------------------------------------------------


async def test_tls_with_certs_d_ca_and_basic_auth(
    tls: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    assert tls.certs_dir is not None and (tls.certs_dir / tls.host / "ca.crt").is_file()
    client = client_factory(certs_dirs=[tls.certs_dir])
    await client.ping(tls.host)
    _, _, digest = await client.get_manifest(ref(tls, "test/busybox:1"), auth=alice(tls))
    assert str(digest) == built["busybox"].digest


async def test_tls_any_crt_name_is_trusted(tls: RegistryFixture, client_factory, tmp_path: Path):
    certs = tmp_path / "other-certs"
    (certs / tls.host).mkdir(parents=True)
    assert tls.ca_file is not None
    (certs / tls.host / "my-company-root.crt").write_bytes(tls.ca_file.read_bytes())
    await client_factory(certs_dirs=[certs]).ping(tls.host)


async def test_tls_unknown_ca_is_a_clear_error(tls: RegistryFixture, client_factory) -> None:
    client = client_factory()
    with pytest.raises(RegistryError) as info:
        await client.get_manifest(ref(tls, "test/busybox:1"), auth=alice(tls))
    message = str(info.value)
    assert message.startswith(f"certificate verify failed for {tls.host}")
    assert f"/etc/docker/certs.d/{tls.host}/ca.crt" in message and "insecure" in message


async def test_tls_insecure_skips_verification(
    tls: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    client = client_factory(insecure_registries=[tls.host])
    _, _, digest = await client.get_manifest(ref(tls, "test/busybox:1"), auth=alice(tls))
    assert str(digest) == built["busybox"].digest


async def test_basic_auth_wrong_and_missing_credentials(
    tls: RegistryFixture, client_factory
) -> None:
    client = client_factory(certs_dirs=[tls.certs_dir])
    target = ref(tls, "test/busybox:1")
    with pytest.raises(Unauthorized) as info:
        await client.get_manifest(target, auth=alice(tls, "wrong-password"))
    assert str(info.value).startswith(f"wrong credentials for {tls.host}")
    assert f"portside login {tls.host}" in str(info.value)
    with pytest.raises(Unauthorized) as info:
        await client.get_manifest(target)
    assert str(info.value).startswith(f"authentication required for {tls.host}")
    with pytest.raises(Unauthorized):
        await client.check_login(tls.host, alice(tls, "wrong-password"))
    await client.check_login(tls.host, alice(tls))


@pytest.mark.parametrize("key_form", ["host", "https", "fields"])
async def test_docker_config_json_credentials(
    tls: RegistryFixture, built: dict[str, BuiltImage], client_factory, key_form: str
) -> None:
    client = client_factory(certs_dirs=[tls.certs_dir])
    encoded = base64.b64encode(f"{tls.username}:{tls.password}".encode()).decode()
    entry: dict[str, str] = {"auth": encoded}
    key = tls.host
    if key_form == "https":
        key = f"https://{tls.host}/v2/"
    elif key_form == "fields":
        entry = {"username": tls.username or "", "password": tls.password or ""}
    auths = {"other.example:5000": {"auth": base64.b64encode(b"x:y").decode()}, key: entry}
    write_docker_config(client.config, {"auths": auths})
    found = load_docker_credentials(client.config.docker_config, tls.host)
    assert found is not None and found.username == tls.username
    assert tls.password not in repr(found)
    _, _, digest = await client.get_manifest(ref(tls, "test/busybox:1"))
    assert str(digest) == built["busybox"].digest


async def test_docker_credential_helper(
    tls: RegistryFixture,
    built: dict[str, BuiltImage],
    client_factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    helper = bindir / "docker-credential-portside-test"
    answer = json.dumps({"ServerURL": tls.host, "Username": tls.username, "Secret": tls.password})
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 2\ncat > {asked}\n'
        f"if [ \"$(cat {asked})\" = '{tls.host}' ]; then echo '{answer}'; exit 0; fi\n"
        "echo 'credentials not found in native keychain'; exit 1\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    client = client_factory(certs_dirs=[tls.certs_dir])
    write_docker_config(client.config, {"credHelpers": {tls.host: "portside-test"}})
    _, _, digest = await client.get_manifest(ref(tls, "test/busybox:1"))
    assert str(digest) == built["busybox"].digest
    assert asked.read_text() == tls.host
    # A credsStore that knows nothing about the registry means anonymous: a 401.
    empty = bindir / "docker-credential-portside-empty"
    empty.write_text("#!/bin/sh\necho 'credentials not found in native keychain'; exit 1\n")
    empty.chmod(0o755)
    other = client_factory(certs_dirs=[tls.certs_dir])
    write_docker_config(other.config, {"credsStore": "portside-empty"})
    with pytest.raises(Unauthorized, match="authentication required"):
        await other.get_manifest(ref(tls, "test/busybox:1"))
    # A helper that is not installed falls back to the file's auths.
    third = client_factory(certs_dirs=[tls.certs_dir])
    encoded = base64.b64encode(f"{tls.username}:{tls.password}".encode()).decode()
    write_docker_config(
        third.config, {"credsStore": "not-installed", "auths": {tls.host: {"auth": encoded}}}
    )
    _, _, digest = await third.get_manifest(ref(tls, "test/busybox:1"))
    assert str(digest) == built["busybox"].digest


# -- token auth ------------------------------------------------------------------------------


def _token_requests(reg: RegistryFixture, repository: str) -> list[Any]:
    return [r for r in reg.token_requests if any(repository in s for s in r.scopes)]


async def test_token_anonymous_public_pull(
    token: RegistryFixture, built: dict[str, BuiltImage], client_factory, tmp_path: Path
) -> None:
    assert token.certs_dir is not None
    client = client_factory(certs_dirs=[token.certs_dir])
    target = ref(token, "public/busybox:1")
    _, _, digest = await client.get_manifest(target)
    assert str(digest) == built["busybox"].digest
    last = _token_requests(token, "public/busybox")[-1]
    assert last.user is None
    assert last.scopes == ["repository:public/busybox:pull"]
    assert last.query.get("service") == [token.token_service]


async def test_token_private_repo_needs_credentials(
    token: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    client = client_factory(certs_dirs=[token.certs_dir])
    target = ref(token, "test/busybox:1")
    with pytest.raises(Unauthorized) as info:
        await client.get_manifest(target)
    assert str(info.value).startswith(f"authentication required for {token.host}")
    _, _, digest = await client.get_manifest(target, auth=alice(token))
    assert str(digest) == built["busybox"].digest
    assert _token_requests(token, "test/busybox")[-1].user == token.username


async def test_token_wrong_password(token: RegistryFixture, client_factory) -> None:
    client = client_factory(certs_dirs=[token.certs_dir])
    before = len(token.token_rejections)
    with pytest.raises(Unauthorized) as info:
        await client.get_manifest(
            ref(token, "test/busybox:1"), auth=alice(token, "not-the-password")
        )
    assert str(info.value).startswith(f"wrong credentials for {token.host}")
    assert len(token.token_rejections) == before + 1
    with pytest.raises(Unauthorized):
        await client.check_login(token.host, alice(token, "not-the-password"))
    await client.check_login(token.host, alice(token))


async def test_token_is_cached_per_scope_and_shared_by_concurrent_fetches(
    token: RegistryFixture, client_factory, tmp_path: Path
) -> None:
    repo = "public/busybox"
    client = client_factory(certs_dirs=[token.certs_dir])
    before = len(_token_requests(token, repo))
    target = ref(token, f"{repo}:1")
    raw, media_type, _ = await client.get_manifest(target)
    manifest = parse_manifest(raw, media_type)
    assert isinstance(manifest, Manifest)
    await client.get_blob(target, manifest.config, max_size=MAX_CONFIG_SIZE)
    layers = [*manifest.layers, manifest.config] * 4  # eight downloads at once, one token
    writers = [FileWriter(tmp_path / f"l{i}") for i in range(len(layers))]
    await asyncio.gather(
        *(client.fetch_blob(target, layer, w) for layer, w in zip(layers, writers, strict=True))
    )
    for layer, writer in zip(layers, writers, strict=True):
        assert writer.digest == layer.digest
    assert len(_token_requests(token, repo)) == before + 1
    assert client.token_requests == 1
    # Another repository is another scope: one more token; repeats need none.
    for _ in range(2):
        await client.get_manifest(ref(token, "test/layered:1"), auth=alice(token))
    assert client.token_requests == 2
    assert len(_token_requests(token, repo)) == before + 1


async def test_token_scopes_anonymous_versus_authenticated_are_separate(
    token: RegistryFixture, client_factory
) -> None:
    client = client_factory(certs_dirs=[token.certs_dir])
    await client.get_manifest(ref(token, "public/busybox:1"))
    await client.get_manifest(ref(token, "public/busybox:1"), auth=alice(token))
    # The anonymous token must not be reused for alice (nor the other way round).
    assert client.token_requests == 2
    users = [r.user for r in _token_requests(token, "public/busybox")[-2:]]
    assert users == [None, token.username]


async def test_registry_token_from_x_registry_auth_is_used_as_is(
    token: RegistryFixture, built: dict[str, BuiltImage], client_factory
) -> None:
    import ssl
    import urllib.request

    query = f"service={token.token_service}&scope=repository:test/busybox:pull"
    request = urllib.request.Request(f"{token.token_server_url}/token?{query}")
    basic = base64.b64encode(f"{token.username}:{token.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    ctx = ssl.create_default_context(cafile=str(token.ca_file))

    def get() -> str:
        with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())["token"]

    bearer = await asyncio.to_thread(get)
    header = base64.urlsafe_b64encode(json.dumps({"registrytoken": bearer}).encode()).decode()
    auth = AuthConfig.from_header(header)
    assert auth is not None and bearer not in repr(auth)
    client = client_factory(certs_dirs=[token.certs_dir])
    _, _, digest = await client.get_manifest(ref(token, "test/busybox:1"), auth=auth)
    assert str(digest) == built["busybox"].digest
    assert client.token_requests == 0


async def test_bad_references_are_refused_before_any_request(client_factory) -> None:
    client = client_factory(insecure_registries=["127.0.0.0/8"])
    with pytest.raises(InvalidArgument):
        await client.get_manifest(Reference("127.0.0.1:1", "a/../../b", "1"))
    with pytest.raises(InvalidArgument):
        await client.ping("127.0.0.1:1/v2")


# -- credential sources (no network) --------------------------------------------------------


def test_docker_hub_keys_and_precedence(tmp_path: Path) -> None:
    hub = base64.b64encode(b"hubuser:hubpw").decode()
    other = base64.b64encode(b"someone:else").decode()
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": hub},
                    "https://myreg.example:5000/v1/": {"auth": other},
                    "broken.example": {"identitytoken": "tok"},
                }
            }
        )
    )
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        found = load_docker_credentials(tmp_path, name)
        assert found is not None and (found.username, found.password) == ("hubuser", "hubpw")
    found = load_docker_credentials(tmp_path, "myreg.example:5000")
    assert found is not None and found.username == "someone"
    assert load_docker_credentials(tmp_path, "myreg.example") is None
    found = load_docker_credentials(tmp_path, "broken.example")
    assert found is not None and found.identity_token == "tok" and found.username is None
    assert load_docker_credentials(tmp_path / "missing", "docker.io") is None


def test_bad_docker_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"config\.json is not valid JSON"):
        load_docker_credentials(tmp_path, "docker.io")
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"h": {"auth": "bm9jb2xvbg=="}}}))
    with pytest.raises(InvalidArgument, match="expected USER:PASSWORD"):
        load_docker_credentials(tmp_path, "h")


def test_x_registry_auth_header() -> None:
    raw = {"username": "bob", "password": "pw", "serveraddress": "reg.example"}
    header = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    auth = AuthConfig.from_header(header)
    assert auth is not None and (auth.username, auth.password) == ("bob", "pw")
    assert auth.server_address == "reg.example" and "pw" not in repr(auth)
    assert AuthConfig.from_header("") is None
    assert AuthConfig.from_header(base64.urlsafe_b64encode(b"{}").decode()) is None
    for bad in ("!!!", base64.urlsafe_b64encode(b"[1]").decode()):
        with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
            AuthConfig.from_header(bad)
