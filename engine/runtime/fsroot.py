"""Path operations confined to a container root file system.

Everything inside an image is hostile: a symlink ``/etc -> /host/etc`` or ``/app -> ../..``
must never lead an engine-side open, mkdir or read out of the root. These helpers walk a
path one component at a time with directory file descriptors (``O_PATH|O_NOFOLLOW``),
resolving symlinks themselves *inside* the root (an absolute target restarts at the root,
``..`` stops at it), the way ``openat2(RESOLVE_IN_ROOT)`` does. No path string is ever handed
to the kernel whole, so a symlink swapped in between two steps cannot redirect a later one.

All functions are synchronous and short; async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

MAX_SYMLINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class RootPathError(OSError):
    """A path inside a root could not be resolved safely (loop, not a directory, ...)."""


def clean(path: str) -> str:
    """``path`` made absolute and normalised lexically (``/a/./b/../c`` -> ``/a/c``)."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/" + "/".join(parts)


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


class _Walker:
    """A stack of O_PATH directory fds from the root down to the current directory."""

    def __init__(self, root_fd: int) -> None:
        self.fds = [os.dup(root_fd)]

    @property
    def cur(self) -> int:
        return self.fds[-1]

    def up(self) -> None:
        if len(self.fds) > 1:
            os.close(self.fds.pop())

    def to_root(self) -> None:
        while len(self.fds) > 1:
            os.close(self.fds.pop())

    def enter(self, name: str) -> None:
        self.fds.append(os.open(name, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=self.cur))

    def take(self) -> int:
        fd = self.fds.pop()
        self.close()
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _walk(
    root_fd: int, path: str, *, create: bool, mode: int, follow_final: bool
) -> tuple[_Walker, str | None]:
    """Resolve ``path`` under ``root_fd``; returns the walker at the parent and the final name.

    Intermediate components must be directories (symlinks resolved inside the root). With
    ``create``, missing directories are made (``mode``, owner root) including the final one,
    and the final name returned is None (the walker is *at* the directory). With
    ``follow_final``, a symlink in the final position is resolved too.
    """
    walker = _Walker(root_fd)
    pending = list(reversed(_components(path)))
    links = 0
    try:
        while pending:
            comp = pending.pop()
            if comp == "..":
                walker.up()
                continue
            last = not pending
            try:
                st = os.stat(comp, dir_fd=walker.cur, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    if last:
                        return walker, comp
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(comp, mode, dir_fd=walker.cur)
                st = os.stat(comp, dir_fd=walker.cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and (not last or follow_final or create):
                links += 1
                if links > MAX_SYMLINKS:
                    raise RootPathError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(comp, dir_fd=walker.cur)
                if target.startswith("/"):
                    walker.to_root()
                pending.extend(reversed(target.split("/")))
                pending[:] = [c for c in pending if c not in ("", ".")]
                continue
            if last and not create:
                return walker, comp
            if not stat.S_ISDIR(st.st_mode):
                raise RootPathError(errno.ENOTDIR, "not a directory", path)
            walker.enter(comp)
        return walker, None
    except BaseException:
        walker.close()
        raise


def open_root(root: Path) -> int:
    """An O_PATH fd of the root directory itself (the caller closes it)."""
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


@contextlib.contextmanager
def root_fd(root: Path) -> Iterator[int]:
    fd = open_root(root)
    try:
        yield fd
    finally:
        os.close(fd)


def mkdir_all(root: Path, path: str, mode: int = 0o755) -> Path:
    """Create directory ``path`` inside ``root`` (missing parents too), never outside it.

    Symlinks on the way are followed inside the root, dangling ones by creating their target
    inside the root. Returns the host path of the directory, resolved (for display only).
    """
    with root_fd(root) as rfd:
        walker, _ = _walk(rfd, path, create=True, mode=mode, follow_final=True)
        fd = walker.take()
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}"))
        finally:
            os.close(fd)


def resolve(root: Path, path: str) -> str:
    """The in-root path ``path`` designates once symlinks are resolved inside ``root``.

    A missing final component is allowed (the result names where it would be).
    """
    with root_fd(root) as rfd:
        walker, name = _walk(rfd, path, create=False, mode=0, follow_final=True)
        try:
            base = os.readlink(f"/proc/self/fd/{walker.cur}")
        finally:
            walker.close()
    real_root = os.path.realpath(root)
    rel = os.path.relpath(base, real_root)
    inner = "/" if rel == "." else "/" + rel
    return str(PurePosixPath(inner) / name) if name else inner


def read_file(root: Path, path: str, *, limit: int) -> bytes | None:
    """Contents of the regular file ``path`` inside ``root``, or None if it does not exist.

    Symlinks resolve inside the root; anything but a regular file (a FIFO, a device, a
    directory) or a file over ``limit`` bytes raises ``RootPathError``.
    """
    with root_fd(root) as rfd:
        try:
            walker, name = _walk(rfd, path, create=False, mode=0, follow_final=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except RootPathError as err:
            if err.errno == errno.ENOTDIR:
                return None
            raise
        try:
            if name is None:
                raise RootPathError(errno.EISDIR, "is a directory", path)
            try:
                fd = os.open(
                    name,
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                    dir_fd=walker.cur,
                )
            except FileNotFoundError:
                return None
        finally:
            walker.close()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RootPathError(errno.EINVAL, "not a regular file", path)
        if st.st_size > limit:
            raise RootPathError(errno.EFBIG, f"larger than {limit} bytes", path)
        chunks = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise RootPathError(errno.EFBIG, f"larger than {limit} bytes", path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def ensure_mountpoint(root: Path, path: str, *, directory: bool) -> None:
    """Make sure a mount destination exists inside ``root`` (a directory or an empty file).

    The runtime would create it too, but doing it here keeps every creation inside the root
    even for destinations that go through symlinks in the image.
    """
    parent = str(PurePosixPath(clean(path)).parent)
    name = PurePosixPath(clean(path)).name
    if not name:
        return
    with root_fd(root) as rfd:
        walker, _ = _walk(rfd, parent, create=True, mode=0o755, follow_final=True)
        try:
            try:
                st = os.stat(name, dir_fd=walker.cur, follow_symlinks=False)
            except FileNotFoundError:
                if directory:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=walker.cur)
                else:
                    fd = os.open(
                        name,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o644,
                        dir_fd=walker.cur,
                    )
                    os.close(fd)
                return
            if stat.S_ISLNK(st.st_mode):
                # resolve the link inside the root and create its target there
                target = resolve(root, path)
                if clean(target) != clean(path):
                    ensure_mountpoint(root, target, directory=directory)
        finally:
            walker.close()
