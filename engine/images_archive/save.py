"""``docker save``: the archive of local images, streamed as a tar.

``plan_save(images, names)`` resolves the names the way docker does (a tag saves that tag, a
repository without tag saves all its tags, an id or digest saves the image untagged) and
checks that every blob is present, so a missing image fails before any byte is sent.
``stream_archive(images, plan)`` then yields the tar (see ``layout`` for what it holds);
layer blobs are copied as stored (compressed or not), which both layouts allow.
"""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import InvalidArgument, NotFound, PortsideError
from engine.images_archive import layout
from engine.oci import OCI_CONFIG, OCI_MANIFEST, Manifest, parse_manifest
from engine.reference import Reference

if TYPE_CHECKING:
    from engine.images import ImageService

_CHUNK = 1 << 20
_BLOCK = 512


@dataclass
class SavedImage:
    """One image of the archive: its manifest (as stored, or rebuilt) and its names."""

    image_id: str
    manifest_raw: bytes
    manifest_media_type: str
    config_size: int
    layers: list[tuple[Digest, int]]  # blob digest, size, in order
    top_layer: str  # hex of the last layer blob (legacy ``repositories`` value)
    names: list[Reference] = field(default_factory=list)

    @property
    def manifest_digest(self) -> Digest:
        return Digest.of_bytes(self.manifest_raw)


async def plan_save(images: ImageService, names: list[str]) -> list[SavedImage]:
    """The images ``names`` designate, in first-mention order, with the names to record."""
    if not names:
        raise InvalidArgument("give at least one image to save")
    found: dict[str, SavedImage] = {}
    for name in names:
        for image_id, ref in await _designated(images, name):
            item = found.get(image_id)
            if item is None:
                item = found[image_id] = await _describe(images, image_id)
            if ref is not None and ref not in item.names:
                item.names.append(ref)
    return list(found.values())


async def _designated(images: ImageService, name: str) -> list[tuple[str, Reference | None]]:
    """(image id, name to record) pairs for one command-line name."""
    md = images.metadata
    try:
        ref = Reference.parse(name, default_tag=False)
    except PortsideError:
        ref = None
    if ref is not None and ref.tag is None and ref.digest is None and name[:7] != "sha256:":
        # A repository without tag: every tag of it (docker's behaviour); else maybe an id.
        tags = await md.run(md.all_tags)
        out = [
            (image_id, Reference.parse(tag))
            for image_id, tagged in tags.items()
            for tag in tagged
            if tag.rsplit(":", 1)[0] == ref.name
        ]
        if out:
            return sorted(out, key=lambda pair: pair[1].tagged_str())
    image_id = await images.resolve(name)
    if (
        ref is not None
        and ref.tag is not None
        and ref.digest is None
        and await md.run(md.tag_target, ref.tagged_str()) == image_id
    ):
        return [(image_id, ref)]
    return [(image_id, None)]


async def _describe(images: ImageService, image_id: str) -> SavedImage:
    md = images.metadata
    row = await md.run(md.get_image, image_id)
    if row is None:
        raise NotFound(f"No such image: {image_id}")
    raw = await asyncio.to_thread(images.content.read, Digest.parse(row.manifest_digest))
    manifest = parse_manifest(raw, row.manifest_media_type)
    if not isinstance(manifest, Manifest):
        raise PortsideError(f"image {image_id[7:19]} has no image manifest; cannot save it")
    config = await images.config(image_id)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    chains = chain_ids([Digest.parse(d) for d in diff_ids])
    layers: list[tuple[Digest, int]] = []
    rebuilt = False
    descs: list[dict[str, Any]] = []
    for i, desc in enumerate(manifest.layers):
        digest, size, media_type = desc.digest, desc.size, desc.media_type
        if not images.content.has(digest):
            # The layer came from a blob another image brought (same DiffID): use that one.
            layer = await md.run(md.get_layer, str(chains[i])) if i < len(chains) else None
            if layer is None or not images.content.has(Digest.parse(layer.blob_digest)):
                raise PortsideError(
                    f"layer {digest.short} of image {image_id[7:19]} is not in the content "
                    "store; pull the image again before saving it"
                )
            digest, size, media_type = (
                Digest.parse(layer.blob_digest),
                layer.blob_size,
                layer.media_type,
            )
            rebuilt = True
        layers.append((digest, size))
        descs.append({"mediaType": media_type, "digest": str(digest), "size": size})
    config_size = images.content.size(Digest.parse(image_id))
    if config_size is None:
        raise PortsideError(f"the config of image {image_id[7:19]} is missing; pull it again")
    if rebuilt:
        raw = layout.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": config_size},
                "layers": descs,
            }
        )
    top = layers[-1][0].hex if layers else ""
    media_type = OCI_MANIFEST if rebuilt else manifest.media_type
    return SavedImage(image_id, raw, media_type, config_size, layers, top)


