"""inspect, list, filters and counts of containers (a mixin of ``ContainerService``),
in the shapes of ``docker inspect`` and ``/containers/json``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Any

from engine.digest import Digest
from engine.errors import InvalidArgument, PortsideError
from engine.runtime import views
from engine.runtime.record import Record


class ListingMixin:
    """The read-only views of ``ContainerService``."""

    def _graph(self, rec: Record) -> dict[str, str]:
        cdir = self._dir(rec.Id)
        if not self.rootfs.overlay:
            return {"MergedDir": str(cdir / "rootfs")}
        lowers = [str(cdir / "init")]
        if rec.Chain:
            with contextlib.suppress(PortsideError):
                lowers += [str(p) for p in self.snapshots.lowers(Digest.parse(rec.Chain))]
        return {
            "LowerDir": ":".join(lowers),
            "MergedDir": str(cdir / "rootfs"),
            "UpperDir": str(cdir / "upper"),
            "WorkDir": str(cdir / "work"),
        }

    async def inspect(self, name: str, *, size: bool = False) -> dict[str, Any]:
        rec = self._get(name)
        sizes = None
        if size:
            rw = await asyncio.to_thread(dir_size, self._dir(rec.Id) / "upper")
            sizes = (rw, rw + await self._image_size(rec))
        return views.inspect_view(
            rec,
            cdir=self._dir(rec.Id),
            volumes_root=self.volumes.root,
            graph=self._graph(rec),
            driver=self.rootfs.driver,
            size=sizes,
        )

    async def _image_size(self, rec: Record) -> int:
        try:
            img = await self.images.inspect(rec.Image)
            return int(img.get("Size") or 0)
        except PortsideError:
            return 0

    async def list_containers(
        self,
        *,
        all: bool = False,
        limit: int | None = None,
        size: bool = False,
        filters: dict[str, list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        recs = sorted(self._records.values(), key=lambda r: r.Created, reverse=True)
        filters = dict(filters or {})
        before = self._cutoff(filters.pop("before", None))
        since = self._cutoff(filters.pop("since", None))
        out = []
        for rec in recs:
            implied_all = all or limit or filters.get("status") or filters.get("exited")
            if not implied_all and not rec.State.Running:
                continue
            if before is not None and rec.Created >= before:
                continue
            if since is not None and rec.Created <= since:
                continue
            if not await self._match(rec, filters):
                continue
            item = views.list_item(rec, self.volumes.root)
            if size:
                rw = await asyncio.to_thread(dir_size, self._dir(rec.Id) / "upper")
                item["SizeRw"] = rw
                item["SizeRootFs"] = rw + await self._image_size(rec)
            out.append(item)
            if limit and len(out) >= limit:
                break
        return out

    def _cutoff(self, values: list[str] | None) -> str | None:
        if not values:
            return None
        return self._get(values[-1]).Created

    async def _match(self, rec: Record, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "id":
                ok = any(rec.Id.startswith(v) for v in values)
            elif key == "name":
                ok = any(_name_matches(v, rec.short_name) for v in values)
            elif key == "status":
                ok = rec.State.Status in values
            elif key == "exited":
                ok = rec.State.Status == "exited" and str(rec.State.ExitCode) in values
            elif key == "label":
                labels = rec.Config.get("Labels") or {}
                ok = all(
                    (k in labels and (not eq or labels[k] == v))
                    for k, eq, v in (w.partition("=") for w in values)
                )
            elif key == "ancestor":
                ok = False
                for v in values:
                    if v in (rec.ImageName, rec.Image) or rec.Image.startswith(v):
                        ok = True
                    else:
                        with contextlib.suppress(PortsideError):
                            ok = ok or await self.images.resolve(v) == rec.Image
            elif key == "volume":
                ok = any(
                    m.get("source") in values or m.get("destination") in values for m in rec.Mounts
                )
            elif key == "network":
                ok = rec.Network in values
            elif key in ("health", "is-task", "isolation", "expose", "publish"):
                ok = key == "isolation" or (key == "is-task" and "false" in values)
            else:
                raise InvalidArgument(f"invalid filter {key!r}")
            if not ok:
                return False
        return True

    def counts(self) -> dict[str, int]:
        running = sum(1 for r in self._records.values() if r.State.Running and not r.State.Paused)
        paused = sum(1 for r in self._records.values() if r.State.Paused)
        return {
            "Containers": len(self._records),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(self._records) - running - paused,
        }

    def info(self) -> dict[str, Any]:
        """Container counts and runtime details for docker's ``/info``."""
        return {**self.counts(), **self.runtimes.info()}


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _name_matches(pattern: str, name: str) -> bool:
    """docker's ``name`` filter: a regular expression searched in ``/NAME`` (``^/web``);
    a pattern that is not a valid expression is matched as plain text."""
    try:
        return re.search(pattern, f"/{name}") is not None
    except re.error:
        return pattern.lstrip("/") in name
