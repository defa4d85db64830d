"""Images made by the build executor without a container: config-only steps and file layers.

``new_image(images, parent_id, config, created_by, write_tar)`` records a new image on top of
``parent_id`` (``None`` for ``scratch``): with ``write_tar`` (called in a thread with a file to
write an uncompressed layer tar into) the tar is gzip-compressed into the content store,
applied to the snapshotter through the confined unpacker and added as a layer; without it the
history entry is marked ``empty_layer`` like docker's. ``write_copy_tar`` writes the tar of a
COPY/ADD step from host files (regular files, directories, symlinks) under a destination.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tarfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.build.tarwriter import TarWriter
from engine.digest import Digest
from engine.errors import PortsideError
from engine.platform import host_platform
from engine.store.new_layer import store_layer

if TYPE_CHECKING:
    from engine.images import ImageService


def rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scratch_config() -> dict[str, Any]:
    """The image config a ``FROM scratch`` stage starts from."""
    plat = host_platform()
    cfg: dict[str, Any] = {"architecture": plat.architecture, "os": plat.os}
    if plat.variant:
        cfg["variant"] = plat.variant
    cfg["config"] = {}
    cfg["rootfs"] = {"type": "layers", "diff_ids": []}
    cfg["history"] = []
    return cfg


async def new_image(
    images: ImageService,
    parent_id: str | None,
    config: dict[str, Any],
    created_by: str,
    write_tar: Callable[[BinaryIO], None] | None = None,
    author: str = "",
) -> str:
    """Record a child image of ``parent_id`` with container config ``config``; its id.
    ``author`` (a stage's MAINTAINER) goes into the config and the history entry."""
    if parent_id is None:
        parent_cfg = scratch_config()
        parent_layers: list[dict[str, Any]] = []
        parent_size = 0
    else:
        parent_cfg = await images.config(parent_id)
        row = await images.metadata.run(images.metadata.get_image, parent_id)
        if row is None:
            raise PortsideError(f"image {parent_id[7:19]} is gone; build again")
        manifest = json.loads(
            await asyncio.to_thread(images.content.read, Digest.parse(row.manifest_digest))
        )
        parent_layers = list(manifest.get("layers") or [])
        parent_size = row.size
    diff_ids = list((parent_cfg.get("rootfs") or {}).get("diff_ids") or [])
    created = rfc3339()
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    layers = parent_layers
    size = parent_size
    async with images.gc.lease():
        if write_tar is None:
            entry["empty_layer"] = True
        else:
            layer, diff_id, layer_size = await _store_layer(images, diff_ids, write_tar)
            layers = [*parent_layers, layer]
            diff_ids = [*diff_ids, diff_id]
            size += layer_size
        image_cfg = {
            "architecture": parent_cfg.get("architecture", ""),
            "os": parent_cfg.get("os", "linux"),
            **({"variant": parent_cfg["variant"]} if parent_cfg.get("variant") else {}),
            "created": created,
            **({"author": author} if author else {}),
            "config": {k: v for k, v in config.items() if v is not None},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [*(parent_cfg.get("history") or []), entry],
        }
        image_id = await images.record_image(image_cfg, layers, size=size)
    return image_id


async def _store_layer(
    images: ImageService, diff_ids: list[str], write_tar: Callable[[BinaryIO], None]
) -> tuple[dict[str, Any], str, int]:
    """Compress, store and apply one layer; (manifest entry, diff id, unpacked size)."""
    layer = await store_layer(images, diff_ids, write_tar, images.content.root.parent / "build-tmp")
    return layer.descriptor(), str(layer.diff_id), layer.size


@dataclass
class CopyItem:
    """One host path copied to ``dest`` (an absolute path in the image)."""

    source: Path
    dest: str
    keep: Callable[[str], bool] | None = None  # children (host paths) of a tree to include
    own: bool = True  # False: entries keep their own owners (an extracted ADD archive)


@dataclass
class Owner:
    uid: int = 0
    gid: int = 0


def write_copy_tar(
    out: BinaryIO,
    items: list[CopyItem],
    new_dirs: list[str],
    owner: Owner | None,
    chmod: int | None,
    dir_mtime: int | None = None,
    root_dirs: Collection[str] = (),
) -> None:
    """A layer tar of ``items`` (trees recursively) plus the missing parents ``new_dirs``
    (with mtime ``dir_mtime``, default now). ``owner`` None keeps each source's owner
    (``COPY --from`` without ``--chown``); new parents are then root's, as are those in
    ``root_dirs`` always."""
    tar = TarWriter(out)
    for d in new_dirs:
        info = tarfile.TarInfo(d.strip("/"))
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.uid, info.gid = (owner.uid, owner.gid) if owner else (0, 0)
        if d in root_dirs:
            info.uid = info.gid = 0
        info.mtime = int(time.time()) if dir_mtime is None else dir_mtime
        tar.add(info)
    for item in items:
        who = owner if item.own else None
        _add_tree(tar, str(item.source), item.dest.strip("/"), who, chmod, item.keep, top=True)
    tar.close()


def _add_tree(
    tar: TarWriter,
    path: str,
    name: str,
    owner: Owner | None,
    chmod: int | None,
    keep: Callable[[str], bool] | None,
    top: bool = False,
) -> None:
    st = os.lstat(path)
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = (owner.uid, owner.gid) if owner else (st.st_uid, st.st_gid)
    info.mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        if not top:
            tar.add(info)
        for child in sorted(os.listdir(path)):
            child_path = f"{path}/{child}"
            if keep is None or keep(child_path):
                sub = f"{name}/{child}" if name else child
                _add_tree(tar, child_path, sub, owner, chmod, keep)
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        tar.add(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        tar.add(info, path)
