"""Garbage collection: mark what images reference, sweep unreferenced blobs and snapshots.

Pulls in progress hold a shared lease (``flock(LOCK_SH)`` on ``<root>/gc.lock``) for their
whole duration, so the blobs and snapshots they have committed but not yet tied to an image
are never swept. A collection takes the lock exclusively and without waiting: when any
pull is running it simply skips, and the next collection catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.digest import Digest

if TYPE_CHECKING:
    from engine.store.content import ContentStore
    from engine.store.metadata import Metadata
    from engine.store.snapshots import Snapshotter

log = logging.getLogger(__name__)

STALE_INGEST_SECONDS = 24 * 3600


@dataclass
class GCResult:
    ran: bool
    blobs_removed: int = 0
    snapshots_removed: int = 0
    bytes_freed: int = 0


class GarbageCollector:
    """Mark-and-sweep over the content store, snapshots and layer records of one root."""

    def __init__(
        self, root: Path, content: ContentStore, metadata: Metadata, snapshots: Snapshotter
    ) -> None:
        self.lock_path = root / "gc.lock"
        self.content = content
        self.metadata = metadata
        self.snapshots = snapshots

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[None]:
        """Protect work in progress (a pull) from collection while the context is open."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    async def collect(self) -> GCResult:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.debug("garbage collection skipped: a pull holds a lease")
                return GCResult(ran=False)
            return await self._sweep()
        finally:
            os.close(fd)

    async def _sweep(self) -> GCResult:
        result = GCResult(ran=True)
        blobs, chains = await self.metadata.run(self.metadata.live_refs)
        for chain in await asyncio.to_thread(self.snapshots.list):
            if str(chain) not in chains:
                result.bytes_freed += await asyncio.to_thread(self._size_of, chain)
                await self.snapshots.remove(chain)
                result.snapshots_removed += 1
        for layer in await self.metadata.run(self.metadata.list_layers):
            if layer.chain_id not in chains:
                await self.metadata.run(self.metadata.delete_layer, layer.chain_id)
        result.bytes_freed += await asyncio.to_thread(self._sweep_blobs, blobs, result)
        await asyncio.to_thread(self._sweep_ingest)
        return result

    def _size_of(self, chain: Digest) -> int:
        try:
            return self.snapshots.size(chain)
        except Exception:
            return 0

    def _sweep_blobs(self, live: set[str], result: GCResult) -> int:
        freed = 0
        for digest in list(self.content.iter_blobs()):
            if str(digest) not in live:
                freed += self.content.delete(digest)
                result.blobs_removed += 1
        return freed

    def _sweep_ingest(self) -> None:
        """Drop partial downloads nobody resumed for a day."""
        cutoff = time.time() - STALE_INGEST_SECONDS
        for entry in self.content.ingest.iterdir():
            try:
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                continue
