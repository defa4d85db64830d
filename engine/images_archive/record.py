"""Turning verified files into a local image: blobs into the content store, layers onto
snapshots (the confined unpacker checks every DiffID), then the image record and its tags.

Callers first ``prepare`` every image (blobs and snapshots, which garbage collection sweeps
if nothing ends up using them) and only then ``commit`` the records, all inside one GC
lease, so a failure anywhere leaves no image behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import VerificationError
from engine.images_archive.layout import dumps
from engine.oci import OCI_CONFIG, OCI_MANIFEST
from engine.reference import Reference
from engine.store.compression import decompress_stream
from engine.store.metadata import ImageRow, LayerRow

if TYPE_CHECKING:
    from engine.images import ImageService

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerBlob:
    """A layer blob waiting in a work directory, as its manifest will describe it."""

    path: Path
    digest: Digest
    size: int
    media_type: str


@dataclass
class PreparedImage:
    """An image whose config and blobs are verified, ready to be stored."""

    config_raw: bytes
    config: dict[str, Any]
    diff_ids: list[Digest]
    layers: list[LayerBlob]
    names: list[Reference] = field(default_factory=list)
    manifest_raw: bytes | None = None  # kept as the archive had it (OCI), else built
    manifest_media_type: str = OCI_MANIFEST
    sizes: list[int] = field(default_factory=list)

    @property
    def image_id(self) -> str:
        return str(Digest.of_bytes(self.config_raw))

    def manifest(self) -> tuple[bytes, str]:
        if self.manifest_raw is not None:
            return self.manifest_raw, self.manifest_media_type
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.image_id,
                "size": len(self.config_raw),
            },
            "layers": [
                {"mediaType": b.media_type, "digest": str(b.digest), "size": b.size}
                for b in self.layers
            ],
        }
        return dumps(doc), OCI_MANIFEST


def check_diff_id(path: Path, diff_id: Digest) -> None:
    """Raise unless the (possibly compressed) layer at ``path`` unpacks to ``diff_id``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    digest = hashlib.sha256()
    try:
        _kind, chunks = decompress_stream(fd)
        for chunk in chunks:
            digest.update(chunk)
    finally:
        os.close(fd)
    if digest.hexdigest() != diff_id.hex:
        raise VerificationError(
            f"layer {path.name} unpacks to DiffID sha256:{digest.hexdigest()} but the image "
            f"config says {diff_id}; the archive is corrupt or tampered with"
        )


async def ingest(images: ImageService, path: Path, digest: Digest, size: int) -> None:
    """Copy the file at ``path`` into the content store as ``digest`` (verified there)."""
    async with images.content.writer(digest, size) as writer:
        if writer is None:
            return
        if writer.offset:
            await writer.truncate()
        fh = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                await writer.write(chunk)
        finally:
            await asyncio.to_thread(fh.close)
        await writer.commit()


async def prepare(images: ImageService, image: PreparedImage) -> None:
    """Store the image's blobs and apply its layers; fills ``image.sizes``."""
    chains = chain_ids(image.diff_ids)
    md = images.metadata
    image.sizes = []
    for i, blob in enumerate(image.layers):
        await ingest(images, blob.path, blob.digest, blob.size)
        parent = chains[i - 1] if i else None
        if images.snapshots.exists(chains[i]):
            row = await md.run(md.get_layer, str(chains[i]))
            if blob.digest != image.diff_ids[i] and (
                row is None or row.blob_digest != str(blob.digest)
            ):
                # The layer is on disk already, but this blob is new: it must unpack to it.
                await asyncio.to_thread(check_diff_id, blob.path, image.diff_ids[i])
            image.sizes.append(row.size if row else images.snapshots.size(chains[i]))
            continue
        result = await images.snapshots.apply(
            chains[i], parent, images.content.path(blob.digest), image.diff_ids[i]
        )
        await md.run(
            md.put_layer,
            LayerRow(
                chain_id=str(chains[i]),
                diff_id=str(image.diff_ids[i]),
                parent=str(parent) if parent else None,
                blob_digest=str(blob.digest),
                media_type=blob.media_type,
                blob_size=blob.size,
                size=result.size,
            ),
        )
        image.sizes.append(result.size)


async def commit(images: ImageService, image: PreparedImage, action: str) -> str:
    """Write the config, manifest and image record, then the tags; returns the image id."""
    md = images.metadata
    image_id = image.image_id
    await images.content.put(Digest.parse(image_id), image.config_raw)
    manifest_raw, media_type = image.manifest()
    manifest_digest = Digest.of_bytes(manifest_raw)
    await images.content.put(manifest_digest, manifest_raw)
    now = time.time()
    created = image.config.get("created")
    row = ImageRow(
        id=image_id,
        manifest_digest=str(manifest_digest),
        manifest_media_type=media_type,
        created=created if isinstance(created, str) else None,
        size=sum(image.sizes),
        added=now,
        last_tag_time=now if image.names else None,
    )
    blobs = [image_id, str(manifest_digest), *(str(b.digest) for b in image.layers)]
    chains = [str(c) for c in chain_ids(image.diff_ids)]
    if await md.run(md.get_image, image_id) is None:
        await md.run(md.put_image, row, blobs, chains)
    for name in image.names:
        await md.run(md.set_tag, name.tagged_str(), image_id)
        images.events.publish("image", "tag", image_id, {"name": name.familiar()})
    shown = image.names[0].familiar() if image.names else image_id
    images.events.publish("image", action, image_id, {"name": shown})
    return image_id
