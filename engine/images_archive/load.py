"""``docker load``: images from an archive of docker's legacy layout or the OCI layout.

The upload is spooled and indexed first (``spool``); then ``manifest.json`` (docker's
layout, preferred when both are present, as dockerd does) or ``index.json`` (OCI layout,
e.g. skopeo's ``oci-archive:``) says what the images are. Everything is checked before it
is kept: OCI blobs against their descriptors' size and digest, legacy configs by their
digest (the image id), every layer by its DiffID as it is unpacked through the confined
unpacker. Layers compressed with bzip2 or xz (which OCI has no media type for) are stored
uncompressed. Records and tags are written only once every image is in place, so a bad
archive loads nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.digest import Digest
from engine.errors import InvalidArgument, PortsideError
from engine.images_archive import layout, record
from engine.images_archive.record import LayerBlob, PreparedImage
from engine.images_archive.spool import ArchiveFile, ArchiveIndex, WorkDir, index_archive, spool
from engine.oci import (
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    Index,
    Manifest,
    parse_manifest,
)
from engine.platform import host_platform, select_manifest
from engine.reference import Reference
from engine.store.compression import Compression, decompress_stream, detect

if TYPE_CHECKING:
    from engine.images import ImageService

_MEDIA_TYPES = {
    Compression.NONE: OCI_LAYER,
    Compression.GZIP: OCI_LAYER_GZIP,
    Compression.ZSTD: OCI_LAYER_ZSTD,
}


def _read(file: ArchiveFile, limit: int, what: str) -> bytes:
    if file.size > limit:
        raise InvalidArgument(f"{what} in the archive is larger than {limit} bytes")
    return file.path.read_bytes()


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"{what} in the archive is not valid JSON: {err}") from None


def _config(raw: bytes, layer_count: int, what: str) -> tuple[dict[str, Any], list[Digest]]:
    config = _json(raw, what)
    if not isinstance(config, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidArgument(f"{what} has no rootfs.diff_ids list")
    if len(diff_ids) != layer_count:
        raise InvalidArgument(
            f"{what} lists {len(diff_ids)} layers but the manifest has {layer_count}"
        )
    return config, [Digest.parse(d) for d in diff_ids]


def _plain_copy(file: ArchiveFile, dest: Path) -> ArchiveFile:
    """Decompress a bzip2/xz layer into a plain tar (blocking)."""
    fd = os.open(file.path, os.O_RDONLY | os.O_CLOEXEC)
    digest = hashlib.sha256()
    size = 0
    try:
        _kind, chunks = decompress_stream(fd)
        with open(dest, "xb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    finally:
        os.close(fd)
    return ArchiveFile(dest, size, digest.hexdigest())


def _layer(file: ArchiveFile, diff_id: Digest, work: Path, what: str) -> LayerBlob:
    """A legacy-layout layer file as a blob; plain tars must hash to their DiffID."""
    with open(file.path, "rb") as fh:
        kind = detect(fh.read(8))
    if kind not in _MEDIA_TYPES:
        file = _plain_copy(file, work / f"{file.path.name}.tar")
        kind = Compression.NONE
    if kind is Compression.NONE and file.sha256 != diff_id.hex:
        raise InvalidArgument(
            f"{what} hashes to sha256:{file.sha256} but the image config says {diff_id}; "
            "the archive is corrupt or tampered with"
        )
    return LayerBlob(
        file.path, Digest.parse(f"sha256:{file.sha256}"), file.size, _MEDIA_TYPES[kind]
    )


def _docker_images(index: ArchiveIndex, work: Path) -> list[PreparedImage]:
    raw = _read(index.get(layout.MANIFEST_FILE), MAX_MANIFEST_SIZE, layout.MANIFEST_FILE)
    doc = _json(raw, layout.MANIFEST_FILE)
    if not isinstance(doc, list) or not doc:
        raise InvalidArgument("manifest.json in the archive is not a non-empty list of images")
    out: list[PreparedImage] = []
    for n, item in enumerate(doc):
        where = f"manifest.json entry {n}"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidArgument(f"{where} has no Config")
        paths = item.get("Layers") or []
        tags = item.get("RepoTags") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InvalidArgument(f"{where}: Layers is not a list of file names")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArgument(f"{where}: RepoTags is not a list of names")
        config_raw = _read(index.get(item["Config"]), MAX_CONFIG_SIZE, f"the config of {where}")
        config, diff_ids = _config(config_raw, len(paths), f"the config of {where}")
        layers = [
            _layer(index.get(p), diff_ids[i], work, f"layer {p!r}") for i, p in enumerate(paths)
        ]
        names = [_tag(t) for t in tags]
        out.append(PreparedImage(config_raw, config, diff_ids, layers, names))
    return out


def _tag(text: str) -> Reference:
    ref = Reference.parse(text)
    if ref.digest is not None:
        raise InvalidArgument(f"invalid tag {text!r} in the archive: it carries a digest")
    return ref


def _blob(index: ArchiveIndex, desc: Descriptor) -> ArchiveFile:
    """The archive's file for ``desc``, checked against its size and digest."""
    name = layout.blob_name(desc.digest)
    if not index.has(name):
        raise InvalidArgument(f"the archive lacks blob {desc.digest} that its index refers to")
    file = index.get(name)
    if desc.digest.algorithm != "sha256":
        raise InvalidArgument(f"blob {desc.digest}: only sha256 digests are supported")
    if file.size != desc.size or file.sha256 != desc.digest.hex:
        raise InvalidArgument(
            f"blob {desc.digest} in the archive does not match its descriptor (size "
            f"{file.size}, expected {desc.size}); the archive is corrupt or tampered with"
        )
    return file


