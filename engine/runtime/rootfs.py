"""A container's root file system: image snapshots plus its own writable layer.

Layout in the container directory::

    init/     docker's "init layer": empty /etc/hosts, /etc/hostname, /etc/resolv.conf,
              /proc, /sys, /dev/... so mount points never show up as container changes
    upper/    overlay: the container's changes (whiteouts as char 0/0, opaque xattrs)
    work/     overlay's work dir
    rootfs/   overlay: the merged mount point; copy: a full copy of the image tree

``overlay``: ``lowerdir=init:<image layers topmost first>``. mount(2) data must fit in a
page, so the image layers are named through ``/proc/self/fd/<snapshot root fd>/<id>/fs``
(a few bytes each) and the mount runs in a thread of this process. ``copy`` (no overlayfs):
``cp -a --reflink=auto`` of the image's full tree at create time, init paths created inside
it with the confined helpers of ``fsroot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from engine.digest import Digest
from engine.errors import PortsideError
from engine.runtime import fsroot
from engine.store import mounts
from engine.store.snapshots import OverlaySnapshotter, Snapshotter

PAGE = 4096
INIT_DIRS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "etc")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == target:
                return True
    return False


def _unmount(path: Path) -> None:
    if not is_mounted(path):
        return
    try:
        mounts.umount(path)
    except OSError:
        mounts.umount(path, mounts.MNT_DETACH)


class Rootfs:
    """Root file systems of containers on top of one snapshotter."""

    def __init__(self, snapshots: Snapshotter) -> None:
        self.snapshots = snapshots
        self.overlay = isinstance(snapshots, OverlaySnapshotter)

    @property
    def driver(self) -> str:
        return self.snapshots.driver

    # -- create -------------------------------------------------------------------------------
    async def prepare(self, cdir: Path, chain: Digest | None, extra_init: list[str]) -> None:
        """Create the container's layers (at ``create``)."""
        await asyncio.to_thread(self._prepare, cdir, chain, extra_init)

    def _prepare(self, cdir: Path, chain: Digest | None, extra_init: list[str]) -> None:
        rootfs = cdir / "rootfs"
        if self.overlay:
            for sub in ("upper", "work"):
                (cdir / sub).mkdir(mode=0o755)
            rootfs.mkdir(mode=0o755)
            init = cdir / "init"
            init.mkdir(mode=0o755)
            for d in INIT_DIRS:
                (init / d).mkdir(mode=0o755, exist_ok=True)
            for f in INIT_FILES:
                (init / f).touch(mode=0o644)
            for path in extra_init:
                target = init / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch(mode=0o644)
            with contextlib.suppress(FileExistsError):
                os.symlink("/proc/mounts", init / "etc" / "mtab")
            return
        if chain is None:
            rootfs.mkdir(mode=0o755)
        else:
            self._copy(self.snapshots.fs_path(chain), rootfs)
        for d in INIT_DIRS:
            fsroot.mkdir_all(rootfs, d)
        for f in (*INIT_FILES, *extra_init):
            fsroot.ensure_mountpoint(rootfs, f, directory=False)

    @staticmethod
    def _copy(source: Path, dest: Path) -> None:
        import subprocess

        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", str(source), str(dest)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=3600,
        )
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise PortsideError(f"cannot copy the image for the container: {lines[-1:]}")

    def init_paths(self, extra_init: list[str]) -> list[str]:
        """Paths of the init layer (never reported as changes)."""
        return ["/" + p for p in (*INIT_FILES, "etc/mtab")] + [
            "/" + p.lstrip("/") for p in extra_init
        ]

    # -- mount ---------------------------------------------------------------------------------
    def lowerdirs(self, cdir: Path, chain: Digest | None, root_fd: int) -> str:
        parts = [str(cdir / "init")]
        if chain is not None:
            assert isinstance(self.snapshots, OverlaySnapshotter)
            rel = self.snapshots.overlay_lowerdir(chain)
            parts.extend(f"/proc/self/fd/{root_fd}/{p}" for p in rel.split(":"))
        return ":".join(parts)

    async def mount(self, cdir: Path, chain: Digest | None) -> Path:
        """Mount the merged root (overlay) if needed; returns the rootfs path."""
        rootfs = cdir / "rootfs"
        if self.overlay:
            await asyncio.to_thread(self._mount, cdir, chain)
        return rootfs

    def _mount(self, cdir: Path, chain: Digest | None) -> None:
        rootfs = cdir / "rootfs"
        if is_mounted(rootfs):
            return
        root_fd = os.open(self.snapshots.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            data = (
                f"lowerdir={self.lowerdirs(cdir, chain, root_fd)},"
                f"upperdir={cdir / 'upper'},workdir={cdir / 'work'}"
            )
            if len(data) >= PAGE:
                raise PortsideError(
                    "the image has too many layers to mount (overlay options over one page)"
                )
            try:
                mounts.mount("overlay", rootfs, "overlay", 0, data)
            except OSError as err:
                raise PortsideError(
                    f"cannot mount the container's root file system: {err.strerror}"
                ) from None
        finally:
            os.close(root_fd)

    async def unmount(self, cdir: Path) -> None:
        if self.overlay:
            await asyncio.to_thread(_unmount, cdir / "rootfs")

    @contextlib.asynccontextmanager
    async def view(self, cdir: Path, chain: Digest | None):  # type: ignore[no-untyped-def]
        """The merged tree for reading (export): the live mount, or a temporary one."""
        rootfs = cdir / "rootfs"
        if not self.overlay or await asyncio.to_thread(is_mounted, rootfs):
            yield rootfs
            return
        view = cdir / "view"
        await asyncio.to_thread(view.mkdir, mode=0o700, exist_ok=True)

        def _mount_ro() -> None:
            root_fd = os.open(self.snapshots.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                lowers = f"{cdir / 'upper'}:{self.lowerdirs(cdir, chain, root_fd)}"
                mounts.mount("overlay", view, "overlay", mounts.MS_RDONLY, f"lowerdir={lowers}")
            finally:
                os.close(root_fd)

        await asyncio.to_thread(_mount_ro)
        try:
            yield view
        finally:
            await asyncio.to_thread(_unmount, view)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(view.rmdir)

    # -- remove -----------------------------------------------------------------------------------
    async def remove(self, cdir: Path) -> None:
        """Unmount and delete a container's directory; OSError when something holds it
        (a mount inside, a busy file), with the directory left for a later attempt."""
        await self.unmount(cdir)
        await asyncio.to_thread(_unmount, cdir / "view")
        try:
            await asyncio.to_thread(shutil.rmtree, cdir)
        except FileNotFoundError:
            pass
