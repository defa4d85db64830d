"""``stat_path``, ``copy_from`` and ``copy_to`` of ``ContainerService`` (a mixin).

The view a copy sees is dockerd's: the container's root file system with its volumes and
bind mounts on top, the same whether it runs or not (tmpfs mounts and ``/proc`` are not
part of it, as with dockerd). A running container's merged root is already mounted; for a
created or stopped one the root is mounted for the copy (under the container's lock, so a
``start`` waits) and unmounted after. Volumes and binds are mounted by the helper in a
mount namespace of its own, never in the engine's or the container's. Copies publish
dockerd's ``archive-path`` and ``extract-to-dir`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.digest import Digest
from engine.errors import InvalidArgument, NotFound
from engine.runtime import users
from engine.runtime.archive import client
from engine.runtime.rootfs import is_mounted

if TYPE_CHECKING:
    from engine.runtime.record import Record


class ArchiveMixin:
    """The archive (``docker cp``) operations of ``ContainerService``."""

    async def _mount_views(self, rec: Record) -> list[dict[str, Any]]:
        out = []
        for m in rec.Mounts:
            if m["type"] == "bind":
                source = m["source"]
            elif m["type"] == "volume":
                try:
                    volume = await self.volumes.inspect(m["source"])  # type: ignore[attr-defined]
                except NotFound:
                    continue  # created at the first start: nothing in it yet
                source = volume["Mountpoint"]
            else:
                continue  # tmpfs lives only in the container's own namespace
            out.append(
                {
                    "source": source,
                    "destination": m["destination"],
                    "ro": bool(m.get("read_only")),
                }
            )
        return out

    @contextlib.asynccontextmanager
    async def _copy_view(self, name: str) -> AsyncIterator[client.View]:
        rec: Record = self._get(name)  # type: ignore[attr-defined]
        cdir: Path = self._dir(rec.Id)  # type: ignore[attr-defined]
        rootfs = cdir / "rootfs"
        view = client.View(
            root=rootfs,
            container=name,
            mounts=await self._mount_views(rec),
            ro_rootfs=bool(rec.HostConfig.get("ReadonlyRootfs")),
        )
        live = rec.State.Running or rec.State.Paused
        if live and await asyncio.to_thread(is_mounted, rootfs):
            yield view
            return
        async with self._state[rec.Id].lock:  # type: ignore[attr-defined]
            chain = Digest.parse(rec.Chain) if rec.Chain else None
            was_mounted = await asyncio.to_thread(is_mounted, rootfs)
            await self.rootfs.mount(cdir, chain)  # type: ignore[attr-defined]
            try:
                yield view
            finally:
                if not was_mounted and not (rec.State.Running or rec.State.Paused):
                    await self.rootfs.unmount(cdir)  # type: ignore[attr-defined]

    async def stat_path(self, name: str, path: str) -> dict[str, Any]:
        """dockerd's ``ContainerStatPath``: ``{name, size, mode, mtime, linkTarget}``."""
        _check_path(path)
        async with self._copy_view(name) as view:
            return await client.stat_path(view, path)

    @contextlib.asynccontextmanager
    async def copy_from(
        self, name: str, path: str
    ) -> AsyncIterator[tuple[dict[str, Any], AsyncIterator[bytes]]]:
        """``(stat, tar chunks)`` of ``path`` in the container (``GET .../archive``)."""
        _check_path(path)
        rec: Record = self._get(name)  # type: ignore[attr-defined]
        async with self._copy_view(name) as view, client.open_get(view, path) as got:
            yield got
        self._publish(rec, "archive-path")  # type: ignore[attr-defined]

    async def copy_to(
        self,
        name: str,
        path: str,
        chunks: AsyncIterator[bytes],
        *,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """Extract the tar ``chunks`` under the directory ``path`` (``PUT .../archive``)."""
        _check_path(path)
        rec: Record = self._get(name)  # type: ignore[attr-defined]
        async with self._copy_view(name) as view:
            owner = None
            user = rec.Config.get("User") or ""
            if copy_uid_gid and user:
                found = await asyncio.to_thread(users.resolve_user, view.root, user)
                owner = (found.uid, found.gid)
            await client.put(
                view,
                path,
                chunks,
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                owner=owner,
            )
        self._publish(rec, "extract-to-dir")  # type: ignore[attr-defined]


def _check_path(path: str) -> None:
    if not path:
        raise InvalidArgument("bad parameter: pathcannot be empty")
