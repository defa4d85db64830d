"""``RUN --mount``: the host side of cache, bind, tmpfs and secret mounts for one RUN step.

``RunMounts`` is an async context manager: entering it prepares every mount of one RUN and
``host_mounts`` gives them as ``HostConfig.Mounts`` entries for the container service;
leaving it removes everything temporary. Cache mounts are directories that persist under
``<root>/build-mounts/cache/`` across builds, keyed by a hash of their id (``sharing=locked``
serialises users with an asyncio lock, ``private`` gives a second user its own directory).
Bind mounts of the context are a filtered copy (``.dockerignore`` respected); bind mounts
of a stage or image use the read-only merged view, or a throwaway copy with ``rw`` so that
writes are discarded. Secrets are files in a private temporary directory, mounted read-only,
never part of the image. Sources are resolved inside their own tree; a path escaping it is
an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import shutil
import tempfile
import weakref
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from engine.build.context import BuildContext, ImageTree, remove_dir
from engine.build.instructions import Mount
from engine.errors import InvalidArgument

SECRET_MODE = 0o400
CACHE_MODE = 0o755

# Resolves a mount's ``from=`` into a tree: (root, the context when it is one, cache key).
Resolver = Callable[[str | None], Awaitable[tuple[Path | None, BuildContext | None, str]]]

# per event loop (an asyncio.Lock belongs to one): cache path -> lock
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_in_use: dict[str, int] = {}


def _lock(path: Path) -> asyncio.Lock:
    locks = _locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(str(path), asyncio.Lock())


def cache_dir(root: Path, cache_id: str) -> Path:
    """The persistent directory of cache mount ``cache_id`` under engine root ``root``."""
    return root / "build-mounts" / "cache" / hashlib.sha256(cache_id.encode()).hexdigest()


def _copy_tree(src: Path, dst: Path, keep: Callable[[Path], bool] | None) -> None:
    """Copy ``src`` (a file or a tree; symlinks kept as links) to ``dst``."""
    if src.is_dir() and not src.is_symlink():

        def ignore(directory: str, names: list[str]) -> set[str]:
            if keep is None:
                return set()
            return {n for n in names if not keep(Path(directory) / n)}

        shutil.copytree(src, dst, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


class RunMounts:
    """The mounts of one RUN step (see the module docstring)."""

    def __init__(
        self,
        *,
        root: Path,
        mounts: list[Mount],
        resolve: Resolver,
        secrets: Mapping[str, bytes],
        where: str,
    ) -> None:
        self.root = root
        self.mounts = mounts
        self.resolve = resolve
        self.secrets = secrets
        self.where = where
        self.host_mounts: list[dict[str, Any]] = []
        self.env: dict[str, str] = {}
        self.key_parts: list[str] = []
        self._stack = contextlib.AsyncExitStack()
        self._tmp: Path | None = None

    def fail(self, problem: str) -> InvalidArgument:
        return InvalidArgument(f"{self.where}: RUN --mount {problem}")

    async def tmpdir(self) -> Path:
        if self._tmp is None:
            work = self.root / "build-tmp"
            await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
            self._tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="mnt-", dir=work))
            self._stack.push_async_callback(remove_dir, self._tmp)
        return self._tmp

    async def __aenter__(self) -> RunMounts:
        try:
            targets: set[str] = set()
            for mount in self.mounts:
                target = posixpath.normpath(mount.target) if mount.target else ""
                if target and target in targets:
                    raise self.fail(f"target {target!r} is used twice")
                targets.add(target)
                await self._prepare(mount, target)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def targets(self) -> list[str]:
        return [m["Target"] for m in self.host_mounts]

    async def _prepare(self, mount: Mount, target: str) -> None:
        if mount.type == "cache":
            await self._cache(mount, target)
        elif mount.type == "bind":
            await self._bind(mount, target)
        elif mount.type == "tmpfs":
            options = {"SizeBytes": mount.size} if mount.size else {}
            self.host_mounts.append({"Type": "tmpfs", "Target": target, "TmpfsOptions": options})
            self.key_parts.append(f"tmpfs:{target}:{mount.size}")
        elif mount.type == "secret":
            await self._secret(mount, target)
        else:
            raise self.fail(f"type={mount.type} is not supported by this builder")

    async def _source(self, mount: Mount, kind: str) -> tuple[Path, BuildContext | None, str]:
        """The resolved ``source`` of a bind or cache mount inside its ``from`` tree."""
        tree, context, key = await self.resolve(mount.from_)
        if tree is None:
            raise self.fail(f"from={mount.from_}: the image is empty")
        source = posixpath.normpath("/" + (mount.source or "/")).lstrip("/") or "."
        resolver = context or ImageTree.of(tree)
        try:
            real = await asyncio.to_thread(resolver.resolve, source)
        except InvalidArgument:
            raise self.fail(
                f"type={kind}: source {mount.source or '/'!r} not found in "
                f"{mount.from_ or 'the build context'}"
            ) from None
        try:
            real.relative_to(tree)
        except ValueError:
            raise self.fail(f"type={kind}: source {mount.source!r} escapes its tree") from None
        if context is not None and source != ".":
            key = await context.hash_paths([source])
        elif context is not None:
            key = await context.hash_paths(await _top_level(context))
        return real, context, key

    async def _bind(self, mount: Mount, target: str) -> None:
        real, context, key = await self._source(mount, "bind")
        self.key_parts.append(f"bind:{target}:{mount.source}:{key}:{mount.readonly}")
        if context is None and mount.readonly:
            host = real
        else:
            # the context may hold .dockerignore'd files; rw writes must not reach the source
            host = await self.tmpdir() / f"bind-{len(self.host_mounts)}"
            keep = _keeper(context) if context is not None else None
            await asyncio.to_thread(_copy_tree, real, host, keep)
        self.host_mounts.append(
            {"Type": "bind", "Source": str(host), "Target": target, "ReadOnly": mount.readonly}
        )

    async def _cache(self, mount: Mount, target: str) -> None:
        cache_id = mount.id or target
        self.key_parts.append(
            f"cache:{target}:{cache_id}:{mount.sharing}:{mount.mode}:{mount.uid}:{mount.gid}"
            f":{mount.from_}:{mount.source}"
        )
        base = cache_dir(self.root, cache_id)
        lock = _lock(base)
        if mount.sharing == "locked":
            await lock.acquire()
            self._stack.callback(lock.release)
        path = base
        if mount.sharing == "private" and _in_use.get(str(base)):
            path = base.with_name(f"{base.name}-{_in_use[str(base)]}")
        _in_use[str(base)] = _in_use.get(str(base), 0) + 1
        self._stack.callback(_release, str(base))
        async with lock if mount.sharing != "locked" else contextlib.nullcontext():
            if not await asyncio.to_thread(path.is_dir):
                seed = None
                if mount.from_ is not None:
                    seed, _, _ = await self._source(mount, "cache")
                await asyncio.to_thread(_make_cache, path, mount, seed)
        self.host_mounts.append(
            {"Type": "bind", "Source": str(path), "Target": target, "ReadOnly": mount.readonly}
        )

    async def _secret(self, mount: Mount, target: str) -> None:
        secret_id = mount.id or ""
        data = self.secrets.get(secret_id)
        if data is None:
            if mount.required:
                raise self.fail(
                    f"type=secret: secret {secret_id!r} not found: pass it with "
                    f"--secret id={secret_id},src=PATH"
                )
            return
        if mount.env:
            try:
                self.env[mount.env] = data.decode()
            except UnicodeDecodeError:
                raise self.fail(f"type=secret: secret {secret_id!r} is not text") from None
            if not mount.target:
                return
        tmp = await self.tmpdir()
        host = tmp / f"secret-{len(self.host_mounts)}"
        await asyncio.to_thread(_write_secret, host, data, mount)
        self.host_mounts.append(
            {"Type": "bind", "Source": str(host), "Target": target, "ReadOnly": True}
        )


def _release(key: str) -> None:
    _in_use[key] -= 1
    if not _in_use[key]:
        del _in_use[key]


def _make_cache(path: Path, mount: Mount, seed: Path | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=path.parent))
    try:
        if seed is not None:
            _copy_tree(seed, tmp, None)
        os.chmod(tmp, CACHE_MODE if mount.mode is None else mount.mode)
        os.chown(tmp, mount.uid or 0, mount.gid or 0)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_secret(host: Path, data: bytes, mount: Mount) -> None:
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chown(host, mount.uid or 0, mount.gid or 0)
    os.chmod(host, SECRET_MODE if mount.mode is None else mount.mode)


def _keeper(ctx: BuildContext) -> Callable[[Path], bool]:
    def keep(path: Path) -> bool:
        try:
            rel = path.relative_to(ctx.root).as_posix()
        except ValueError:
            return True
        return ctx.sent(rel, path)

    return keep


async def _top_level(ctx: BuildContext) -> list[str]:
    return [f for f in await ctx.files() if "/" not in f]
