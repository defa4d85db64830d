"""An uploaded build context held as an index instead of a directory tree.

``read_index(chunks, spool_dir)`` (blocking: run it in a thread) reads a ``/build`` body
(plain, gzip, bzip2 or xz tar) with the engine's strict tar reader and builds a ``TarIndex``:
the tree the context would be once unpacked, as ``Node``s (type, permission bits, link
target, content sha256), with the same rules as writing it entry by entry (a later entry of
the same name wins, a file or a link replaces a directory and all it holds, missing parents
are made, no entry may go through a symlink or a file, ``..`` escapes, devices and FIFOs are
refused, hard links must point to a file earlier in the context) and the same one-line
errors. File contents go to a ``Spool``: memory up to ``SPOOL_RAM`` bytes, then an unlinked
temporary file, so a big context never sits in RAM and nothing is left on disk by a crash.

``TarIndex.replay()`` gives the recorded entries, in order, for the tar writer of
``engine.build.context``; that is how the tree reaches the disk, and only when a step needs
real files (a COPY/ADD cache miss, a RUN bind mount of the context).

``cached_index(pieces, spool_dir)`` indexes a whole small upload (up to ``CACHE_BODY_MAX``)
and keeps the index, by the body's sha256, for the next identical upload (an unchanged
rebuild sends the same bytes): indexes are never changed once built, shared by reference
count (``release``), held in memory only (``CACHE_BYTES`` in all, least recently used go).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from engine.build.context import ContextError, clean_name, decompressed
from engine.store import tarstream

SPOOL_RAM = 32 << 20  # file contents kept in memory up to this, then in a temporary file
CACHE_BODY_MAX = 16 << 20  # uploads up to this are read whole, hashed and looked up first
CACHE_ENTRY_MAX = 16 << 20  # file contents of one cached index
CACHE_BYTES = 32 << 20  # file contents of all cached indexes (least recently used go)
_READ = 1 << 20
_NAME_MAX = 255  # bytes in one path component (Linux)
_LINK_MAX = 4095  # bytes in a symlink target

_LOCK = threading.Lock()
_CACHE: OrderedDict[bytes, TarIndex] = OrderedDict()  # by sha256 of the uploaded body

DIR = stat.S_IFDIR
REG = stat.S_IFREG
LNK = stat.S_IFLNK


def _umask() -> int:
    """The process umask, read without changing it (other threads may create files)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@dataclass(slots=True)
class Node:
    """One path of the indexed tree, as ``lstat`` would show it once written."""

    kind: int  # DIR, REG or LNK (``stat.S_IFMT``)
    perm: int  # ``stat.S_IMODE``
    target: str = ""  # symlink target
    digest: bytes = b""  # sha256 of a regular file's content
    offset: int = 0  # where a regular file's content is in the spool
    size: int = 0
    children: dict[str, Node] | None = None  # directories


class Spool:
    """Append-only store of file contents: RAM first, then an unlinked temporary file."""

    def __init__(self, directory: str | None, limit: int = SPOOL_RAM) -> None:
        self.directory = directory
        self.limit = limit
        self.size = 0
        self._ram: bytearray | None = bytearray()
        self._file: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: memoryview | bytes) -> None:
        if self._ram is not None:
            if self.size + len(data) <= self.limit:
                self._ram += data
                self.size += len(data)
                return
            self._file = tempfile.TemporaryFile(  # noqa: SIM115 - kept open, closed by close()
                prefix="portside-ctx-", dir=self.directory
            )
            self._file.write(self._ram)
            self._ram = None
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)

    def read(self, offset: int, size: int) -> Iterator[bytes | memoryview]:
        """``size`` bytes from ``offset``, in pieces of at most 1 MiB."""
        if self._ram is not None:
            view = memoryview(self._ram)
            for start in range(offset, offset + size, _READ):
                yield view[start : min(start + _READ, offset + size)]
            return
        assert self._file is not None
        self._file.flush()
        fd = self._file.fileno()
        end = offset + size
        while offset < end:
            piece = os.pread(fd, min(_READ, end - offset), offset)
            if not piece:
                raise ContextError("build context spool file is truncated")
            offset += len(piece)
            yield piece

    def close(self) -> None:
        self._ram = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _holds(tree: Node | None, node: Node) -> bool:
    """Whether ``node`` is ``tree`` or inside it."""
    stack = [tree] if tree is not None else []
    while stack:
        here = stack.pop()
        if here is node:
            return True
        stack.extend((here.children or {}).values())
    return False


