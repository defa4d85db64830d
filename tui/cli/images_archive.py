"""Image archive verbs over the Engine API: ``save``, ``load`` and ``import``.

``portside save [-o FILE] IMAGE...`` writes the engine's tarball to FILE (written to a
temporary name and renamed, so a failed save leaves no partial file) or to stdout when it
is not a terminal; ``portside load [-i FILE] [-q]`` sends a tarball (FILE or stdin) and
prints the engine's "Loaded image" lines; ``portside import FILE|URL|- [REF]`` with
``--change``, ``-m/--message`` and ``--platform`` creates a one-layer image from a
filesystem tarball and prints its id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import aiodocker
import aiohttp

from tui.cli.images import VerbError

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_CHUNK = 1 << 20


async def _file_chunks(fh: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(fh.read, _CHUNK):
        yield chunk


def _open_input(path: str | None) -> IO[bytes]:
    if path is None or path == "-":
        if sys.stdin.isatty():
            raise VerbError(
                "requested load from stdin, but stdin is empty: give -i FILE or pipe a tarball"
            )
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as err:
        raise VerbError(f"open {path}: {err.strerror}") from None


async def _json_lines(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for raw in resp.content:
        line = raw.strip()
        if line:
            yield json.loads(line)


def _failed(msg: dict[str, Any]) -> str | None:
    if "error" in msg or "errorDetail" in msg:
        return str((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
    return None


async def save(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    if args.output is None and sys.stdout.isatty():
        raise VerbError("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    query = urllib.parse.urlencode([("names", name) for name in args.images])
    target = Path(args.output) if args.output else None
    partial = target.with_name(f".{target.name}.part") if target else None
    try:
        async with docker._query(f"images/get?{query}", timeout=_NO_TIMEOUT) as resp:
            out: IO[bytes] = (
                await asyncio.to_thread(open, partial, "wb") if partial else sys.stdout.buffer
            )
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(out.flush)
            finally:
                if partial:
                    await asyncio.to_thread(out.close)
        if partial and target:
            await asyncio.to_thread(os.replace, partial, target)
    except aiohttp.ClientPayloadError:
        raise VerbError("the engine ended the archive early; nothing was saved") from None
    finally:
        if partial and partial.exists():
            partial.unlink()
    return 0


async def load(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    fh = _open_input(args.input)
    try:
        headers = {"Content-Type": "application/x-tar"}
        params = {"quiet": "1" if args.quiet else "0"}
        async with docker._query(
            "images/load",
            method="POST",
            params=params,
            data=_file_chunks(fh),
            headers=headers,
            timeout=_NO_TIMEOUT,
        ) as resp:
            async for msg in _json_lines(resp):
                if (failed := _failed(msg)) is not None:
                    raise VerbError(f"Error response from daemon: {failed}")
                if msg.get("stream"):
                    sys.stdout.write(msg["stream"])
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    return 0


async def import_(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    source: str = args.file
    params: list[tuple[str, str]] = []
    is_url = source.startswith(("http://", "https://"))
    params.append(("fromSrc", source if is_url else "-"))
    if args.reference:
        params.append(("repo", args.reference))
    if args.message:
        params.append(("message", args.message))
    if args.platform:
        params.append(("platform", args.platform))
    params += [("changes", c) for c in args.change or []]
    query = "images/create?" + urllib.parse.urlencode(params)
    fh = None if is_url else _open_input(source)
    try:
        data = _file_chunks(fh) if fh is not None else None
        async with docker._query(
            query,
            method="POST",
            data=data,
            headers={"Content-Type": "application/x-tar"} if data is not None else None,
            timeout=_NO_TIMEOUT,
        ) as resp:
            async for msg in _json_lines(resp):
                if (failed := _failed(msg)) is not None:
                    raise VerbError(f"Error response from daemon: {failed}")
                if str(msg.get("status", "")).startswith("sha256:"):
                    print(msg["status"])
    finally:
        if fh is not None and fh is not sys.stdin.buffer:
            fh.close()
    return 0


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``save``, ``load`` and ``import`` to the ``portside`` subparsers."""
    p = sub.add_parser("save", help="save images to a tar archive (stdout by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    engine_options(p)
    p.set_defaults(func=save)

    p = sub.add_parser("load", help="load images from a tar archive (stdin by default)")
    p.add_argument("-i", "--input", help="read from a tar archive file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    engine_options(p)
    p.set_defaults(func=load)

    p = sub.add_parser("import", help="import a filesystem tarball as a one-layer image")
    p.add_argument("file", metavar="FILE|URL|-")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("--change", action="append", help="Dockerfile instruction to apply")
    p.add_argument("-m", "--message", default="", help="commit message for the image")
    p.add_argument("--platform", default="", help="os/arch[/variant] of the image")
    engine_options(p)
    p.set_defaults(func=import_)
