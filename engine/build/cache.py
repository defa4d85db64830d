"""The build cache: step key -> image id, on disk under ``<root>/build-cache``; its usage
figures and its pruning.

A key is ``sha256`` over the parent image id, the expanded instruction text, the build args
the step used and, for COPY/ADD, the content hash of the sources (never mtimes). Entries are
small JSON files (``{"image", "created", "used"}``; a bare image id from older roots is read
too) written atomically (temporary file + rename), so the cache survives restarts; an entry
whose image is gone is a miss; ``put`` replaces an entry (docker's latest-wins) or, with
``replace=False``, keeps a valid one and returns its id. Entries read or written are kept in
memory, so a rebuild looks its steps up without touching the disk. A hit bumps the entry's
use count and its mtime, the "last used" time that ``prune(until=...)`` and
``keep_storage`` go by; those notes are written in one batch a moment later (and before
``records``, ``prune`` and ``close``), off the build's path.

``sources`` (in memory, bounded) remembers what a ``COPY --from``'s sources expand and hash
to in an image, which never changes, so a cached ``COPY --from`` mounts nothing.

``records()`` describes every entry in the shape of the Engine API's ``BuildCache`` items;
``prune()`` drops entries (``everything``, or those whose image has no tag) and deletes their
images when nothing else holds them (no tag, no repo digest, no container), then collects
garbage; ``everything`` also empties RUN ``--mount=type=cache`` directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import Conflict, NotFound

if TYPE_CHECKING:
    from engine.images import ImageService

_PREFIX = "sha256:"
_SOURCES_KEPT = 512
_KNOWN_KEPT = 20_000  # entries kept in memory (those with unwritten notes always stay)
NOTE_DELAY = 1.0  # seconds between a hit and the batch write of the use notes


def step_key(
    parent: str | None, text: str, args: Mapping[str, str], content: str | None = None
) -> str:
    """The cache key of one step."""
    doc = json.dumps(
        [parent or "scratch", text, sorted(args.items()), content or ""], separators=(",", ":")
    )
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One cached step as stored on disk."""

    key: str
    image_id: str
    created: float
    last_used: float
    used: int


@dataclass(frozen=True)
class PruneResult:
    deleted: list[str]  # entry keys
    reclaimed: int  # bytes freed on disk


