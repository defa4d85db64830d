"""``portside build``: tar a build context client-side and stream ``POST /build``.

The context directory is sent whole (the engine applies ``.dockerignore``, with the same
rules the docker CLI uses); a ``-f`` Dockerfile outside the context is added to the tar
under a generated name and listed in the sent ``.dockerignore``, as the docker CLI does.
``PATH`` ``-`` reads stdin: a tar (plain or compressed) is sent as the context, anything
else is taken as a lone Dockerfile. The tar is written to a temporary file in a thread and
streamed from there.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import aiodocker
import aiohttp

from tui.cli.images import VerbError

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_CHUNK = 1 << 16
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _pairs(values: list[str] | None, what: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in values or []:
        key, eq, value = item.partition("=")
        if not key:
            raise VerbError(f"invalid {what} {item!r}: expected KEY=VALUE", 125)
        # docker: "--build-arg NAME" takes NAME from the environment, or stays unset
        out[key] = value if eq else os.environ.get(key)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _tar_directory(root: Path, dockerfile: str | None, out: IO[bytes]) -> str | None:
    """Write the context tar; returns the Dockerfile name to send (None: the default)."""
    if not root.is_dir():
        raise VerbError(f"unable to prepare context: path {str(root)!r} not found", 1)
    name: str | None = None
    extra: bytes | None = None
    if dockerfile is not None:
        path = Path(dockerfile)
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            rel = path.resolve().relative_to(root.resolve())
            name = rel.as_posix()
        except ValueError:
            try:
                extra = path.read_bytes()
            except OSError as err:
                raise VerbError(
                    f"unable to read Dockerfile {dockerfile!r}: {err.strerror}", 1
                ) from None
            name = f".dockerfile.{secrets.token_hex(10)}"
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            if extra is not None and entry == ".dockerignore":
                continue
            tar.add(root / entry, arcname=entry, recursive=True)
        if extra is not None and name is not None:
            # like the docker CLI: the added Dockerfile and .dockerignore are not context
            ignore = root / ".dockerignore"
            patterns = ignore.read_bytes() if ignore.is_file() else b""
            _add_bytes(tar, ".dockerignore", patterns + f"\n.dockerignore\n{name}\n".encode())
            _add_bytes(tar, name, extra)
    return name


def _stdin_context(data: bytes, out: IO[bytes]) -> None:
    if data.startswith(_COMPRESSED) or data[257:262] == b"ustar":
        out.write(data)
        return
    with tarfile.open(fileobj=out, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", data)


def _prepare(args: argparse.Namespace, out: IO[bytes]) -> str | None:
    if args.path == "-":
        _stdin_context(sys.stdin.buffer.read(), out)
        out.flush()
        return args.file
    name = _tar_directory(Path(args.path), args.file, out)
    out.flush()
    return name


async def _chunks(fh: IO[bytes]) -> AsyncIterator[bytes]:
    fh.seek(0)
    while chunk := await asyncio.to_thread(fh.read, _CHUNK):
        yield chunk


def _query(args: argparse.Namespace, dockerfile: str | None) -> str:
    pairs: list[tuple[str, str]] = [("t", t) for t in args.tag or []]
    if dockerfile:
        pairs.append(("dockerfile", dockerfile))
    build_args = _pairs(args.build_arg, "--build-arg")
    if build_args:
        pairs.append(("buildargs", json.dumps(build_args)))
    labels = _pairs(args.label, "--label")
    if labels:
        pairs.append(("labels", json.dumps({k: v or "" for k, v in labels.items()})))
    if args.target:
        pairs.append(("target", args.target))
    for flag, on in (("nocache", args.no_cache), ("pull", args.pull), ("q", args.quiet)):
        if on:
            pairs.append((flag, "1"))
    pairs.append(("rm", "1"))
    return "build?" + urllib.parse.urlencode(pairs)


async def build(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    with tempfile.TemporaryFile(prefix="portside-build-") as fh:
        dockerfile = await asyncio.to_thread(_prepare, args, fh)
        query = _query(args, dockerfile)
        headers = {"Content-Type": "application/x-tar"}
        async with docker._query(
            query, method="POST", data=_chunks(fh), headers=headers, timeout=_NO_TIMEOUT
        ) as resp:
            image_id, failed = await _print_stream(resp, args.quiet)
    if failed is not None:
        message, code = failed
        print(message, file=sys.stderr)
        return code
    if image_id is None:
        raise VerbError("the engine finished the build without reporting an image id", 1)
    if args.quiet:
        print(image_id)
    if args.iidfile:
        await asyncio.to_thread(Path(args.iidfile).write_text, image_id)
    return 0


async def _print_stream(
    resp: aiohttp.ClientResponse, quiet: bool
) -> tuple[str | None, tuple[str, int] | None]:
    image_id: str | None = None
    write: Callable[[str], Any] = sys.stdout.write
    async for raw in resp.content:
        if not raw.strip():
            continue
        msg = json.loads(raw)
        if "errorDetail" in msg or "error" in msg:
            detail = msg.get("errorDetail") or {}
            message = detail.get("message") or msg.get("error") or "build failed"
            return image_id, (str(message), int(detail.get("code") or 1))
        aux = msg.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
        if not quiet and isinstance(msg.get("stream"), str):
            write(msg["stream"])
            sys.stdout.flush()
    return image_id, None


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``portside build`` to the ``portside`` subparsers."""
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("path", metavar="PATH|-")
    p.add_argument("-t", "--tag", action="append", help="name:tag for the image (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", metavar="K=V", help="build-time variable")
    p.add_argument("--target", help="the stage to build")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pull", action="store_true", help="always pull FROM images")
    p.add_argument("--label", action="append", metavar="K=V", help="image label")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--iidfile", help="write the image id to this file")
    p.set_defaults(func=build)
    engine_options(p)
