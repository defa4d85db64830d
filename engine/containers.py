"""The container service: docker's container lifecycle on crun/runc with one monitor each.

State lives on disk, one directory per container (``<root>/containers/<id>/``: the record
``container.json``, the OCI bundle ``config.json``, the rootfs layers, hosts/resolv.conf,
the json-file log and the monitor's files). Containers never depend on the engine: each
runs under its own monitor process (``engine/runtime/monitor.py``), so killing the engine
leaves them running; ``open()`` reconciles every record with the monitors and exit files,
restarts what the restart policies ask for and removes ``--rm`` containers that exited.

Answers have the Docker Engine API's shapes (``inspect``, ``/containers/json`` items,
``wait`` results) so ``engine/api`` only translates. Methods returning ``bool`` say whether
anything changed (False is docker's 304 Not Modified).

Networks: ``none`` (the default), ``host``, ``bridge`` and user-defined networks,
``container:NAME`` (``engine/runtime/networking.py`` sets them up at start and tears them
down at exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import Conflict, InvalidArgument, NotFound, PortsideError
from engine.network.networks import NetworkService
from engine.runtime import (
    cgroups,
    driver,
    etcfiles,
    fsroot,
    hostconfig,
    monitorclient,
    names,
    seccomp_cache,
    spec,
    users,
)
from engine.runtime import record as records
from engine.runtime.archive.service import ArchiveMixin
from engine.runtime.attach import Attachment
from engine.runtime.execs import ExecMixin, ExecRecord
from engine.runtime.hostconfig import MountSpec
from engine.runtime.listing import ListingMixin, dir_size
from engine.runtime.logs import parse_timestamp_arg
from engine.runtime.monitor import rfc3339nano
from engine.runtime.monitorclient import AttachStream, ContainerStartError, StartError
from engine.runtime.networking import NetworkingMixin
from engine.runtime.record import Record
from engine.runtime.rootfs import Rootfs
from engine.runtime.signals import parse_signal
from engine.runtime.streams import StreamsMixin
from engine.runtime.tools import ToolsMixin

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.events import EventBus
    from engine.images import ImageService
    from engine.store.snapshots import Snapshotter
    from engine.volumes import VolumeService

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 30.0
RESTART_BACKOFF_MAX = 60.0
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


@dataclass
class _Runtime:
    """What the service keeps in memory for one container."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None
    restart_task: asyncio.Task[None] | None = None
    waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = field(default_factory=list)
    pending_attach: list[Attachment] = field(default_factory=list)
    removing: bool = False


def _now() -> str:
    return rfc3339nano()


