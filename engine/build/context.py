"""The build context: a directory or a tar stream, filtered by ``.dockerignore``.

``BuildContext.from_directory(dir, dockerfile)`` uses a directory in place;
``BuildContext.from_tar(chunks, dockerfile, tmp_parent)`` reads the API's ``/build`` body
(plain, gzip, bzip2 or xz tar) into an index (``engine.build.tarcontext``) that answers the
same queries and writes the tree to disk only when a step needs its files. The Dockerfile
may live outside a directory context; ``<Dockerfile>.dockerignore`` beside it wins over
``.dockerignore``.

``resolve(path)`` maps a COPY source to a real path inside the context, following symlinks
only while they stay inside (absolute targets and ``..`` escapes are refused).
``hash_paths(paths)`` gives a stable digest of files and trees for cache keys: type, path,
permission bits, link targets and content; never mtimes or owners. The queries see the
tree through ``_lstat``/``_readlink``/``_listdir``/``_content_digest``, which a tar context
answers from its index. Blocking work runs in threads. ``ImageTree`` is the same interface
over an image's file tree (``COPY --from``, ``RUN --mount from=``), its symlinks resolved as
inside a container.

This module also owns the writer that puts a context tar on disk (``apply_entries``):
entry by entry, directory-fd relative, no symlink followed, names with ``..`` escapes
refused, never ``tarfile.extractall``; on tmpfs (``/dev/shm``, many times faster for small
files) while the context fits a share of its free space, moving to disk when it outgrows it.
"""

from __future__ import annotations

import asyncio
import bz2
import errno
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.build.dockerignore import PatternMatcher, for_build, read_patterns
from engine.errors import InvalidArgument
from engine.store import tarstream
from engine.store.compression import Compression, detect

MAX_DOCKERFILE = 16 << 20
MAX_IGNORE = 4 << 20
_MAX_LINKS = 40
_READ = 1 << 20
SCRATCH = "/dev/shm"  # tmpfs for uploaded contexts (see _scratch_parent)
_SCRATCH_MIN_FREE = 256 << 20
_SCRATCH_SHARE = 4  # a context may use up to this fraction of tmpfs's free space


class ContextError(InvalidArgument):
    """The build context is unusable (bad tar, escaping path, missing Dockerfile...)."""