class _SpoolData:
    """Stands in for the tar reader when entries are replayed: the data comes from the
    spool."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.current: tuple[int, int] = (0, 0)

    def data(self) -> Iterator[bytes | memoryview]:
        return self.spool.read(*self.current)


@dataclass
class TarIndex:
    """The tree of an uploaded context (see the module docstring)."""

    spool: Spool
    umask: int = field(default_factory=_umask)
    root: Node = field(init=False)
    entries: list[tuple[tarstream.Entry, int]] = field(default_factory=list)
    total: int = 0  # bytes the tree takes, counted as the writer does (sizes + headers)
    users: int = 1  # contexts (and the cache) holding it: the last ``release`` closes it
    memo: dict[tuple[object, ...], Any] = field(default_factory=dict)  # answers given

    def __post_init__(self) -> None:
        self.root = Node(DIR, 0o700 & ~self.umask, children={})

    # -- lookups -------------------------------------------------------------------------
    def node(self, rel: str) -> Node | None:
        """The node at ``rel`` ("" is the root), following no symlink."""
        node = self.root
        if not rel:
            return node
        for part in rel.split("/"):
            if node.children is None:
                return None
            child = node.children.get(part)
            if child is None:
                return None
            node = child
        return node

    def read(self, node: Node) -> bytes:
        return b"".join(bytes(p) for p in self.spool.read(node.offset, node.size))

    def digests(self) -> dict[str, bytes]:
        """The content digest of every regular file, by path."""
        out: dict[str, bytes] = {}
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            rel, node = stack.pop()
            for name, child in (node.children or {}).items():
                path = f"{rel}/{name}" if rel else name
                if child.kind == REG:
                    out[path] = child.digest
                elif child.kind == DIR:
                    stack.append((path, child))
        return out

    # -- building ------------------------------------------------------------------------
    def _parent(self, parts: list[str]) -> Node:
        node = self.root
        for part in parts:
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = Node(DIR, 0o755 & ~self.umask, children={})
                node.children[part] = child
            elif child.kind != DIR:
                raise ContextError(
                    f"build context entry under {'/'.join(parts)!r} goes through a symlink "
                    "or a file"
                )
            node = child
        return node

    def _link_target(self, entry: tarstream.Entry) -> Node:
        parts = clean_name(entry.linkname)
        shown = tarstream.show(entry.name)
        if not parts:
            raise ContextError(f"hard link {shown!r} has no target")
        node: Node | None = self.root
        for i, part in enumerate(parts):
            assert node is not None
            if node.children is None:
                raise ContextError(
                    f"build context entry under {'/'.join(parts[:-1])!r} goes through a "
                    "symlink or a file"
                )
            node = node.children.get(part)
            if node is None:
                raise ContextError(
                    f"hard link {shown!r} points to a file not earlier in the context"
                )
            if i < len(parts) - 1 and node.kind != DIR:
                raise ContextError(
                    f"build context entry under {'/'.join(parts[:-1])!r} goes through a "
                    "symlink or a file"
                )
        assert node is not None
        if node.kind != REG:
            raise ContextError(f"hard link {shown!r} must point to a file earlier in the context")
        return node

    def add(self, entry: tarstream.Entry, reader: tarstream.TarReader) -> None:
        """Apply one tar entry to the index (its data, if any, goes to the spool)."""
        parts = clean_name(entry.name)
        shown = tarstream.show(entry.name)
        if not parts:
            if entry.type == tarstream.DIR:
                return
            raise ContextError(f"build context entry {shown!r} is not a file")
        for part in parts:
            if len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX:
                raise ContextError(
                    f"cannot write build context entry {shown!r}: File name too long"
                )
        parent = self._parent(parts[:-1])
        assert parent.children is not None
        name = parts[-1]
        kind = entry.type
        perm = entry.mode & 0o7777
        offset = -1
        if kind == tarstream.DIR:
            existing = parent.children.get(name)
            if existing is not None and existing.kind == DIR:
                existing.perm = perm
            else:
                parent.children[name] = Node(DIR, perm, children={})
        elif kind == tarstream.REG:
            offset = self.spool.size
            content = hashlib.sha256()
            for piece in reader.data():
                content.update(piece)
                self.spool.write(piece)
            size = self.spool.size - offset
            parent.children[name] = Node(
                REG, perm, digest=content.digest(), offset=offset, size=size
            )
        elif kind == tarstream.SYM:
            target = entry.linkname.decode("utf-8", "surrogateescape")
            if len(entry.linkname) > _LINK_MAX:
                raise ContextError(
                    f"cannot write build context entry {shown!r}: File name too long"
                )
            parent.children[name] = Node(LNK, 0o777, target=target)
        elif kind == tarstream.LNK:
            source = self._link_target(entry)
            if _holds(parent.children.get(name), source):  # removed before being linked
                raise ContextError(
                    f"cannot write build context entry {shown!r}: No such file or directory"
                )
            parent.children[name] = Node(
                REG, source.perm, digest=source.digest, offset=source.offset, size=source.size
            )
        else:
            raise ContextError(
                f"build context entry {shown!r} is a device or FIFO: not allowed in a build context"
            )
        self.total += entry.size + 512
        self.entries.append((entry, offset))

    def replay(self) -> Iterator[tuple[tarstream.Entry, _SpoolData]]:
        """The recorded entries in order, each with a reader of its data from the spool
        (what ``engine.build.context``'s writer applies to put the tree on disk)."""
        data = _SpoolData(self.spool)
        for entry, offset in self.entries:
            data.current = (offset, entry.size) if offset >= 0 else (0, 0)
            yield entry, data


def cached_index(pieces: list[bytes], spool_dir: str | None) -> TarIndex:
    """The index of the whole body ``pieces`` (blocking): the same upload again (same
    bytes, as an unchanged rebuild sends) reuses the index made the first time. Indexes
    are never changed once built; each user calls ``release`` when done."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    key = digest.digest()
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            found.users += 1
            return found
    index = read_index(iter(pieces), spool_dir)
    if index.spool.on_disk or index.spool.size > CACHE_ENTRY_MAX:
        return index
    with _LOCK:
        if key not in _CACHE:
            index.users += 1
            _CACHE[key] = index
            total = sum(i.spool.size for i in _CACHE.values())
            while total > CACHE_BYTES and len(_CACHE) > 1:
                _, old = _CACHE.popitem(last=False)
                total -= old.spool.size
                _release(old)
    return index


def release(index: TarIndex) -> None:
    """One user of ``index`` is done; the last one closes its spool."""
    with _LOCK:
        _release(index)


def _release(index: TarIndex) -> None:
    index.users -= 1
    if index.users <= 0:
        index.spool.close()


def read_index(chunks: Iterator[bytes], spool_dir: str | None) -> TarIndex:
    """Index the context tar in ``chunks`` (blocking; see the module docstring)."""
    index = TarIndex(Spool(spool_dir, SPOOL_RAM))
    try:
        reader = tarstream.TarReader(decompressed(chunks))
        while True:
            try:
                entry = reader.next()
                if entry is None:
                    break
                index.add(entry, reader)
            except tarstream.TarError as err:
                raise ContextError(f"build context is not a valid tar: {err}") from None
            except OSError as err:
                raise ContextError(
                    f"cannot spool the build context: {err.strerror or err}"
                ) from None
        reader.drain()
    except BaseException:
        index.spool.close()
        raise
    return index
