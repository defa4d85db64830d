"""exec: processes started in running containers (``docker exec``), each under its own
monitor in exec mode (``runtime exec --detach --process``), so it is attachable, gets a
PTY or pipes, and reports its exit code. A mixin of ``ContainerService``.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import Conflict, InvalidArgument, NotFound, PortsideError
from engine.runtime import monitorclient, spec, users
from engine.runtime import record as records
from engine.runtime.attach import Attachment, parse_detach_keys
from engine.runtime.monitorclient import AttachStream, ContainerStartError, StartError
from engine.runtime.record import Record

if TYPE_CHECKING:
    pass


RESIZE_WAIT = 10.0  # dockerd's wait for an exec to start before resizing it


@dataclass
class ExecRecord:
    """One exec instance (kept in memory, as dockerd does)."""

    id: str
    container: str
    config: dict[str, Any]
    dir: Path
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    monitor_pid: int = 0
    started: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # set once the process runs (or the start failed): resizes wait for it, as in dockerd
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class ExecMixin:
    """The exec operations of ``ContainerService``."""

    async def exec_create(self, name: str, config: dict[str, Any]) -> dict[str, str]:
        rec = self._get(name)
        if not rec.State.Running:
            raise Conflict(f"Container {rec.Id} is not running")
        if rec.State.Paused:
            raise Conflict(f"Container {rec.Id} is paused, unpause the container before exec")
        cmd = config.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified")
        workdir = config.get("WorkingDir") or ""
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
            )
        if workdir:
            spec.check_workdir(workdir)
        parse_detach_keys(config.get("DetachKeys"))
        eid = secrets.token_hex(32)
        edir = self._dir(rec.Id) / "exec" / eid
        await asyncio.to_thread(edir.mkdir, mode=0o700, parents=True)
        ex = ExecRecord(eid, rec.Id, {**config, "Cmd": list(cmd)}, edir)
        self._execs[eid] = ex
        rec.ExecIDs.append(eid)
        self._publish(rec, "exec_create: " + " ".join(cmd), {"execID": eid})
        return {"Id": eid}

    def _exec(self, eid: str) -> ExecRecord:
        ex = self._execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    async def exec_start(
        self,
        eid: str,
        *,
        detach: bool = False,
        tty: bool | None = None,
        console_size: tuple[int, int] | None = None,
    ) -> Attachment | None:
        """Start an exec; returns its attachment unless ``detach``."""
        ex = self._exec(eid)
        if ex.started:
            raise Conflict(f"exec {eid} has already been started")
        rec = self._get(ex.container)
        if not rec.State.Running:
            raise Conflict(f"Container {rec.Id} is not running")
        ex.started = True
        try:
            return await self._exec_start(ex, rec, detach, tty, console_size)
        finally:
            ex.ready.set()  # running, or failed: nobody waits for it any more

    async def _exec_start(
        self,
        ex: ExecRecord,
        rec: Record,
        detach: bool,
        tty: bool | None,
        console_size: tuple[int, int] | None,
    ) -> Attachment | None:
        eid = ex.id
        cfg = ex.config
        use_tty = bool(cfg.get("Tty") if tty is None else tty)
        want_in = bool(cfg.get("AttachStdin")) and not detach
        cdir = self._dir(rec.Id)
        rootfs = cdir / "rootfs"
        user_spec = cfg.get("User") or rec.Config.get("User") or ""
        user = await asyncio.to_thread(
            users.resolve_user, rootfs, user_spec, rec.HostConfig.get("GroupAdd")
        )
        base = await asyncio.to_thread(records.read_json, cdir / "config.json")
        size = console_size or tuple(cfg.get("ConsoleSize") or (0, 0))
        proc = spec.process_spec(
            base=base.get("process", {}),
            args=list(cfg["Cmd"]),
            env=spec.merge_env(rec.Config.get("Env"), cfg.get("Env")),
            user=user,
            cwd=cfg.get("WorkingDir") or rec.Config.get("WorkingDir") or "/",
            tty=use_tty,
            privileged=bool(cfg.get("Privileged")),
            host=rec.HostConfig,
            hostname=base.get("hostname", ""),
            console_size=(int(size[0]), int(size[1])) if size and size[0] and size[1] else None,
        )
        await asyncio.to_thread(records.write_json, ex.dir / "process.json", proc)
        runtime = self._runtime_of(rec)
        mcfg = {
            "mode": "exec",
            "id": rec.Id,
            "runtime": runtime.argv(),
            "tty": use_tty,
            "open_stdin": want_in,
            "stdin_once": True,
        }
        att: Attachment | None = None
        if not detach:
            att = Attachment(
                stdin=want_in,
                detach_keys=parse_detach_keys(cfg.get("DetachKeys")),
                stdout=bool(cfg.get("AttachStdout", True)),
                stderr=bool(cfg.get("AttachStderr", True)),
            )
        try:
            launch = await monitorclient.launch(ex.dir, mcfg, self.monitors)
        except StartError as err:
            ex.exit_code = err.code
            ex.done.set()
            if att is not None:
                att.close()
            raise ContainerStartError(f"OCI runtime exec failed: {err}", err.code) from None
        if att is not None:
            await self._connect(att, ex.dir, rec)
        await launch.start()
        ex.pid = launch.pid
        ex.monitor_pid = launch.monitor_pid
        ex.running = True
        self._publish(rec, "exec_start: " + " ".join(cfg["Cmd"]), {"execID": eid})
        self._spawn(self._watch_exec(ex, rec))
        return att

    async def _watch_exec(self, ex: ExecRecord, rec: Record) -> None:
        await monitorclient.wait_exit(ex.monitor_pid)
        info = await asyncio.to_thread(monitorclient.read_exit, ex.dir)
        ex.exit_code = int(info["ExitCode"]) if info else 126
        ex.running = False
        ex.done.set()
        self._publish(rec, "exec_die", {"execID": ex.id, "exitCode": str(ex.exit_code)})

    async def exec_wait(self, eid: str) -> int | None:
        ex = self._exec(eid)
        await ex.done.wait()
        return ex.exit_code

    async def exec_inspect(self, eid: str) -> dict[str, Any]:
        ex = self._exec(eid)
        cfg = ex.config
        cmd = list(cfg.get("Cmd") or [])
        return {
            "ID": ex.id,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "ProcessConfig": {
                "tty": bool(cfg.get("Tty")),
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(cfg.get("Privileged")),
                "user": cfg.get("User") or "",
            },
            "OpenStdin": bool(cfg.get("AttachStdin")),
            "OpenStderr": bool(cfg.get("AttachStderr")),
            "OpenStdout": bool(cfg.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": ex.container,
            "DetachKeys": cfg.get("DetachKeys") or "",
            "Pid": ex.pid,
        }

    async def exec_resize(self, eid: str, height: int, width: int) -> None:
        """Resize an exec's TTY; a resize that comes while the exec is starting (clients send
        one straight after the start request) waits for it, up to 10 s, as dockerd's does."""
        ex = self._exec(eid)
        if ex.started and not ex.ready.is_set():
            try:
                await asyncio.wait_for(ex.ready.wait(), RESIZE_WAIT)
            except TimeoutError:
                raise PortsideError("timeout waiting for exec session ready") from None
        if not ex.running:
            raise Conflict(f"exec {eid} is not running")
        stream = await AttachStream.connect(ex.dir, stdin=False, stdout=False, stderr=False)
        try:
            await stream.resize(height, width)
        finally:
            stream.close()
