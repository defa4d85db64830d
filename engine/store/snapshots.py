"""Snapshotters: unpacked layer trees keyed by ChainID (``overlay`` and ``copy`` drivers).

On-disk layout of ``<engine root>/snapshots/<driver>/`` (mode 0700)::

    .lock                 flock: shared while an apply/remove runs, exclusive for cleanup
    locks/<alg>-<hex>     per-chain flock: one apply of a chain at a time, across processes
    tmp/<random>/         work in progress (fs/, view/); whatever is here after a crash is
                          removed by the next open_snapshotter() or apply()
    <id>/fs/              committed tree; <id> is a short decimal number so that overlay
    <id>/meta.json        lowerdir strings stay short; meta.json records chain, parent, DiffID
    chains/<alg>-<hex>    symlink to <id>: creating it is the commit point
    empty/                an empty dir (second lower of a one-layer read-only view)

``overlay``: each ``fs/`` holds only its layer's changes, whiteouts stored as overlayfs wants
(char 0/0, ``trusted.overlay.opaque=y``); ``lowers()`` lists the chain topmost first.
``copy``: each ``fs/`` is a full tree (``cp -a --reflink=auto`` of the parent, then the layer
with whiteouts applied as deletions). Layers are applied by ``engine.store.unpack`` in a
chrooted helper process into ``tmp/``, the DiffID is checked, then the tree is renamed into
place and linked.

Mounting many lowers (for the runtime): mount(2) data must fit in one page, so pass lowerdir
paths relative to ``Snapshotter.root`` (``overlay_lowerdir()``) and run the mount with that
directory as the working directory (a helper process or ``mount -o lowerdir=... `` with
``cwd=root``, as ``merged_view`` does), like containerd's compaction. Short ids give room for
about 500 lowers, overlayfs's own limit.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from engine.digest import Digest
from engine.errors import Conflict, InvalidArgument, NotFound, PortsideError, VerificationError
from engine.store import mounts
from engine.store.unpack import OPAQUE_XATTR, unpack_layer
from engine.store.unpack_server import UnpackServer

DRIVERS = ("overlay", "copy")
MAX_LAYERS = 500  # overlayfs refuses deeper stacks


@dataclass(frozen=True)
class LayerResult:
    """Outcome of applying one layer."""

    diff_id: Digest  # sha256 of the uncompressed tar stream
    size: int  # bytes of file content written (unpacked size)


def chain_of(parent: Digest | None, diff_id: Digest) -> Digest:
    """ChainID of a layer with DiffID ``diff_id`` on top of the chain ``parent``."""
    return diff_id if parent is None else Digest.of_bytes(f"{parent} {diff_id}".encode())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)  # report what could not go


async def _flock(fd: int, op: int) -> None:
    """Take a flock without blocking the event loop (polls with backoff)."""
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)


class Snapshotter(abc.ABC):
    """Committed layer trees keyed by ChainID; see the module docstring for the layout."""

    driver: str = ""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("tmp", "chains", "locks"):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
        self._locks: dict[Digest, asyncio.Lock] = {}
        self._meta: dict[tuple[Digest, str], dict[str, object]] = {}
        self.unpacker = UnpackServer()  # warm unpack helper, started on the first apply

    async def close(self) -> None:
        """Stop the warm unpack helper (a later apply starts per-call helpers instead)."""
        await self.unpacker.close()

    # -- lookups -------------------------------------------------------------------------
    @staticmethod
    def _key(chain: Digest) -> str:
        return f"{chain.algorithm}-{chain.hex}"

    def _id(self, chain: Digest) -> str | None:
        try:
            sid = os.readlink(self.root / "chains" / self._key(chain))
        except OSError:
            return None
        if not sid.isdigit() or not (self.root / sid / "meta.json").is_file():
            return None
        return sid

    def _require(self, chain: Digest) -> str:
        sid = self._id(chain)
        if sid is None:
            raise NotFound(f"snapshot {chain} does not exist; pull the image again")
        return sid

    def _read_meta(self, chain: Digest) -> dict[str, object]:
        sid = self._require(chain)
        meta = self._meta.get((chain, sid))
        if meta is None:
            meta = json.loads((self.root / sid / "meta.json").read_text())
            self._meta[(chain, sid)] = meta
        return meta

    def exists(self, chain_id: Digest) -> bool:
        return self._id(chain_id) is not None

    def fs_path(self, chain_id: Digest) -> Path:
        """The committed tree of this chain (overlay: only this layer's changes)."""
        return self.root / self._require(chain_id) / "fs"

    def parent(self, chain_id: Digest) -> Digest | None:
        value = self._read_meta(chain_id).get("parent")
        return Digest.parse(str(value)) if value else None

    def size(self, chain_id: Digest) -> int:
        """Bytes of file content the layer wrote (its unpacked size)."""
        return int(self._read_meta(chain_id)["size"])  # type: ignore[call-overload]

    def diff_id(self, chain_id: Digest) -> Digest:
        return Digest.parse(str(self._read_meta(chain_id)["diff_id"]))

    def list(self) -> list[Digest]:
        """Every committed chain, children before their parents (so removing in this order
        never hits a parent that still has children)."""
        found: dict[Digest, Digest | None] = {}
        for name in os.listdir(self.root / "chains"):
            alg, _, hexpart = name.partition("-")
            try:
                chain = Digest.parse(f"{alg}:{hexpart}")
                found[chain] = self.parent(chain)
            except (InvalidArgument, NotFound):
                continue
        depth: dict[Digest, int] = {}

        def depth_of(chain: Digest) -> int:
            steps, cur = 0, found.get(chain)
            while cur is not None and steps < MAX_LAYERS:
                if cur in depth:
                    return depth[cur] + steps + 1
                steps, cur = steps + 1, found.get(cur)
            return steps

        for chain in found:
            depth[chain] = depth_of(chain)
        return sorted(found, key=lambda c: (-depth[c], c))

    def chain_ids(self, chain_id: Digest) -> list[Digest]:
        """This chain and its ancestors, topmost first."""
        out = [chain_id]
        parent = self.parent(chain_id)
        while parent is not None:
            if len(out) >= MAX_LAYERS:
                raise PortsideError(f"snapshot {chain_id} has more than {MAX_LAYERS} layers")
            out.append(parent)
            parent = self.parent(parent)
        return out

    @abc.abstractmethod
    def lowers(self, chain_id: Digest) -> list[Path]:
        """Directories that make up the chain's tree, topmost first."""

    # -- locking and cleanup ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _shared(self) -> AsyncIterator[int]:
        """Hold the driver lock shared (cleaning up first when nobody else holds it)."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await _flock(fd, fcntl.LOCK_SH)
            else:
                try:
                    await asyncio.to_thread(self._cleanup_locked)
                finally:
                    await _flock(fd, fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def _chain_lock(self, chain: Digest) -> AsyncIterator[None]:
        lock = self._locks.setdefault(chain, asyncio.Lock())
        async with lock:
            path = self.root / "locks" / self._key(chain)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                await _flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def cleanup(self) -> bool:
        """Remove leftovers of crashed applies; skipped (False) while another one runs."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._cleanup_locked()
            return True
        finally:
            os.close(fd)

    def _cleanup_locked(self) -> None:
        """Best effort (what cannot go now is retried next time); caller holds .lock."""
        tmp = self.root / "tmp"
        for name in os.listdir(tmp):
            with contextlib.suppress(OSError):
                _rmtree(tmp / name)
        referenced: set[str] = set()
        chains = self.root / "chains"
        for name in os.listdir(chains):
            link = chains / name
            try:
                sid = os.readlink(link)
            except OSError:
                sid = ""
            if sid.isdigit() and (self.root / sid / "meta.json").is_file():
                referenced.add(sid)
            else:
                with contextlib.suppress(OSError):
                    link.unlink()
        for name in os.listdir(self.root):
            if name.isdigit() and name not in referenced:
                trash = tmp / secrets.token_hex(8)
                with contextlib.suppress(OSError):
                    os.rename(self.root / name, trash)
                    _rmtree(trash)
        for name in os.listdir(self.root / "locks"):
            with contextlib.suppress(OSError):
                (self.root / "locks" / name).unlink()  # nobody holds them: we have the lock

    # -- apply and remove --------------------------------------------------------------------
    def _committed(self, chain: Digest) -> LayerResult | None:
        if not self.exists(chain):
            return None
        meta = self._read_meta(chain)
        return LayerResult(Digest.parse(str(meta["diff_id"])), int(meta["size"]))  # type: ignore[call-overload]

    @abc.abstractmethod
    async def _prepare(self, work: Path, parent: Digest | None) -> list[str]:
        """Create ``work/fs`` for the new layer; returns the lowers the helper reads."""

    async def apply(
        self,
        chain_id: Digest,
        parent: Digest | None,
        blob: Path,
        expected_diff_id: Digest | None,
        progress: Callable[[int], None] | None = None,
    ) -> LayerResult:
        """Unpack the layer ``blob`` on top of ``parent`` and commit it as ``chain_id``.

        Idempotent: an already committed chain is returned as is (also when another task or
        process commits it meanwhile). ``progress`` receives compressed bytes read so far.
        """
        if expected_diff_id is not None and chain_of(parent, expected_diff_id) != chain_id:
            raise InvalidArgument(
                f"chain id {chain_id} does not follow from parent {parent} and DiffID "
                f"{expected_diff_id}; the image config is inconsistent"
            )
        done = self._committed(chain_id)
        if done is not None:
            return done
        async with self._shared() as lock_fd, self._chain_lock(chain_id):
            done = self._committed(chain_id)
            if done is not None:
                return done
            if parent is not None and not self.exists(parent):
                raise NotFound(
                    f"parent snapshot {parent} of {chain_id} does not exist; "
                    "apply the lower layers first"
                )
            work = self.root / "tmp" / secrets.token_hex(8)
            work.mkdir(mode=0o700)
            try:
                lowers = await self._prepare(work, parent)
                result = await unpack_layer(
                    blob,
                    work / "fs",
                    overlay=self.driver == "overlay",
                    lowers=lowers,
                    lower_root=self.root,
                    view=work / "view",
                    progress=progress,
                    pass_fds=(lock_fd,),
                    server=self.unpacker,
                )
                if expected_diff_id is not None and result.diff_id != expected_diff_id:
                    raise VerificationError(
                        f"layer {blob.name} unpacks to DiffID {result.diff_id} but the image "
                        f"config says {expected_diff_id}; the image is corrupt or tampered with"
                    )
                if chain_of(parent, result.diff_id) != chain_id:
                    raise VerificationError(
                        f"layer {blob.name} (DiffID {result.diff_id}) does not produce chain "
                        f"{chain_id}; the image is corrupt or tampered with"
                    )
                meta = {
                    "chain": str(chain_id),
                    "parent": str(parent) if parent else None,
                    "diff_id": str(result.diff_id),
                    "size": result.size,
                    "entries": result.entries,
                    "compression": result.compression,
                }
                await asyncio.to_thread(self._commit, work, chain_id, meta)
            except BaseException:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(asyncio.to_thread(_rmtree, work))
                raise
        return LayerResult(result.diff_id, result.size)

    def _commit(self, work: Path, chain: Digest, meta: dict[str, object]) -> None:
        with contextlib.suppress(FileNotFoundError):
            (work / "view").rmdir()
        meta_path = work / "meta.json"
        with open(meta_path, "w") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        ids = [int(n) for n in os.listdir(self.root) if n.isdigit()]
        sid = max(ids, default=0) + 1
        while True:
            try:
                os.rename(work, self.root / str(sid))
                break
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                sid += 1  # another process took this id
        _fsync_dir(self.root)
        link = self.root / "chains" / self._key(chain)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(str(sid), link)
        _fsync_dir(link.parent)

    async def remove(self, chain_id: Digest) -> None:
        """Delete a committed snapshot; refused while another snapshot builds on it."""
        async with self._shared(), self._chain_lock(chain_id):
            sid = self._require(chain_id)
            children = [c for c in self.list() if c != chain_id and self.parent(c) == chain_id]
            if children:
                raise Conflict(
                    f"snapshot {chain_id} is the parent of {children[0]}; remove that first"
                )
            (self.root / "chains" / self._key(chain_id)).unlink()
            trash = self.root / "tmp" / secrets.token_hex(8)
            os.rename(self.root / sid, trash)
            self._meta.pop((chain_id, sid), None)
            await asyncio.to_thread(_rmtree, trash)


class OverlaySnapshotter(Snapshotter):
    """One directory of changes per layer, stacked by overlayfs."""

    driver = "overlay"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (self.root / "empty").mkdir(mode=0o755, exist_ok=True)

    def lowers(self, chain_id: Digest) -> list[Path]:
        return [self.fs_path(c) for c in self.chain_ids(chain_id)]

    def overlay_lowerdir(self, chain_id: Digest) -> str:
        """``lowerdir=`` value with paths relative to ``self.root`` (mount from that cwd)."""
        return ":".join(f"{self._require(c)}/fs" for c in self.chain_ids(chain_id))

    async def _prepare(self, work: Path, parent: Digest | None) -> list[str]:
        (work / "fs").mkdir(mode=0o755)
        (work / "view").mkdir(mode=0o700)
        if parent is None:
            return []
        return self.overlay_lowerdir(parent).split(":")


class CopySnapshotter(Snapshotter):
    """A full tree per snapshot: slow and big, but works on any filesystem."""

    driver = "copy"

    def lowers(self, chain_id: Digest) -> list[Path]:
        return [self.fs_path(chain_id)]

    async def _prepare(self, work: Path, parent: Digest | None) -> list[str]:
        if parent is None:
            (work / "fs").mkdir(mode=0o755)
            return []
        source = self.fs_path(parent)
        proc = await asyncio.create_subprocess_exec(
            "cp",
            "-a",
            "--reflink=auto",
            "--",
            str(source),
            str(work / "fs"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise PortsideError(
                f"cannot copy snapshot {parent} for the next layer: "
                f"{lines[-1] if lines else proc.returncode}"
            )
        return []


# -- choosing a driver -----------------------------------------------------------------------
_OVERLAY_OK: dict[str, bool] = {}


def _probe_overlay(base: Path) -> bool:
    """Mount a real overlay under ``base``: whiteouts, opaque dirs and an upper must work."""
    if os.geteuid() != 0:
        return False
    probe = base / f".probe-{secrets.token_hex(4)}"
    try:
        for sub in ("l1/d", "l2/d", "up", "work", "m"):
            (probe / sub).mkdir(parents=True)
        (probe / "l1" / "x").write_bytes(b"x")
        (probe / "l1" / "d" / "y").write_bytes(b"y")
        os.mknod(probe / "l2" / "x", stat.S_IFCHR, 0)
        os.setxattr(probe / "l2" / "d", OPAQUE_XATTR, b"y")
        opts = f"lowerdir={probe}/l2:{probe}/l1,upperdir={probe}/up,workdir={probe}/work"
        mounts.mount("overlay", probe / "m", "overlay", 0, opts)
        try:
            merged = probe / "m"
            ok = not (merged / "x").exists() and not os.listdir(merged / "d")
            (merged / "d" / "new").write_bytes(b"n")
        finally:
            try:
                mounts.umount(probe / "m")
            except OSError:
                mounts.umount(probe / "m", mounts.MNT_DETACH)
        return ok and (probe / "up" / "d" / "new").is_file()
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def overlay_supported(base: Path) -> bool:
    """Whether overlay snapshots work under ``base`` (probed once per directory)."""
    key = str(base.resolve())
    if key not in _OVERLAY_OK:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        _OVERLAY_OK[key] = _probe_overlay(base)
    return _OVERLAY_OK[key]


def open_snapshotter(root: Path, prefer: str | None = None) -> Snapshotter:
    """The snapshotter under ``<root>/snapshots``: overlay when this kernel and filesystem
    support it (a real mount is probed once), else copy; ``prefer`` forces one.

    Cleans up what a crashed apply left behind. Blocks briefly (a probe mount, removals):
    async callers may run it with ``asyncio.to_thread``.
    """
    if prefer not in (None, "", *DRIVERS):
        raise InvalidArgument(f"unknown snapshotter {prefer!r}: use overlay or copy")
    base = Path(root) / "snapshots"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    cls: type[Snapshotter]
    if prefer == "copy":
        cls = CopySnapshotter
    elif overlay_supported(base):
        cls = OverlaySnapshotter
    elif prefer == "overlay":
        raise PortsideError(
            f"the overlay snapshotter does not work under {base} (needs root, overlayfs and a "
            "filesystem with trusted xattrs); use the copy snapshotter"
        )
    else:
        cls = CopySnapshotter
    snap = cls(base / cls.driver)
    snap.cleanup()
    return snap


async def _run(argv: list[str], cwd: Path | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise PortsideError(f"{argv[0]} failed: {err.decode(errors='replace').strip()}")


@contextlib.asynccontextmanager
async def merged_view(snap: Snapshotter, chain_id: Digest) -> AsyncIterator[Path]:
    """The merged file tree of ``chain_id``, for tests and export.

    overlay: a read-only overlay mount of the chain's lowers on a temporary directory,
    unmounted on exit; copy: the snapshot's own tree (do not modify it).
    """
    if not isinstance(snap, OverlaySnapshotter):
        yield snap.fs_path(chain_id)
        return
    lowerdir = snap.overlay_lowerdir(chain_id)
    if ":" not in lowerdir:
        lowerdir += ":empty"  # overlayfs wants two lowers when there is no upper
    mnt = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="portside-view-"))
    try:
        await _run(
            ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowerdir}", str(mnt)],
            cwd=snap.root,
        )
        try:
            yield mnt
        finally:
            await _run(["umount", str(mnt)])
    finally:
        os.rmdir(mnt)
