"""The stage executor: runs the instructions of the needed stages, one image per step.

Stages run as asyncio tasks: a stage waits only for the stages it uses (``FROM``,
``COPY --from``, ``RUN --mount from=``), so independent ones build concurrently; their
output is held back and shown stage after stage, in step order. Config instructions (ENV,
ARG, LABEL, WORKDIR, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL,
ONBUILD, MAINTAINER) make an image with an ``empty_layer`` history entry in the legacy
builder's ``/bin/sh -c #(nop)  ...`` form; COPY/ADD write a layer from the context, another
stage, heredocs or downloaded URLs (``--link``, ``--parents``, ``--exclude`` too;
``engine.build.layers``); RUN runs a container through the container service (host network
unless ``--network``, ``--mount``s from ``engine.build.mounts``, heredoc scripts), then
commits it with dockerd's history text (``|N K=V /bin/sh -c ...``), or records an
``empty_layer`` entry when nothing changed, as dockerd 20.10 does; its output comes from an
attachment made before the start. Every step is looked up in the build cache first; a result
is recorded with ``put(replace=False)`` unless ``--no-cache``, so stages that start with the
same steps share one chain of entries. What a ``COPY --from``'s sources expand and hash to in
an image is remembered (``BuildCache.sources``), so a cached one mounts nothing. Each stage
starts from its base's config as dockerd's ``beginStage`` does (default ``PATH``, ``User`` and
``WorkingDir`` always set). Progress lines are docker's legacy builder lines.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import hashlib
import json
import posixpath
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.build import instructions as ins
from engine.build import remote
from engine.build.cache import BuildCache, step_key
from engine.build.context import BuildContext, ImageTree, remove_dir
from engine.build.dockerignore import PatternMatcher, go_glob
from engine.build.errors import BuildError
from engine.build.expand import ExpansionError, Lexer
from engine.build.graph import StageGraph
from engine.build.layers import CopyItem, Owner, new_image, write_copy_tar
from engine.build.mounts import RunMounts
from engine.build.parser import Heredoc, parse_heredoc
from engine.build.view import image_view
from engine.digest import Digest, chain_ids, is_digest
from engine.errors import InvalidArgument, NotFound, PortsideError
from engine.store.compression import Compression, detect
from engine.store.unpack import unpack_layer

if TYPE_CHECKING:
    from engine.containers import ContainerService
    from engine.images import ImageService

PROXY_ARGS = frozenset(
    n
    for p in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for n in (p, p.lower())
)
CONFIG_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STAGE: contextvars.ContextVar[int | None] = contextvars.ContextVar("build_stage", default=None)
PIPES = "/dev/pipes"  # where a RUN heredoc with a #! line is mounted, as in BuildKit
_GLOB = set("*?[")


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class Options:
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    progress: Callable[[str], None] = lambda line: None
    secrets: dict[str, bytes] = field(default_factory=dict)  # RUN --mount=type=secret


@dataclass
class StageState:
    """What one stage has built so far."""

    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False
    author: str = ""  # MAINTAINER: the author of this stage's later steps

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out


class Executor:
    """Builds the stages ``graph.needed(target)`` of one Dockerfile."""

    def __init__(
        self,
        *,
        images: ImageService,
        containers: ContainerService,
        cache: BuildCache,
        context: BuildContext,
        graph: StageGraph,
        escape: str,
        filename: str,
        options: Options,
    ) -> None:
        self.images = images
        self.containers = containers
        self.cache = cache
        self.context = context
        self.graph = graph
        self.lexer = Lexer(escape)
        self.filename = filename
        self.opts = options
        self.root = cache.dir.parent  # the engine root: cache mounts live under it
        self.results: dict[int, str | None] = {}
        self.declared: set[str] = set()  # ARG names the build went through
        self.total = 0
        self._tasks: dict[int, asyncio.Task[str | None]] = {}
        self._first_step: dict[int, int] = {}
        self._order: list[int] = []  # stages in Dockerfile order: their output is shown so
        self._shown = 0  # index in _order of the stage whose output goes out live
        self._held: dict[int, list[str]] = {}  # output of later stages, held back
        self._finished: set[int] = set()
        self._removals: set[asyncio.Task[None]] = set()  # intermediate containers going

    def emit(self, text: str) -> None:
        """Progress text of the current stage: live for the stage being shown, held back
        for later stages running concurrently, so the output reads stage after stage."""
        stage = _STAGE.get()
        if stage is None or self._order[self._shown] == stage:
            self.opts.progress(text)
        else:
            self._held.setdefault(stage, []).append(text)

    def say(self, line: str) -> None:
        self.emit(line + "\n")

    def _stage_done(self, index: int) -> None:
        self._finished.add(index)
        while self._shown < len(self._order) and self._order[self._shown] in self._finished:
            self._shown += 1
            if self._shown < len(self._order):
                for text in self._held.pop(self._order[self._shown], []):
                    self.opts.progress(text)

    def _flush_all(self) -> None:
        for i in self._order[self._shown :]:
            for text in self._held.pop(i, []):
                self.opts.progress(text)

    # -- driver ------------------------------------------------------------------------
    async def build(self, target: str | None, extra: list[ins.Instruction]) -> str:
        """Build the stages ``target`` needs, independent ones concurrently."""
        needed = self.graph.needed(target)
        last = needed[-1]
        plan = {i: list(self.graph.nodes[i].stage.instructions) for i in needed}
        plan[last].extend(extra)
        self.total = sum(1 + len(v) for v in plan.values())
        self._order = needed
        step = 1
        for i in needed:
            self._first_step[i] = step
            step += 1 + len(plan[i])
        for i in needed:
            self._tasks[i] = asyncio.create_task(self._stage_task(i, plan[i]))
        try:
            await asyncio.gather(*self._tasks.values())
        except BaseException:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._flush_all()
            raise
        finally:  # the build is over when its intermediate containers are gone
            if self._removals:
                await asyncio.shield(asyncio.gather(*self._removals, return_exceptions=True))
        image_id = self.results[last]
        if image_id is None:
            raise BuildError("the build produced no image: a FROM scratch stage needs a step")
        return image_id

    async def _stage_task(self, index: int, steps: list[ins.Instruction]) -> str | None:
        _STAGE.set(index)
        image_id = await self._stage(index, steps)
        self.results[index] = image_id
        self._stage_done(index)
        return image_id

    async def _stage_result(self, index: int) -> str | None:
        """The image stage ``index`` made, waiting for it when it is still building."""
        task = self._tasks.get(index)
        if task is None:
            raise InvalidArgument(f"stage {index} is not part of this build")
        return await asyncio.shield(task)

    async def _stage(self, index: int, steps: list[ins.Instruction]) -> str | None:
        node = self.graph.nodes[index]
        step = self._first_step[index]
        self.say(f"Step {step}/{self.total} : {node.stage.source.original.strip()}")
        state = await self._from(node.base, node.base_stage, node.platform)
        if state.image_id:
            self.say(f" ---> {short(state.image_id)}")
        await self._triggers(state)
        for inst in steps:
            step += 1
            self.say(f"Step {step}/{self.total} : {inst.original.strip()}")
            try:
                await self._dispatch(state, inst)
            except ExpansionError as err:
                raise InvalidArgument(f"{self.filename}:{inst.line}: {err}") from None
            if state.image_id:
                self.say(f" ---> {short(state.image_id)}")
        return state.image_id

    async def _triggers(self, state: StageState) -> None:
        """Run the base image's ONBUILD triggers; they are not passed on further."""
        triggers = state.config.pop("OnBuild", None) or []
        if not triggers:
            return
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for text in triggers:
            parsed = ins.parse_dockerfile(f"FROM scratch\n{text}\n", f"{self.filename} (ONBUILD)")
            for inst in parsed.stages[0].instructions:
                if isinstance(inst, (ins.Onbuild, ins.Maintainer)):
                    raise InvalidArgument(f"{inst.name} is not allowed as an ONBUILD trigger")
                await self._dispatch(state, inst)

    async def _external(self, name: str, platform: str | None = None) -> str:
        """The image id of ``name``, pulled when missing (or always with --pull)."""
        image_id = None
        if not self.opts.pull:
            with contextlib.suppress(NotFound):
                image_id = await self.images.resolve(name)
        if image_id is None:
            image_id = await self.images.pull(name, platform=platform or None)
        await self.images.check_policy(name, image_id, "build")
        return image_id

    async def _from(self, base: str, base_stage: int | None, platform: str | None) -> StageState:
        if base_stage is not None:
            image_id = await self._stage_result(base_stage)
        elif base.lower() == "scratch":
            image_id = None
        else:
            image_id = await self._external(base, platform)
        cfg = {}
        if image_id is not None:
            cfg = (await self.images.config(image_id)).get("config") or {}
        return StageState(image_id, _stage_config(cfg))

    # -- helpers -----------------------------------------------------------------------
    def _vars(self, state: StageState) -> dict[str, str]:
        return {**state.args, **state.env()}

    def _word(self, state: StageState, text: str) -> str:
        return self.lexer.word(text, self._vars(state))

    def _key_args(self, state: StageState) -> dict[str, str]:
        return {k: v for k, v in state.args.items() if k not in PROXY_ARGS}

    def _nop(self, state: StageState, text: str) -> str:
        return " ".join([*state.shell, "#(nop) ", text])

    async def _cached(self, key: str) -> str | None:
        if self.opts.no_cache:
            return None
        found = await self.cache.get(key)
        if found:
            self.say(" ---> Using cache")
        return found

    async def _commit_config(
        self, state: StageState, text: str, make_dir: str | None = None
    ) -> None:
        """A config step: new image with an empty_layer history entry, or (WORKDIR with
        ``make_dir`` missing from the image) a layer creating that directory, as docker's
        legacy builder does."""
        # steps docker commits from a container name themselves with one space
        created_by = " ".join([*state.shell, "#(nop) " + text]) if make_dir else None
        created_by = created_by or self._nop(state, text)
        key = step_key(
            state.image_id,
            created_by + json.dumps([state.config, state.author], sort_keys=True),
            self._key_args(state),
        )
        found = await self._cached(key)
        if found is None:
            missing: list[str] = []
            if make_dir is not None:
                async with self._view(state.image_id) as root:
                    missing = await asyncio.to_thread(_missing_dirs, root, {make_dir})
            write: Callable[[BinaryIO], None] | None = None
            if missing:
                write = partial(
                    write_copy_tar, items=[], new_dirs=missing, owner=Owner(), chmod=None
                )
            found = await new_image(
                self.images, state.image_id, state.config, created_by, write, state.author
            )
            found = await self.cache.put(key, found, replace=self.opts.no_cache)
        state.image_id = found

    # -- instructions ------------------------------------------------------------------
    async def _dispatch(self, state: StageState, inst: ins.Instruction) -> None:
        cfg = state.config
        if isinstance(inst, ins.Run):
            await self._run(state, inst)
        elif isinstance(inst, ins.Copy):
            await self._copy(state, inst)
        elif isinstance(inst, ins.Env):
            env = state.env()
            pairs = [(self._word(state, k), self._word(state, v)) for k, v in inst.pairs]
            for k, v in pairs:
                env[k] = v
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
            await self._commit_config(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))
        elif isinstance(inst, ins.Arg):
            for name, default in inst.pairs:
                self.declared.add(name)
                if name in self.opts.build_args:
                    state.args[name] = self.opts.build_args[name]
                elif default is not None:
                    state.args[name] = self._word(state, default)
                elif name in self.graph.global_args:
                    state.args[name] = self.graph.global_args[name]
            shown = " ".join(n if d is None else f"{n}={d}" for n, d in inst.pairs)
            await self._commit_config(state, "ARG " + shown)
        elif isinstance(inst, ins.Label):
            pairs = [(self._word(state, k), self._word(state, v)) for k, v in inst.pairs]
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(pairs)}
            await self._commit_config(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))
        elif isinstance(inst, ins.Workdir):
            path = self._word(state, inst.path)
            if not path.startswith("/"):  # dockerd keeps an absolute path as written
                path = posixpath.normpath(posixpath.join("/", cfg.get("WorkingDir") or "/", path))
            cfg["WorkingDir"] = path
            made = posixpath.normpath(path)
            await self._commit_config(state, f"WORKDIR {path}", make_dir=made)
        elif isinstance(inst, ins.User):
            cfg["User"] = self._word(state, inst.user)
            await self._commit_config(state, f"USER {cfg['User']}")
        elif isinstance(inst, ins.Expose):
            ports = dict(cfg.get("ExposedPorts") or {})
            shown = []
            # dockerd sorts the words as written, then expands them in that order
            for word in sorted(inst.ports):
                for w in self.lexer.words(word, self._vars(state)):
                    start, end, proto = ins.parse_ports(w)
                    for p in range(start, end + 1):
                        ports[f"{p}/{proto}"] = {}
                    shown.append(w)
            cfg["ExposedPorts"] = ports
            await self._commit_config(state, "EXPOSE " + " ".join(shown))
        elif isinstance(inst, ins.Volume):
            vols = dict(cfg.get("Volumes") or {})
            paths = [self._word(state, p) for p in inst.paths]
            for p in paths:
                if not p.strip():
                    raise InvalidArgument(f"{self.filename}:{inst.line}: VOLUME path is empty")
                vols[p] = {}
            cfg["Volumes"] = vols
            await self._commit_config(state, f"VOLUME [{' '.join(paths)}]")
        elif isinstance(inst, ins.Cmd):
            cfg["Cmd"] = self._command(state, inst.command)
            state.cmd_set = True
            await self._commit_config(state, "CMD " + _go_list(cfg["Cmd"]))
        elif isinstance(inst, ins.Entrypoint):
            cfg["Entrypoint"] = self._command(state, inst.command)
            if not state.cmd_set:
                cfg.pop("Cmd", None)
            await self._commit_config(state, "ENTRYPOINT " + _go_list(cfg["Entrypoint"]))
        elif isinstance(inst, ins.Shell):
            cfg["Shell"] = list(inst.shell)
            # Go's %v of a []string, as dockerd writes it: [/bin/sh -ec]
            await self._commit_config(state, "SHELL [" + " ".join(cfg["Shell"]) + "]")
        elif isinstance(inst, ins.Healthcheck):
            health = _healthcheck(inst)
            # dockerd 20.10 decodes the new check over the old one: options it leaves
            # unset keep their earlier values (even for NONE); the history shows its own
            cfg["Healthcheck"] = {**(cfg.get("Healthcheck") or {}), **health}
            await self._commit_config(state, "HEALTHCHECK " + _go_health(health))
        elif isinstance(inst, ins.StopSignal):
            cfg["StopSignal"] = ins.validate_signal(self._word(state, inst.signal))
            await self._commit_config(state, f"STOPSIGNAL {cfg['StopSignal']}")
        elif isinstance(inst, ins.Onbuild):
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), inst.expression]
            await self._commit_config(state, f"ONBUILD {inst.expression}")
        elif isinstance(inst, ins.Maintainer):
            state.author = inst.maintainer
            await self._commit_config(state, f"MAINTAINER {inst.maintainer}")
        else:
            raise InvalidArgument(
                f"{self.filename}:{inst.line}: {inst.name} is not supported by this builder yet"
            )

    def _command(self, state: StageState, command: list[str] | str) -> list[str]:
        if isinstance(command, list):
            return list(command)
        return [*state.shell, command]

    # -- RUN ---------------------------------------------------------------------------
    def _run_command(
        self, state: StageState, inst: ins.Run
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The RUN's argv and the heredoc scripts to mount at /dev/pipes/<name> (BuildKit's
        rules: one bare heredoc runs as the script, or as a file when it starts with ``#!``;
        otherwise the shell gets the command with its heredocs reattached)."""
        if not inst.heredocs or inst.json:
            return self._command(state, inst.command), []
        text = str(inst.command)
        bare = parse_heredoc(text.strip(), self.lexer.escape, self.filename, inst.line)
        if bare is not None and len(inst.heredocs) == 1:
            doc = inst.heredocs[0]
            if doc.content.startswith("#!"):
                name = posixpath.basename(doc.name) or "script"
                return [*state.shell, f"{PIPES}/{name}"], [(name, doc.content)]
            return [*state.shell, doc.content], []
        full = text + "".join("\n" + doc.content + doc.name for doc in inst.heredocs)
        return [*state.shell, full], []

    def _run_history(self, state: StageState, cmd: list[str]) -> str:
        """The legacy builder's ``created_by`` of a RUN: the command, prefixed with
        ``|N K=V...`` (sorted) when build args are in effect, as dockerd writes it."""
        env = state.env()
        listed = sorted(f"{k}={v}" for k, v in state.args.items() if k not in env)
        builtin = [
            k
            for k in self.opts.build_args
            if k in PROXY_ARGS and k not in state.args and k not in env
        ]
        if not listed and not builtin:
            return " ".join(cmd)
        return " ".join([f"|{len(listed)}", *listed, *cmd])

    async def _mount_tree(
        self, state: StageState, stack: contextlib.AsyncExitStack, ref: str | None
    ) -> tuple[Path | None, BuildContext | None, str]:
        """The tree a ``--mount from=`` names (None: the context), kept open on ``stack``."""
        if ref is None:  # a bind of the context needs its files
            return await self.context.materialize(), self.context, "context"
        image_id = await self._stage_or_image(ref)
        root = await stack.enter_async_context(self._view(image_id))
        return root, None, str(image_id)

    async def _run(self, state: StageState, inst: ins.Run) -> None:
        loc = f"{self.filename}:{inst.line}"
        if state.image_id is None:
            raise InvalidArgument(f"{loc}: RUN needs a base image with a shell, not FROM scratch")
        cmd, scripts = self._run_command(state, inst)
        network = self._word(state, inst.network)
        if network not in ins.NETWORK_MODES:
            raise InvalidArgument(f"{loc}: invalid --network {network!r}")
        mounts = []
        for spec in inst.mount_specs:
            try:
                mounts.append(ins.parse_mount(spec, self._vars(state), self.lexer.escape))
            except InvalidArgument as err:
                raise InvalidArgument(f"{loc}: RUN {err}") from None
        created_by = self._run_history(state, cmd)
        async with contextlib.AsyncExitStack() as stack:
            run_mounts = RunMounts(
                root=self.root,
                mounts=mounts,
                resolve=partial(self._mount_tree, state, stack),
                secrets=self.opts.secrets,
                where=loc,
            )
            await stack.enter_async_context(run_mounts)
            for name, content in scripts:
                host = await run_mounts.tmpdir() / f"script-{name}"
                await asyncio.to_thread(_write_script, host, content)
                run_mounts.host_mounts.append(
                    {"Type": "bind", "Source": str(host), "Target": f"{PIPES}/{name}"}
                )
            text = json.dumps([cmd, network, run_mounts.key_parts, scripts, state.author])
            key = step_key(state.image_id, "RUN " + text, self._key_args(state))
            found = await self._cached(key)
            if found is None:
                found = await self._run_container(state, cmd, network, run_mounts, created_by)
                found = await self.cache.put(key, found, replace=self.opts.no_cache)
        state.image_id = found

    async def _run_container(
        self,
        state: StageState,
        cmd: list[str],
        network: str,
        mounts: RunMounts,
        created_by: str,
    ) -> str:
        assert state.image_id is not None
        env = state.env()
        run_env = [
            *(f"{k}={v}" for k, v in state.args.items() if k not in env),
            *(
                f"{k}={v}"
                for k, v in self.opts.build_args.items()
                if k in PROXY_ARGS and k not in state.args and k not in env
            ),
            *(state.config.get("Env") or []),
            *(f"{k}={v}" for k, v in mounts.env.items()),
        ]
        body = {
            "Image": state.image_id,
            "Cmd": cmd,
            "Entrypoint": [],
            "Env": run_env,
            "User": state.config.get("User") or "",
            "WorkingDir": state.config.get("WorkingDir") or "",
            "HostConfig": {
                "NetworkMode": "host" if network == "default" else network,
                "Mounts": mounts.host_mounts,
            },
        }
        created = await self.containers.create(body, policy_action="build")
        cid = str(created["Id"])
        att = None
        try:
            self.say(f" ---> Running in {cid[:12]}")
            waiter = self.containers.waiter(cid, "next-exit")
            # attached before the start, as dockerd's builder: the output comes live and
            # ends with the process (following the log file would poll for the end)
            att = await self.containers.attach(cid, stdout=True, stderr=True, stream=True)
            await self.containers.start(cid)
            decoders: dict[str, codecs.IncrementalDecoder] = {}
            async for kind, data in att.output():
                if kind not in decoders:
                    decoders[kind] = codecs.getincrementaldecoder("utf-8")("replace")
                self.emit(decoders[kind].decode(data))
            for decoder in decoders.values():
                if tail := decoder.decode(b"", final=True):
                    self.emit(tail)
            status = await waiter
            code = int(status.get("StatusCode", 1))
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}",
                    exit_code=code,
                )
            changed = [(c["Path"], c["Kind"]) for c in await self.containers.changes(cid)]
            stubs = _mount_stubs(changed, mounts.targets)
            if all(path in stubs for path, _ in changed):
                # nothing changed: dockerd 20.10 records an empty_layer history entry
                return await new_image(
                    self.images, state.image_id, state.config, created_by, None, state.author
                )
            config = {k: state.config.get(k) for k in CONFIG_KEYS}
            result = await self.containers.commit(
                cid,
                pause=False,
                config=config,
                created_by=created_by,
                exclude=stubs,
                author=state.author,
            )
            return str(result["Id"])
        finally:
            if att is not None:
                att.close()
            # removed while the next steps run; build() waits for it before it returns
            removal = asyncio.create_task(self._remove_container(cid))
            self._removals.add(removal)
            self.say(f"Removing intermediate container {cid[:12]}")

    async def _remove_container(self, cid: str) -> None:
        with contextlib.suppress(PortsideError):
            await self.containers.remove(cid, force=True, volumes=True)

    # -- COPY / ADD ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _view(self, image_id: str | None) -> AsyncIterator[Path | None]:
        """The merged file tree of ``image_id`` (None for scratch or no layers)."""
        if image_id is None:
            yield None
            return
        cfg = await self.images.config(image_id)
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if not diff_ids:
            yield None
            return
        chain = chain_ids([Digest.parse(d) for d in diff_ids])[-1]
        async with image_view(self.images.snapshots, chain) as root:
            yield root

    async def _stage_or_image(self, ref: str) -> str | None:
        """The image of stage ``ref`` (a name or index), else of the image named ``ref``."""
        key = ref.lower()
        if key in self.graph.names:
            return await self._stage_result(self.graph.names[key])
        if ref.isdigit() and int(ref) < len(self.graph.nodes):
            return await self._stage_result(int(ref))
        return await self._external(ref)

    async def _copy_source(self, state: StageState, inst: ins.Copy) -> tuple[str | None, str]:
        """(image id of ``--from``, or None for the context; the name shown)."""
        if inst.from_ is None:
            return None, ""
        ref = self._word(state, inst.from_)
        return await self._stage_or_image(ref), ref

    async def _copy(self, state: StageState, inst: ins.Copy) -> None:
        is_add = isinstance(inst, ins.Add)
        what = "ADD" if is_add else "COPY"
        loc = f"{self.filename}:{inst.line}"
        sources: list[str] = []
        docs: list[Heredoc] = []
        urls: list[str] = []
        for src in inst.sources:
            if not isinstance(src, str):
                docs.append(src)
                continue
            word = self._word(state, src)
            if is_add and remote.is_git(word):
                raise InvalidArgument(
                    f"{loc}: ADD of a git repository ({word}) is not supported: clone it into "
                    "the build context and COPY it"
                )
            if is_add and remote.is_url(word):
                urls.append(word)
            else:
                sources.append(word)
        checksum = None
        if isinstance(inst, ins.Add) and inst.checksum is not None:
            checksum = self._word(state, inst.checksum)
            if not checksum.startswith("sha256:") or not is_digest(checksum):
                raise InvalidArgument(f"{loc}: invalid --checksum {checksum!r}: use sha256:<hex>")
            if not urls or sources or docs:
                raise InvalidArgument(f"{loc}: ADD --checksum is only valid for HTTP(S) sources")
        dest = self._word(state, inst.dest)
        if not dest:
            raise InvalidArgument(f"{loc}: {what} needs a destination")
        dest_text = dest
        dest_dir_hint = dest.endswith("/") or dest in (".", "..") or inst.parents
        dest = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", dest))
        chmod = ins.validate_chmod(inst.chmod) if inst.chmod else None
        excludes = [self._word(state, p) for p in inst.exclude]
        spec = _CopySpec(
            dest=dest,
            dest_dir_hint=dest_dir_hint,
            chmod=chmod,
            is_add=is_add,
            link=inst.link,
            parents=inst.parents,
            exclude=PatternMatcher(excludes) if excludes else None,
            unpack=inst.unpack if isinstance(inst, ins.Add) else None,
        )
        from_id, from_name = await self._copy_source(state, inst)
        async with contextlib.AsyncExitStack() as stack:

            async def image_tree() -> ImageTree:
                root = await stack.enter_async_context(self._view(from_id))
                if root is None:
                    raise InvalidArgument(f"{loc}: {what} --from={from_name}: the image is empty")
                return ImageTree.of(root)

            # an image's tree never changes: what its sources expand and hash to is kept,
            # so a cached COPY --from needs no mount of that image
            memo_key = json.dumps([from_id, sources, excludes, inst.parents])
            memo = self.cache.sources.get(memo_key) if inst.from_ is not None else None
            ctx: BuildContext | None = None
            if memo is None:
                ctx = await image_tree() if inst.from_ is not None else self.context
                for src in sources:
                    spec.groups.append(await self._expand_sources(ctx, [src], loc, what))
                paths = [p for group in spec.groups for p in group]
                content = await ctx.hash_paths(paths) if paths else ""
                tree = ctx
                one_dir = len(paths) == 1 and await asyncio.to_thread(tree.is_dir, paths[0])
                if inst.from_ is not None:
                    self.cache.remember_sources(memo_key, (spec.groups, content, one_dir))
            else:
                groups, content, one_dir = memo
                spec.groups = [list(g) for g in groups]
                paths = [p for group in spec.groups for p in group]
            spec.prefixes = [_parents_prefix(src) if inst.parents else "" for src in sources]
            if spec.exclude is not None:
                spec.groups = [
                    [p for p in group if not _excluded(spec.exclude, p)] for group in spec.groups
                ]
            staged_digests = await self._stage_inline(state, spec, docs, urls, checksum, stack)
            count = len(paths) + len(spec.staged)
            if (count > 1 or len(inst.sources) > 1) and not dest_dir_hint:
                raise InvalidArgument(
                    f"{loc}: When using {what} with more than one source file, the "
                    "destination must be a directory and end with a /"
                )
            if spec.staged and dest_dir_hint and any(not n for n, _, _ in spec.staged):
                raise InvalidArgument(f"{loc}: cannot determine a file name from the URL")
            content += "".join(staged_digests)
            chown = self._word(state, inst.chown) if inst.chown else ""
            kind = "dir:" if one_dir and not spec.staged else "file:"
            if count > 1:
                kind = "multi:"
            if len(paths) == 1 and not spec.staged:
                digest = content.removeprefix("sha256:")
            elif count == 1 and urls:
                kind, digest = "", staged_digests[0].removeprefix("url:sha256:")  # as dockerd
            else:
                digest = hashlib.sha256(content.encode()).hexdigest()
            # dockerd writes the --chown value and the source kind with no space between
            flag = f" --chown={chown}" if chown else " "
            created_by = " ".join(
                [*state.shell, f"#(nop) {what}{flag}{kind}{digest} in {dest_text} "]
            )
            options = [chown, chmod, from_id, inst.link, inst.parents, excludes, checksum]
            options += [spec.unpack, state.author]
            key = step_key(
                state.image_id,
                created_by + json.dumps(options),
                self._key_args(state),
                content,
            )
            found = await self._cached(key)
            if found is None:
                ctx = ctx or await image_tree()
                found = await self._make_copy_layer(state, ctx, spec, chown, stack, created_by)
                found = await self.cache.put(key, found, replace=self.opts.no_cache)
            state.image_id = found

    async def _stage_inline(
        self,
        state: StageState,
        spec: _CopySpec,
        docs: list[Heredoc],
        urls: list[str],
        checksum: str | None,
        stack: contextlib.AsyncExitStack,
    ) -> list[str]:
        """Heredoc files and URL downloads as files in a temporary directory (on
        ``spec.staged``); their content digests, for the cache key."""
        if not docs and not urls:
            return []
        work = self.root / "build-tmp"
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="inline-", dir=work))
        stack.push_async_callback(remove_dir, tmp)
        digests = []
        heredoc_lexer = Lexer(self.lexer.escape, raw_quotes=True)
        heredoc_lexer.raw_escapes = True
        for i, doc in enumerate(docs):
            content = doc.content
            if doc.expand:
                content = heredoc_lexer.word(content, self._vars(state))
            host = tmp / f"heredoc-{i}"
            await asyncio.to_thread(_write_file, host, content.encode(), 0o644)
            spec.staged.append((doc.name, host, False))
            digests.append("heredoc:" + hashlib.sha256(content.encode()).hexdigest())
        for i, url in enumerate(urls):
            self.say(f"Downloading {url}")
            got = await remote.download(url, tmp, checksum, i)
            spec.staged.append((got.name, got.path, True))
            digests.append(f"url:{got.digest}")
        return digests

    async def _expand_sources(
        self, ctx: BuildContext, sources: list[str], loc: str, what: str
    ) -> list[str]:
        out: list[str] = []
        files: list[str] | None = None
        for src in sources:
            clean = posixpath.normpath("/" + src).lstrip("/") or "."
            if _GLOB & set(clean):
                if files is None:
                    files = await ctx.files()
                depth = clean.count("/")
                try:  # Go's filepath.Match, as dockerd: [^a] negates
                    glob = go_glob(clean)
                except InvalidArgument as err:
                    raise InvalidArgument(f"{loc}: {what} {src}: {err}") from None
                hits = [f for f in files if f.count("/") == depth and glob.match(f)]
                if not hits:
                    raise BuildError(f"{loc}: {what} failed: no source files were specified")
                out.extend(hits)
            else:
                try:
                    await asyncio.to_thread(ctx.resolve, clean)
                except InvalidArgument:
                    raise BuildError(
                        f"{loc}: {what} failed: file not found in build context or excluded "
                        f"by .dockerignore: stat {src}: file does not exist"
                    ) from None
                out.append(clean)
        return out

    async def _make_copy_layer(
        self,
        state: StageState,
        ctx: BuildContext,
        spec: _CopySpec,
        chown: str,
        stack: contextlib.AsyncExitStack,
        created_by: str,
    ) -> str:
        await ctx.materialize()  # an uploaded context is written to disk the first time
        view = await stack.enter_async_context(self._view(state.image_id))
        # --link: the layer is made on an empty tree, whatever the parent holds
        parent_root = None if spec.link else view
        dest = spec.dest

        keep_owners = isinstance(ctx, ImageTree)  # COPY --from keeps the image's owners

        def classify() -> tuple[Owner | None, bool, list[tuple[str, Path, bool, bool, str]]]:
            owner = _owner(view, chown) if chown else (None if keep_owners else Owner())
            count = sum(len(g) for g in spec.groups) + len(spec.staged)
            dest_is_dir = spec.dest_dir_hint or count > 1 or _is_dir(parent_root, dest)
            found = []
            for group, prefix in zip(spec.groups, spec.prefixes, strict=True):
                for rel in group:
                    real = ctx.resolve(rel)
                    is_dir = real.is_dir()
                    unpack = spec.is_add and spec.unpack is not False and not is_dir
                    archive = unpack and _is_archive(real)
                    found.append((rel, real, is_dir, archive, prefix))
            return owner, dest_is_dir, found

        owner, dest_is_dir, found = await asyncio.to_thread(classify)
        items: list[CopyItem] = []
        # missing directories and who owns them, as dockerd 20.10 makes them: a file's new
        # parents get --chown's owner; a copied tree's new top dir too, but not its parents;
        # an extracted archive keeps its entries' owners and its new parents are root's
        file_parents: set[str] = set()
        tops: set[str] = set()
        dirs_needed: set[str] = set()
        for rel, real, is_dir, is_archive, prefix in found:
            kept = _relative_to(rel, prefix) if spec.parents else ""
            if is_dir:
                target = posixpath.join(dest, kept) if kept else dest
                items.append(CopyItem(real, target, keep=_keeper(ctx, rel, spec.exclude)))
                tops.add(target)
            elif is_archive:
                items.append(CopyItem(await self._unpacked(real, stack), dest, own=False))
                dirs_needed.add(dest)
            else:
                if kept:
                    target = posixpath.join(dest, kept)
                elif dest_is_dir:
                    target = posixpath.join(dest, posixpath.basename(rel))
                else:
                    target = dest
                items.append(CopyItem(real, target))
                file_parents.add(posixpath.dirname(target))
        for name, host, may_unpack in spec.staged:
            if may_unpack and spec.unpack and await asyncio.to_thread(_is_archive, host):
                items.append(CopyItem(await self._unpacked(host, stack), dest, own=False))
                dirs_needed.add(dest)
                continue
            target = posixpath.join(dest, posixpath.basename(name)) if dest_is_dir else dest
            items.append(CopyItem(host, target))
            file_parents.add(posixpath.dirname(target))

        def missing() -> tuple[list[str], set[str]]:
            ordered = _missing_dirs(parent_root, dirs_needed | tops | file_parents)
            owned = set(_missing_dirs(parent_root, file_parents)) | (tops & set(ordered))
            return ordered, set(ordered) - owned

        ordered, root_dirs = await asyncio.to_thread(missing)
        dir_mtime = 0 if spec.link else None
        return await new_image(
            self.images,
            state.image_id,
            state.config,
            created_by,
            lambda fh: write_copy_tar(
                fh, items, ordered, owner, spec.chmod, dir_mtime, root_dirs=root_dirs
            ),
            state.author,
        )

    async def _unpacked(self, archive: Path, stack: contextlib.AsyncExitStack) -> Path:
        """``archive`` extracted (confined unpacker) into a temporary directory."""
        work = self.root / "build-tmp"
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="add-", dir=work))
        stack.push_async_callback(remove_dir, tmp)
        await unpack_layer(
            archive, tmp, overlay=False, sync=False, server=self.images.snapshots.unpacker
        )
        return tmp


@dataclass
class _CopySpec:
    """What one COPY/ADD copies and how (sources expanded per source word)."""

    dest: str
    dest_dir_hint: bool
    chmod: int | None
    is_add: bool
    link: bool = False
    parents: bool = False
    exclude: PatternMatcher | None = None
    groups: list[list[str]] = field(default_factory=list)  # context paths per source
    prefixes: list[str] = field(default_factory=list)  # --parents: the part not kept
    unpack: bool | None = None  # ADD --unpack: None = local archives only
    # (file name, host file, a URL download that --unpack=true may extract)
    staged: list[tuple[str, Path, bool]] = field(default_factory=list)


def _excluded(matcher: PatternMatcher, path: str) -> bool:
    """Whether ``--exclude`` drops a source path (matched whole or by its base name)."""
    return matcher.excluded(path) or matcher.excluded(posixpath.basename(path))


def _parents_prefix(src: str) -> str:
    """For ``--parents``: the leading part of a source not recreated under the destination
    (everything before a ``/./`` marker; nothing without one)."""
    marker = src.find("/./")
    if marker < 0:
        return ""
    return posixpath.normpath("/" + src[:marker]).lstrip("/")


def _relative_to(rel: str, prefix: str) -> str:
    if not prefix:
        return rel
    return posixpath.relpath(rel, prefix) if rel != prefix else ""


def _write_file(host: Path, data: bytes, mode: int) -> None:
    host.write_bytes(data)
    host.chmod(mode)


def _write_script(host: Path, content: str) -> None:
    host.write_text(content)
    host.chmod(0o755)


def _mount_stubs(changed: list[tuple[str, int]], targets: list[str]) -> set[str]:
    """Changed paths that are only RUN mount targets or their parents (mountpoint stubs,
    which BuildKit removes too): left out of the layer unless something else changed
    below them."""
    stubs = {
        path
        for path, kind in changed
        if kind != 2
        and (path in targets or any(t.startswith(path.rstrip("/") + "/") for t in targets))
    }
    real = [path for path, _ in changed if path not in stubs and path not in targets]
    return {s for s in stubs if not any(r.startswith(s.rstrip("/") + "/") for r in real)}


def _stage_config(base: dict[str, Any]) -> dict[str, Any]:
    """The config a stage starts from, as dockerd's ``beginStage`` makes it: the base's
    keys, ``User`` and ``WorkingDir`` always present (``""``), and the default ``PATH``
    appended to ``Env`` when the base sets none (``FROM scratch`` too)."""
    cfg = {k: base[k] for k in CONFIG_KEYS if base.get(k) is not None}
    cfg.setdefault("User", "")
    cfg.setdefault("WorkingDir", "")
    env = list(cfg.get("Env") or [])
    if not any(item.partition("=")[0] == "PATH" for item in env):
        cfg["Env"] = [*env, "PATH=" + DEFAULT_PATH]
    return cfg


def _go_list(words: list[str]) -> str:
    """A list as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