class ContainerService(
    NetworkingMixin, ListingMixin, StreamsMixin, ExecMixin, ToolsMixin, ArchiveMixin
):
    """Containers of one engine root (see the module docstring)."""

    def __init__(
        self,
        *,
        root: Path,
        images: ImageService,
        snapshots: Snapshotter,
        events: EventBus,
        volumes: VolumeService,
        runtimes: driver.Runtimes,
        networks: NetworkService | None = None,
        durable: bool = True,
    ) -> None:
        self.root = root / "containers"
        self._own_networks = networks is None
        self.networks = networks if networks is not None else NetworkService(root)
        self.images = images
        self.snapshots = snapshots
        self.events = events
        self.volumes = volumes
        self.runtimes = runtimes
        self.rootfs = Rootfs(snapshots)
        self.seccomp = seccomp_cache.SeccompCache(root / "seccomp")
        self.monitors = monitorclient.MonitorForker()
        self._seccomp_to_learn: dict[str, str] = {}
        self.durable = durable
        # a build's RUN containers live for one step and are removed by the builder: their
        # records are written without fsync (the step's result image is what must last)
        self._ephemeral: set[str] = set()
        self._records: dict[str, Record] = {}
        self._state: dict[str, _Runtime] = {}
        self._names: dict[str, str] = {}
        self._execs: dict[str, ExecRecord] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- opening and closing ---------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        *,
        config: EngineConfig,
        images: ImageService,
        snapshots: Snapshotter,
        events: EventBus,
        volumes: VolumeService,
        networks: NetworkService | None = None,
        hide_unified: bool = True,
    ) -> ContainerService:
        """Probe the runtimes, load every container and reconcile it (see module doc)."""
        runtimes = await driver.Runtimes.probe(
            config.root / "runtime", config.runtime, hide_unified=hide_unified
        )
        service = cls(
            root=config.root,
            images=images,
            snapshots=snapshots,
            events=events,
            volumes=volumes,
            runtimes=runtimes,
            networks=networks,
        )
        images.in_use = service.image_users
        volumes.in_use = service.volume_users
        await service._load()
        return service

    async def close(self) -> None:
        """Stop watching (containers keep running under their monitors)."""
        self._closed = True
        tasks = list(self._tasks)
        for st in self._state.values():
            for t in (st.watcher, st.restart_task):
                if t is not None:
                    tasks.append(t)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        await self.monitors.close()
        if self._own_networks:
            await self.networks.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _load(self) -> None:
        await asyncio.to_thread(self.root.mkdir, mode=0o700, parents=True, exist_ok=True)
        entries = await asyncio.to_thread(os.listdir, self.root)
        for entry in entries:
            cdir = self.root / entry
            rec = await asyncio.to_thread(records.load, cdir)
            if rec is None or rec.Id != entry:
                # a create that died half-way: nothing refers to it
                await self.rootfs.remove(cdir)
                continue
            self._records[rec.Id] = rec
            self._state[rec.Id] = _Runtime()
            self._names[rec.Name] = rec.Id
        await self._net_reconcile()  # first: restart policies below attach containers again
        for rec in list(self._records.values()):
            await self._reconcile(rec)

    async def _reconcile(self, rec: Record) -> None:
        st = rec.State
        was_active = st.Running or st.Paused or st.Restarting or st.Status == "removing"
        if st.Status == "removing":
            await self._finish_remove(rec, volumes=False)
            return
        if st.Running or st.Paused:
            if monitorclient.alive(rec.MonitorPid, rec.MonitorStart):
                if st.Paused:
                    await self._refresh_paused(rec)
                self._watch(rec)
                return
            await self._collect_exit(rec)
        elif st.Restarting:
            rec.State.Restarting = False
            rec.State.Status = "exited"
            await self._save(rec)
        if was_active and rec.HostConfig.get("AutoRemove"):
            self._spawn(self._auto_remove(rec.Id))
            return
        if self._should_restart(rec, engine_start=True):
            rec.ManuallyStopped = False  # coming back with the engine is a fresh start
            self._schedule_restart(rec, delay=0.0)

    async def _refresh_paused(self, rec: Record) -> None:
        rt = self._runtime_of(rec)
        with contextlib.suppress(PortsideError):
            state = await driver.state(rt, rec.Id)
            if state and state.get("status") == "running":
                rec.State.Paused = False
                rec.State.Status = "running"
                await self._save(rec)

    # -- helpers ----------------------------------------------------------------------------
    def _dir(self, cid: str) -> Path:
        return self.root / cid

    def _get(self, name: str) -> Record:
        if not name:
            raise NotFound("No such container: ")
        rec = self._records.get(name)
        if rec is not None:
            return rec
        cid = self._names.get(name if name.startswith("/") else "/" + name)
        if cid is not None:
            return self._records[cid]
        matches = [r for r in self._records.values() if r.Id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"multiple containers match {name!r}; give more of the id")
        raise NotFound(f"No such container: {name}")

    async def _save(self, rec: Record) -> None:
        if rec.Id not in self._records:
            return
        try:
            durable = self.durable and rec.Id not in self._ephemeral
            await asyncio.to_thread(records.save, self._dir(rec.Id), rec, durable)
        except FileNotFoundError:
            if rec.Id in self._records:
                raise  # removed meanwhile: nothing left to save

    def _publish(self, rec: Record, action: str, extra: dict[str, str] | None = None) -> None:
        attrs = {"name": rec.short_name, "image": rec.ImageName}
        attrs.update({str(k): str(v) for k, v in (rec.Config.get("Labels") or {}).items()})
        attrs.update(extra or {})
        self.events.publish("container", action, rec.Id, attrs)

    def _runtime_of(self, rec: Record) -> driver.Runtime:
        rt = self.runtimes.available.get(rec.Runtime)
        if rt is None:
            raise PortsideError(
                f"container {rec.Id[:12]} was created with runtime {rec.Runtime!r}, which "
                "this engine no longer has"
            )
        return rt

    async def image_users(self, image_id: str) -> list[str]:
        return [r.Id for r in self._records.values() if r.Image == image_id]

    async def volume_users(self, name: str) -> list[str]:
        return [
            r.Id
            for r in self._records.values()
            if any(m["type"] == "volume" and m["source"] == name for m in r.Mounts)
        ]

    # -- create ------------------------------------------------------------------------------
    async def create(
        self, config: dict[str, Any], name: str | None = None, *, policy_action: str = "run"
    ) -> dict[str, Any]:
        """Create a container from docker's ContainerCreate body; ``{"Id", "Warnings"}``.

        ``policy_action`` is what the image policy checks the image for; a build's RUN step
        passes "build" (its base was checked by name at FROM, and the intermediate images it
        runs have no names of their own).
        """
        config = dict(config)
        host = dict(config.pop("HostConfig", None) or {})
        networking = config.pop("NetworkingConfig", None)
        image_name = config.get("Image") or ""
        if not image_name:
            raise InvalidArgument("config error: no image given; say which image to run")
        if name:
            full_name = names.validate(name)
            if full_name in self._names:
                other = self._names[full_name]
                raise Conflict(
                    f'Conflict. The container name "{full_name}" is already in use by '
                    f'container "{other}". You have to remove (or rename) that container to '
                    "be able to reuse that name."
                )
        else:
            full_name = names.random_name(set(self._names))
        image_id = await self.images.resolve(image_name)
        if policy_action == "run":
            await self.images.check_policy(image_name, image_id, "run")
        image_config = await self.images.config(image_id)
        diff_ids = (image_config.get("rootfs") or {}).get("diff_ids") or []
        chain = chain_ids([Digest.parse(d) for d in diff_ids])[-1] if diff_ids else None
        if chain is not None and not self.snapshots.exists(chain):
            raise NotFound(f"the layers of image {image_name} are missing; pull it again")

        warnings = hostconfig.validate(config, host)
        network = hostconfig.network_mode(host)
        network, net_config, gateway = await self._network_config(network, networking)
        etcfiles.check_hostname(config.get("Hostname") or "")
        merged = spec.merge_config(image_config, config)
        if merged.get("WorkingDir"):
            spec.check_workdir(merged["WorkingDir"])
        spec.capabilities_for(host)
        spec.security_options(host)
        if host.get("Init"):
            spec.find_init()
        mount_specs = hostconfig.collect_mounts(merged, host)
        runtime, note = self.runtimes.select(
            host.get("Runtime") or None, hostconfig.has_resource_limits(host)
        )
        if note:
            warnings.append(note)

        cid = secrets.token_hex(32)
        cdir = self._dir(cid)
        await asyncio.to_thread(cdir.mkdir, mode=0o700)
        made_volumes: list[str] = []
        try:
            copy_up: list[tuple[str, Path]] = []
            for m in mount_specs:
                if m.type == "volume":
                    vname, data_dir, created = await self.volumes.ensure(m.source or None)
                    if created and m.anonymous:
                        made_volumes.append(vname)
                    m.source = vname
                    if not m.nocopy:
                        copy_up.append((m.destination, data_dir))
            extra_init = [spec.INIT_DEST] if host.get("Init") else []
            await self.rootfs.prepare(cdir, chain, extra_init)
            if copy_up:  # docker fills new volumes with the image's content at create
                async with self.rootfs.view(cdir, chain) as tree:
                    for destination, data_dir in copy_up:
                        await asyncio.to_thread(_copy_up, tree, destination, data_dir)
            hostname = merged.get("Hostname") or cid[:12]
            await asyncio.to_thread(
                etcfiles.write_all,
                cdir,
                network=network,
                hostname=hostname,
                domainname=merged.get("Domainname") or "",
                host=host,
                host_gateway=gateway,
            )
            host.setdefault("NetworkMode", host.get("NetworkMode") or "default")
            host["Runtime"] = runtime.name
            rec = Record(
                Id=cid,
                Name=full_name,
                Created=_now(),
                Image=image_id,
                ImageName=image_name,
                Config=merged,
                HostConfig=host,
                Driver=self.rootfs.driver,
                Chain=str(chain) if chain else None,
                Runtime=runtime.name,
                Network=network,
                Networks=net_config,
                Mounts=[m.to_json() for m in mount_specs],
                InitPaths=self.rootfs.init_paths(extra_init),
                Warnings=warnings,
            )
            if full_name in self._names:  # taken while we were busy
                raise Conflict(f'Conflict. The container name "{full_name}" is already in use')
            self._records[cid] = rec
            self._state[cid] = _Runtime()
            self._names[full_name] = cid
            if policy_action == "build":
                self._ephemeral.add(cid)
            await self._save(rec)
        except BaseException:
            self._ephemeral.discard(cid)
            self._records.pop(cid, None)
            self._state.pop(cid, None)
            if self._names.get(full_name) == cid:
                del self._names[full_name]
            with contextlib.suppress(Exception):
                await asyncio.shield(self.rootfs.remove(cdir))
            for vname in made_volumes:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.volumes.remove(vname, force=True))
            raise
        self._publish(rec, "create")
        return {"Id": cid, "Warnings": warnings}

    # -- start -------------------------------------------------------------------------------
    async def start(self, name: str) -> bool:
        """Start a created or stopped container; False if it was already running."""
        rec = self._get(name)
        st = self._state[rec.Id]
        async with st.lock:
            if rec.State.Paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if rec.State.Running:
                return False
            if st.removing or rec.State.Status in ("removing", "dead"):
                raise Conflict(
                    f"container {rec.Id[:12]} is marked for removal and cannot be started"
                )
            if st.restart_task is not None and not st.restart_task.done():
                st.restart_task.cancel()
            rec.ManuallyStopped = False
            await self._start_locked(rec)
        return True

    def _oom_file(self, rec: Record) -> str | None:
        host = self.runtimes.cgroup
        path = f"portside/{rec.Id}"
        if host.mode == "v2" and host.unified is not None:
            return str(host.unified / path / "memory.events")
        mem = host.v1_mounts.get("memory")
        return str(mem / path / "memory.oom_control") if mem else None

    async def _prepare_start(self, rec: Record) -> tuple[dict[str, Any], Path]:
        cdir = self._dir(rec.Id)
        chain = Digest.parse(rec.Chain) if rec.Chain else None
        # the network comes up while the root filesystem and the mounts are prepared
        net_up = asyncio.ensure_future(self._net_up(rec))
        try:
            rootfs = await self.rootfs.mount(cdir, chain)
            user = await asyncio.to_thread(
                users.resolve_user,
                rootfs,
                rec.Config.get("User") or "",
                rec.HostConfig.get("GroupAdd"),
            )
            workdir = rec.Config.get("WorkingDir") or ""
            if workdir:
                await asyncio.to_thread(_make_workdir, rootfs, workdir)
            oci_mounts = []
            specs = [MountSpec.from_json(data) for data in rec.Mounts]
            for m in specs:
                source = ""
                if m.type == "bind":
                    source = m.source
                    exists = await asyncio.to_thread(os.path.lexists, source)
                    if m.create_source and not exists:  # a file given with -v is used as is
                        await asyncio.to_thread(os.makedirs, source, 0o755, True)
                    elif not exists:
                        raise InvalidArgument(f"bind source path does not exist: {source}")
                elif m.type == "volume":
                    _, data_dir, _ = await self.volumes.ensure(m.source)
                    source = str(data_dir)
                    if not m.nocopy:
                        await asyncio.to_thread(_copy_up, rootfs, m.destination, data_dir)
                oci_mounts.append(spec.user_mount(m, source))
            await asyncio.to_thread(_make_mountpoints, rootfs, specs)
            netns_path, shared_etc = await net_up
            etc = shared_etc or {n: cdir / n for n in ("hosts", "hostname", "resolv.conf")}
            size = rec.HostConfig.get("ConsoleSize") or [0, 0]
            console = (int(size[0]), int(size[1])) if size and size[0] and size[1] else None
            oci = spec.build_spec(
                cid=rec.Id,
                config=rec.Config,
                host=rec.HostConfig,
                user=user,
                rootfs=rootfs,
                network=rec.Network,
                etc_files=etc,
                mounts=oci_mounts,
                cgroup_v2=self.runtimes.cgroup.mode == "v2",
                console_size=console,
                netns_path=netns_path,
            )
            runtime = self._runtime_of(rec)
            if runtime.kind == "crun":
                key = await asyncio.to_thread(
                    self.seccomp.annotate, oci, runtime.path, runtime.version
                )
                if key and seccomp_cache.ANNOTATION not in oci.get("annotations", {}):
                    self._seccomp_to_learn[rec.Id] = key
            await asyncio.to_thread(records.write_json, cdir / "config.json", oci)
        except BaseException:
            await asyncio.wait([net_up])  # it undoes itself if it failed
            if not net_up.cancelled():
                net_up.exception()  # seen: the error that counts is the one raised here
            with contextlib.suppress(Exception):
                await asyncio.shield(self._net_down(rec))
            with contextlib.suppress(Exception):
                await asyncio.shield(self.rootfs.unmount(cdir))
            raise
        return oci, rootfs

    def _monitor_config(self, rec: Record, runtime: driver.Runtime) -> dict[str, Any]:
        log = rec.HostConfig.get("LogConfig") or {}
        opts = log.get("Config") or {}
        log_type = log.get("Type") or "json-file"
        return {
            "mode": "container",
            "id": rec.Id,
            "bundle": str(self._dir(rec.Id)),
            "runtime": runtime.argv(),
            "tty": bool(rec.Config.get("Tty")),
            "open_stdin": bool(rec.Config.get("OpenStdin")),
            "stdin_once": bool(rec.Config.get("StdinOnce")),
            "log_path": (
                str(self._dir(rec.Id) / f"{rec.Id}-json.log") if log_type == "json-file" else None
            ),
            "log_max_size": (
                hostconfig.parse_size(opts["max-size"], "max-size") if opts.get("max-size") else 0
            ),
            "log_max_file": int(opts.get("max-file") or 1),
            "hide_cgroup2": (
                str(self.runtimes.cgroup.unified)
                if runtime.legacy_view and self.runtimes.cgroup.unified
                else None
            ),
            "oom_file": self._oom_file(rec),
            "rootfs_mount": str(self._dir(rec.Id) / "rootfs") if self.rootfs.overlay else None,
        }

    async def _start_locked(self, rec: Record) -> None:
        cdir = self._dir(rec.Id)
        st = self._state[rec.Id]
        runtime = self._runtime_of(rec)
        await self._prepare_start(rec)
        learn = self._seccomp_to_learn.pop(rec.Id, None)
        try:
            launch = await monitorclient.launch(
                cdir, self._monitor_config(rec, runtime), self.monitors
            )
        except StartError as err:
            await self.rootfs.unmount(cdir)
            await self._net_down(rec)
            await self._start_failed(rec, str(err), err.code)
            raise ContainerStartError(_start_message(str(err)), err.code) from None
        except BaseException:
            await asyncio.shield(self.rootfs.unmount(cdir))
            await asyncio.shield(self._net_down(rec))
            raise
        if learn:  # created: crun's compiled program is in its state directory now
            await asyncio.to_thread(self.seccomp.learn, learn, runtime.state_root / rec.Id)
        pending, st.pending_attach = st.pending_attach, []
        for att in pending:
            await self._connect(att, cdir, rec)
        try:
            pid = await launch.start()
        except StartError as err:
            await monitorclient.wait_exit(launch.monitor_pid)
            await self.rootfs.unmount(cdir)
            await self._net_down(rec)
            for att in pending:
                att.close()
            await self._start_failed(rec, str(err), err.code)
            raise ContainerStartError(_start_message(str(err)), err.code) from None
        st.exited = asyncio.Event()
        mon = monitorclient.read_pid_file(cdir)
        rec.MonitorPid, rec.MonitorStart = mon if mon else (launch.monitor_pid, 0)
        rec.State.set_running(pid, _now())
        rec.HasBeenStarted = True
        with contextlib.suppress(OSError, ValueError):
            rec.Cgroup = cgroups.container_cgroup(pid).to_json()
        await self._save(rec)
        self._publish(rec, "start")
        self._watch(rec)

    async def _start_failed(self, rec: Record, message: str, code: int) -> None:
        rec.State.ExitCode = code
        rec.State.Error = _start_message(message)
        if rec.HasBeenStarted:
            rec.State.Status = "exited"
        await self._save(rec)
        self._publish(rec, "die", {"exitCode": str(code)})
        if rec.HostConfig.get("AutoRemove"):  # dockerd removes --rm containers that fail too
            self._spawn(self._auto_remove(rec.Id))

    async def _connect(self, att: Attachment, cdir: Path, rec: Record) -> None:
        try:
            stream = await AttachStream.connect(
                cdir, stdin=att.stdin, stdout=att.stdout, stderr=att.stderr
            )
        except PortsideError as err:
            att.failed(err)
            return
        att.connected(stream)
        await att.flush_pending()

    # -- exit handling -------------------------------------------------------------------------
    def _watch(self, rec: Record) -> None:
        st = self._state[rec.Id]
        if st.watcher is not None and not st.watcher.done():
            return
        st.watcher = asyncio.get_running_loop().create_task(self._watch_exit(rec.Id))

    async def _watch_exit(self, cid: str) -> None:
        rec = self._records.get(cid)
        if rec is None:
            return
        await monitorclient.wait_exit(rec.MonitorPid)
        if self._closed or cid not in self._records:
            return
        await self._collect_exit(rec)
        st = self._state[cid]
        st.exited.set()
        self._after_exit(rec)

    async def _collect_exit(self, rec: Record) -> None:
        """The monitor is gone: record the exit code and make sure nothing is left mounted."""
        cdir = self._dir(rec.Id)
        info = await asyncio.to_thread(monitorclient.read_exit, cdir)
        error = ""
        if info is None:
            # the monitor died before its container finished: stop what may be left
            rt = self.runtimes.available.get(rec.Runtime)
            if rt is not None:
                with contextlib.suppress(PortsideError):
                    await driver.kill(rt, rec.Id, signal.SIGKILL, all_procs=True)
                with contextlib.suppress(PortsideError):
                    await driver.delete(rt, rec.Id, force=True)
            info = {"ExitCode": 137, "OOMKilled": False, "FinishedAt": _now()}
            error = "the container's monitor process died; the container was killed"
        await self.rootfs.unmount(cdir)
        await self._net_down(rec)
        code = int(info.get("ExitCode", 0))
        oom = bool(info.get("OOMKilled"))
        rec.State.set_exited(code, str(info.get("FinishedAt") or _now()), oom=oom, error=error)
        await self._save(rec)
        if oom:
            self._publish(rec, "oom")
        self._publish(rec, "die", {"exitCode": str(code)})
        self._resolve_waiters(rec, ("not-running", "next-exit"))

    def _resolve_waiters(self, rec: Record, conditions: tuple[str, ...]) -> None:
        st = self._state.get(rec.Id)
        if st is None:
            return
        keep = []
        result = {"StatusCode": rec.State.ExitCode, "Error": None}
        if rec.State.Error:
            result["Error"] = {"Message": rec.State.Error}
        for cond, fut in st.waiters:
            if cond in conditions and not fut.done():
                fut.set_result(dict(result))
            elif not fut.done():
                keep.append((cond, fut))
        st.waiters = keep

    def _after_exit(self, rec: Record) -> None:
        if rec.HostConfig.get("AutoRemove"):
            self._spawn(self._auto_remove(rec.Id))
        elif self._should_restart(rec):
            self._schedule_restart(rec)

    async def _auto_remove(self, cid: str) -> None:
        with contextlib.suppress(NotFound, Conflict):
            await self.remove(cid, force=True, volumes=True)

    def _should_restart(self, rec: Record, *, engine_start: bool = False) -> bool:
        name, max_retries = hostconfig.restart_policy(rec.HostConfig)
        if rec.State.Running or not rec.HasBeenStarted:
            return False
        if name == "always" and engine_start:
            return True  # docker: a stopped "always" container comes back with the daemon
        if rec.ManuallyStopped:
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            if engine_start and rec.State.Status != "exited":
                return False
            return rec.State.ExitCode != 0 and (max_retries == 0 or rec.RestartCount < max_retries)
        return False

    def _schedule_restart(self, rec: Record, delay: float | None = None) -> None:
        st = self._state[rec.Id]
        if delay is None:
            delay = min(0.1 * (2 ** min(rec.RestartCount, 10)), RESTART_BACKOFF_MAX)
            with contextlib.suppress(ValueError):
                started = records_time(rec.State.StartedAt)
                if time.time() - started > 10:
                    delay = 0.1
        rec.State.Restarting = True
        rec.State.Status = "restarting"
        self._spawn(self._save(rec))
        st.restart_task = asyncio.get_running_loop().create_task(self._restart_later(rec, delay))

    async def _restart_later(self, rec: Record, delay: float) -> None:
        await asyncio.sleep(delay)
        st = self._state.get(rec.Id)
        if st is None or rec.Id not in self._records:
            return
        async with st.lock:
            if rec.State.Running or rec.ManuallyStopped or st.removing:
                rec.State.Restarting = False
                if not rec.State.Running:
                    rec.State.Status = "exited"
                await self._save(rec)
                return
            rec.RestartCount += 1
            try:
                await self._start_locked(rec)
            except PortsideError as err:
                rec.State.Restarting = False
                rec.State.Status = "exited"
                rec.State.Error = str(err)
                await self._save(rec)
                return
        self._publish(rec, "restart")

    # -- stop / kill / restart ------------------------------------------------------------------
    async def _signal(self, rec: Record, sig: int) -> None:
        rt = self._runtime_of(rec)
        try:
            await driver.kill(rt, rec.Id, sig)
        except (Conflict, NotFound):
            pass  # it exited meanwhile

    async def _wait_exit_event(self, rec: Record, timeout: float | None) -> bool:
        st = self._state[rec.Id]
        if not rec.State.Running:
            return True
        try:
            await asyncio.wait_for(st.exited.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, name: str, timeout: int | None = None, sig: str | None = None) -> bool:
        """docker stop: the stop signal, then SIGKILL after ``timeout`` seconds."""
        rec = self._get(name)
        st = self._state[rec.Id]
        if st.restart_task is not None and not st.restart_task.done():
            st.restart_task.cancel()
            rec.ManuallyStopped = True
            rec.State.Restarting = False
            rec.State.Status = "exited"
            await self._save(rec)
            return True
        if not rec.State.Running:
            return False
        rec.ManuallyStopped = True
        await self._save(rec)
        stop_sig = parse_signal(sig or rec.Config.get("StopSignal") or "", signal.SIGTERM)
        if timeout is None:
            timeout = rec.Config.get("StopTimeout")
        wait = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
        if rec.State.Paused:
            wait = 0
        if wait != 0:
            await self._signal(rec, stop_sig)
            if await self._wait_exit_event(rec, None if wait < 0 else wait):
                self._publish(rec, "stop")
                return True
        await self._kill_and_wait(rec)
        self._publish(rec, "stop")
        return True

    async def _kill_and_wait(self, rec: Record) -> None:
        await self._signal(rec, signal.SIGKILL)
        if rec.State.Paused:
            with contextlib.suppress(PortsideError):
                await driver.resume(self._runtime_of(rec), rec.Id)
        if not await self._wait_exit_event(rec, KILL_WAIT):
            raise PortsideError(
                f"container {rec.Id[:12]} did not exit {KILL_WAIT:.0f} s after SIGKILL"
            )

    async def kill(self, name: str, sig: str | int | None = None) -> None:
        """docker kill: send any signal (SIGKILL by default)."""
        rec = self._get(name)
        num = parse_signal(sig, signal.SIGKILL)
        if not rec.State.Running:
            raise Conflict(
                f"Cannot kill container: {rec.Id[:12]}: Container {rec.Id} is not running"
            )
        if num in (
            signal.SIGKILL,
            parse_signal(rec.Config.get("StopSignal") or "", signal.SIGTERM),
        ):
            rec.ManuallyStopped = True
            await self._save(rec)
        self._publish(rec, "kill", {"signal": str(num)})
        if num == signal.SIGKILL:
            await self._kill_and_wait(rec)
        else:
            await self._signal(rec, num)

    async def restart(self, name: str, timeout: int | None = None, sig: str | None = None) -> None:
        rec = self._get(name)
        await self.stop(rec.Id, timeout, sig)
        await self.start(rec.Id)
        self._publish(rec, "restart")

    # -- pause ----------------------------------------------------------------------------------
    async def pause(self, name: str) -> None:
        rec = self._get(name)
        async with self._state[rec.Id].lock:
            if not rec.State.Running:
                raise Conflict(f"Container {rec.Id} is not running")
            if rec.State.Paused:
                raise Conflict(f"Container {rec.Id} is already paused")
            await driver.pause(self._runtime_of(rec), rec.Id)
            rec.State.Paused = True
            rec.State.Status = "paused"
            await self._save(rec)
        self._publish(rec, "pause")

    async def unpause(self, name: str) -> None:
        rec = self._get(name)
        async with self._state[rec.Id].lock:
            if not rec.State.Paused:
                raise Conflict(f"Container {rec.Id} is not paused")
            await driver.resume(self._runtime_of(rec), rec.Id)
            rec.State.Paused = False
            rec.State.Status = "running" if rec.State.Running else "exited"
            await self._save(rec)
        self._publish(rec, "unpause")

    # -- rename / wait / remove --------------------------------------------------------------------
    async def rename(self, name: str, new_name: str) -> None:
        rec = self._get(name)
        full = names.validate(new_name)
        if full == rec.Name:
            raise Conflict("Renaming a container with the same name as its current name")
        if full in self._names:
            raise Conflict(
                f'Conflict. The container name "{full}" is already in use by container '
                f'"{self._names[full]}". You have to remove (or rename) that container to be '
                "able to reuse that name."
            )
        old = rec.Name
        self._names.pop(old, None)
        self._names[full] = rec.Id
        rec.Name = full
        await self._save(rec)
        self._publish(rec, "rename", {"oldName": old})

    async def update_restart_policy(self, name: str, policy: dict[str, Any]) -> None:
        """docker update --restart: the only setting a created container can change here."""
        rec = self._get(name)
        host = {**rec.HostConfig, "RestartPolicy": dict(policy)}
        hostconfig.validate(dict(rec.Config), host)
        rec.HostConfig["RestartPolicy"] = dict(policy)
        await self._save(rec)
        self._publish(rec, "update")

    def waiter(self, name: str, condition: str = "not-running") -> asyncio.Future[dict[str, Any]]:
        """Register a wait now (docker flushes the 200 headers before the container exits);
        the future resolves to ``{"StatusCode", "Error"}``."""
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(
                f"invalid condition {condition!r}: use not-running, next-exit or removed"
            )
        rec = self._get(name)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        active = rec.State.Running or rec.State.Restarting
        if condition == "not-running" and not active:
            result: dict[str, Any] = {"StatusCode": rec.State.ExitCode, "Error": None}
            if rec.State.Error:
                result["Error"] = {"Message": rec.State.Error}
            fut.set_result(result)
            return fut
        self._state[rec.Id].waiters.append((condition, fut))
        return fut

    async def wait(self, name: str, condition: str = "not-running") -> dict[str, Any]:
        return await self.waiter(name, condition)

    async def remove(self, name: str, *, force: bool = False, volumes: bool = False) -> None:
        """docker rm [-f] [-v]."""
        rec = self._get(name)
        st = self._state[rec.Id]
        if st.removing:
            raise Conflict(f"removal of container {rec.Id[:12]} is already in progress")
        if st.restart_task is not None and force:
            st.restart_task.cancel()
        async with st.lock:  # not while a start is half-way
            if st.removing or rec.Id not in self._records:
                raise Conflict(f"removal of container {rec.Id[:12]} is already in progress")
            if rec.State.Running or rec.State.Restarting:
                if not force:
                    what = "paused" if rec.State.Paused else "running"
                    raise Conflict(
                        f"You cannot remove a {what} container {rec.Id}. Stop the container "
                        "before attempting removal or force remove"
                    )
                if st.restart_task is not None:
                    st.restart_task.cancel()
                rec.ManuallyStopped = True
                if rec.State.Running:
                    await self._kill_and_wait(rec)
            st.removing = True
            rec.State.Status = "removing"
            await self._save(rec)
            await self._finish_remove(rec, volumes=volumes)

    async def _finish_remove(self, rec: Record, *, volumes: bool) -> None:
        cdir = self._dir(rec.Id)
        rt = self.runtimes.available.get(rec.Runtime)
        monitor_cleaned = await asyncio.to_thread((cdir / "exit.json").exists)
        if rt is not None and rec.HasBeenStarted and not monitor_cleaned:
            with contextlib.suppress(PortsideError):
                await driver.delete(rt, rec.Id, force=True)
        await self._net_down(rec)
        try:
            await self.rootfs.remove(cdir)
        except OSError as err:
            # docker's "dead": half removed; kept so that a later rm can finish the job
            self._state[rec.Id].removing = False
            rec.State.Status = "dead"
            rec.State.Dead = True
            await self._save(rec)
            raise PortsideError(
                f"unable to remove filesystem for {rec.Id}: {err.strerror or err}: "
                f"{err.filename or cdir}; the container is now dead, remove it again with "
                "`rm -f` once nothing holds it"
            ) from None
        for ex in [e for e in self._execs.values() if e.container == rec.Id]:
            self._execs.pop(ex.id, None)
        self._records.pop(rec.Id, None)
        self._ephemeral.discard(rec.Id)
        if self._names.get(rec.Name) == rec.Id:
            del self._names[rec.Name]
        if volumes:
            for m in rec.Mounts:
                if m["type"] == "volume" and self.volumes.is_anonymous(m["source"]):
                    with contextlib.suppress(PortsideError):
                        await self.volumes.remove(m["source"])
        self._publish(rec, "destroy")
        st = self._state.get(rec.Id)
        self._resolve_waiters(rec, WAIT_CONDITIONS)
        if st is not None:
            for att in st.pending_attach:
                att.close()
        self._state.pop(rec.Id, None)

    async def prune(self, *, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Remove every stopped container (``label``/``until`` filters)."""
        deleted = []
        reclaimed = 0
        for rec in list(self._records.values()):
            if rec.State.Running or rec.State.Restarting:
                continue
            if not _prune_match(rec, filters or {}):
                continue
            reclaimed += await asyncio.to_thread(dir_size, self._dir(rec.Id) / "upper")
            with contextlib.suppress(PortsideError):
                await self.remove(rec.Id)
                deleted.append(rec.Id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


# -- module helpers ---------------------------------------------------------------------
def _start_message(message: str) -> str:
    # Go's errno wording (lower case), which docker clients map to exit codes 127 and 126
    for text in ("No such file or directory", "Permission denied"):
        message = message.replace(text, text.lower())
    return f"OCI runtime create failed: {message}"


def _make_workdir(rootfs: Path, workdir: str) -> None:
    spec.check_workdir(workdir)
    try:
        fsroot.mkdir_all(rootfs, workdir)
    except OSError as err:
        raise InvalidArgument(
            f"cannot create working directory {workdir}: {err.strerror or err}"
        ) from None


def _make_mountpoints(rootfs: Path, specs: list[MountSpec]) -> None:
    """Create missing mount destinations in the container's own layer, directories 0755
    (an empty file for a bind of a file), as docker does before it starts a container:
    they then belong to the container like docker's (``commit`` and a RUN after VOLUME keep
    them, without what the mounts hold). Left to the runtime, crun makes them 01755.
    Destinations inside another mount are the runtime's to make, in that mount."""
    dests = [fsroot.clean(m.destination) for m in specs]
    for m, dest in zip(specs, dests, strict=True):
        if any(dest != other and dest.startswith(other.rstrip("/") + "/") for other in dests):
            continue
        directory = m.type != "bind" or os.path.isdir(m.source)
        try:
            fsroot.ensure_mountpoint(rootfs, dest, directory=directory)
        except OSError as err:
            raise InvalidArgument(
                f"cannot create the mount point {m.destination} in the container: "
                f"{err.strerror or err}"
            ) from None


