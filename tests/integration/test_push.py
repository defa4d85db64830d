"""Pushing images with the engine's Pusher to real registries (plain, htpasswd+TLS, token).

Images come into a temporary engine by a real pull from the fixture registry, then go out
again; what arrives is compared byte for byte with the engine's content store (and with the
OCI layouts the fixtures built). Cross-repository mounts, uploads and resumed chunked
uploads are observed in the registry's own access log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.digest import Digest
from engine.engine import Engine
from engine.errors import InvalidArgument, NotFound, Unauthorized
from engine.oci import DOCKER_MANIFEST, OCI_INDEX, Index, Manifest, parse_manifest
from engine.progress import ProgressEvent
from engine.reference import Reference
from engine.registry import AuthConfig
from engine.registry.push import Pusher
from tests.fixtures.engine import engine_config
from tests.fixtures.images import BuiltImage
from tests.fixtures.registry import RegistryFixture

MiB = 1 << 20


def make_pusher(engine: Engine, **kw: object) -> Pusher:
    return Pusher(
        registry=engine.registry,
        content=engine.content,
        metadata=engine.metadata,
        state_dir=engine.config.root / "push-uploads",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def tls_engine(tmp_path: Path, registry_tls: RegistryFixture) -> AsyncIterator[Engine]:
    """An engine that trusts the TLS fixture's CA (and 127.0.0.0/8 as insecure, by default)."""
    assert registry_tls.certs_dir is not None
    eng = await Engine.open(engine_config(tmp_path / "root", certs_dirs=[registry_tls.certs_dir]))
    try:
        yield eng
    finally:
        await eng.close()


def alice(reg: RegistryFixture) -> AuthConfig:
    return AuthConfig(username=reg.username, password=reg.password)


def statuses(events: list[ProgressEvent], status: str) -> set[str]:
    return {e.id for e in events if e.status == status and e.id}


async def remote_manifest(engine: Engine, ref: str, auth: AuthConfig | None = None) -> bytes:
    raw, _, _ = await engine.registry.get_manifest(Reference.parse(ref), auth=auth)
    return raw


async def assert_same_blobs(
    engine: Engine, ref: str, manifest: Manifest, auth: AuthConfig | None = None
) -> None:
    """Every blob of ``manifest`` in the registry equals the engine's stored copy."""
    reference = Reference.parse(ref)
    for desc in (manifest.config, *manifest.layers):
        remote = await engine.registry.get_blob(reference, desc, max_size=desc.size, auth=auth)
        local = await asyncio.to_thread(engine.content.path(desc.digest).read_bytes)
        assert remote == local, f"blob {desc.digest} differs"


