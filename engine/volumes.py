"""Named volumes (driver ``local``): ``<root>/volumes/<name>/_data`` plus ``volume.json``.

Created on demand by ``-v name:/path`` (and anonymously, with a random 64-hex name, for
image ``VOLUME``s and ``-v /path``), kept after their containers unless removed with
``docker rm -v`` (anonymous ones) or ``docker volume rm``. Answers have the Docker API's
volume shape. The in-use check comes from the container service.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import Conflict, InvalidArgument, NotFound

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
InUse = Callable[[str], Awaitable[list[str]]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class VolumeService:
    """Local volumes of one engine root."""

    def __init__(self, root: Path) -> None:
        self.root = root / "volumes"
        self.root.mkdir(mode=0o701, parents=True, exist_ok=True)
        self.in_use: InUse | None = None
        self._lock = asyncio.Lock()

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InvalidArgument(
                f"invalid volume name {name!r}: use letters, digits, '_', '.', '-'"
            )
        return self.root / name

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self._dir(name) / "volume.json").read_text()))
        except (OSError, ValueError):
            return None

    def _shape(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "CreatedAt": meta.get("CreatedAt", ""),
            "Driver": "local",
            "Labels": meta.get("Labels") or {},
            "Mountpoint": str(self.root / meta["Name"] / "_data"),
            "Name": meta["Name"],
            "Options": meta.get("Options") or None,
            "Scope": "local",
        }

    def _create(self, name: str, labels: dict[str, str], anonymous: bool) -> tuple[dict, bool]:
        existing = self._read(name)
        if existing is not None:
            return self._shape(existing), False
        vdir = self._dir(name)
        tmp = self.root / f".tmp-{secrets.token_hex(6)}"
        (tmp / "_data").mkdir(parents=True, mode=0o755)
        meta = {"Name": name, "CreatedAt": _now(), "Labels": labels, "Anonymous": anonymous}
        (tmp / "volume.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, vdir)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            found = self._read(name)
            if found is None:
                raise
            return self._shape(found), False
        return self._shape(meta), True

    async def create(
        self,
        name: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        driver: str | None = None,
        anonymous: bool = False,
    ) -> dict[str, Any]:
        """Create (or return the existing) volume ``name``; a random name when None."""
        if driver not in (None, "", "local"):
            raise InvalidArgument(f"volume driver {driver!r} is not supported: use local")
        name = name or secrets.token_hex(32)
        async with self._lock:
            shape, _ = await asyncio.to_thread(self._create, name, dict(labels or {}), anonymous)
        return shape

    async def ensure(self, name: str | None) -> tuple[str, Path, bool]:
        """(name, data dir, created now) of a volume a container mounts."""
        async with self._lock:
            shape, created = await asyncio.to_thread(
                self._create, name or secrets.token_hex(32), {}, name is None
            )
        return shape["Name"], Path(shape["Mountpoint"]), created

    async def inspect(self, name: str) -> dict[str, Any]:
        meta = await asyncio.to_thread(self._read, name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        return self._shape(meta)

    def is_anonymous(self, name: str) -> bool:
        meta = self._read(name)
        return bool(meta and meta.get("Anonymous"))

    async def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        def scan() -> list[dict[str, Any]]:
            out = []
            for entry in sorted(os.listdir(self.root)):
                if entry.startswith("."):
                    continue
                meta = self._read(entry)
                if meta is not None:
                    out.append(meta)
            return out

        metas = await asyncio.to_thread(scan)
        out = []
        for meta in metas:
            if await self._match(meta, filters or {}):
                out.append(self._shape(meta))
        return out

    async def _match(self, meta: dict[str, Any], filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "name":
                if not any(v in meta["Name"] for v in values):
                    return False
            elif key == "label":
                labels = meta.get("Labels") or {}
                for want in values:
                    k, eq, v = want.partition("=")
                    if k not in labels or (eq and labels[k] != v):
                        return False
            elif key == "dangling":
                used = bool(self.in_use and await self.in_use(meta["Name"]))
                if used == (values[-1].lower() in ("true", "1")):
                    return False
            elif key == "driver":
                if "local" not in values:
                    return False
            else:
                raise InvalidArgument(f"invalid filter {key!r}")
        return True

    async def remove(self, name: str, *, force: bool = False) -> None:
        meta = await asyncio.to_thread(self._read, name)
        if meta is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = await self.in_use(name) if self.in_use else []
        if users:
            raise Conflict(
                f"remove {name}: volume is in use - [{', '.join(u[:12] for u in users)}]"
            )
        vdir = self._dir(name)
        trash = self.root / f".trash-{secrets.token_hex(6)}"
        await asyncio.to_thread(os.rename, vdir, trash)
        await asyncio.to_thread(shutil.rmtree, trash, True)

    async def prune(self, *, all: bool = False) -> dict[str, Any]:
        deleted: list[str] = []
        reclaimed = 0
        for vol in await self.list():
            meta = await asyncio.to_thread(self._read, vol["Name"])
            if not all and not (meta or {}).get("Anonymous"):
                continue
            if self.in_use and await self.in_use(vol["Name"]):
                continue
            reclaimed += await asyncio.to_thread(_du, Path(vol["Mountpoint"]))
            try:
                await self.remove(vol["Name"])
            except (Conflict, NotFound):
                continue
            deleted.append(vol["Name"])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