def _header(name: str, size: int, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _documents(plan: list[SavedImage]) -> list[tuple[str, bytes]]:
    index: list[dict[str, Any]] = []
    manifests: list[dict[str, Any]] = []
    named: list[tuple[Reference, str]] = []
    for item in plan:
        desc = {
            "mediaType": item.manifest_media_type,
            "digest": str(item.manifest_digest),
            "size": len(item.manifest_raw),
        }
        for ref in item.names or [None]:
            index.append(layout.index_entry(desc, ref))
        manifests.append(
            {
                "Config": layout.blob_name(Digest.parse(item.image_id)),
                "RepoTags": [ref.familiar() for ref in item.names] or None,
                "Layers": [layout.blob_name(d) for d, _ in item.layers],
            }
        )
        named.extend((ref, item.top_layer) for ref in item.names)
    docs = [
        (layout.INDEX_FILE, layout.dumps({"schemaVersion": 2, "manifests": index})),
        (layout.MANIFEST_FILE, layout.dumps(manifests)),
        (layout.OCI_LAYOUT_FILE, layout.dumps(layout.OCI_LAYOUT)),
    ]
    repos = layout.repositories(named)
    if repos:
        docs.append((layout.REPOSITORIES_FILE, layout.dumps(repos)))
    return docs


async def stream_archive(images: ImageService, plan: list[SavedImage]) -> AsyncIterator[bytes]:
    """The archive's bytes; blobs are read from the store in a thread, 1 MiB at a time."""
    yield _header("blobs/", 0, directory=True) + _header("blobs/sha256/", 0, directory=True)
    written: set[str] = set()
    for item in plan:
        blobs = [
            *((d, s) for d, s in item.layers),
            (Digest.parse(item.image_id), item.config_size),
        ]
        for digest, size in blobs:
            if str(digest) in written:
                continue
            written.add(str(digest))
            async for chunk in _blob(images, digest, size):
                yield chunk
        if str(item.manifest_digest) not in written:
            written.add(str(item.manifest_digest))
            name = layout.blob_name(item.manifest_digest)
            raw = item.manifest_raw
            yield _header(name, len(raw)) + raw + _padding(len(raw))
    for name, data in _documents(plan):
        yield _header(name, len(data)) + data + _padding(len(data))
    yield b"\0" * (2 * _BLOCK)


async def _blob(images: ImageService, digest: Digest, size: int) -> AsyncIterator[bytes]:
    path = images.content.path(digest)
    try:
        fh = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        raise NotFound(f"blob {digest} vanished from the content store during the save") from None
    try:
        yield _header(layout.blob_name(digest), size)
        sent = 0
        while sent < size:
            chunk = await asyncio.to_thread(fh.read, min(_CHUNK, size - sent))
            if not chunk:
                raise PortsideError(f"blob {digest} is shorter than its recorded size")
            sent += len(chunk)
            yield chunk
        yield _padding(size)
    finally:
        await asyncio.to_thread(fh.close)