@dataclass
class BuildContext:
    """A prepared build context (see the module docstring)."""

    root: Path
    dockerfile_name: str
    dockerfile: bytes
    matcher: PatternMatcher
    ignore_patterns: list[str] = field(default_factory=list)
    _tmp: Path | None = None
    dropped: frozenset[str] = frozenset()  # sent by the client, removed by the engine

    # -- construction --------------------------------------------------------------------
    @classmethod
    async def from_directory(
        cls, directory: str | Path, dockerfile: str | None = None
    ) -> BuildContext:
        """A context on ``directory``; ``dockerfile`` is relative to it, or absolute."""
        return await asyncio.to_thread(cls._from_directory, Path(directory), dockerfile)

    @classmethod
    def _from_directory(cls, directory: Path, dockerfile: str | None) -> BuildContext:
        root = directory.resolve()
        if not root.is_dir():
            raise ContextError(f"build context {str(directory)!r} is not a directory")
        given = dockerfile or "Dockerfile"
        path = Path(given) if os.path.isabs(given) else root / given
        data = _read_small(path, MAX_DOCKERFILE, "Dockerfile")
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = None  # outside the context: sent on its own, like the CLI does
        patterns = _ignore_patterns_dir(root, path)
        name = rel if rel is not None else path.name
        matcher = for_build(patterns, rel)
        return cls(root, name, data, matcher, patterns)

    @classmethod
    async def from_tar(
        cls,
        chunks: AsyncIterator[bytes],
        dockerfile: str | None = None,
        tmp_parent: str | Path | None = None,
    ) -> BuildContext:
        """A context from a tar stream (``/build`` body), indexed in memory and written to
        a temporary directory only when a step needs its files (``materialize``); see
        ``engine.build.tarcontext``."""
        from engine.build.tarcontext import TarContext

        return await TarContext.open(chunks, dockerfile, tmp_parent)

    def _set_ignore(self, patterns: list[str], name: str) -> None:
        """Apply an uploaded context's ``.dockerignore`` patterns (Dockerfile ``name``)."""
        self.ignore_patterns = patterns
        # the docker CLI sends .dockerignore and the Dockerfile whatever .dockerignore says
        # (so the directories holding them exist), and dockerd then drops those two when
        # .dockerignore lists them (the CLI lists a ``-f`` file it added itself)
        listed = PatternMatcher(patterns)
        self.dropped = frozenset(f for f in (".dockerignore", name) if listed.excluded(f))
        self.matcher = for_build(patterns, name)

    async def materialize(self) -> Path:
        """The context's files on disk (its root); a tar context writes them first."""
        return self.root

    async def close(self) -> None:
        """Remove the temporary directory of a tar context (a no-op for directories)."""
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            await remove_dir(tmp)

    async def __aenter__(self) -> BuildContext:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- queries -------------------------------------------------------------------------
    def included(self, rel: str) -> bool:
        """Whether the context path ``rel`` is sent (not excluded by .dockerignore)."""
        rel = posixpath.normpath("/" + rel).lstrip("/")
        return not rel or (not self.matcher.excluded(rel) and rel not in self.dropped)

    def sent(self, rel: str, real: Path | None = None) -> bool:
        """Whether context path ``rel`` reaches the builder: not excluded, or (``real``,
        its file, being a directory) excluded but holding something a ``!`` exception
        re-includes, which the docker CLI walks into and sends."""
        rel = posixpath.normpath("/" + rel).lstrip("/")
        if rel in self.dropped:
            return False
        return self._sent(rel, real)

    def _sent(self, rel: str, real: Path | None) -> bool:
        if not rel or not self.matcher.excluded(rel):
            return True
        if real is None or not self.matcher.may_descend(rel):
            return False
        try:
            st = self._lstat(rel, real)
            if st is None or not stat.S_ISDIR(st[0]):
                return False
            names = self._listdir(rel, real)
        except OSError:
            return False
        return any(self._sent(f"{rel}/{name}", real / name) for name in names)

    # -- the tree, as the queries see it (a tar context answers from its index) ----------
    def _lstat(self, rel: str, real: Path) -> tuple[int, int] | None:
        """(file type, permission bits) of context path ``rel`` (its file ``real``), not
        following a final symlink; None when it does not exist."""
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            return None
        return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)

    def _readlink(self, rel: str, real: Path) -> str:
        return os.readlink(real)

    def _listdir(self, rel: str, real: Path) -> list[str]:
        return os.listdir(real)

    def _content_digest(self, rel: str, real: Path) -> bytes:
        return _file_digest(real)

    def is_dir(self, path: str) -> bool:
        """Whether context path ``path`` (symlinks followed) is a directory."""
        real = self.resolve(path)
        rel = real.relative_to(self.root).as_posix() if real != self.root else ""
        st = self._lstat(rel, real)
        return st is not None and stat.S_ISDIR(st[0])

    async def files(self) -> list[str]:
        """Every path in the filtered context, sorted (directories too)."""
        return await asyncio.to_thread(self._walk)

    def _walk(self) -> list[str]:
        out: list[str] = []
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(self.root / rel_dir), key=lambda e: e.name)
            except OSError as err:
                raise ContextError(
                    f"cannot read context directory {rel_dir or '.'!r}: {err.strerror}"
                ) from None
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if rel in self.dropped:
                    continue
                if self.matcher.excluded(rel):
                    if is_dir and self.sent(rel, Path(entry.path)):
                        out.append(rel)
                        stack.append(rel)
                    continue
                out.append(rel)
                if is_dir:
                    stack.append(rel)
        return sorted(out)

    def resolve(self, path: str, follow_final: bool = True) -> Path:
        """The real path of context path ``path``, never outside the context root; paths
        that ``.dockerignore`` excludes are not found, as they would not have been sent."""
        real = self._resolve(path, follow_final)
        rel = real.relative_to(self.root).as_posix()
        if rel != "." and not self.sent(rel, real):
            raise ContextError(f"{path!r} not found in the build context (.dockerignore)")
        return real

    def _resolve(self, path: str, follow_final: bool) -> Path:
        if "\x00" in path:
            raise ContextError(f"invalid context path {path!r}: contains a NUL byte")
        pending = [p for p in path.split("/") if p and p != "."]
        pending.reverse()
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if not done:
                    raise ContextError(f"path {path!r} leads outside the build context")
                done.pop()
                continue
            candidate = self.root.joinpath(*done, part)
            rel = "/".join([*done, part])
            is_last = not pending
            st = self._lstat(rel, candidate)
            if st is None:
                raise ContextError(f"{path!r} not found in the build context")
            if stat.S_ISLNK(st[0]) and (follow_final or not is_last):
                links += 1
                if links > _MAX_LINKS:
                    raise ContextError(f"too many symbolic links resolving {path!r}")
                target = self._readlink(rel, candidate)
                if target.startswith("/"):
                    raise ContextError(
                        f"{path!r} goes through a symlink to {target!r}, outside the context"
                    )
                parts = [p for p in target.split("/") if p and p != "."]
                pending.extend(reversed(parts))
                continue
            if not is_last and not stat.S_ISDIR(st[0]):
                raise ContextError(f"{path!r}: {'/'.join([*done, part])!r} is not a directory")
            done.append(part)
        return self.root.joinpath(*done)

    async def hash_paths(self, paths: list[str]) -> str:
        """A stable ``sha256:`` digest of the given context paths (trees recursively)."""
        return await asyncio.to_thread(self._hash_paths, paths)

    def _hash_paths(self, paths: list[str]) -> str:
        total = hashlib.sha256()
        for path in paths:
            real = self._resolve(path, follow_final=True)
            rel = real.relative_to(self.root).as_posix() if real != self.root else ""
            total.update(b"P" + path.encode("utf-8", "surrogateescape") + b"\x00")
            self._hash_tree(real, rel, "", total)
        return "sha256:" + total.hexdigest()

    def _hash_tree(self, real: Path, rel: str, shown: str, out: hashlib._Hash) -> None:
        if rel and not self.sent(rel, real):
            return
        st = self._lstat(rel, real)
        if st is None:
            raise ContextError(f"{rel or '.'!r} vanished from the build context while reading it")
        mode, perm = st
        header = f"{shown}\x00{mode:o}\x00{perm:o}\x00"
        out.update(header.encode("utf-8", "surrogateescape"))
        if stat.S_ISLNK(mode):
            out.update(self._readlink(rel, real).encode("utf-8", "surrogateescape") + b"\x00")
        elif stat.S_ISREG(mode):
            out.update(self._content_digest(rel, real) + b"\x00")
        elif stat.S_ISDIR(mode):
            for name in sorted(self._listdir(rel, real)):
                child_rel = f"{rel}/{name}" if rel else name
                child_shown = f"{shown}/{name}" if shown else name
                self._hash_tree(real / name, child_rel, child_shown, out)
            out.update(b"\x00D\x00")


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, _READ):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.digest()


