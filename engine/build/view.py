"""Read-only views of an image's file tree for the builder (COPY sources and destinations,
WORKDIR, ``--chown`` lookups).

``image_view(snapshots, chain_id)`` mounts the chain's layers as a read-only overlay on a
temporary directory with mount(2) itself, in a thread: the builder looks at a tree at
several steps of a rebuild, and running ``mount``/``umount`` for each costs a few
milliseconds apiece. When the option string would not fit in a page (hundreds of layers)
or the store is not an overlay one, it falls back to ``snapshots.merged_view``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from engine.digest import Digest
from engine.errors import PortsideError
from engine.store import mounts
from engine.store.snapshots import OverlaySnapshotter, Snapshotter, merged_view

_MAX_DATA = 4000  # mount(2) takes at most a page of options


@contextlib.asynccontextmanager
async def image_view(snap: Snapshotter, chain_id: Digest) -> AsyncIterator[Path]:
    """The merged tree of ``chain_id``, read-only, unmounted on exit."""
    data = _options(snap, chain_id)
    if data is None:
        async with merged_view(snap, chain_id) as root:
            yield root
        return
    mnt = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="portside-view-"))
    try:
        try:
            await asyncio.to_thread(mounts.mount, "overlay", mnt, "overlay", mounts.MS_RDONLY, data)
        except OSError as err:
            raise PortsideError(f"cannot mount a view of the image: {err.strerror}") from None
        try:
            yield mnt
        finally:
            await asyncio.shield(asyncio.to_thread(mounts.umount, mnt))
    finally:
        await asyncio.shield(asyncio.to_thread(os.rmdir, mnt))


def _options(snap: Snapshotter, chain_id: Digest) -> str | None:
    """The overlay options with absolute lower paths, or None to use ``merged_view``."""
    if not isinstance(snap, OverlaySnapshotter):
        return None
    lowers = [str(snap.root / rel) for rel in snap.overlay_lowerdir(chain_id).split(":")]
    if len(lowers) == 1:
        lowers.append(str(snap.root / "empty"))  # overlayfs wants two lowers without an upper
    data = "lowerdir=" + ":".join(lowers)
    if len(data) > _MAX_DATA or any(c in p for p in lowers for c in ",:\\"):
        return None
    return data
