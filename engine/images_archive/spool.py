"""Uploads on disk: a private work directory, the request body spooled into it, and the
files of an uploaded image archive indexed by name.

``WorkDir`` is a fresh directory under the engine root that is always removed afterwards.
``spool(body, path)`` writes an async byte stream to a file (in 1 MiB batches, off the
loop). ``index_archive`` (blocking: call it in a thread) reads the archive with the strict
tar reader, after undoing any compression, and keeps every regular file as a separate file
with its size and sha256 computed on the way, so no blob is ever read twice to be verified.
Names are normalised (``..`` above the root refused); symlinks and hardlinks inside the
archive (docker's legacy layout links duplicate layers) resolve to files of the archive only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from engine.errors import InvalidArgument, PortsideError
from engine.store.compression import decompress_stream
from engine.store.tarstream import CONT, DIR, LNK, REG, SYM, TarError, TarReader, show
from engine.store.unpack import clean_name

_BATCH = 1 << 20
_MAX_ENTRIES = 100_000
_MAX_LINK_HOPS = 40
_STALE_AFTER = 3600.0  # seconds after which a work directory not in use is debris


class WorkDir:
    """``async with WorkDir(base) as path``: a new private directory, removed on exit.

    Directories an engine that died mid-upload left behind (older than an hour, not in use
    by this process) are swept when the next one is made.
    """

    _active: set[Path] = set()

    def __init__(self, base: Path, prefix: str) -> None:
        self.path = base / f"{prefix}-{secrets.token_hex(6)}"

    async def __aenter__(self) -> Path:
        await asyncio.to_thread(self.path.mkdir, mode=0o700, parents=True)
        WorkDir._active.add(self.path)
        await asyncio.to_thread(_sweep, self.path.parent, set(WorkDir._active))
        return self.path

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        WorkDir._active.discard(self.path)
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, self.path, True))


def _sweep(base: Path, active: set[Path]) -> None:
    cutoff = time.time() - _STALE_AFTER
    for entry in base.iterdir():
        with contextlib.suppress(OSError):
            if entry not in active and entry.lstat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


async def spool(body: AsyncIterator[bytes], path: Path) -> int:
    """Write ``body`` to ``path``; returns the byte count."""
    fh = await asyncio.to_thread(open, path, "wb")
    total = 0
    try:
        pending: list[bytes] = []
        size = 0
        async for chunk in body:
            pending.append(chunk)
            size += len(chunk)
            if size >= _BATCH:
                await asyncio.to_thread(fh.write, b"".join(pending))
                total += size
                pending, size = [], 0
        if pending:
            await asyncio.to_thread(fh.write, b"".join(pending))
            total += size
    finally:
        await asyncio.to_thread(fh.close)
    return total


@dataclass(frozen=True)
class ArchiveFile:
    """A regular file of the archive, stored at ``path``."""

    path: Path
    size: int
    sha256: str  # hex


@dataclass
class ArchiveIndex:
    """Files and links of an uploaded archive, by normalised name (``a/b``)."""

    files: dict[str, ArchiveFile] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # symlink name -> normalised target

    def has(self, name: str) -> bool:
        key = _norm(name)
        return key in self.files or key in self.links

    def get(self, name: str) -> ArchiveFile:
        """The file ``name`` designates (following links inside the archive)."""
        key = _norm(name)
        for _ in range(_MAX_LINK_HOPS):
            found = self.files.get(key)
            if found is not None:
                return found
            target = self.links.get(key)
            if target is None:
                raise InvalidArgument(f"the archive has no file {name!r} that its manifest names")
            key = target
        raise InvalidArgument(f"too many levels of links for {name!r} in the archive")


def _norm(name: str) -> str:
    try:
        parts = clean_name(name.encode(), "archive name")
    except TarError as err:
        raise InvalidArgument(str(err)) from None
    return b"/".join(parts).decode("utf-8", "surrogateescape")


def _link_target(name: tuple[bytes, ...], target: bytes, symlink: bool) -> str:
    """A link target as a normalised archive name (symlinks are relative to their dir)."""
    if symlink and not target.startswith(b"/"):
        target = b"/".join((*name[:-1], target))
    return b"/".join(clean_name(target, "link target")).decode("utf-8", "surrogateescape")


def index_archive(source: Path, dest: Path) -> ArchiveIndex:
    """Read the (possibly compressed) tar at ``source`` into files under ``dest``."""
    index = ArchiveIndex()
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _kind, chunks = decompress_stream(fd)
        reader = TarReader(chunks)
        count = 0
        while (entry := reader.next()) is not None:
            count += 1
            if count > _MAX_ENTRIES:
                raise InvalidArgument(f"the archive has more than {_MAX_ENTRIES} entries")
            parts = clean_name(entry.name, "archive entry")
            if not parts or entry.type == DIR:
                continue
            key = b"/".join(parts).decode("utf-8", "surrogateescape")
            if entry.type in (REG, CONT):
                target = dest / f"f{count}"
                digest = hashlib.sha256()
                size = 0
                with open(target, "xb") as out:
                    for view in reader.data():
                        digest.update(view)
                        out.write(view)
                        size += len(view)
                index.files[key] = ArchiveFile(target, size, digest.hexdigest())
                index.links.pop(key, None)
            elif entry.type in (SYM, LNK):
                index.links[key] = _link_target(parts, entry.linkname, entry.type == SYM)
                index.files.pop(key, None)
            else:
                raise InvalidArgument(
                    f"the archive holds {show(entry.name)!r}, which is neither a file, a "
                    "directory nor a link; it is not an image archive"
                )
        if count == 0:
            raise InvalidArgument("the archive is empty; give an image tarball (docker save)")
    except InvalidArgument:
        raise
    except PortsideError as err:  # a bad tar, or a corrupt compressed stream
        raise InvalidArgument(f"invalid image archive: {err}") from None
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source)
    return index
