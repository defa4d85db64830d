"""The build service: ``docker build`` at the engine level (legacy builder semantics).

``BuildService.build(context, ...)`` parses the context's Dockerfile, resolves the stage
graph (``--target``, build args), runs the needed stages through ``Executor`` with the
on-disk build cache, applies the tags and reports docker's legacy progress lines
("Step N/M : ...", "Successfully built <id>", "Successfully tagged <tag>").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from engine.build import instructions as ins
from engine.build.cache import BuildCache
from engine.build.context import BuildContext
from engine.build.executor import PROXY_ARGS, Executor, Options, short
from engine.build.graph import stage_graph
from engine.errors import InvalidArgument
from engine.reference import Reference

if TYPE_CHECKING:
    from pathlib import Path

    from engine.containers import ContainerService
    from engine.images import ImageService


class BuildService:
    """Builds images from Dockerfiles into one engine root."""

    def __init__(self, root: Path, images: ImageService, containers: ContainerService) -> None:
        self.images = images
        self.containers = containers
        self.cache = BuildCache(root, images)

    async def close(self) -> None:
        """Write what the build cache holds back (its use notes)."""
        await self.cache.close()

    async def build(
        self,
        context: BuildContext,
        *,
        dockerfile: str | None = None,
        tags: list[str] | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        pull: bool = False,
        labels: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
        secrets: Mapping[str, bytes] | None = None,
    ) -> str:
        """Build the context's Dockerfile; returns the image id. ``secrets`` (id -> content)
        feed ``RUN --mount=type=secret`` and never reach the image or its history."""
        emit = progress or (lambda line: None)
        refs = [Reference.parse(t) for t in tags or []]  # bad tags fail before any work
        for ref in refs:
            if ref.digest is not None:
                raise InvalidArgument(f"invalid tag {ref}: a build cannot tag with a digest")
        name = dockerfile or context.dockerfile_name or "Dockerfile"
        parsed = ins.parse_dockerfile(context.dockerfile, name)
        args = dict(build_args or {})
        graph = stage_graph(parsed, args)
        extra: list[ins.Instruction] = []
        if labels:
            pairs = sorted(labels.items())
            quoted = [(_quote(k), _quote(v)) for k, v in pairs]
            text = "LABEL " + " ".join(f"{k}={v}" for k, v in quoted)
            extra.append(ins.Label(0, text, quoted))
        executor = Executor(
            images=self.images,
            containers=self.containers,
            cache=self.cache,
            context=context,
            graph=graph,
            escape=parsed.escape,
            filename=name,
            options=Options(
                build_args=args,
                no_cache=no_cache,
                pull=pull,
                progress=emit,
                secrets=dict(secrets or {}),
            ),
        )
        image_id = await executor.build(target, extra)
        declared = executor.declared | {n for a in parsed.meta_args for n, _ in a.pairs}
        unused = sorted(set(args) - declared - PROXY_ARGS)
        if unused:
            emit(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        emit(f"Successfully built {short(image_id)}\n")
        for ref in refs:
            await self.images.tag(image_id, ref.name, ref.tag or "latest")
            emit(f"Successfully tagged {ref.familiar_name}:{ref.tag or 'latest'}\n")
        return image_id


def _quote(text: str) -> str:
    """``text`` as a double-quoted Dockerfile word that expands to itself."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
