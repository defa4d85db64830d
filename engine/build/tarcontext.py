"""An uploaded build context (``POST /build`` body) that is unpacked only when needed.

``TarContext.open(chunks, dockerfile, tmp_parent)`` reads the tar stream in a thread into a
``TarIndex`` (engine.build.tarindex: the tree as nodes, file contents spooled to memory or
an unlinked temporary file), reads the Dockerfile and ``.dockerignore`` from it, and answers
every query of ``BuildContext`` (``resolve``, ``files``, ``sent``, ``hash_paths``,
``is_dir``) from the index, with the same digests and errors as a context on disk: an
all-cached rebuild never writes a file. ``materialize()`` writes the tree once, in a
thread, with the same writer as before (directory fds, nothing followed) into a private
directory: on tmpfs (``/dev/shm``) while the context fits a share of its free space, else
on disk (moving there if tmpfs filled up meanwhile). ``close()`` removes the directory and
the spool on every path, a cancelled caller included.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import posixpath
import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.build import tarindex
from engine.build.context import (
    MAX_DOCKERFILE,
    MAX_IGNORE,
    SCRATCH,
    BuildContext,
    ContextError,
    _next_chunk,
    _scratch_parent,
    apply_entries,
    remove_dir,
)
from engine.build.dockerignore import PatternMatcher, read_patterns
from engine.build.tarindex import DIR, LNK, REG, Node, TarIndex, read_index

log = logging.getLogger(__name__)


@dataclass(eq=False)
class TarContext(BuildContext):
    """A build context answered from a tar index (see the module docstring)."""

    index: TarIndex | None = None
    written: int = 0  # how many times the tree went to disk (0 or 1): observable by tests
    _writing: asyncio.Future[Path] | None = None

    # -- construction --------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        chunks: AsyncIterator[bytes],
        dockerfile: str | None = None,
        tmp_parent: str | Path | None = None,
    ) -> TarContext:
        """Index the tar stream ``chunks``; the tree goes under ``tmp_parent`` (default:
        tmpfs or the temporary directory) when ``materialize`` is called."""
        name = (dockerfile or "Dockerfile").lstrip("/")
        if ".." in name.split("/") or not name or "\x00" in name:
            raise ContextError(f"Dockerfile name {dockerfile!r} leads outside the context")
        spool_dir = str(tmp_parent) if tmp_parent is not None else None
        index = await _read(chunks, spool_dir)
        job = asyncio.ensure_future(asyncio.to_thread(cls._from_index, index, name, tmp_parent))
        try:
            return await asyncio.shield(job)
        except BaseException:
            with contextlib.suppress(BaseException):
                await job
            tarindex.release(index)
            raise

    @classmethod
    def _from_index(cls, index: TarIndex, name: str, tmp_parent: str | Path | None) -> TarContext:
        if tmp_parent is None:
            parent, budget = _scratch_parent()
            if parent is None or budget is None or index.total > budget:
                parent = tempfile.gettempdir()
        else:
            parent = str(tmp_parent)
        root = Path(parent) / f"portside-ctx-{secrets.token_hex(8)}"  # made by materialize
        ctx = cls(root, name, b"", PatternMatcher([]), [], index=index)
        try:
            real = ctx._resolve(name, follow_final=True)
        except ContextError:
            raise ContextError(f"Dockerfile {name!r} not found in the build context") from None
        rel = ctx._rel(real)
        ctx.dockerfile = ctx._read_small(rel, real, MAX_DOCKERFILE, "Dockerfile")
        specific = posixpath.join(posixpath.dirname(rel), posixpath.basename(rel) + ".dockerignore")
        patterns: list[str] = []
        for candidate in (specific, ".dockerignore"):
            if index.node(candidate) is not None:
                path = root / candidate
                try:
                    found = ctx._rel(ctx._resolve(candidate, follow_final=True))
                except ContextError:
                    raise ContextError(
                        f".dockerignore {str(path)!r} not found: it is a symlink to a missing "
                        "file or outside the context"
                    ) from None
                patterns = read_patterns(ctx._read_small(found, path, MAX_IGNORE, ".dockerignore"))
                break
        ctx._set_ignore(patterns, name)
        return ctx

    def _rel(self, real: Path) -> str:
        return real.relative_to(self.root).as_posix() if real != self.root else ""

    def _read_small(self, rel: str, path: Path, limit: int, what: str) -> bytes:
        node = self._node(rel)
        if node is None:
            raise ContextError(f"{what} {str(path)!r} not found: check the path or -f")
        if node.kind != REG:
            raise ContextError(f"{what} {str(path)!r} is not a regular file")
        if node.size > limit:
            raise ContextError(f"{what} {str(path)!r} is too large (limit {limit} bytes)")
        return self._index.read(node)

    # -- the tree, from the index --------------------------------------------------------
    @property
    def _index(self) -> TarIndex:
        if self.index is None:
            raise ContextError("the build context is closed")
        return self.index

    def _node(self, rel: str) -> Node | None:
        return self._index.node(rel)

    def _lstat(self, rel: str, real: Path) -> tuple[int, int] | None:
        node = self._node(rel)
        return None if node is None else (node.kind, node.perm)

    def _readlink(self, rel: str, real: Path) -> str:
        node = self._node(rel)
        if node is None or node.kind != LNK:
            raise OSError(22, "Invalid argument", str(real))
        return node.target

    def _listdir(self, rel: str, real: Path) -> list[str]:
        node = self._node(rel)
        if node is None or node.children is None:
            raise NotADirectoryError(20, "Not a directory", str(real))
        return list(node.children)

    def _content_digest(self, rel: str, real: Path) -> bytes:
        node = self._node(rel)
        if node is None or node.kind != REG:
            raise FileNotFoundError(2, "No such file or directory", str(real))
        return node.digest

    def _memo_key(self, *what: object) -> tuple[object, ...]:
        """What an answer depends on besides the (shared, never changed) index."""
        return (*what, tuple(self.ignore_patterns), self.dockerfile_name, self.dropped)

    async def hash_paths(self, paths: list[str]) -> str:
        """As ``BuildContext.hash_paths``; an index answers the same question once (the
        next identical upload shares it)."""
        key = self._memo_key("hash", tuple(paths))
        found = self._index.memo.get(key)
        if found is None:
            found = await asyncio.to_thread(self._hash_paths, paths)
            self._index.memo[key] = found
        return found

    async def files(self) -> list[str]:
        key = self._memo_key("files")
        found = self._index.memo.get(key)
        if found is None:
            found = await asyncio.to_thread(self._walk)
            self._index.memo[key] = found
        return list(found)

    def _hash_tree(self, real: Path, rel: str, shown: str, out: hashlib._Hash) -> None:
        node = self._node(rel)
        if node is None:
            raise ContextError(f"{rel or '.'!r} vanished from the build context while reading it")
        self._hash_node(node, rel, shown, out)

    def _hash_node(self, node: Node, rel: str, shown: str, out: hashlib._Hash) -> None:
        """``BuildContext._hash_tree`` walking the index's nodes: the same bytes hashed."""
        if rel and (
            rel in self.dropped
            or (self.matcher.excluded(rel) and not self._sent(rel, self.root / rel))
        ):
            return
        out.update(
            f"{shown}\x00{node.kind:o}\x00{node.perm:o}\x00".encode("utf-8", "surrogateescape")
        )
        if node.kind == LNK:
            out.update(node.target.encode("utf-8", "surrogateescape") + b"\x00")
        elif node.kind == REG:
            out.update(node.digest + b"\x00")
        elif node.children is not None:
            for name in sorted(node.children):
                self._hash_node(
                    node.children[name],
                    f"{rel}/{name}" if rel else name,
                    f"{shown}/{name}" if shown else name,
                    out,
                )
            out.update(b"\x00D\x00")

    def _walk(self) -> list[str]:
        out: list[str] = []
        stack: list[tuple[str, Node]] = [("", self._index.root)]
        while stack:
            rel_dir, node = stack.pop()
            for name, child in (node.children or {}).items():
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if rel in self.dropped:
                    continue
                is_dir = child.kind == DIR
                if self.matcher.excluded(rel):
                    if is_dir and self.sent(rel, self.root / rel):
                        out.append(rel)
                        stack.append((rel, child))
                    continue
                out.append(rel)
                if is_dir:
                    stack.append((rel, child))
        return sorted(out)

    # -- files on disk -------------------------------------------------------------------
    async def materialize(self) -> Path:
        """Write the tree to its directory (once; later calls wait for the same write)."""
        if self._writing is None:
            self._index  # noqa: B018 - a closed context fails here, not in the thread
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write))
        self.root = await asyncio.shield(self._writing)
        return self.root

    def _write(self) -> Path:
        index = self._index
        planned = self.root
        try:
            os.mkdir(planned, 0o700)
        except OSError as err:
            raise ContextError(
                f"cannot create the build context directory {str(planned)!r}: {err.strerror}"
            ) from None
        budget: int | None = None
        if str(planned.parent) == SCRATCH:  # tmpfs may have filled up since the upload
            parent, room = _scratch_parent()
            if parent is None or room is None:
                budget = 0
            elif index.total > room:
                budget = room
        roots = [planned]
        try:
            apply_entries(index.replay(), roots, budget)
        except BaseException:
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)
            raise
        self.written += 1
        log.debug(
            "build context written to %s: %d entries, %d bytes",
            roots[-1],
            len(index.entries),
            index.total,
        )
        return roots[-1]

    async def close(self) -> None:
        """Remove the written tree (if any) and the spool, even when cancelled."""
        await asyncio.shield(self._close())

    async def _close(self) -> None:
        index, self.index = self.index, None
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                root = await writing
            except BaseException:
                root = None
            if root is not None:
                await remove_dir(root)
        if index is not None:
            if index.spool.on_disk:
                await asyncio.to_thread(tarindex.release, index)
            else:
                tarindex.release(index)


