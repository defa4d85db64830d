"""Registry verbs: ``portside push`` and ``portside registry ls|tags|inspect|rm``.

``push`` is the Docker API's push (any engine); the ``registry`` verbs use portside's own
endpoints (``/portside/v1/...``, see ``engine/api/registry.py``), so they need a portside
engine. Like the docker CLI, every verb sends the user's stored credentials for the
image's registry (``tui.cli.dockerconfig``) as ``X-Registry-Auth``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

import aiodocker

from tui.cli import dockerconfig
from tui.cli.images import VerbError
from tui.cli.progress import ProgressPrinter
from tui.refs import split_ref

PREFIX = "portside/v1"


async def _auth_headers(name: str) -> dict[str, str]:
    """``X-Registry-Auth`` with the user's stored credentials for ``name``'s registry."""
    host = dockerconfig.image_registry(name)
    creds = await dockerconfig.load(host)
    return {"X-Registry-Auth": creds.header(host)} if creds is not None else {}


# -- push ------------------------------------------------------------------------------------


async def push(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    name, tag = split_ref(args.ref)
    if "@" in name:
        raise VerbError(f"cannot push a digest reference ({args.ref}): give NAME[:TAG]")
    if tag is None and not args.all_tags:
        tag = "latest"
        if not args.quiet:
            print(f"Using default tag: {tag}")
    elif tag is not None and args.all_tags:
        raise VerbError("tag can't be used with --all-tags/-a")
    target, auth = await dockerconfig.request_auth(name)
    printer = ProgressPrinter()
    failed: str | None = None
    try:
        async for msg in docker.images.push(target, tag=tag, auth=auth, stream=True):
            if "error" in msg or "errorDetail" in msg:
                failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
                break
            if not args.quiet:
                printer.feed(msg)
    except aiodocker.DockerError as err:
        failed = err.message
    if failed:
        raise VerbError(f"Error response from daemon: {failed}")
    if args.quiet:
        print(f"{name}:{tag}" if tag else name)
    return 0


# -- registry ls / tags / inspect / rm -------------------------------------------------------


async def _get(docker: aiodocker.Docker, path: str, headers: dict[str, str], **params: Any) -> Any:
    query = {k: str(v) for k, v in params.items() if v is not None}
    return await docker._query_json(
        f"{PREFIX}/{path}", "GET", params=query or None, headers=headers, versioned_api=False
    )


def _path(text: str) -> str:
    return quote(text, safe="/:@")


async def registry_ls(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    host = dockerconfig.registry_host(args.registry)
    headers = await _auth_headers(f"{host}/x")
    reply = await _get(docker, f"registries/{_path(host)}/catalog", headers)
    _print_names(reply.get("Repositories") or [], args)
    return 0


async def registry_tags(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    headers = await _auth_headers(args.repository)
    reply = await _get(docker, f"repositories/{_path(args.repository)}/tags", headers)
    _print_names(reply.get("Tags") or [], args)
    return 0


def _print_names(names: list[str], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(names, indent=4))
    elif names:
        print("\n".join(names))


async def registry_inspect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    headers = await _auth_headers(args.ref)
    reply = await _get(docker, f"manifests/{_path(args.ref)}", headers)
    print(json.dumps(reply, indent=4))
    return 0


async def registry_rm(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    code = 0
    for ref in args.refs:
        headers = await _auth_headers(ref)
        try:
            reply = await docker._query_json(
                f"{PREFIX}/manifests/{_path(ref)}",
                "DELETE",
                headers=headers,
                versioned_api=False,
            )
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
            continue
        print(reply.get("Message") or f"Deleted {ref}")
    return code
