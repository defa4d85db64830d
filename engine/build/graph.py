"""The stage graph of a Dockerfile: which stage needs which, for ``--target`` and concurrency.

``stage_graph(dockerfile, build_args)`` expands every ``FROM`` with the global ``ARG``s (and
the build args overriding them), resolves ``FROM <stage>``, ``COPY --from`` and
``RUN --mount=...,from=`` references by stage name (case-insensitive) or index, and records
external images. ``StageGraph.needed(target)`` lists the stages a target needs (others are
skipped); ``StageGraph.levels(target)`` groups them into waves whose stages are independent
and can run concurrently. Cycles and unknown targets are one-line errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.build.expand import ExpansionError, Lexer
from engine.build.instructions import (
    Add,
    Arg,
    Copy,
    Dockerfile,
    Env,
    Run,
    Stage,
    parse_mount,
)
from engine.errors import InvalidArgument
from engine.platform import host_platform


@dataclass
class StageNode:
    """One stage with what it depends on."""

    stage: Stage
    base: str  # the expanded FROM value
    platform: str | None = None  # the expanded --platform, if given
    base_stage: int | None = None  # FROM another stage
    depends: set[int] = field(default_factory=set)  # stage indexes (base included)
    images: set[str] = field(default_factory=set)  # external images (base included)


@dataclass
class StageGraph:
    """All stages with their dependencies (see the module docstring)."""

    nodes: list[StageNode]
    names: dict[str, int]
    global_args: dict[str, str]

    def index(self, target: str) -> int:
        """The index of stage ``target`` (a name or a number)."""
        key = target.lower()
        if key in self.names:
            return self.names[key]
        if target.isdigit() and int(target) < len(self.nodes):
            return int(target)
        known = ", ".join(sorted(self.names)) or "none"
        raise InvalidArgument(f"target stage {target!r} not found (stages: {known})")

    def needed(self, target: str | None = None) -> list[int]:
        """Stage indexes the target (default: the last stage) needs, in Dockerfile order."""
        start = len(self.nodes) - 1 if target is None else self.index(target)
        seen: set[int] = set()
        stack = [start]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(self.nodes[i].depends)
        return sorted(seen)

    def levels(self, target: str | None = None) -> list[list[int]]:
        """The needed stages in waves: each wave only needs stages of earlier waves."""
        needed = self.needed(target)
        level: dict[int, int] = {}
        remaining = set(needed)
        while remaining:
            ready = [i for i in remaining if self.nodes[i].depends <= level.keys()]
            if not ready:  # cannot happen after stage_graph's cycle check
                raise InvalidArgument("circular dependency between build stages")
            for i in ready:
                deps = self.nodes[i].depends
                level[i] = 1 + max((level[d] for d in deps), default=-1)
                remaining.discard(i)
        waves: list[list[int]] = [[] for _ in range(max(level.values()) + 1)]
        for i in sorted(level):
            waves[level[i]].append(i)
        return waves

    def images(self, target: str | None = None) -> set[str]:
        """External images the needed stages use (FROM, COPY --from, mount from=)."""
        out: set[str] = set()
        for i in self.needed(target):
            out |= self.nodes[i].images
        return out


def default_platform_args() -> dict[str, str]:
    """The automatic platform ARGs (TARGETPLATFORM, BUILDOS...) for the host."""
    host = host_platform()
    plat = f"{host.os}/{host.architecture}" + (f"/{host.variant}" if host.variant else "")
    out: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        out[f"{prefix}PLATFORM"] = plat
        out[f"{prefix}OS"] = host.os
        out[f"{prefix}ARCH"] = host.architecture
        out[f"{prefix}VARIANT"] = host.variant or ""
    return out


def global_args(dockerfile: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    """The values of the ARGs declared before the first FROM (plus the platform ARGs)."""
    lexer = Lexer(dockerfile.escape)
    env = default_platform_args()
    for arg in dockerfile.meta_args:
        for name, default in arg.pairs:
            if name in build_args:
                env[name] = build_args[name]
            elif default is not None:
                env[name] = _expand(lexer, default, env, dockerfile.filename, arg.line)
    return env


def _expand(lexer: Lexer, text: str, env: Mapping[str, str], filename: str, line: int) -> str:
    try:
        return lexer.word(text, env)
    except ExpansionError as err:
        raise InvalidArgument(f"{filename}:{line}: {err}") from None


def stage_graph(dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None) -> StageGraph:
    """Resolve the stages of ``dockerfile`` into a graph (see the module docstring)."""
    args = dict(build_args or {})
    lexer = Lexer(dockerfile.escape)
    meta = global_args(dockerfile, args)
    fname = dockerfile.filename
    names: dict[str, int] = {}
    nodes: list[StageNode] = []
    envs: list[tuple[dict[str, str], set[str]]] = []
    for stage in dockerfile.stages:
        if stage.name is not None:
            names[stage.name] = stage.index
    for stage in dockerfile.stages:
        base = _expand(lexer, stage.source.base, meta, fname, stage.source.line)
        if not base:
            raise InvalidArgument(
                f"{fname}:{stage.source.line}: FROM expands to an empty name "
                f"({stage.source.base!r}): set the build arg or give a default"
            )
        node = StageNode(stage, base)
        if stage.source.platform is not None:
            node.platform = _expand(lexer, stage.source.platform, meta, fname, stage.source.line)
        env: dict[str, str] = {}
        from_env: set[str] = set()  # names set by ENV: an ARG never overrides them
        key = base.lower()
        if key in names and names[key] < stage.index:
            node.base_stage = names[key]
            node.depends.add(names[key])
            env.update(envs[names[key]][0])
            from_env.update(envs[names[key]][1])
        elif key in names:
            raise InvalidArgument(
                f"{fname}:{stage.source.line}: FROM {base!r} refers to this stage or a later one"
            )
        elif base.lower() != "scratch":
            node.images.add(base)
        for instruction in stage.instructions:
            if isinstance(instruction, Arg):
                for name, default in instruction.pairs:
                    if name in from_env:
                        continue
                    if name in args:
                        env[name] = args[name]
                    elif default is not None:
                        env[name] = _expand(lexer, default, env, fname, instruction.line)
                    elif name in meta:
                        env[name] = meta[name]
            elif isinstance(instruction, Env):
                for name, value in instruction.pairs:
                    env[name] = _expand(lexer, value, env, fname, instruction.line)
                    from_env.add(name)
            elif isinstance(instruction, Copy) and not isinstance(instruction, Add):
                if instruction.from_ is not None:
                    ref = _expand(lexer, instruction.from_, env, fname, instruction.line)
                    _link(node, ref, names, len(dockerfile.stages), fname, instruction.line)
            elif isinstance(instruction, Run):
                for spec in instruction.mount_specs:
                    try:
                        mount = parse_mount(spec, env, dockerfile.escape)
                    except InvalidArgument as err:
                        raise InvalidArgument(f"{fname}:{instruction.line}: {err}") from None
                    if mount.from_ is not None:
                        _link(
                            node,
                            mount.from_,
                            names,
                            len(dockerfile.stages),
                            fname,
                            instruction.line,
                        )
        nodes.append(node)
        envs.append(({k: v for k, v in env.items() if k in from_env}, from_env))
    _check_cycles(nodes, fname)
    return StageGraph(nodes, names, meta)


def _link(
    node: StageNode, ref: str, names: dict[str, int], count: int, fname: str, line: int
) -> None:
    key = ref.lower()
    index: int | None = None
    if key in names:
        index = names[key]
    elif ref.isdigit():
        index = int(ref)
        if index >= count:
            raise InvalidArgument(
                f"{fname}:{line}: --from={ref} names stage {index}, but there are only {count}"
            )
    if index is None:
        node.images.add(ref)
        return
    if index == node.stage.index:
        raise InvalidArgument(f"{fname}:{line}: --from={ref} refers to its own stage")
    node.depends.add(index)


def _check_cycles(nodes: list[StageNode], fname: str) -> None:
    state = [0] * len(nodes)  # 0 new, 1 on the path, 2 done
    for start in range(len(nodes)):
        if state[start]:
            continue
        stack: list[tuple[int, list[int]]] = [(start, sorted(nodes[start].depends))]
        state[start] = 1
        while stack:
            i, pending = stack[-1]
            if not pending:
                state[i] = 2
                stack.pop()
                continue
            dep = pending.pop()
            if state[dep] == 1:
                cycle = [n for n, _ in stack[[n for n, _ in stack].index(dep) :]]
                shown = " -> ".join(_label(nodes[n]) for n in [*cycle, dep])
                raise InvalidArgument(f"{fname}: circular dependency between stages: {shown}")
            if state[dep] == 0:
                state[dep] = 1
                stack.append((dep, sorted(nodes[dep].depends)))


def _label(node: StageNode) -> str:
    return node.stage.name or str(node.stage.index)
