"""Pushing images from the content store to a registry, with Docker's progress lines.

``Pusher.push(ref, image_id)`` sends an image exactly as it is stored: its layer and config
blobs, then its manifest bytes unchanged (OCI or Docker media types, so digests survive the
round trip), then the tag. When the image was pulled through an index whose every platform
is held locally, the whole index is pushed. ``Pusher.push_content`` pushes any stored
manifest or index by digest.

Each blob is checked first (``Layer already exists``), then mounted from another repository
of the same registry that is known to hold it (``Mounted from X``: the image's own names
there, and blobs this engine pushed), and uploaded only when both fail. A blob another push
of this engine is uploading to the same registry is waited for (``Waiting``) and then
mounted or found, never uploaded twice. Uploads run ``max_uploads`` at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.digest import Digest
from engine.errors import InvalidArgument, NotFound, PortsideError, RegistryError
from engine.oci import (
    INDEX_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Index,
    Manifest,
    parse_manifest,
)
from engine.progress import ProgressCallback, ProgressEvent, no_progress
from engine.reference import Reference
from engine.registry.upload import DEFAULT_CHUNK_SIZE, BlobTarget, BlobUploader

if TYPE_CHECKING:
    from engine.registry.client import RegistryClient
    from engine.registry.credentials import AuthConfig
    from engine.store.content import ContentStore
    from engine.store.metadata import Metadata

log = logging.getLogger(__name__)

_PROGRESS_INTERVAL = 0.1  # seconds between two byte-count events of one layer
_MAX_MOUNT_SOURCES = 3


@dataclass(frozen=True)
class PushResult:
    """What a push left in the registry: the tag (or digest) and what it points at."""

    reference: Reference
    digest: Digest
    size: int
    media_type: str

    @property
    def tag(self) -> str:
        return self.reference.tag or str(self.digest)

    def aux(self) -> dict[str, object]:
        """The ``aux`` object docker's push stream ends with."""
        return {"Tag": self.reference.tag or "", "Digest": str(self.digest), "Size": self.size}