def _copy_up(rootfs: Path, destination: str, data_dir: Path) -> None:
    """Copy the image's content at ``destination`` into a new, empty volume (docker does)."""
    if any(os.scandir(data_dir)):
        return
    marker = data_dir.parent / ".copied"
    if marker.exists():
        return
    try:
        inner = fsroot.resolve(rootfs, destination)
    except OSError:
        return
    source = rootfs / inner.lstrip("/")
    if source.is_dir() and not source.is_symlink():
        import subprocess

        subprocess.run(
            ["cp", "-a", "--", f"{source}/.", str(data_dir)],
            capture_output=True,
            check=False,
            timeout=600,
        )
    marker.touch()


def records_time(stamp: str) -> float:
    from engine.runtime.logs import parse_time

    return parse_time(stamp) / 1e9


def _prune_match(rec: Record, filters: dict[str, list[str]]) -> bool:
    labels = rec.Config.get("Labels") or {}
    for want in filters.get("label", []):
        k, eq, v = want.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    for want in filters.get("label!", []):
        k, eq, v = want.partition("=")
        if k in labels and (not eq or labels[k] == v):
            return False
    for until in filters.get("until", []):
        cutoff = parse_timestamp_arg(until)
        if cutoff is not None and records_time(rec.Created) * 1e9 > cutoff:
            return False
    return True