def _read_small(path: Path, limit: int, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ContextError(f"{what} {str(path)!r} not found: check the path or -f") from None
    except OSError as err:
        raise ContextError(f"cannot open {what} {str(path)!r}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ContextError(f"{what} {str(path)!r} is not a regular file")
        if st.st_size > limit:
            raise ContextError(f"{what} {str(path)!r} is too large (limit {limit} bytes)")
        chunks = []
        while chunk := os.read(fd, _READ):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _ignore_patterns_dir(root: Path, dockerfile: Path) -> list[str]:
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    for candidate in (specific, root / ".dockerignore"):
        if os.path.lexists(candidate):
            return read_patterns(_read_small(candidate, MAX_IGNORE, ".dockerignore"))
    return []


async def remove_dir(tmp: Path) -> None:
    """Remove a temporary directory in a thread that a cancellation cannot stop: the API
    cancels a handler when its client hangs up, and a removal cancelled before its thread
    started would leave it all behind (a context on tmpfs: in RAM)."""
    await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))


async def _next_chunk(it: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None


# -- tar unpacking (runs in a thread) ------------------------------------------------------
def decompressed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = b""
    for chunk in chunks:
        if chunk:
            first = chunk
            break
    kind = detect(first[:8])

    def source() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    if kind is Compression.NONE:
        yield from source()
        return
    factories = {
        Compression.GZIP: lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
        Compression.BZIP2: bz2.BZ2Decompressor,
        Compression.XZ: lzma.LZMADecompressor,
    }
    factory = factories.get(kind)
    if factory is None:
        raise ContextError(f"build context compressed with {kind}: send tar, gzip, bzip2 or xz")
    dec = factory()
    fresh = True  # the current decompressor has seen nothing yet
    try:
        for piece in source():
            while piece:
                fresh = False
                out = dec.decompress(piece)
                if out:
                    yield out
                if dec.eof:  # another member may follow (concatenated gzip, bzip2, xz)
                    piece = dec.unused_data
                    dec = factory()
                    fresh = True
                else:
                    piece = b""
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as err:
        raise ContextError(f"build context {kind} data is corrupt: {err}") from None
    if not fresh:
        raise ContextError(f"build context stream is truncated (incomplete {kind} data)")


def clean_name(name: bytes) -> list[str]:
    text = name.decode("utf-8", "surrogateescape")
    parts: list[str] = []
    for part in text.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if not parts:
                raise ContextError(
                    f"build context entry {tarstream.show(name)!r} leads outside the context"
                )
            parts.pop()
            continue
        parts.append(part)
    return parts


class _DataReader(Protocol):
    """What the writer needs of a tar reader: the current entry's data."""

    def data(self) -> Iterator[bytes | memoryview]: ...


class _Writer:
    """Applies tar entries under ``root`` with directory fds; no symlink is ever followed."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_times: list[tuple[list[str], int]] = []
        # the directory the last entry went into, kept open for the next one (the entries
        # of a directory come one after another); entries only ever remove what is in the
        # directory they go into, never that directory itself, so the fd stays valid
        self._parent: tuple[tuple[str, ...], int] | None = None

    def _forget_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _parent_fd(self, parts: list[str]) -> int:
        """An fd of the directory ``parts`` (made when missing), owned by this writer."""
        key = tuple(parts)
        if self._parent is not None and self._parent[0] == key:
            return self._parent[1]
        fd = self._open_dir(parts, create=True)
        self._forget_parent()
        self._parent = (key, fd)
        return fd

    def close(self) -> None:
        if self.root_fd < 0:
            return
        self._forget_parent()
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self._open_dir(parts, create=False)
            except (ContextError, OSError):
                continue
            try:
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        os.close(self.root_fd)
        self.root_fd = -1

    def _open_dir(self, parts: list[str], create: bool) -> int:
        fd = os.dup(self.root_fd)
        try:
            for part in parts:
                try:
                    nfd = os.open(
                        part,
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=fd,
                    )
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nfd = os.open(
                        part,
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=fd,
                    )
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ContextError(
                            f"build context entry under {'/'.join(parts)!r} goes through a "
                            "symlink or a file"
                        ) from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _clear(self, dfd: int, name: str, keep_dir: bool) -> None:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                path = f"/proc/self/fd/{sub}"
                for child in os.listdir(path):
                    _rm_tree_at(sub, child)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)

    def apply(self, entry: tarstream.Entry, reader: _DataReader) -> None:
        parts = clean_name(entry.name)
        if not parts:
            if entry.type == tarstream.DIR:
                return
            raise ContextError(f"build context entry {tarstream.show(entry.name)!r} is not a file")
        parent, name = parts[:-1], parts[-1]
        dfd = self._parent_fd(parent)
        kind = entry.type
        perm = entry.mode & 0o7777
        if kind == tarstream.DIR:
            self._clear(dfd, name, keep_dir=True)
            try:
                os.mkdir(name, 0o700, dir_fd=dfd)
            except FileExistsError:
                pass
            os.chmod(name, perm, dir_fd=dfd, follow_symlinks=False)
            self.dir_times.append((parts, entry.mtime_ns))
        elif kind == tarstream.REG:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:  # usually nothing is in the way: no stat first
                fd = os.open(name, flags, 0o600, dir_fd=dfd)
            except FileExistsError:
                self._clear(dfd, name, keep_dir=False)
                fd = os.open(name, flags, 0o600, dir_fd=dfd)
            try:
                for piece in reader.data():
                    view = piece
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                os.fchmod(fd, perm)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)
        elif kind == tarstream.SYM:
            self._clear(dfd, name, keep_dir=False)
            target = entry.linkname.decode("utf-8", "surrogateescape")
            os.symlink(target, name, dir_fd=dfd)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dfd, follow_symlinks=False)
        elif kind == tarstream.LNK:
            target_parts = clean_name(entry.linkname)
            if not target_parts:
                raise ContextError(f"hard link {tarstream.show(entry.name)!r} has no target")
            try:
                tfd = self._open_dir(target_parts[:-1], create=False)
            except FileNotFoundError:
                tfd = -1
            try:
                st = _lstat_at(tfd, target_parts[-1], entry.name)
                if not stat.S_ISREG(st.st_mode):
                    raise ContextError(
                        f"hard link {tarstream.show(entry.name)!r} must point to a file "
                        "earlier in the context"
                    )
                self._clear(dfd, name, keep_dir=False)
                os.link(
                    target_parts[-1],
                    name,
                    src_dir_fd=tfd,
                    dst_dir_fd=dfd,
                    follow_symlinks=False,
                )
            finally:
                if tfd >= 0:
                    os.close(tfd)
        else:
            raise ContextError(
                f"build context entry {tarstream.show(entry.name)!r} is a device or FIFO: "
                "not allowed in a build context"
            )


def _lstat_at(dfd: int, name: str, entry_name: bytes) -> os.stat_result:
    try:
        if dfd < 0:
            raise FileNotFoundError(name)
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        raise ContextError(
            f"hard link {tarstream.show(entry_name)!r} points to a file not earlier in the context"
        ) from None


def _rm_tree_at(dfd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
        try:
            for child in os.listdir(f"/proc/self/fd/{sub}"):
                _rm_tree_at(sub, child)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def _scratch_parent() -> tuple[str | None, int | None]:
    """Where an uploaded context is unpacked: tmpfs (``/dev/shm``) when it has room, as
    writing many small files there is several times faster than on disk, with the bytes a
    context may take there; else the system temporary directory (no budget)."""
    try:
        st = os.statvfs(SCRATCH)
    except OSError:
        return None, None
    free = st.f_bavail * st.f_frsize
    if free < _SCRATCH_MIN_FREE or not os.access(SCRATCH, os.W_OK | os.X_OK):
        return None, None
    return SCRATCH, free // _SCRATCH_SHARE


def _spill(writer: _Writer, roots: list[Path]) -> _Writer:
    """Move a context that outgrew its tmpfs budget to the system temporary directory."""
    old = roots[-1]
    times = writer.dir_times
    writer.close()
    new = Path(tempfile.mkdtemp(prefix="portside-ctx-"))
    roots.append(new)
    shutil.copytree(old, new, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(old, ignore_errors=True)
    moved = _Writer(new)
    moved.dir_times = times
    return moved


def apply_entries(
    entries: Iterator[tuple[tarstream.Entry, _DataReader]],
    roots: list[Path],
    budget: int | None = None,
) -> None:
    """Write tar entries (each with the reader of its data) under ``roots[-1]``; past
    ``budget`` bytes the tree moves to disk (``_spill``), the new root appended to
    ``roots``."""
    writer = _Writer(roots[-1])
    used = 0
    entry: tarstream.Entry | None = None
    try:
        while True:
            try:
                got = next(entries, None)
                if got is None:
                    break
                entry, reader = got
                used += entry.size + 512
                if budget is not None and used > budget:
                    writer, budget = _spill(writer, roots), None
                writer.apply(entry, reader)
            except tarstream.TarError as err:
                raise ContextError(f"build context is not a valid tar: {err}") from None
            except OSError as err:
                shown = tarstream.show(entry.name) if entry is not None else "?"
                raise ContextError(
                    f"cannot write build context entry {shown!r}: {err.strerror or err}"
                ) from None
    finally:
        writer.close()


class ImageTree(BuildContext):
    """An image's file tree used like a context (``COPY --from``, ``RUN --mount from=``):
    symlinks resolve as they would inside a container, absolute targets and ``..`` staying
    under the tree's root. ``ImageTree.of(root)`` makes one with no ignore patterns."""

    @classmethod
    def of(cls, root: Path) -> ImageTree:
        return cls(root, "", b"", for_build([], None))

    def _resolve(self, path: str, follow_final: bool) -> Path:
        pending = [p for p in path.split("/") if p and p != "."]
        pending.reverse()
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = self.root.joinpath(*done, part)
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                raise InvalidArgument(f"{path!r} not found in the image") from None
            if stat.S_ISLNK(st.st_mode) and (follow_final or pending):
                links += 1
                if links > 40:
                    raise InvalidArgument(f"too many symbolic links resolving {path!r}")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []
                pending.extend(reversed([p for p in target.split("/") if p and p != "."]))
                continue
            done.append(part)
        return self.root.joinpath(*done)