def _go_duration(ns: int) -> str:
    """A duration as Go's ``time.Duration.String`` prints it (``1m30s``, ``500ms``)."""
    if ns == 0:
        return "0s"
    for limit, unit, scale in ((1_000, "ns", 1), (1_000_000, "µs", 1_000), (10**9, "ms", 10**6)):
        if ns < limit:
            return f"{ns / scale:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(ns, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


_GO_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def _go_rune(n: int) -> str:
    """An int as Go's ``%q`` prints it: a quoted rune literal."""
    if n in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[n]}'"
    if 0x20 <= n < 0x7F:
        return "'\\''" if n == 0x27 else ("'\\\\'" if n == 0x5C else f"'{chr(n)}'")
    return f"'\\x{n:02x}'" if n < 0x100 else f"'\\u{n:04x}'"


def _go_health(health: dict[str, Any]) -> str:
    """The legacy builder's history text of a HEALTHCHECK (Go's ``%q`` of HealthConfig)."""
    return "&{{{} {} {} {} {}}}".format(
        _go_list(health["Test"]),
        *(f'"{_go_duration(health.get(k, 0))}"' for k in ("Interval", "Timeout", "StartPeriod")),
        _go_rune(health.get("Retries", 0)),
    )


def _healthcheck(inst: ins.Healthcheck) -> dict[str, Any]:
    if inst.test is None:
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {"Test": list(inst.test)}
    for key, value in (
        ("Interval", inst.interval),
        ("Timeout", inst.timeout),
        ("StartPeriod", inst.start_period),
        ("StartInterval", inst.start_interval),
        ("Retries", inst.retries),
    ):
        if value:
            out[key] = value
    return out