class _Ticker:
    """Byte-count progress of one layer, at most every ``_PROGRESS_INTERVAL`` seconds."""

    def __init__(self, emit: ProgressCallback, layer: str, total: int) -> None:
        self.emit = emit
        self.layer = layer
        self.total = total
        self.last = 0.0

    def __call__(self, current: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_INTERVAL or current >= self.total:
            self.force(current)

    def force(self, current: int) -> None:
        """Report ``current`` now (an acknowledged chunk is always shown)."""
        self.last = time.monotonic()
        self.emit(ProgressEvent("Pushing", self.layer, current, self.total))


class Pusher:
    """Pushes images of one engine root; safe to run several pushes at once."""

    def __init__(
        self,
        *,
        registry: RegistryClient,
        content: ContentStore,
        metadata: Metadata,
        state_dir: Path,
        max_uploads: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.registry = registry
        self.content = content
        self.metadata = metadata
        self.uploader = BlobUploader(registry, state_dir, chunk_size=chunk_size)
        self._uploads = asyncio.Semaphore(max(1, max_uploads))
        # (registry, digest) -> event set when the push of that blob running now ends.
        self._inflight: dict[tuple[str, str], asyncio.Event] = {}
        # (registry, digest) -> repositories known to hold it (pushed, mounted, found).
        self._known: dict[tuple[str, str], list[str]] = {}

    # -- entry points ------------------------------------------------------------------------

    async def push(
        self,
        ref: Reference | str,
        image_id: str,
        *,
        auth: AuthConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> PushResult:
        """Push local image ``image_id`` as ``ref`` (a tag, ``latest`` when none is given)."""
        target = _target_ref(ref)
        md = self.metadata
        row = await md.run(md.get_image, image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        top = Digest.parse(row.manifest_digest)
        media_type = row.manifest_media_type
        index = await self._complete_index(image_id, top)
        if index is not None:
            top, media_type = index
        names = [*await md.run(md.tags_of, image_id), *await md.run(md.repo_digests_of, image_id)]
        sources = _sources_in(target, names)
        return await self.push_content(
            target, top, media_type, auth=auth, progress=progress, mount_sources=sources
        )

    async def push_content(
        self,
        ref: Reference | str,
        digest: Digest,
        media_type: str | None = None,
        *,
        auth: AuthConfig | None = None,
        progress: ProgressCallback | None = None,
        mount_sources: Iterable[str] = (),
    ) -> PushResult:
        """Push the manifest or index ``digest`` of the content store (and everything it
        references) as ``ref``; ``mount_sources`` are repositories of the same registry to
        try mounting blobs from."""
        target = _target_ref(ref)
        emit = progress or no_progress
        sources = [s for s in mount_sources if s != target.repository]
        raw = await self._read_manifest(digest)
        parsed = parse_manifest(raw, media_type)
        emit(ProgressEvent(f"The push refers to repository [{target.name}]"))
        blob_target = BlobTarget(target.registry, target.repository, auth)
        if isinstance(parsed, Index):
            await self._push_index_children(blob_target, parsed, sources, emit)
        else:
            await self._push_manifest_blobs(blob_target, parsed, sources, emit, show=True)
        await self._put_manifest(blob_target, target.tag or str(digest), raw, parsed.media_type)
        result = PushResult(target, digest, len(raw), parsed.media_type)
        emit(ProgressEvent(f"{result.tag}: digest: {digest} size: {len(raw)}"))
        return result

    # -- manifests ---------------------------------------------------------------------------

    async def _push_index_children(
        self, target: BlobTarget, index: Index, sources: list[str], emit: ProgressCallback
    ) -> None:
        for desc in index.manifests:
            if await self._manifest_exists(target, desc.digest):
                continue
            raw = await self._read_manifest(desc.digest)
            child = parse_manifest(raw, desc.media_type)
            if isinstance(child, Index):
                await self._push_index_children(target, child, sources, emit)
            else:
                # Attestations and other platforms' blobs are pushed without layer lines.
                show = desc.platform is None or desc.platform.os != "unknown"
                await self._push_manifest_blobs(target, child, sources, emit, show=show)
            await self._put_manifest(target, str(desc.digest), raw, child.media_type)

    async def _push_manifest_blobs(
        self,
        target: BlobTarget,
        manifest: Manifest,
        sources: list[str],
        emit: ProgressCallback,
        *,
        show: bool,
    ) -> None:
        layers = list(reversed(manifest.layers))  # docker lists the top layer first
        if show:
            for layer in layers:
                emit(ProgressEvent("Preparing", layer.digest.short))
        tasks = [
            asyncio.create_task(self._push_blob(target, layer, sources, emit if show else None))
            for layer in layers
        ]
        tasks.append(asyncio.create_task(self._push_blob(target, manifest.config, sources, None)))
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            raise

    async def _put_manifest(
        self, target: BlobTarget, ident: str, raw: bytes, media_type: str
    ) -> None:
        resp = await self.registry.send(
            "PUT",
            target.registry,
            f"/v2/{target.repository}/manifests/{ident}",
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            headers={"Content-Type": media_type},
            body=raw,
            ok=(200, 201),
            what=f"manifest {ident} of {target.repository}",
        )
        try:
            sent = resp.headers.get("Docker-Content-Digest")
        finally:
            resp.release()
        if sent and sent.strip() != str(Digest.of_bytes(raw)):
            raise RegistryError(
                f"registry {target.registry} stored the manifest under another digest "
                f"({sent.strip()[:80]}); it may have converted it"
            )

    async def _manifest_exists(self, target: BlobTarget, digest: Digest) -> bool:
        resp = await self.registry.send(
            "HEAD",
            target.registry,
            f"/v2/{target.repository}/manifests/{digest}",
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            headers={"Accept": ", ".join(sorted(INDEX_MEDIA_TYPES))},
            ok=(200, 404),
            what=f"manifest {digest}",
        )
        resp.release()
        return resp.status == 200

    # -- blobs -------------------------------------------------------------------------------

    async def _push_blob(
        self,
        target: BlobTarget,
        desc: Descriptor,
        sources: list[str],
        emit: ProgressCallback | None,
    ) -> None:
        key = (target.registry, str(desc.digest))
        short = desc.digest.short
        while (running := self._inflight.get(key)) is not None:
            if emit is not None:
                emit(ProgressEvent("Waiting", short))
            await running.wait()
        done = asyncio.Event()
        self._inflight[key] = done
        try:
            if self._uploads.locked() and emit is not None:
                emit(ProgressEvent("Waiting", short))
            async with self._uploads:
                status = await self._send_blob(target, desc, sources, emit)
            known = self._known.setdefault(key, [])
            if target.repository in known:
                known.remove(target.repository)
            known.insert(0, target.repository)
            if emit is not None:
                emit(ProgressEvent(status, short))
        finally:
            del self._inflight[key]
            done.set()

    async def _send_blob(
        self,
        target: BlobTarget,
        desc: Descriptor,
        sources: list[str],
        emit: ProgressCallback | None,
    ) -> str:
        """Find, mount or upload one blob; the status line to show for it."""
        digest = desc.digest
        if await self.uploader.exists(target, digest):
            return "Layer already exists"
        candidates = [*self._known.get((target.registry, str(digest)), []), *sources]
        location: str | None = None
        tried = 0
        for source in dict.fromkeys(candidates):
            if source == target.repository or tried >= _MAX_MOUNT_SOURCES:
                continue
            tried += 1
            try:
                location = await self.uploader.mount(target, digest, source)
            except PortsideError as err:  # no access to the source: upload instead
                log.info("mount of %s from %s failed: %s", digest, source, err)
                location = None
                continue
            if location is None:
                return f"Mounted from {source}"
            break
        path = self.content.path(digest)
        short = digest.short
        ticker = _Ticker(emit, short, desc.size) if emit is not None else None
        await self.uploader.upload(
            target,
            digest,
            desc.size,
            path,
            location=location,
            progress=ticker,
            chunk_done=ticker.force if ticker is not None else None,
        )
        return "Pushed"

    # -- local content -----------------------------------------------------------------------

    async def _read_manifest(self, digest: Digest) -> bytes:
        try:
            return await asyncio.to_thread(self.content.read, digest, MAX_MANIFEST_SIZE)
        except NotFound:
            raise NotFound(
                f"manifest {digest} is not in the local content store; pull the image again"
            ) from None

    async def _complete_index(self, image_id: str, manifest: Digest) -> tuple[Digest, str] | None:
        """The index this image was pulled through, when every platform in it is stored."""
        md = self.metadata
        blobs = await md.run(md.image_refs, image_id, "blob")
        for blob in blobs:
            digest = Digest.parse(blob)
            if digest == manifest or blob == image_id:
                continue
            size = self.content.size(digest)
            if size is None or size > MAX_MANIFEST_SIZE:
                continue
            try:
                parsed = parse_manifest(await asyncio.to_thread(self.content.read, digest))
            except PortsideError:
                continue
            if not isinstance(parsed, Index):
                continue
            if manifest in {d.digest for d in parsed.manifests} and await self._stored(parsed):
                return digest, parsed.media_type
        return None

    async def _stored(self, index: Index) -> bool:
        for desc in index.manifests:
            if not self.content.has(desc.digest):
                return False
            child = parse_manifest(await self._read_manifest(desc.digest), desc.media_type)
            if isinstance(child, Index):
                if not await self._stored(child):
                    return False
            elif not all(self.content.has(d.digest) for d in (child.config, *child.layers)):
                return False
        return True


def _target_ref(ref: Reference | str) -> Reference:
    target = Reference.parse(ref) if isinstance(ref, str) else ref
    if target.digest is not None and target.tag is None:
        raise InvalidArgument(
            f"cannot push to {target.familiar()}: give a tag (NAME[:TAG]); a digest is what the "
            "registry computes"
        )
    if target.digest is not None:
        target = Reference(target.registry, target.repository, target.tag)
    return target


def _sources_in(target: Reference, names: list[str]) -> list[str]:
    """Repositories of ``target``'s registry named by the image's tags and repo digests."""
    out: list[str] = []
    for name in names:
        try:
            ref = Reference.parse(name)
        except PortsideError:
            continue
        if ref.registry == target.registry and ref.repository != target.repository:
            out.append(ref.repository)
    return list(dict.fromkeys(out))
