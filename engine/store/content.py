"""Content-addressed blob store: ``blobs/<alg>/<hex>`` plus resumable ``ingest/``.

A blob is written into ``ingest/<alg>-<hex>/data`` while it is hashed, then fsynced, checked
for exact size and digest, renamed into ``blobs/`` (fsync of the directory) and made
read-only. An interrupted ingest (even a SIGKILLed process) keeps its partial data and the
next writer resumes from it after re-hashing what is there. Writers of one digest are
serialised across tasks and processes (asyncio lock + ``flock``), so two concurrent pulls of
the same image neither corrupt nor duplicate a blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from engine.digest import Digest
from engine.errors import NotFound, VerificationError

_READ_CHUNK = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One in-progress ingest of a blob whose digest and size are known in advance."""

    def __init__(self, store: ContentStore, digest: Digest, size: int, ingest_dir: Path) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        self._dir = ingest_dir
        self._data = ingest_dir / "data"
        self._hasher = digest.hasher()
        self._file = None  # type: ignore[var-annotated]
        self.offset = 0

    def _open(self) -> None:
        """Open the ingest file and re-hash any data a previous attempt left (resume)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._data, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        existing = os.fstat(fd).st_size
        if existing > self.size:
            os.ftruncate(fd, 0)
            existing = 0
        remaining = existing
        while remaining:
            chunk = self._file.read(min(_READ_CHUNK, remaining))
            if not chunk:
                break
            self._hasher.update(chunk)
            remaining -= len(chunk)
        self.offset = existing - remaining
        self._file.seek(self.offset)
        os.ftruncate(fd, self.offset)

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        if self.offset + len(data) > self.size:
            raise VerificationError(
                f"blob {self.digest} is larger than its descriptor says ({self.size} bytes)"
            )
        self._file.write(data)
        self._hasher.update(data)
        self.offset += len(data)

    async def write(self, data: bytes) -> None:
        """Append ``data`` (hashing it); raises if it goes past the expected size."""
        if len(data) < 65536:
            self._write(data)
        else:
            await asyncio.to_thread(self._write, data)

    def _truncate(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate(0)
        self._hasher = self.digest.hasher()
        self.offset = 0

    async def truncate(self) -> None:
        """Discard everything written so far (the server ignored a Range request)."""
        await asyncio.to_thread(self._truncate)

    def _commit(self) -> Path:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        if self.offset != self.size:
            self._discard()
            raise VerificationError(
                f"blob {self.digest}: got {self.offset} bytes, expected {self.size}; "
                "the registry sent a short or wrong blob, try the pull again"
            )
        actual = self._hasher.hexdigest()
        if actual != self.digest.hex:
            self._discard()
            raise VerificationError(
                f"blob {self.digest} failed verification (content hashes to "
                f"{self.digest.algorithm}:{actual}); nothing was stored"
            )
        target = self.store.path(self.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self._data, 0o444)
        os.rename(self._data, target)
        _fsync_dir(target.parent)
        self._close()
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)
        return target

    async def commit(self) -> Path:
        """Verify size and digest, then atomically move the blob into place."""
        return await asyncio.to_thread(self._commit)

    def _discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ContentStore:
    """Blobs by digest under ``<root>/content``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.ingest = root / "ingest"
        self._locks: dict[str, asyncio.Lock] = {}
        for d in (self.blobs, self.ingest):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def _ingest_dir(self, digest: Digest) -> Path:
        return self.ingest / f"{digest.algorithm}-{digest.hex}"

    @contextlib.asynccontextmanager
    async def writer(self, digest: Digest, size: int) -> AsyncIterator[BlobWriter | None]:
        """Exclusive writer for ``digest``; yields None when the blob is already committed.

        The caller writes, then ``await writer.commit()``. Leaving without committing keeps
        the partial data for a later resume.
        """
        lock = self._locks.setdefault(str(digest), asyncio.Lock())
        async with lock:
            lock_path = self.ingest / f"{digest.algorithm}-{digest.hex}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                if self.has(digest):
                    yield None
                    return
                writer = BlobWriter(self, digest, size, self._ingest_dir(digest))
                await asyncio.to_thread(writer._open)
                try:
                    yield writer
                finally:
                    writer._close()
            finally:
                os.close(fd)

    async def put(self, digest: Digest, data: bytes) -> Path:
        """Store a small blob held in memory (manifests, configs), verifying it."""
        async with self.writer(digest, len(data)) as w:
            if w is None:
                return self.path(digest)
            if w.offset:
                await w.truncate()
            await w.write(data)
            return await w.commit()

    def read(self, digest: Digest, max_size: int = 16 << 20) -> bytes:
        """Read a small committed blob (blocking; call from a thread for large ones)."""
        path = self.path(digest)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_size + 1)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the content store") from None
        if len(data) > max_size:
            raise VerificationError(f"blob {digest} is larger than {max_size} bytes")
        return data

    def iter_blobs(self) -> Iterator[Digest]:
        for alg_dir in self.blobs.iterdir():
            if not alg_dir.is_dir():
                continue
            for entry in alg_dir.iterdir():
                try:
                    yield Digest.parse(f"{alg_dir.name}:{entry.name}")
                except Exception:
                    continue

    def delete(self, digest: Digest) -> int:
        """Remove a committed blob; returns the bytes freed (0 if absent)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
            return size
        except FileNotFoundError:
            return 0

    def verify(self, digest: Digest) -> bool:
        """Re-hash a committed blob (used by fsck-style checks and tests)."""
        h = hashlib.new(digest.algorithm)
        try:
            with self.path(digest).open("rb") as fh:
                while chunk := fh.read(_READ_CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return False
        return h.hexdigest() == digest.hex