def _inside(root: Path | None, path: str) -> Path | None:
    """``path`` of an image tree, resolved without leaving ``root`` (None if missing)."""
    if root is None:
        return None
    try:
        return ImageTree.of(root).resolve(path.lstrip("/") or ".")
    except InvalidArgument:
        return None


def _missing_dirs(root: Path | None, wanted: set[str]) -> list[str]:
    """Directories (and parents) of ``wanted`` missing from the image tree, parents first."""
    out: set[str] = set()
    for d in wanted:
        while d not in ("/", "") and not _is_dir(root, d):
            out.add(d)
            d = posixpath.dirname(d)
    return sorted(out, key=lambda d: (d.count("/"), d))


def _is_dir(root: Path | None, path: str) -> bool:
    real = _inside(root, path)
    return real is not None and real.is_dir()


def _lookup(root: Path | None, name: str, table: str) -> int:
    if name.isdigit():
        return int(name)
    real = _inside(root, f"/etc/{table}")
    if real is not None and real.is_file():
        for line in real.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    raise InvalidArgument(
        f"--chown: unable to find {'user' if table == 'passwd' else 'group'} "
        f"{name!r} in the image's /etc/{table}"
    )


def _owner(root: Path | None, chown: str) -> Owner:
    user, _, group = chown.partition(":")
    uid = _lookup(root, user, "passwd")
    if group:
        return Owner(uid, _lookup(root, group, "group"))
    if not user.isdigit():
        real = _inside(root, "/etc/passwd")
        if real is not None:
            for line in real.read_text(errors="replace").splitlines():
                fields = line.split(":")
                if len(fields) > 3 and fields[0] == user and fields[3].isdigit():
                    return Owner(uid, int(fields[3]))
    return Owner(uid, uid)


def _keeper(
    ctx: BuildContext, source: str = "", exclude: PatternMatcher | None = None
) -> Callable[[str], bool]:
    """Which children of a copied tree go in: sent by the context, and not matched by an
    ``--exclude`` pattern (relative to the context root or to the copied directory).
    Paths are strings, not ``Path``s: this runs for every file of a COPY."""
    prefix = str(ctx.root).rstrip("/") + "/"
    base = source.strip("/") if source not in (".", "") else ""

    def keep(path: str) -> bool:
        if not path.startswith(prefix):
            return True
        rel = path[len(prefix) :]
        # without the path, sent() answers for everything not excluded; an excluded
        # directory may still hold files a "!" pattern brings back: look at it then
        if not ctx.sent(rel) and not ctx.sent(rel, Path(path)):
            return False
        if exclude is None:
            return True
        inner = posixpath.relpath(rel, base) if base else rel
        return not exclude.excluded(rel) and not exclude.excluded(inner)

    return keep


def _is_archive(path: Path) -> bool:
    """Whether an ADD source is a (possibly compressed) tar archive to extract."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if detect(head) != Compression.NONE:
        return True
    return len(head) == 512 and head[257:262] == b"ustar"