class BuildCache:
    """Step results of earlier builds (see the module docstring)."""

    def __init__(self, root: Path, images: ImageService) -> None:
        self.dir = root / "build-cache"
        self.mounts = root / "build-mounts" / "cache"
        self.images = images
        self._lock = asyncio.Lock()  # prune against prune; builds only add entries
        # COPY --from: (image, sources...) -> what they expand and hash to (images never
        # change, so this stays true; bounded, oldest dropped first)
        self.sources: dict[str, Any] = {}
        self._known: dict[str, CacheEntry] = {}  # entries as on disk, plus unwritten notes
        self._dirty: set[str] = set()  # keys whose use notes are not written yet
        self._flusher: asyncio.Task[None] | None = None

    def remember_sources(self, key: str, value: Any) -> None:
        """Keep what a COPY --from's sources came to in an image (see ``sources``)."""
        self.sources.pop(key, None)
        self.sources[key] = value
        while len(self.sources) > _SOURCES_KEPT:
            del self.sources[next(iter(self.sources))]

    async def get(self, key: str) -> str | None:
        """The image id recorded for ``key`` if that image still exists (a use is noted)."""
        entry = self._known.get(key)
        if entry is None:
            entry = await asyncio.to_thread(self._read, key)
            if entry is None:
                return None
            self._remember(entry)
        md = self.images.metadata
        present = md.image_present(entry.image_id)  # no thread hop per cached step
        if present is None:
            present = await md.run(md.get_image, entry.image_id) is not None
        if not present:
            return None
        self._note_use(entry)
        return entry.image_id

    def _note_use(self, entry: CacheEntry) -> None:
        """Count a hit in memory; a flush soon writes it (see the module docstring)."""
        now = time.time()
        self._remember(CacheEntry(entry.key, entry.image_id, entry.created, now, entry.used + 1))
        self._dirty.add(entry.key)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    def _remember(self, entry: CacheEntry) -> None:
        self._known.pop(entry.key, None)
        self._known[entry.key] = entry
        if len(self._known) > _KNOWN_KEPT:
            for key in [k for k in self._known if k not in self._dirty][: _KNOWN_KEPT // 10]:
                del self._known[key]

    async def _flush_later(self) -> None:
        await asyncio.sleep(NOTE_DELAY)
        await self.flush()

    async def flush(self) -> None:
        """Write the pending use notes (each entry's count and, as its mtime, last use)."""
        pending = [self._known[k] for k in self._dirty if k in self._known]
        self._dirty.clear()
        if pending:
            await asyncio.shield(asyncio.to_thread(self._write_notes, pending))

    def _write_notes(self, entries: list[CacheEntry]) -> None:
        for e in entries:
            if os.path.lexists(self.dir / e.key):  # pruned meanwhile: stays gone
                with contextlib.suppress(OSError):
                    self._write(e.key, e.image_id, e.created, e.used)

    async def close(self) -> None:
        """Write what is pending; the engine calls this when it stops."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def put(self, key: str, image_id: str, *, replace: bool = True) -> str:
        """Record ``image_id`` for ``key``; returns the image id the entry then names.

        ``replace`` (docker's way: the latest result wins, so a ``--no-cache`` build feeds
        the next one); with ``replace=False`` a valid entry already there stays and its id
        comes back, for the caller to continue from: two stages that start with the same
        step then share one chain of entries instead of overwriting each other's.
        """
        now = time.time()
        fresh = CacheEntry(key, image_id, now, now, 0)
        if not replace:
            if await asyncio.to_thread(self._write, key, image_id, now, 0, exclusive=True):
                self._dirty.discard(key)
                self._remember(fresh)
                return image_id
            existing = self._known.get(key) or await asyncio.to_thread(self._read, key)
            md = self.images.metadata
            if existing is not None and await md.run(md.get_image, existing.image_id) is not None:
                self._remember(existing)
                return existing.image_id
        await asyncio.to_thread(self._write, key, image_id, now, 0)
        self._dirty.discard(key)
        self._remember(fresh)
        return image_id

    # -- disk ----------------------------------------------------------------------------
    def _read(self, key: str) -> CacheEntry | None:
        path = self.dir / key
        try:
            with path.open() as fh:
                text = fh.read(4096).strip()
                mtime = os.fstat(fh.fileno()).st_mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        image_id, created, used = text, mtime, 0
        if text.startswith("{"):
            try:
                doc = json.loads(text)
                image_id = str(doc["image"])
                created, used = float(doc.get("created", mtime)), int(doc.get("used", 0))
            except (ValueError, KeyError, TypeError):
                return None
        if not image_id.startswith(_PREFIX):
            return None
        return CacheEntry(key, image_id, created, mtime, used)

    def _write(
        self, key: str, image_id: str, created: float, used: int, exclusive: bool = False
    ) -> bool:
        """Write an entry atomically; ``exclusive``: only if none exists (False if one did)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = json.dumps({"image": image_id, "created": created, "used": used})
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(doc)
            if not exclusive:
                os.replace(tmp, self.dir / key)
                return True
            try:
                os.link(tmp, self.dir / key)
            except FileExistsError:
                return False
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _entries(self) -> list[CacheEntry]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = (self._read(n) for n in sorted(names) if not n.startswith("."))
        return [e for e in found if e is not None]

    # -- usage ---------------------------------------------------------------------------
    async def _step_size(self, image_id: str, sizes: dict[str, int]) -> int:
        """Bytes of the layer the step added (0 for config steps and missing images)."""
        if image_id in sizes:
            return sizes[image_id]
        size = 0
        try:
            config = await self.images.config(image_id)
        except (FileNotFoundError, NotFound):
            config = {}
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        last = (config.get("history") or [{}])[-1]
        if diff_ids and not last.get("empty_layer"):
            chain = str(chain_ids([Digest.parse(d) for d in diff_ids])[-1])
            md = self.images.metadata
            row = await md.run(md.get_layer, chain)
            size = row.size if row is not None else 0
        sizes[image_id] = size
        return size

    async def records(self) -> list[dict[str, Any]]:
        """Every entry as an Engine API ``BuildCache`` item (``/system/df``)."""
        await self.flush()
        entries = await asyncio.to_thread(self._entries)
        md = self.images.metadata
        sizes: dict[str, int] = {}
        out: list[dict[str, Any]] = []
        for e in entries:
            if await md.run(md.get_image, e.image_id) is None:
                continue
            try:
                history = (await self.images.config(e.image_id)).get("history") or [{}]
            except (FileNotFoundError, NotFound):
                continue
            tagged = bool(await md.run(md.tags_of, e.image_id))
            out.append(
                {
                    "ID": e.key,
                    "Parents": None,
                    "Type": "regular",
                    "Description": history[-1].get("created_by", ""),
                    "InUse": False,
                    "Shared": tagged,
                    "Size": await self._step_size(e.image_id, sizes),
                    "CreatedAt": _rfc3339(e.created),
                    "LastUsedAt": _rfc3339(e.last_used),
                    "UsageCount": e.used,
                }
            )
        return out

    # -- prune ---------------------------------------------------------------------------
    async def prune(
        self, *, everything: bool = False, until: float | None = None, keep_storage: int = 0
    ) -> PruneResult:
        """Drop entries and free what only they held (see the module docstring).

        ``until``: only entries last used before this Unix time; ``keep_storage``: keep the
        most recently used entries whose layers add up to at most this many bytes.
        """
        async with self._lock:
            return await self._prune(everything, until, keep_storage)

    async def _prune(self, everything: bool, until: float | None, keep_storage: int) -> PruneResult:
        md = self.images.metadata
        await self.flush()
        entries = await asyncio.to_thread(self._entries)
        entries.sort(key=lambda e: e.last_used, reverse=True)  # newest first
        sizes: dict[str, int] = {}
        kept_bytes = 0
        doomed: list[CacheEntry] = []
        for e in entries:
            exists = await md.run(md.get_image, e.image_id) is not None
            tagged = exists and bool(await md.run(md.tags_of, e.image_id))
            if exists and tagged and not everything:
                continue
            if until is not None and e.last_used >= until:
                continue
            size = await self._step_size(e.image_id, sizes) if exists else 0
            if exists and keep_storage and kept_bytes + size <= keep_storage:
                kept_bytes += size
                continue
            doomed.append(e)
        for e in doomed:
            self._known.pop(e.key, None)
            self._dirty.discard(e.key)
            await asyncio.to_thread(self._unlink, e.key)
        gone = {e.key for e in doomed}
        still = {e.image_id for e in entries if e.key not in gone}
        for image_id in dict.fromkeys(e.image_id for e in doomed):
            if image_id not in still:
                await self._drop_image(image_id)
        reclaimed = (await self.images.gc.collect()).bytes_freed
        if everything and until is None and not keep_storage:
            reclaimed += await asyncio.to_thread(self._clear_mounts)
        return PruneResult([e.key for e in doomed], reclaimed)

    def _unlink(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / key).unlink()

    async def _drop_image(self, image_id: str) -> None:
        """Delete an image only the cache held: no tag, no repo digest, no container."""
        md = self.images.metadata
        if await md.run(md.get_image, image_id) is None:
            return
        if await md.run(md.tags_of, image_id) or await md.run(md.repo_digests_of, image_id):
            return
        if self.images.in_use and await self.images.in_use(image_id):
            return
        with contextlib.suppress(NotFound, Conflict):
            await self.images.remove(image_id, noprune=True)

    def _clear_mounts(self) -> int:
        """Empty every RUN cache mount directory; returns the bytes freed."""
        freed = 0
        try:
            names = os.listdir(self.mounts)
        except FileNotFoundError:
            return 0
        for name in names:
            path = self.mounts / name
            freed += _tree_size(path)
            shutil.rmtree(path, ignore_errors=True)
        return freed


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