def _oci_name(desc: Descriptor) -> Reference | None:
    """The name an index entry carries: containerd's annotation, else a full ref.name."""
    notes = desc.annotations
    text = notes.get(layout.IMAGE_NAME_ANNOTATION) or ""
    if not text:
        ref_name = notes.get(layout.REF_NAME_ANNOTATION) or ""
        if ":" not in ref_name and "/" not in ref_name:
            return None  # a bare tag says nothing about the repository
        text = ref_name
    return _tag(text)


def _oci_images(index: ArchiveIndex, work: Path) -> list[PreparedImage]:
    raw = _read(index.get(layout.INDEX_FILE), MAX_MANIFEST_SIZE, layout.INDEX_FILE)
    top = parse_manifest(raw, OCI_INDEX)
    if not isinstance(top, Index) or not top.manifests:
        raise InvalidArgument("index.json in the archive lists no manifests")
    found: dict[str, PreparedImage] = {}
    for entry in top.manifests:
        desc = entry
        data = _read(_blob(index, desc), MAX_MANIFEST_SIZE, f"manifest {desc.digest}")
        manifest = parse_manifest(data, desc.media_type)
        if isinstance(manifest, Index):
            desc = select_manifest(manifest, host_platform())
            data = _read(_blob(index, desc), MAX_MANIFEST_SIZE, f"manifest {desc.digest}")
            manifest = parse_manifest(data, desc.media_type)
            if not isinstance(manifest, Manifest):
                raise InvalidArgument(f"manifest {desc.digest} is an index inside an index")
        image = _oci_image(index, manifest, data, desc.media_type, work)
        name = _oci_name(entry)
        image = found.setdefault(image.image_id, image)
        if name is not None and name not in image.names:
            image.names.append(name)
    return list(found.values())


def _oci_image(
    index: ArchiveIndex, manifest: Manifest, raw: bytes, media_type: str, work: Path
) -> PreparedImage:
    config_file = _blob(index, manifest.config)
    config_raw = _read(config_file, MAX_CONFIG_SIZE, f"config {manifest.config.digest}")
    config, diff_ids = _config(
        config_raw, len(manifest.layers), f"config {manifest.config.digest.short}"
    )
    layers: list[LayerBlob] = []
    for i, desc in enumerate(manifest.layers):
        file = _blob(index, desc)
        blob = _layer(file, diff_ids[i], work, f"layer {desc.digest.short}")
        if blob.digest != desc.digest:  # re-stored uncompressed: the manifest is rebuilt
            raw = b""
        layers.append(
            LayerBlob(
                blob.path, blob.digest, blob.size, desc.media_type if raw else blob.media_type
            )
        )
    return PreparedImage(
        config_raw,
        config,
        diff_ids,
        layers,
        manifest_raw=raw or None,
        manifest_media_type=media_type,
    )


def read_archive(index: ArchiveIndex, work: Path) -> list[PreparedImage]:
    """The images of an indexed archive (blocking: reads small files, may decompress)."""
    if index.has(layout.MANIFEST_FILE):
        return _docker_images(index, work)
    if index.has(layout.INDEX_FILE):
        return _oci_images(index, work)
    raise InvalidArgument(
        "the tarball is not an image archive: it has neither manifest.json nor index.json "
        "(for a filesystem tarball, use import)"
    )


async def load_archive(
    images: ImageService, body: AsyncIterator[bytes], workdir: Path
) -> list[str]:
    """Load every image of the uploaded archive; returns docker's "Loaded image" lines."""
    async with WorkDir(workdir, "load") as work:
        upload = work / "upload"
        files = work / "files"
        await asyncio.to_thread(files.mkdir)
        await spool(body, upload)
        index = await asyncio.to_thread(index_archive, upload, files)
        prepared = await asyncio.to_thread(read_archive, index, work)
        lines: list[str] = []
        try:
            async with images.gc.lease():
                for image in prepared:
                    await record.prepare(images, image)
                for image in prepared:
                    image_id = await record.commit(images, image, "load")
                    if image.names:
                        lines.extend(f"Loaded image: {n.familiar()}" for n in image.names)
                    else:
                        lines.append(f"Loaded image ID: {image_id}")
        except PortsideError:
            await images.gc.collect()  # what a failed load stored, nothing uses
            raise
        return lines