def log_lines(reg: RegistryFixture, pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return [line for line in reg.log_text().splitlines() if regex.search(line)]


# -- plain registry: mounts and round trips --------------------------------------------------


async def test_push_mounts_from_the_source_repository(
    engine: Engine, registry: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    source = pushed_images["test/layered:1"]
    image_id = await engine.images.pull(source)
    target = f"{registry.host}/pushed/layered:rt"
    events: list[ProgressEvent] = []
    result = await make_pusher(engine).push(target, image_id, progress=events.append)

    row = await engine.metadata.run(engine.metadata.get_image, image_id)
    assert row is not None and str(result.digest) == row.manifest_digest
    assert events[0].status == f"The push refers to repository [{registry.host}/pushed/layered]"
    manifest = parse_manifest(engine.content.read(result.digest))
    assert isinstance(manifest, Manifest)
    layer_ids = [layer.digest.short for layer in manifest.layers]
    preparing = [e.id for e in events if e.status == "Preparing"]
    assert preparing == list(reversed(layer_ids))
    mounted = {e.id for e in events if e.status == "Mounted from test/layered"}
    assert mounted == set(layer_ids)
    assert events[-1].status == f"rt: digest: {result.digest} size: {result.size}"

    for layer in manifest.layers:
        hits = log_lines(
            registry,
            rf"POST /v2/pushed/layered/blobs/uploads/\?mount={layer.digest}&from=test/layered "
            r'HTTP/1.1" 201',
        )
        assert hits, f"no cross-repository mount of {layer.digest} in the registry log"
    assert not log_lines(registry, r"PATCH /v2/pushed/layered/blobs/uploads/")
    # The manifest went up byte for byte: same digest, same bytes.
    assert await remote_manifest(engine, target) == engine.content.read(result.digest)
    await assert_same_blobs(engine, target, manifest)


async def test_second_push_finds_every_layer(
    engine: Engine, registry: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    image_id = await engine.images.pull(pushed_images["test/busybox2:1"])
    pusher = make_pusher(engine)
    target = f"{registry.host}/pushed/again:1"
    await pusher.push(target, image_id)
    events: list[ProgressEvent] = []
    await pusher.push(target, image_id, progress=events.append)
    preparing = {e.id for e in events if e.status == "Preparing"}
    assert len(preparing) == 2
    assert statuses(events, "Layer already exists") == preparing
    assert not statuses(events, "Pushed")


async def test_push_index_with_every_platform(
    engine: Engine, registry: RegistryFixture, test_images: dict[str, BuiltImage]
) -> None:
    """An index whose platforms are all stored goes up whole (children by digest first)."""
    image = test_images["test/multi:1"]
    blobs = image.layout / "blobs" / "sha256"
    for path in blobs.iterdir():
        await engine.content.put(Digest("sha256", path.name), path.read_bytes())
    target = f"{registry.host}/pushed/multi:all"
    events: list[ProgressEvent] = []
    result = await make_pusher(engine).push_content(
        target, Digest.parse(image.digest), progress=events.append
    )
    assert result.media_type == OCI_INDEX and str(result.digest) == image.digest
    raw = await remote_manifest(engine, target)
    assert raw == (blobs / image.digest[7:]).read_bytes()
    index = parse_manifest(raw)
    assert isinstance(index, Index)
    for desc in index.manifests:
        child = Reference.parse(f"{registry.host}/pushed/multi@{desc.digest}")
        child_raw, _, _ = await engine.registry.get_manifest(child)
        assert child_raw == (blobs / desc.digest.hex).read_bytes()
        manifest = parse_manifest(child_raw)
        assert isinstance(manifest, Manifest)
        await assert_same_blobs(engine, str(child), manifest)
    # Attestation layers are pushed without lines of their own.
    assert image.attestation is not None
    assert len({e.id for e in events if e.status == "Preparing"}) == 3  # amd64 2 + arm64 1


async def test_push_refuses_bad_requests(
    engine: Engine, registry: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    pusher = make_pusher(engine)
    with pytest.raises(NotFound) as info:
        await pusher.push(f"{registry.host}/x/y:1", "sha256:" + "ab" * 32)
    assert str(info.value) == f"No such image: sha256:{'ab' * 32}"
    image_id = await engine.images.pull(pushed_images["test/busybox:1"])
    with pytest.raises(InvalidArgument) as bad:
        await pusher.push(f"{registry.host}/x/y@sha256:{'cd' * 32}", image_id)
    assert "give a tag" in str(bad.value)


# -- htpasswd over TLS: uploads, media types, auth -------------------------------------------


async def test_push_docker_media_types_byte_for_byte(
    tls_engine: Engine,
    registry: RegistryFixture,
    registry_tls: RegistryFixture,
    pushed_images: dict[str, str],
    test_images: dict[str, BuiltImage],
) -> None:
    image = test_images["test/docker-mt:1"]
    image_id = await tls_engine.images.pull(pushed_images["test/docker-mt:1"])
    target = f"{registry_tls.host}/pushed/docker-mt:1"
    events: list[ProgressEvent] = []
    result = await make_pusher(tls_engine).push(
        target, image_id, auth=alice(registry_tls), progress=events.append
    )
    assert result.media_type == DOCKER_MANIFEST and str(result.digest) == image.digest
    layer_ids = {layer.descriptor.digest[7:19] for layer in image.layers}
    assert statuses(events, "Pushed") == layer_ids
    pushing = [e for e in events if e.status == "Pushing"]
    assert pushing and all(e.total and 0 <= (e.current or 0) <= e.total for e in pushing)
    raw = await remote_manifest(tls_engine, target, alice(registry_tls))
    assert raw == (image.layout / "blobs" / "sha256" / image.digest[7:]).read_bytes()
    manifest = parse_manifest(raw)
    assert isinstance(manifest, Manifest)
    await assert_same_blobs(tls_engine, target, manifest, alice(registry_tls))

    # A pull into a fresh engine gets the very same image back.
    async with _fresh_engine(tls_engine, registry_tls) as other:
        pulled = await other.images.pull(target, auth=alice(registry_tls))
        assert pulled == image_id
        for desc in manifest.layers:
            assert other.content.path(desc.digest).read_bytes() == (
                tls_engine.content.path(desc.digest).read_bytes()
            )


async def test_push_without_credentials_is_refused(
    tls_engine: Engine, registry_tls: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    image_id = await tls_engine.images.pull(pushed_images["test/busybox:1"])
    with pytest.raises(Unauthorized) as info:
        await make_pusher(tls_engine).push(f"{registry_tls.host}/pushed/anon:1", image_id)
    text = str(info.value)
    assert f"portside login {registry_tls.host}" in text and "\n" not in text
    wrong = AuthConfig(username="alice", password="not-the-password")
    with pytest.raises(Unauthorized) as info:
        await make_pusher(tls_engine).push(
            f"{registry_tls.host}/pushed/anon:1", image_id, auth=wrong
        )
    assert "not-the-password" not in str(info.value)


async def test_chunked_upload_resumes_after_interruption(
    tls_engine: Engine, registry_tls: RegistryFixture, push_image
) -> None:
    """A push stopped after two acknowledged chunks continues from the third next time."""
    from tests.fixtures.layers import file

    data = os.urandom(5 * MiB + 1234)
    source = push_image("test/chunky:1", [[file("blob.bin", data)]])
    image_id = await tls_engine.images.pull(source)
    target = f"{registry_tls.host}/pushed/chunky:1"
    auth = alice(registry_tls)

    class Stop(Exception):
        pass

    first: list[ProgressEvent] = []

    def stop_after_two_chunks(event: ProgressEvent) -> None:
        first.append(event)
        if event.status == "Pushing" and event.current == 2 * MiB:
            raise Stop

    with pytest.raises(Stop):
        await make_pusher(tls_engine, chunk_size=MiB).push(
            target, image_id, auth=auth, progress=stop_after_two_chunks
        )
    layer = next(e.id for e in first if e.status == "Preparing")
    state_files = list((tls_engine.config.root / "push-uploads").iterdir())
    assert len(state_files) == 1 and state_files[0].stat().st_mode & 0o777 == 0o600
    saved = json.loads(state_files[0].read_text())
    assert saved["offset"] == 2 * MiB
    upload_id = saved["location"].split("/blobs/uploads/")[1].split("?")[0]

    second: list[ProgressEvent] = []
    result = await make_pusher(tls_engine, chunk_size=MiB).push(
        target, image_id, auth=auth, progress=second.append
    )
    pushing = [e.current for e in second if e.status == "Pushing" and e.id == layer]
    assert pushing[0] == 2 * MiB, "the second push did not start where the first stopped"
    assert pushing[-1] == len(_layer_blob(tls_engine, result.digest))
    assert statuses(second, "Pushed") == {layer}
    assert log_lines(registry_tls, rf'"GET /v2/pushed/chunky/blobs/uploads/{upload_id}\?.* 204')
    patches = log_lines(registry_tls, rf'"PATCH /v2/pushed/chunky/blobs/uploads/{upload_id}\?')
    assert len(patches) == 6  # 2 before the stop, 4 after: no chunk was sent twice
    assert not list((tls_engine.config.root / "push-uploads").iterdir())
    manifest = parse_manifest(tls_engine.content.read(result.digest))
    assert isinstance(manifest, Manifest)
    await assert_same_blobs(tls_engine, target, manifest, auth)


async def test_concurrent_pushes_upload_each_layer_once(
    tls_engine: Engine, registry_tls: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    image_id = await tls_engine.images.pull(pushed_images["test/layered-docker:1"])
    pusher = make_pusher(tls_engine)
    auth = alice(registry_tls)
    runs: list[list[ProgressEvent]] = [[], []]
    results = await asyncio.gather(
        pusher.push(
            f"{registry_tls.host}/pushed/twin-a:1", image_id, auth=auth, progress=runs[0].append
        ),
        pusher.push(
            f"{registry_tls.host}/pushed/twin-b:1", image_id, auth=auth, progress=runs[1].append
        ),
    )
    assert results[0].digest == results[1].digest
    manifest = parse_manifest(tls_engine.content.read(results[0].digest))
    assert isinstance(manifest, Manifest)
    for layer in manifest.layers:
        short = layer.digest.short
        outcomes = [
            [e.status for e in run if e.id == short and e.status != "Pushing"][-1] for run in runs
        ]
        assert sorted(outcomes)[1] == "Pushed", outcomes
        assert sorted(outcomes)[0] in ("Mounted from pushed/twin-a", "Mounted from pushed/twin-b")
        uploads = log_lines(
            registry_tls, rf'"PUT /v2/pushed/twin-[ab]/blobs/uploads/\S*digest={layer.digest}'
        )
        assert len(uploads) == 1, f"{layer.digest} was uploaded {len(uploads)} times"
    waited = [e for run in runs for e in run if e.status == "Waiting"]
    assert waited, "no push waited for the other's upload"


# -- token auth ------------------------------------------------------------------------------


async def test_push_with_token_auth_asks_push_and_mount_scopes(
    tmp_path: Path,
    registry_token: RegistryFixture,
    pushed_images_token: dict[str, str],
) -> None:
    assert registry_token.certs_dir is not None
    eng = await Engine.open(engine_config(tmp_path / "root", certs_dirs=[registry_token.certs_dir]))
    try:
        auth = alice(registry_token)
        image_id = await eng.images.pull(pushed_images_token["test/busybox2:1"], auth=auth)
        pusher = make_pusher(eng)
        first = f"{registry_token.host}/pushed/tok-a:1"
        await pusher.push(first, image_id, auth=auth)
        assert any(
            "repository:pushed/tok-a:pull,push" in r.scopes for r in registry_token.token_requests
        )
        events: list[ProgressEvent] = []
        await pusher.push(
            f"{registry_token.host}/pushed/tok-b:1", image_id, auth=auth, progress=events.append
        )
        layers = {e.id for e in events if e.status == "Preparing"}
        mounted = {e.id for e in events if e.status == "Mounted from pushed/tok-a"}
        assert mounted == layers and len(layers) == 2
        assert any(
            "repository:pushed/tok-b:pull,push" in r.scopes
            and "repository:pushed/tok-a:pull" in r.scopes
            for r in registry_token.token_requests
        )
        # Anonymous callers may pull public/* but never push.
        with pytest.raises(Unauthorized):
            await pusher.push(f"{registry_token.host}/public/nope:1", image_id)
    finally:
        await eng.close()


# -- helpers ---------------------------------------------------------------------------------


def _layer_blob(engine: Engine, manifest_digest: Digest) -> bytes:
    manifest = parse_manifest(engine.content.read(manifest_digest))
    assert isinstance(manifest, Manifest)
    return engine.content.path(manifest.layers[-1].digest).read_bytes()


class _fresh_engine:
    """``async with _fresh_engine(like, reg) as eng``: an empty engine trusting ``reg``."""

    def __init__(self, like: Engine, reg: RegistryFixture) -> None:
        self.root = like.config.root.parent / "fresh-root"
        self.certs = [reg.certs_dir] if reg.certs_dir else []
        self.engine: Engine | None = None

    async def __aenter__(self) -> Engine:
        self.engine = await Engine.open(engine_config(self.root, certs_dirs=self.certs))
        return self.engine

    async def __aexit__(self, *exc: object) -> None:
        assert self.engine is not None
        await self.engine.close()


# -- what a registry may not steer us into ---------------------------------------------------


async def test_upload_locations_stay_on_the_registry(engine: Engine) -> None:
    from engine.errors import RegistryError
    from engine.registry.upload import BlobTarget, BlobUploader

    uploader = BlobUploader(engine.registry, engine.config.root / "push-uploads")
    target = BlobTarget("127.0.0.1:5000", "team/app")
    good = uploader._location(target, "/v2/team/app/blobs/uploads/abc?_state=x%3D")
    assert good == "/v2/team/app/blobs/uploads/abc?_state=x%3D"
    same_host = "https://127.0.0.1:5000/v2/team/app/blobs/uploads/u1"
    assert uploader._location(target, same_host) == "/v2/team/app/blobs/uploads/u1"
    for bad in (
        "https://evil.example/v2/team/app/blobs/uploads/u1",
        "https://127.0.0.1:5001/v2/team/app/blobs/uploads/u1",
        "/v2/other/repo/blobs/uploads/u1",
        "/v2/team/app/blobs/uploads/../../../other/blobs/uploads/u1",
        "",
    ):
        with pytest.raises(RegistryError):
            uploader._location(target, bad)
