"""``docker import``: a filesystem tarball (plain or compressed) becomes a one-layer image.

The tarball comes from the request body or, with ``fromSrc=URL``, is downloaded (http or
https). Its DiffID is computed while it is decompressed into a plain tar (which is also the
stored blob, as dockerd keeps imported layers uncompressed); the layer then goes through
the confined unpacker like any pulled layer. The config is dockerd's: host platform (or
``platform``), ``changes`` applied as Dockerfile instructions (``docker commit --change``
rules), ``message`` (default "Imported from SRC") as comment and history.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from engine.digest import Digest
from engine.errors import InvalidArgument, PortsideError
from engine.images_archive import record
from engine.images_archive.layout import dumps
from engine.images_archive.record import LayerBlob, PreparedImage
from engine.images_archive.spool import WorkDir, spool
from engine.oci import OCI_LAYER
from engine.platform import Platform, host_platform
from engine.reference import Reference
from engine.runtime.commit import apply_changes
from engine.store.compression import decompress_stream

if TYPE_CHECKING:
    from engine.images import ImageService

_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)


def target_name(repo: str, tag: str) -> Reference | None:
    """dockerd's ``repo``/``tag`` pair: ``repo`` may carry the tag itself; default latest."""
    if not repo:
        if tag:
            raise InvalidArgument("tag given without a repository; give repo=NAME too")
        return None
    ref = Reference.parse(repo, default_tag=not tag)
    if ref.digest is not None:
        raise InvalidArgument(f"invalid repository {repo!r}: an import cannot tag with a digest")
    return ref.with_tag(tag) if tag else ref


async def download(url: str) -> AsyncIterator[bytes]:
    """The body at ``url`` (http or https only)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"invalid fromSrc {url!r}: give '-' to send the tarball, or an http(s) URL"
        )
    try:
        async with (
            aiohttp.ClientSession(timeout=_DOWNLOAD_TIMEOUT) as session,
            session.get(url) as resp,
        ):
            if resp.status != 200:
                raise PortsideError(f"downloading {url} failed: HTTP {resp.status}")
            async for chunk in resp.content.iter_chunked(1 << 16):
                yield chunk
    except aiohttp.ClientError as err:
        raise PortsideError(f"downloading {url} failed: {err}") from None


def _plain_layer(source: Path, dest: Path) -> tuple[Path, str, int]:
    """Decompress ``source`` into ``dest`` if needed (blocking); returns path, sha256, size."""
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    digest = hashlib.sha256()
    size = 0
    try:
        kind, chunks = decompress_stream(fd)
        if kind == "none":
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
            return source, digest.hexdigest(), size
        with open(dest, "xb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    finally:
        os.close(fd)
    return dest, digest.hexdigest(), size


def _rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def image_config(
    diff_id: Digest, *, changes: list[str], message: str, platform: Platform
) -> dict[str, Any]:
    """The config dockerd writes for an import."""
    created = _rfc3339()
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
    }
    if platform.variant:
        config["variant"] = platform.variant
    config.update(
        {
            "comment": message,
            "config": apply_changes({}, changes),
            "created": created,
            "history": [{"created": created, "comment": message}],
            "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
        }
    )
    return config


async def import_tarball(
    images: ImageService,
    body: AsyncIterator[bytes],
    workdir: Path,
    *,
    source: str,
    target: Reference | None,
    changes: list[str],
    message: str,
    platform: str | None,
) -> str:
    """Import the tarball ``body`` (``source`` is "-" or its URL); returns the image id."""
    plat = Platform.parse(platform) if platform else host_platform()
    if plat.os != "linux":
        raise InvalidArgument(f"cannot import an image for {plat.os}: only linux is supported")
    apply_changes({}, changes)  # a bad change fails before the upload is read
    async with WorkDir(workdir, "import") as work:
        upload = work / "upload"
        await spool(body, upload)
        try:
            path, hexdigest, size = await asyncio.to_thread(_plain_layer, upload, work / "layer")
        except PortsideError as err:
            raise InvalidArgument(f"invalid tarball: {err}") from None
        if size == 0:
            raise InvalidArgument("the tarball is empty; give a tar of a filesystem")
        diff_id = Digest.parse(f"sha256:{hexdigest}")
        config = image_config(
            diff_id,
            changes=changes,
            message=message or f"Imported from {source}",
            platform=plat,
        )
        image = PreparedImage(
            dumps(config),
            config,
            [diff_id],
            [LayerBlob(path, diff_id, size, OCI_LAYER)],
            names=[target] if target else [],
        )
        try:
            async with images.gc.lease():
                await record.prepare(images, image)
                return await record.commit(images, image, "import")
        except PortsideError:
            await images.gc.collect()
            raise
