"""Image metadata in sqlite: images, tags, repo digests and layers (DiffID, ChainID, blob).

One database per engine root (``<root>/metadata.db``, WAL mode) shared safely by several
processes (each embedded engine of a CLI verb, or ``portside serve``). All calls are
synchronous and short; async callers run them through :meth:`Metadata.run`, which uses one
dedicated thread so the event loop never blocks on sqlite.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- config digest, the image ID
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created TEXT,                   -- from the config
    size INTEGER NOT NULL,          -- unpacked size of all layers
    added REAL NOT NULL,
    last_tag_time REAL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,          -- registry/repository:tag
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT PRIMARY KEY,          -- registry/repository@digest
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS repo_digests_image ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    blob_digest TEXT,               -- compressed blob this layer came from (if known)
    media_type TEXT,
    blob_size INTEGER,
    size INTEGER NOT NULL           -- unpacked size
);
CREATE TABLE IF NOT EXISTS image_refs (
    image_id TEXT NOT NULL,         -- what an image keeps alive for garbage collection:
    kind TEXT NOT NULL,             -- 'blob' (index, manifest, config, layer blobs)
    ref TEXT NOT NULL,              -- or 'chain' (the ChainID of every layer snapshot)
    PRIMARY KEY (image_id, kind, ref)
);
"""


@dataclass(frozen=True)
class ImageRow:
    id: str
    manifest_digest: str
    manifest_media_type: str
    created: str | None
    size: int
    added: float
    last_tag_time: float | None


@dataclass(frozen=True)
class LayerRow:
    chain_id: str
    diff_id: str
    parent: str | None
    blob_digest: str | None
    media_type: str | None
    blob_size: int | None
    size: int


class Metadata:
    """The engine's sqlite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metadata")
        self._reader: sqlite3.Connection | None = None  # image_present's, opened on use
        # Switching to WAL and creating the schema need exclusive locks that two processes
        # opening a new root at once can deadlock on (SQLite then answers "database is
        # locked" without waiting): serialise that first step with a file lock.
        lock_fd = os.open(f"{path}.init-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._conn = sqlite3.connect(
                path, timeout=30, check_same_thread=False, isolation_level=None
            )
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        finally:
            os.close(lock_fd)

    def image_present(self, image_id: str) -> bool | None:
        """Whether the images table holds ``image_id``, read in the calling thread (the
        event loop) on a connection of its own: one primary-key lookup, and in WAL mode a
        reader does not wait for writers, so it costs less than a trip to the metadata
        thread. None when the read could not be done at once (then ask ``get_image``)."""
        try:
            if self._reader is None:
                self._reader = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=0,
                    check_same_thread=False,
                    isolation_level=None,
                )
            row = self._reader.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone()
        except sqlite3.Error:
            return None
        return row is not None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking method of this class on the metadata thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
        self._conn.close()

    # -- images -------------------------------------------------------------------------

    def put_image(self, row: ImageRow, blobs: list[str], chains: list[str]) -> bool:
        """Insert an image and what it references (idempotent); True when it was new."""
        with self._tx():
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?)",
                (
                    row.id,
                    row.manifest_digest,
                    row.manifest_media_type,
                    row.created,
                    row.size,
                    row.added,
                    row.last_tag_time,
                ),
            )
            for kind, refs in (("blob", blobs), ("chain", chains)):
                for ref in refs:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO image_refs VALUES (?,?,?)", (row.id, kind, ref)
                    )
            return cur.rowcount == 1

    def get_image(self, image_id: str) -> ImageRow | None:
        r = self._conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        return ImageRow(*r) if r else None

    def list_images(self) -> list[ImageRow]:
        return [ImageRow(*r) for r in self._conn.execute("SELECT * FROM images ORDER BY added")]

    def find_image_ids(self, prefix: str) -> list[str]:
        """Image ids whose hex starts with ``prefix`` (``sha256:`` optional)."""
        hexpart = prefix.split(":", 1)[1] if prefix.startswith("sha256:") else prefix
        if not hexpart or any(c not in "0123456789abcdef" for c in hexpart):
            return []
        rows = self._conn.execute(
            "SELECT id FROM images WHERE id >= ? AND id < ?",
            (f"sha256:{hexpart}", f"sha256:{hexpart}\uffff"),
        )
        return [r[0] for r in rows]

    def delete_image(self, image_id: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            self._conn.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            self._conn.execute("DELETE FROM image_refs WHERE image_id=?", (image_id,))
            self._conn.execute("DELETE FROM images WHERE id=?", (image_id,))

    def image_refs(self, image_id: str, kind: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT ref FROM image_refs WHERE image_id=? AND kind=?", (image_id, kind)
        )
        return [r[0] for r in rows]

    def live_refs(self) -> tuple[set[str], set[str]]:
        """Every blob digest and ChainID some image references (the GC mark phase)."""
        blobs: set[str] = set()
        chains: set[str] = set()
        for kind, ref in self._conn.execute("SELECT kind, ref FROM image_refs"):
            (blobs if kind == "blob" else chains).add(ref)
        return blobs, chains

    # -- tags and repo digests ----------------------------------------------------------

    def set_tag(self, name: str, image_id: str) -> str | None:
        """Point tag ``name`` at ``image_id``; returns the image it pointed at before."""
        with self._tx():
            old = self._conn.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
            self._conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (name, image_id))
            self._conn.execute(
                "UPDATE images SET last_tag_time=? WHERE id=?", (time.time(), image_id)
            )
            return old[0] if old else None

    def remove_tag(self, name: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM tags WHERE name=?", (name,))

    def tag_target(self, name: str) -> str | None:
        r = self._conn.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
        return r[0] if r else None

    def tags_of(self, image_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM tags WHERE image_id=? ORDER BY name", (image_id,)
        )
        return [r[0] for r in rows]

    def all_tags(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, image_id in self._conn.execute("SELECT name, image_id FROM tags ORDER BY name"):
            out.setdefault(image_id, []).append(name)
        return out

    def add_repo_digest(self, name: str, image_id: str) -> None:
        with self._tx():
            self._conn.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)", (name, image_id))

    def remove_repo_digest(self, name: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM repo_digests WHERE name=?", (name,))

    def repo_digest_target(self, name: str) -> str | None:
        r = self._conn.execute("SELECT image_id FROM repo_digests WHERE name=?", (name,)).fetchone()
        return r[0] if r else None

    def repo_digests_of(self, image_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM repo_digests WHERE image_id=? ORDER BY name", (image_id,)
        )
        return [r[0] for r in rows]

    def all_repo_digests(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        rows = self._conn.execute("SELECT name, image_id FROM repo_digests ORDER BY name")
        for name, image_id in rows:
            out.setdefault(image_id, []).append(name)
        return out

    # -- layers -------------------------------------------------------------------------

    def put_layer(self, row: LayerRow) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT OR REPLACE INTO layers VALUES (?,?,?,?,?,?,?)",
                (
                    row.chain_id,
                    row.diff_id,
                    row.parent,
                    row.blob_digest,
                    row.media_type,
                    row.blob_size,
                    row.size,
                ),
            )

    def get_layer(self, chain_id: str) -> LayerRow | None:
        r = self._conn.execute("SELECT * FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
        return LayerRow(*r) if r else None

    def list_layers(self) -> list[LayerRow]:
        return [LayerRow(*r) for r in self._conn.execute("SELECT * FROM layers")]

    def delete_layer(self, chain_id: str) -> None:
        with self._tx():
            self._conn.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))

    # -- helpers ------------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