async def _read(chunks: AsyncIterator[bytes], spool_dir: str | None) -> TarIndex:
    """The index of the upload: a small body is gathered here and indexed (or found in
    the cache) by one thread; a big one streams into ``read_index`` in a thread, pulling
    the chunks from this loop. A cancelled upload stops the thread and leaves nothing."""
    it = aiter(chunks)
    pieces: list[bytes] = []
    size = 0
    while size <= tarindex.CACHE_BODY_MAX:
        chunk = await _next_chunk(it)
        if chunk is None:
            job = asyncio.ensure_future(asyncio.to_thread(tarindex.cached_index, pieces, spool_dir))
            return await _finish(job)
        pieces.append(chunk)
        size += len(chunk)
    return await _stream(pieces, it, spool_dir)


async def _finish(job: asyncio.Future[TarIndex]) -> TarIndex:
    """Wait for an indexing thread; when cancelled, release what it made, then re-raise."""
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            tarindex.release(await job)
        raise


async def _stream(pieces: list[bytes], it: AsyncIterator[bytes], spool_dir: str | None) -> TarIndex:
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    lock = threading.Lock()
    waiting: list[concurrent.futures.Future[bytes | None]] = []

    def pull() -> Iterator[bytes]:
        yield from pieces
        pieces.clear()
        while True:
            if stop.is_set():
                raise ContextError("build context upload was cancelled")
            future = asyncio.run_coroutine_threadsafe(_next_chunk(it), loop)
            with lock:
                waiting[:] = [future]
                if stop.is_set():
                    future.cancel()
            chunk = future.result()
            if chunk is None:
                return
            yield chunk

    job = asyncio.ensure_future(asyncio.to_thread(read_index, pull(), spool_dir))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        with lock:  # stop the reader thread and close what it spooled
            stop.set()
            for future in waiting:
                future.cancel()
        with contextlib.suppress(BaseException):
            tarindex.release(await job)
        raise
