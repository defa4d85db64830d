"""stats, top, diff, export and commit of containers (a mixin of ``ContainerService``):
cgroup counters in docker's stats shape, ``ps`` limited to the container's cgroup, the
changes of its writable layer, a tar of its file system, and new images from its changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING, Any

from engine.digest import Digest
from engine.errors import Conflict, InvalidArgument, PortsideError
from engine.runtime import cgroups, fsroot, views
from engine.runtime import changes as changes_mod
from engine.runtime import commit as commit_mod
from engine.runtime import record as records
from engine.runtime.monitor import rfc3339nano
from engine.runtime.record import Record

if TYPE_CHECKING:
    pass


class ToolsMixin:
    """The inspection tools of ``ContainerService``."""

    def _cgroup(self, rec: Record) -> cgroups.ContainerCgroup:
        if rec.Cgroup:
            return cgroups.ContainerCgroup.from_json(rec.Cgroup)
        return cgroups.container_cgroup(rec.State.Pid)

    async def _sample(self, rec: Record) -> dict[str, Any]:
        now = rfc3339nano()
        if not rec.State.Running:
            return {
                "read": records.ZERO_TIME,
                "cpu_stats": {},
                "memory_stats": {},
                "pids_stats": {},
            }
        cg = self._cgroup(rec)
        data = await asyncio.to_thread(cgroups.stats, cg)
        nets = await asyncio.to_thread(cgroups.network_stats, rec.State.Pid)
        sample: dict[str, Any] = {"read": now, **data, "num_procs": 0, "storage_stats": {}}
        if nets:
            sample["networks"] = nets
        return sample

    async def stats(
        self, name: str, *, stream: bool = True, one_shot: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """docker's stats objects; ``stream`` yields one a second until the container stops."""
        rec = self._get(name)
        empty_pre = {"cpu_usage": {"total_usage": 0}, "throttling_data": {}}
        previous: dict[str, Any] | None = None
        if not stream and not one_shot and rec.State.Running:
            previous = await self._sample(rec)
            await asyncio.sleep(1.0)
        while True:
            sample = await self._sample(rec)
            sample["preread"] = previous["read"] if previous else records.ZERO_TIME
            sample["precpu_stats"] = previous["cpu_stats"] if previous else empty_pre
            sample["name"] = rec.Name
            sample["id"] = rec.Id
            yield sample
            if not stream or not rec.State.Running:
                return
            previous = sample
            await asyncio.sleep(1.0)

    async def last_stats(self, name: str) -> dict[str, Any]:
        """One sample without waiting (a convenience for callers that poll)."""
        async for sample in self.stats(name, stream=False, one_shot=True):
            return sample
        return {}

    async def top(self, name: str, ps_args: str = "-ef") -> dict[str, Any]:
        """docker top: ``ps`` on the host, limited to the container's processes."""
        rec = self._get(name)
        if not rec.State.Running:
            raise Conflict(f"Container {rec.Id} is not running")
        pids = set(await asyncio.to_thread(cgroups.pids, self._cgroup(rec)))
        args = (ps_args or "-ef").split()
        proc = await asyncio.create_subprocess_exec(
            "ps",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidArgument(f"ps {ps_args}: {err.decode(errors='replace').strip()}")
        lines = out.decode(errors="replace").splitlines()
        if not lines:
            return {"Titles": [], "Processes": []}
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidArgument(f"ps {ps_args} prints no PID column; give other options")
        col = titles.index("PID")
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    def _excluded(self, rec: Record) -> set[str]:
        """The init layer's paths: never changes of the container."""
        return set(rec.InitPaths)

    def _mountpoints(self, rec: Record) -> set[str]:
        """Mount destinations: the mount point is the container's (made at start, as
        docker makes it, and kept by commit), what is mounted there is not."""
        return {fsroot.clean(m["destination"]) for m in rec.Mounts}

    async def changes(self, name: str) -> list[dict[str, Any]]:
        """docker diff: ``[{"Path", "Kind"}]`` (0 changed, 1 added, 2 deleted)."""
        rec = self._get(name)
        cdir = self._dir(rec.Id)
        exclude = self._excluded(rec)
        if self.rootfs.overlay:
            lowers = [cdir / "init"]
            if rec.Chain:
                lowers += self.snapshots.lowers(Digest.parse(rec.Chain))
            found = await asyncio.to_thread(
                changes_mod.overlay_changes, cdir / "upper", lowers, exclude, self._mountpoints(rec)
            )
        else:
            image = self.snapshots.fs_path(Digest.parse(rec.Chain)) if rec.Chain else None
            found = await asyncio.to_thread(
                changes_mod.naive_changes, cdir / "rootfs", image, exclude, self._mountpoints(rec)
            )
        return [{"Path": p, "Kind": k} for p, k in found]

    async def export(self, name: str) -> AsyncIterator[bytes]:
        """docker export: a tar stream of the container's whole file system."""
        rec = self._get(name)
        cdir = self._dir(rec.Id)
        chain = Digest.parse(rec.Chain) if rec.Chain else None
        async with self.rootfs.view(cdir, chain) as tree:
            async for chunk in _tar_stream(lambda fh: changes_mod.write_tree(fh, tree)):
                yield chunk
        self._publish(rec, "export")

    async def commit(
        self,
        name: str,
        *,
        repo: str | None = None,
        tag: str | None = None,
        comment: str = "",
        author: str = "",
        changes: list[str] | None = None,
        pause: bool = True,
        config: dict[str, Any] | None = None,
        created_by: str | None = None,
        exclude: Collection[str] = (),
    ) -> dict[str, str]:
        """docker commit: a new image from the container's changes; ``{"Id": image id}``.
        ``created_by`` replaces the history text (the builder's), ``exclude`` leaves paths out."""
        rec = self._get(name)
        cdir = self._dir(rec.Id)
        paused_here = False
        if pause and rec.State.Running and not rec.State.Paused:
            await self.pause(rec.Id)
            paused_here = True
        try:
            exclude = self._excluded(rec) | set(exclude)
            if self.rootfs.overlay:
                upper = cdir / "upper"
                mountpoints = self._mountpoints(rec)

                def write_tar(fh: Any) -> None:
                    changes_mod.write_layer_overlay(fh, upper, exclude, mountpoints)
            else:
                found = await self.changes(rec.Id)
                pairs = [(c["Path"], c["Kind"]) for c in found if c["Path"] not in exclude]

                def write_tar(fh: Any) -> None:
                    changes_mod.write_layer_naive(fh, cdir / "rootfs", pairs)

            base_config = {**rec.Config, **(config or {})}
            image_id = await commit_mod.commit(
                images=self.images,
                parent_id=rec.Image,
                container_id=rec.Id,
                container_config=base_config,
                write_tar=write_tar,
                workdir=cdir,
                repo=repo,
                tag=tag,
                comment=comment,
                author=author,
                changes=list(changes or []),
                created_by=views.command_text(rec) if created_by is None else created_by,
            )
        finally:
            if paused_here:
                with contextlib.suppress(PortsideError):
                    await self.unpause(rec.Id)
        self._publish(rec, "commit", {"comment": comment, "imageID": image_id})
        return {"Id": image_id}


async def _tar_stream(write: Any) -> AsyncIterator[bytes]:
    """Run ``write(file)`` in a thread over a pipe; yield what it writes."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    loop = asyncio.get_running_loop()

    def produce() -> None:
        with open(wfd, "wb", buffering=1 << 16) as fh:
            write(fh)

    task = loop.run_in_executor(None, produce)
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe = open(rfd, "rb", buffering=0)  # noqa: SIM115 - the transport owns and closes it
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while chunk := await reader.read(1 << 16):
            yield chunk
        await task
    finally:
        transport.close()
        if not task.done():
            with contextlib.suppress(BaseException):
                await task
