"""Pulling an image: resolve the manifest, download blobs in parallel, unpack in order.

The pipeline verifies everything before it is kept: manifests and configs by digest (the
registry client), every blob by size and digest as it is committed to the content store,
and every layer's DiffID against the image config as it is applied to a snapshot. Layer
*i* is applied as soon as it and its parents are ready while later layers still download.
An image record (and its tag) is written only when every layer is in place, so a failed or
killed pull leaves no partial image; what it did commit (verified blobs, complete
snapshots) is reused by the next pull or swept by garbage collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import VerificationError
from engine.oci import MAX_CONFIG_SIZE, Descriptor, Index, Manifest, parse_manifest
from engine.platform import Platform, host_platform, select_manifest
from engine.policy import ImagePolicy
from engine.progress import ProgressCallback, ProgressEvent, no_progress
from engine.reference import Reference
from engine.store.metadata import ImageRow, LayerRow

if TYPE_CHECKING:
    from engine.registry.client import RegistryClient
    from engine.registry.credentials import AuthConfig
    from engine.store.content import ContentStore
    from engine.store.gc import GarbageCollector
    from engine.store.metadata import Metadata
    from engine.store.snapshots import Snapshotter

_PROGRESS_INTERVAL = 0.1  # seconds between two progress events of one layer


@dataclass(frozen=True)
class PullResult:
    image_id: str
    reference: Reference
    repo_digest: str  # registry/repository@digest
    new: bool  # False when the image was already complete locally


class _Throttle:
    """Emit a layer's byte-count progress at most every ``_PROGRESS_INTERVAL`` seconds."""

    def __init__(self, emit: ProgressCallback, status: str, layer: str, total: int) -> None:
        self.emit = emit
        self.status = status
        self.layer = layer
        self.total = total
        self.last = 0.0

    def __call__(self, current: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_INTERVAL or current >= self.total:
            self.last = now
            self.emit(ProgressEvent(self.status, self.layer, current, self.total))


def _parse_config(raw: bytes, manifest: Manifest) -> tuple[dict[str, Any], list[Digest]]:
    try:
        config = json.loads(raw)
    except ValueError as err:
        raise VerificationError(f"image config is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise VerificationError("image config is not a JSON object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise VerificationError("image config has no rootfs.diff_ids")
    diff_ids = [
        Digest.parse(d) if isinstance(d, str) else Digest.parse("") for d in rootfs["diff_ids"]
    ]
    if len(diff_ids) != len(manifest.layers):
        raise VerificationError(
            f"image config lists {len(diff_ids)} layers but the manifest has "
            f"{len(manifest.layers)}; the image is malformed"
        )
    return config, diff_ids


class Puller:
    """Runs pulls against one engine root."""

    def __init__(
        self,
        *,
        registry: RegistryClient,
        content: ContentStore,
        metadata: Metadata,
        snapshots: Snapshotter,
        gc: GarbageCollector,
        max_downloads: int = 4,
    ) -> None:
        self.registry = registry
        self.content = content
        self.metadata = metadata
        self.snapshots = snapshots
        self.gc = gc
        self._downloads = asyncio.Semaphore(max(1, max_downloads))

    async def pull(
        self,
        ref: Reference,
        *,
        platform: Platform | None = None,
        auth: AuthConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> PullResult:
        ImagePolicy.from_config(self.registry.config).check(ref, "pull")
        emit = progress or no_progress
        want = platform or host_platform()
        emit(ProgressEvent(f"Pulling from {ref.repository}", ref.tag or str(ref.digest)))
        async with self.gc.lease():
            raw, media_type, digest = await self.registry.get_manifest(ref, auth=auth)
            parsed = parse_manifest(raw, media_type)
            top_digest = digest
            extra: list[tuple[Digest, bytes]] = []
            if isinstance(parsed, Index):
                desc = select_manifest(parsed, want)
                extra.append((digest, raw))
                raw, media_type, digest = await self.registry.get_manifest(
                    ref.with_digest(desc.digest), auth=auth
                )
                parsed = parse_manifest(raw, media_type)
                if isinstance(parsed, Index):
                    raise VerificationError(
                        f"{ref}: the index for {want} points at another index; not supported"
                    )
            manifest = parsed
            if manifest.config.size > MAX_CONFIG_SIZE:
                raise VerificationError(f"{ref}: image config larger than {MAX_CONFIG_SIZE} bytes")
            config_raw = await self.registry.get_blob(
                ref, manifest.config, max_size=MAX_CONFIG_SIZE, auth=auth
            )
            config, diff_ids = _parse_config(config_raw, manifest)
            image_id = str(manifest.config.digest)
            repo_digest = f"{ref.name}@{top_digest}"
            chains = chain_ids(diff_ids)

            existing = await self.metadata.run(self.metadata.get_image, image_id)
            complete = existing is not None and all(self.snapshots.exists(c) for c in chains)
            if not complete:
                for layer in manifest.layers:
                    emit(ProgressEvent("Pulling fs layer", layer.digest.short))
                await self.content.put(manifest.config.digest, config_raw)
                await self.content.put(digest, raw)
                for d, data in extra:
                    await self.content.put(d, data)
                sizes = await self._fetch_and_unpack(ref, manifest, diff_ids, chains, auth, emit)
                row = ImageRow(
                    id=image_id,
                    manifest_digest=str(digest),
                    manifest_media_type=manifest.media_type,
                    created=config.get("created")
                    if isinstance(config.get("created"), str)
                    else None,
                    size=sum(sizes),
                    added=time.time(),
                    last_tag_time=None,
                )
                blobs = [
                    image_id,
                    str(digest),
                    *(str(d) for d, _ in extra),
                    *(str(layer.digest) for layer in manifest.layers),
                ]
                await self.metadata.run(
                    self.metadata.put_image, row, blobs, [str(c) for c in chains]
                )
            await self.metadata.run(self.metadata.add_repo_digest, repo_digest, image_id)
            if ref.tag:
                await self.metadata.run(self.metadata.set_tag, ref.tagged_str(), image_id)
        emit(ProgressEvent(f"Digest: {top_digest}"))
        shown = ref.familiar()
        if complete:
            emit(ProgressEvent(f"Status: Image is up to date for {shown}"))
        else:
            emit(ProgressEvent(f"Status: Downloaded newer image for {shown}"))
        return PullResult(image_id, ref, repo_digest, new=not complete)

    async def _fetch_and_unpack(
        self,
        ref: Reference,
        manifest: Manifest,
        diff_ids: list[Digest],
        chains: list[Digest],
        auth: AuthConfig | None,
        emit: ProgressCallback,
    ) -> list[int]:
        """Download missing layer blobs in parallel and apply them in order."""
        layers = manifest.layers
        present = [self.snapshots.exists(c) for c in chains]
        # A layer whose snapshot exists needs no blob, unless a later one is missing:
        # snapshots are applied on their parent, so only missing ones are fetched.
        tasks: dict[int, asyncio.Task[None]] = {}
        for i, layer in enumerate(layers):
            if present[i]:
                emit(ProgressEvent("Already exists", layer.digest.short))
            else:
                emit(ProgressEvent("Waiting", layer.digest.short))
                tasks[i] = asyncio.create_task(self._download(ref, layer, auth, emit))
        sizes: list[int] = []
        try:
            for i, layer in enumerate(layers):
                short = layer.digest.short
                if present[i]:
                    row = await self.metadata.run(self.metadata.get_layer, str(chains[i]))
                    sizes.append(row.size if row else self.snapshots.size(chains[i]))
                    continue
                await tasks[i]
                parent = chains[i - 1] if i else None
                extract = _Throttle(emit, "Extracting", short, layer.size)
                result = await self.snapshots.apply(
                    chains[i],
                    parent,
                    self.content.path(layer.digest),
                    diff_ids[i],
                    progress=extract,
                )
                await self.metadata.run(
                    self.metadata.put_layer,
                    LayerRow(
                        chain_id=str(chains[i]),
                        diff_id=str(diff_ids[i]),
                        parent=str(parent) if parent else None,
                        blob_digest=str(layer.digest),
                        media_type=layer.media_type,
                        blob_size=layer.size,
                        size=result.size,
                    ),
                )
                sizes.append(result.size)
                emit(ProgressEvent("Pull complete", short))
        except BaseException:
            for task in tasks.values():
                task.cancel()
            for task in tasks.values():
                with contextlib.suppress(BaseException):
                    await task
            raise
        return sizes

    async def _download(
        self, ref: Reference, layer: Descriptor, auth: AuthConfig | None, emit: ProgressCallback
    ) -> None:
        short = layer.digest.short
        async with self._downloads, self.content.writer(layer.digest, layer.size) as writer:
            if writer is not None:
                emit(ProgressEvent("Downloading", short, writer.offset, layer.size))
                await self.registry.fetch_blob(
                    ref,
                    layer,
                    writer,
                    progress=_Throttle(emit, "Downloading", short, layer.size),
                    auth=auth,
                )
                emit(ProgressEvent("Verifying Checksum", short))
                await writer.commit()
        emit(ProgressEvent("Download complete", short))


def parse_platform(text: str | None) -> Platform | None:
    """``linux/arm64`` -> Platform (Platform.parse says what is wrong with nonsense)."""
    return Platform.parse(text) if text else None
