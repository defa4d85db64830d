"""The stage executor: runs the instructions of the needed stages, one image per step.

Config instructions (ENV, ARG, LABEL, WORKDIR, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL,
HEALTHCHECK, STOPSIGNAL, ONBUILD, MAINTAINER) make an image with an ``empty_layer`` history
entry in the legacy builder's ``/bin/sh -c #(nop)  ...`` form; COPY/ADD write a layer from
the context or another stage (``engine.build.layers``); RUN runs a container through the
container service (host network unless ``--network``), then commits it. Every step is
looked up in the build cache first. Progress lines are docker's legacy builder lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.build import instructions as ins
from engine.build.cache import BuildCache, step_key
from engine.build.context import BuildContext
from engine.build.dockerignore import for_build
from engine.build.expand import ExpansionError, Lexer
from engine.build.graph import StageGraph
from engine.build.layers import CopyItem, Owner, new_image, write_copy_tar
from engine.digest import Digest, chain_ids
from engine.errors import InvalidArgument, NotFound, PortsideError
from engine.store.compression import Compression, detect
from engine.store.snapshots import merged_view
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
_GLOB = set("*?[")


class BuildError(PortsideError):
    """A build step failed (a RUN exiting non-zero, a missing source...)."""


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class Options:
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    progress: Callable[[str], None] = lambda line: None


@dataclass
class StageState:
    """What one stage has built so far."""

    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False

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
        self.results: dict[int, str | None] = {}
        self.declared: set[str] = set()  # ARG names the build went through
        self.step = 0
        self.total = 0

    def say(self, line: str) -> None:
        self.opts.progress(line + "\n")

    # -- driver ------------------------------------------------------------------------
    async def build(self, target: str | None, extra: list[ins.Instruction]) -> str:
        needed = self.graph.needed(target)
        last = needed[-1]
        plan = {i: list(self.graph.nodes[i].stage.instructions) for i in needed}
        plan[last].extend(extra)
        self.total = sum(1 + len(v) for v in plan.values())
        image_id: str | None = None
        for i in needed:
            image_id = await self._stage(i, plan[i])
            self.results[i] = image_id
        if image_id is None:
            raise BuildError("the build produced no image: a FROM scratch stage needs a step")
        return image_id

    async def _stage(self, index: int, steps: list[ins.Instruction]) -> str | None:
        node = self.graph.nodes[index]
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {node.stage.source.original.strip()}")
        state = await self._from(node.base, node.base_stage, node.platform)
        if state.image_id:
            self.say(f" ---> {short(state.image_id)}")
        await self._triggers(state)
        for inst in steps:
            self.step += 1
            self.say(f"Step {self.step}/{self.total} : {inst.original.strip()}")
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
            image_id = self.results[base_stage]
        elif base.lower() == "scratch":
            image_id = None
        else:
            image_id = await self._external(base, platform)
        if image_id is None:
            return StageState(None, {})
        cfg = (await self.images.config(image_id)).get("config") or {}
        return StageState(image_id, {k: cfg[k] for k in CONFIG_KEYS if cfg.get(k) is not None})

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
            created_by + json.dumps(state.config, sort_keys=True),
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
            found = await new_image(self.images, state.image_id, state.config, created_by, write)
            await self.cache.put(key, found)
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
            path = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", path))
            cfg["WorkingDir"] = path
            await self._commit_config(state, f"WORKDIR {path}", make_dir=path)
        elif isinstance(inst, ins.User):
            cfg["User"] = self._word(state, inst.user)
            await self._commit_config(state, f"USER {cfg['User']}")
        elif isinstance(inst, ins.Expose):
            ports = dict(cfg.get("ExposedPorts") or {})
            shown = []
            for word in inst.ports:
                for w in self.lexer.words(word, self._vars(state)):
                    start, end, proto = ins.parse_ports(w)
                    for p in range(start, end + 1):
                        ports[f"{p}/{proto}"] = {}
                    shown.append(w)
            cfg["ExposedPorts"] = ports
            await self._commit_config(state, "EXPOSE " + " ".join(sorted(shown)))
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
            await self._commit_config(state, "SHELL " + _go_list(cfg["Shell"]))
        elif isinstance(inst, ins.Healthcheck):
            cfg["Healthcheck"] = _healthcheck(inst)
            await self._commit_config(state, "HEALTHCHECK " + _go_health(cfg["Healthcheck"]))
        elif isinstance(inst, ins.StopSignal):
            cfg["StopSignal"] = ins.validate_signal(self._word(state, inst.signal))
            await self._commit_config(state, f"STOPSIGNAL {cfg['StopSignal']}")
        elif isinstance(inst, ins.Onbuild):
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), inst.expression]
            await self._commit_config(state, f"ONBUILD {inst.expression}")
        elif isinstance(inst, ins.Maintainer):
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
    async def _run(self, state: StageState, inst: ins.Run) -> None:
        if state.image_id is None:
            raise InvalidArgument(
                f"{self.filename}:{inst.line}: RUN needs a base image with a shell, "
                "not FROM scratch"
            )
        if inst.mounts or inst.mount_specs or inst.heredocs:
            raise InvalidArgument(
                f"{self.filename}:{inst.line}: RUN --mount and heredocs need BuildKit; "
                "this builder does not support them yet"
            )
        cmd = self._command(state, inst.command)
        network = self._word(state, inst.network)
        if network not in ins.NETWORK_MODES:
            raise InvalidArgument(f"{self.filename}:{inst.line}: invalid --network {network!r}")
        text = json.dumps([cmd, network])
        key = step_key(state.image_id, "RUN " + text, self._key_args(state))
        found = await self._cached(key)
        if found is None:
            found = await self._run_container(state, cmd, network)
            await self.cache.put(key, found)
        state.image_id = found

    async def _run_container(self, state: StageState, cmd: list[str], network: str) -> str:
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
        ]
        body = {
            "Image": state.image_id,
            "Cmd": cmd,
            "Entrypoint": [],
            "Env": run_env,
            "User": state.config.get("User") or "",
            "WorkingDir": state.config.get("WorkingDir") or "",
            "HostConfig": {"NetworkMode": "host" if network == "default" else network},
        }
        created = await self.containers.create(body, policy_action="build")
        cid = str(created["Id"])
        try:
            self.say(f" ---> Running in {cid[:12]}")
            waiter = self.containers.waiter(cid, "next-exit")
            await self.containers.start(cid)
            async for _, data in self.containers.logs(cid, follow=True):
                self.opts.progress(data.decode(errors="replace"))
            status = await waiter
            code = int(status.get("StatusCode", 1))
            if code != 0:
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}")
            config = {k: state.config.get(k) for k in CONFIG_KEYS}
            result = await self.containers.commit(cid, pause=False, config=config)
            return str(result["Id"])
        finally:
            with contextlib.suppress(PortsideError):
                await self.containers.remove(cid, force=True, volumes=True)
            self.say(f"Removing intermediate container {cid[:12]}")

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
        async with merged_view(self.images.snapshots, chain) as root:
            yield root

    async def _copy_source(self, state: StageState, inst: ins.Copy) -> tuple[str | None, str]:
        """(image id of ``--from``, or None for the context; the name shown)."""
        if inst.from_ is None:
            return None, ""
        ref = self._word(state, inst.from_)
        key = ref.lower()
        if key in self.graph.names:
            return self.results.get(self.graph.names[key]), ref
        if ref.isdigit() and int(ref) in self.results:
            return self.results[int(ref)], ref
        return await self._external(ref), ref

    async def _copy(self, state: StageState, inst: ins.Copy) -> None:
        is_add = isinstance(inst, ins.Add)
        what = "ADD" if is_add else "COPY"
        loc = f"{self.filename}:{inst.line}"
        if inst.link or inst.parents or inst.exclude:
            raise InvalidArgument(f"{loc}: {what} --link/--parents/--exclude need BuildKit")
        sources: list[str] = []
        for src in inst.sources:
            if not isinstance(src, str):
                raise InvalidArgument(f"{loc}: {what} heredocs need BuildKit")
            word = self._word(state, src)
            if is_add and ins._is_remote(word):
                raise InvalidArgument(f"{loc}: ADD of remote URLs is not supported yet")
            sources.append(word)
        dest = self._word(state, inst.dest)
        if not dest:
            raise InvalidArgument(f"{loc}: {what} needs a destination")
        dest_text = dest
        dest_dir_hint = dest.endswith("/") or dest in (".", "..")
        dest = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", dest))
        chmod = ins.validate_chmod(inst.chmod) if inst.chmod else None
        from_id, from_name = await self._copy_source(state, inst)
        async with contextlib.AsyncExitStack() as stack:
            if inst.from_ is not None:
                root = await stack.enter_async_context(self._view(from_id))
                if root is None:
                    raise InvalidArgument(f"{loc}: {what} --from={from_name}: the image is empty")
                ctx = ImageTree(root, "", b"", for_build([], None))
            else:
                ctx = self.context
            paths = await self._expand_sources(ctx, sources, loc, what)
            if (len(paths) > 1 or len(sources) > 1) and not dest_dir_hint:
                raise InvalidArgument(
                    f"{loc}: When using {what} with more than one source file, the "
                    "destination must be a directory and end with a /"
                )
            if inst.from_ is None:
                content = await ctx.hash_paths(paths)
            else:
                content = f"{from_id}:{json.dumps(paths)}"
            chown = self._word(state, inst.chown) if inst.chown else ""
            one_dir = len(paths) == 1 and await asyncio.to_thread(
                lambda: ctx.resolve(paths[0]).is_dir()
            )
            kind = "dir" if one_dir else "file"
            if len(paths) > 1:
                kind = "multi"
            digest = content.removeprefix("sha256:")
            flag = f" --chown={chown}" if chown else ""
            created_by = " ".join(
                [*state.shell, f"#(nop) {what}{flag} {kind}:{digest} in {dest_text} "]
            )
            key = step_key(
                state.image_id,
                created_by + json.dumps([chown, chmod, from_id]),
                self._key_args(state),
                content,
            )
            found = await self._cached(key)
            if found is None:
                found = await self._make_copy_layer(
                    state, ctx, paths, dest, dest_dir_hint, chown, chmod, is_add, stack, created_by
                )
                await self.cache.put(key, found)
            state.image_id = found

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
                hits = [f for f in files if f.count("/") == depth and fnmatch.fnmatchcase(f, clean)]
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
        paths: list[str],
        dest: str,
        dest_dir_hint: bool,
        chown: str,
        chmod: int | None,
        is_add: bool,
        stack: contextlib.AsyncExitStack,
        created_by: str,
    ) -> str:
        parent_root = await stack.enter_async_context(self._view(state.image_id))

        def classify() -> tuple[Owner, bool, list[tuple[str, Path, bool, bool]]]:
            owner = _owner(parent_root, chown) if chown else Owner()
            dest_is_dir = dest_dir_hint or len(paths) > 1 or _is_dir(parent_root, dest)
            found = []
            for rel in paths:
                real = ctx.resolve(rel)
                is_dir = real.is_dir()
                found.append((rel, real, is_dir, is_add and not is_dir and _is_archive(real)))
            return owner, dest_is_dir, found

        owner, dest_is_dir, found = await asyncio.to_thread(classify)
        items: list[CopyItem] = []
        dirs_needed: set[str] = set()
        for rel, real, is_dir, is_archive in found:
            if is_dir:
                items.append(CopyItem(real, dest, keep=_keeper(ctx)))
                dirs_needed.add(dest)
            elif is_archive:
                work = self.images.content.root.parent / "build-tmp"
                await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
                tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="add-", dir=work))
                stack.push_async_callback(asyncio.to_thread, shutil.rmtree, tmp, True)
                await unpack_layer(real, tmp, overlay=False, sync=False)
                items.append(CopyItem(tmp, dest))
                dirs_needed.add(dest)
            else:
                target = posixpath.join(dest, posixpath.basename(rel)) if dest_is_dir else dest
                items.append(CopyItem(real, target))
                dirs_needed.add(posixpath.dirname(target))

        ordered = await asyncio.to_thread(_missing_dirs, parent_root, dirs_needed)
        return await new_image(
            self.images,
            state.image_id,
            state.config,
            created_by,
            lambda fh: write_copy_tar(fh, items, ordered, owner, chmod),
        )


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


class ImageTree(BuildContext):
    """An image's file tree used like a context (``COPY --from``): symlinks resolve as they
    would inside a container, absolute targets and ``..`` staying under the tree's root."""

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


def _inside(root: Path | None, path: str) -> Path | None:
    """``path`` of an image tree, resolved without leaving ``root`` (None if missing)."""
    if root is None:
        return None
    try:
        return ImageTree(root, "", b"", for_build([], None)).resolve(path.lstrip("/") or ".")
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


def _keeper(ctx: BuildContext) -> Callable[[Path], bool]:
    root = ctx.root

    def keep(path: Path) -> bool:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            return True
        return ctx.included(rel)

    return keep


def _is_archive(path: Path) -> bool:
    """Whether an ADD source is a (possibly compressed) tar archive to extract."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if detect(head) != Compression.NONE:
        return True
    return len(head) == 512 and head[257:262] == b"ustar"
