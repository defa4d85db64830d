"""Image verbs: ``pull``, ``images``, ``tag``, ``rmi`` and ``inspect``, over the Engine API."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import aiodocker

from tui.cli import dockerconfig
from tui.cli.output import table
from tui.cli.progress import ProgressPrinter
from tui.humanize import human_age, human_size, short_id
from tui.refs import split_ref


class VerbError(Exception):
    """A verb failed; the message is printed as is and the exit code returned."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


async def pull(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    image, tag = split_ref(args.ref)
    if tag is None and "@" not in image:
        tag = "latest"
    if not args.quiet and tag and "@" not in image and ":" not in args.ref.rsplit("/", 1)[-1]:
        print(f"Using default tag: {tag}")
    printer = ProgressPrinter()
    failed: str | None = None
    name, auth = await dockerconfig.request_auth(image)  # the user's login, like docker
    stream = docker.images.pull(
        name, tag=tag, auth=auth, platform=args.platform or None, stream=True
    )
    async for msg in stream:
        if "error" in msg or "errorDetail" in msg:
            failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
            break
        if not args.quiet:
            printer.feed(msg)
    if failed:
        raise VerbError(f"Error response from daemon: {failed}")
    shown = args.ref if tag is None or ":" in args.ref.rsplit("/", 1)[-1] else f"{args.ref}:{tag}"
    print(_full_name(shown))
    return 0


def _full_name(ref: str) -> str:
    """docker prints ``docker.io/library/debian:12`` as the last line of a pull."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


async def images(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    for f in args.filter or []:
        key, _, value = f.partition("=")
        filters.setdefault(key, []).append(value)
    if args.repository:
        filters.setdefault("reference", []).append(args.repository)
    items = await docker.images.list(filters=filters or None, all="1" if args.all else "0")
    if args.quiet:
        seen: list[str] = []
        for item in items:
            short = item["Id"] if args.no_trunc else short_id(item["Id"])
            if short not in seen:
                seen.append(short)
        print("\n".join(seen)) if seen else None
        return 0
    rows: list[list[str]] = []
    now = time.time()
    for item in items:
        image_id = item["Id"] if args.no_trunc else short_id(item["Id"])
        tags = item.get("RepoTags") or []
        tags = [t for t in tags if t != "<none>:<none>"] or ["<none>:<none>"]
        digests = [d for d in item.get("RepoDigests") or [] if d != "<none>@<none>"]
        for repo_tag in tags:
            repo, _, tag = repo_tag.rpartition(":")
            row = [repo, tag]
            if args.digests:
                match = [d.split("@", 1)[1] for d in digests if d.split("@", 1)[0] == repo]
                row.append(match[0] if match else "<none>")
            row += [
                image_id,
                human_age(item.get("Created", 0), now),
                human_size(item.get("Size", 0)),
            ]
            rows.append(row)
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else [])
    headers += ["IMAGE ID", "CREATED", "SIZE"]
    print(table(headers, rows))
    return 0


async def tag(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    repo, tag_name = split_ref(args.target)
    await docker.images.tag(args.source, repo, tag=tag_name)
    return 0


async def rmi(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    code = 0
    for name in args.images:
        try:
            result = await docker.images.delete(name, force=args.force, noprune=args.no_prune)
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
            continue
        for entry in result or []:
            for key, value in entry.items():
                print(f"{key}: {value}")
    return code


async def inspect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    found: list[dict[str, Any]] = []
    code = 0
    for name in args.names:
        try:
            found.append(await docker.images.inspect(name))
        except aiodocker.DockerError as err:
            if err.status == 404:
                print(f"Error: No such image: {name}", file=sys.stderr)
            else:
                print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
    if args.format:
        for item in found:
            print(_format(args.format, item))
    else:
        print(json.dumps(found, indent=4))
    return code


def _format(template: str, item: dict[str, Any]) -> str:
    """The subset of Go templates people use most: ``{{.Field.Sub}}`` and ``{{json .X}}``."""
    import re

    def value(path: str) -> Any:
        node: Any = item
        for part in [p for p in path.split(".") if p]:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def repl(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:].strip()))
        v = value(expr)
        if v is None:
            return "<no value>"
        return json.dumps(v) if isinstance(v, dict | list) else str(v)

    return re.sub(r"\{\{(.*?)\}\}", repl, template)
