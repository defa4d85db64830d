"""``portside build``: tar a build context client-side and stream ``POST /build``.

The context directory is sent whole (the engine applies ``.dockerignore``, with the same
rules the docker CLI uses); a ``-f`` Dockerfile outside the context is added to the tar
under a generated name and listed in the sent ``.dockerignore``, as the docker CLI does.
``PATH`` ``-`` reads stdin: a tar (plain or compressed) is sent as the context, anything
else is taken as a lone Dockerfile. The tar is written by a thread into a pipe and streamed
as it is made, so the engine unpacks the context while the rest is still being read; a
failure half-way (an unreadable file) aborts the upload and is reported as such.
``--secret`` values travel in one request header (portside engines only; docker's legacy
build API has no secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import json
import os
import secrets
import sys
import urllib.parse
from collections.abc import AsyncGenerator, Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import aiodocker
import aiohttp

from tui.cli.context_tar import ContextTar, add_tree
from tui.cli.images import VerbError
from tui.humanize import human_size

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_CHUNK = 1 << 16
_PIPE_BUFFER = 1 << 16
_PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: a small context is written whole before it is sent
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
SECRETS_HEADER = "X-Portside-Build-Secrets"  # engine/build/secrets.py decodes it
_MAX_SECRET = 500 * 1024
_MAX_HEADER = 7000  # aiohttp servers take header values up to 8190 bytes


def _pairs(values: list[str] | None, what: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in values or []:
        key, eq, value = item.partition("=")
        if not key:
            raise VerbError(f"invalid {what} {item!r}: expected KEY=VALUE", 125)
        # docker: "--build-arg NAME" takes NAME from the environment, or stays unset
        out[key] = value if eq else os.environ.get(key)
    return out


def _dockerfile_plan(root: Path, dockerfile: str | None) -> tuple[str | None, bytes | None]:
    """The Dockerfile name to send (None: the default) and, for a ``-f`` file outside the
    context, its content to add to the tar."""
    if not root.is_dir():
        raise VerbError(f"unable to prepare context: path {str(root)!r} not found", 1)
    if dockerfile is None:
        return None, None
    path = Path(dockerfile)
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        return path.resolve().relative_to(root.resolve()).as_posix(), None
    except ValueError:
        pass
    try:
        extra = path.read_bytes()
    except OSError as err:
        raise VerbError(f"unable to read Dockerfile {dockerfile!r}: {err.strerror}", 1) from None
    return f".dockerfile.{secrets.token_hex(10)}", extra


def _write_tar(root: Path, name: str | None, extra: bytes | None, out: IO[bytes]) -> None:
    """Write the context tar of ``root`` (see ``_dockerfile_plan`` for ``name``/``extra``)."""
    tar = ContextTar(out)
    try:
        add_tree(tar, str(root), skip=".dockerignore" if extra is not None else None)
    except OSError as err:
        where = f" {err.filename!r}" if err.filename else ""
        raise VerbError(f"unable to prepare context:{where} {err.strerror or err}", 1) from None
    if extra is not None and name is not None:
        # like the docker CLI: the added Dockerfile and .dockerignore are not context
        ignore = root / ".dockerignore"
        patterns = ignore.read_bytes() if ignore.is_file() else b""
        tar.data(".dockerignore", patterns + f"\n.dockerignore\n{name}\n".encode())
        tar.data(name, extra)
    tar.close()


def _tar_directory(root: Path, dockerfile: str | None, out: IO[bytes]) -> str | None:
    """Write the context tar; returns the Dockerfile name to send (None: the default)."""
    name, extra = _dockerfile_plan(root, dockerfile)
    _write_tar(root, name, extra, out)
    return name


def _stdin_context(data: bytes, out: IO[bytes]) -> None:
    if data.startswith(_COMPRESSED) or data[257:262] == b"ustar":
        out.write(data)
        return
    tar = ContextTar(out)
    tar.data("Dockerfile", data)
    tar.close()


def _plan(args: argparse.Namespace) -> tuple[str | None, Callable[[IO[bytes]], None]]:
    """The Dockerfile name to send and the writer of the context tar (run in a thread)."""
    if args.path == "-":
        return args.file, lambda out: _stdin_context(sys.stdin.buffer.read(), out)
    root = Path(args.path)
    name, extra = _dockerfile_plan(root, args.file)
    return name, lambda out: _write_tar(root, name, extra, out)


def _secrets_header(specs: list[str]) -> str:
    """``--secret id=x,src=PATH`` / ``id=x,env=VAR`` values as the engine's
    X-Portside-Build-Secrets header (base64url JSON of {id: base64 content})."""
    found: dict[str, str] = {}
    for spec in specs:
        fields = dict(f.partition("=")[::2] for f in spec.split(",") if f)
        secret_id = fields.pop("id", "")
        fields.pop("type", None)
        src = fields.pop("src", None) or fields.pop("source", None)
        env = fields.pop("env", None)
        if not secret_id or fields or (src is None) == (env is None):
            raise VerbError(f"invalid --secret {spec!r}: use id=ID,src=PATH or id=ID,env=VAR", 1)
        if env is not None:
            if env not in os.environ:
                raise VerbError(f"--secret {secret_id}: environment variable {env} is not set", 1)
            data = os.environ[env].encode()
        else:
            try:
                data = Path(src or "").read_bytes()
            except OSError as err:
                raise VerbError(
                    f"--secret {secret_id}: cannot read {src}: {err.strerror}", 1
                ) from None
        if len(data) > _MAX_SECRET:
            raise VerbError(f"--secret {secret_id}: larger than {_MAX_SECRET} bytes", 1)
        found[secret_id] = base64.b64encode(data).decode()
    value = base64.urlsafe_b64encode(json.dumps(found).encode()).decode()
    if len(value) > _MAX_HEADER:
        raise VerbError(f"--secret: the secrets are too large together (limit {_MAX_HEADER})", 1)
    return value


Plan = Callable[[], tuple[str | None, Callable[[IO[bytes]], None]]]


class _TarPipe:
    """Runs a tar writer in a thread over a pipe; ``chunks()`` yields what it writes.
    ``plan`` runs first in that thread and gives the Dockerfile name to send (``planned()``)
    and the writer. ``start()`` before the request: the writer fills the (enlarged) pipe
    meanwhile."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.job: asyncio.Future[None] | None = None
        self._planned: concurrent.futures.Future[str | None] = concurrent.futures.Future()
        self._rfd = -1  # the read end until chunks() hands it to a transport

    def start(self) -> None:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # a bigger pipe where the system allows it
            fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._rfd = rfd
        self.job = asyncio.get_running_loop().run_in_executor(None, self._produce, wfd)

    def discard(self) -> None:
        """Close the read end if no upload took it: a writer still at work then stops."""
        if self._rfd >= 0:
            os.close(self._rfd)
            self._rfd = -1

    def _produce(self, wfd: int) -> None:
        try:
            name, write = self.plan()
        except BaseException as err:
            os.close(wfd)
            self._planned.set_exception(err)
            return
        self._planned.set_result(name)
        try:
            with open(wfd, "wb", buffering=_PIPE_BUFFER) as fh:
                write(fh)
        except BrokenPipeError:
            pass  # the upload stopped reading: its own error is the one to report

    async def planned(self) -> str | None:
        """The Dockerfile name to send, once the plan ran; its error if it failed."""
        if self.job is None:
            self.start()
        return await asyncio.wrap_future(self._planned)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        if self.job is None:
            self.start()
        assert self.job is not None
        rfd, self._rfd = self._rfd, -1
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=4 * _CHUNK)
        pipe = open(rfd, "rb", buffering=0)  # noqa: SIM115 - the transport owns and closes it
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while chunk := await reader.read(_CHUNK):
                yield chunk
            await self.job  # a failure of the writer ends the upload here
        finally:
            transport.close()

    async def failure(self) -> BaseException | None:
        """The writer's own error, if it failed (once it has finished)."""
        if self.job is None:
            return None
        with contextlib.suppress(BaseException):
            await self.job
        return self.job.exception() if not self.job.cancelled() else None


async def _close(body: AsyncGenerator[bytes, None]) -> None:
    """End the body generator (closing the pipe lets a writer still at work stop)."""
    with contextlib.suppress(RuntimeError):  # still running: its cancellation closes it
        await body.aclose()


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
    tar = _TarPipe(partial(_plan, args))  # planned and tarred in one thread, one hop
    try:
        dockerfile = await tar.planned()
        headers = {"Content-Type": "application/x-tar"}
        if args.secret:
            headers[SECRETS_HEADER] = await asyncio.to_thread(_secrets_header, args.secret)
    except BaseException:
        tar.discard()
        raise
    query = _query(args, dockerfile)
    body = tar.chunks()
    try:
        async with docker._query(  # unversioned: no /version round trip first
            query,
            method="POST",
            data=body,
            headers=headers,
            timeout=_NO_TIMEOUT,
            versioned_api=False,
        ) as resp:
            image_id, failed = await _print_stream(resp, args.quiet)
    except BaseException:
        await _close(body)
        tar.discard()
        if isinstance(err := await tar.failure(), VerbError):
            raise err from None  # the context could not be read: that, not the upload
        raise
    await _close(body)
    tar.discard()
    if failed is not None:
        if isinstance(err := await tar.failure(), VerbError):
            raise err
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


_PRUNE_WARNING = {
    False: "WARNING! This will remove all dangling build cache.",
    True: "WARNING! This will remove all build cache.",
}
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _bytes(text: str) -> int:
    """``--keep-storage``: a byte count, optionally with a k/m/g/t suffix (base 1024)."""
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in _UNITS else (raw, "")
    try:
        value = float(number)
    except ValueError:
        raise VerbError(
            f"invalid --keep-storage {text!r}: use bytes like 512m or 2g", 125
        ) from None
    if value < 0:
        raise VerbError(f"invalid --keep-storage {text!r}: must not be negative", 125)
    return int(value * _UNITS[unit])


async def builder_prune(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    for item in args.filter or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise VerbError(f"invalid filter {item!r}: expected KEY=VALUE", 125)
        filters.setdefault(key, []).append(value)
    params = {"all": "1" if args.all else "0"}
    if filters:
        params["filters"] = json.dumps(filters)
    if args.keep_storage:
        params["keep-storage"] = str(_bytes(args.keep_storage))
    if not args.force:
        print(_PRUNE_WARNING[bool(args.all)])
        answer = await asyncio.to_thread(input, "Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    found = await docker._query_json("build/prune", method="POST", params=params)
    deleted = found.get("CachesDeleted") or []
    if deleted:
        print("Deleted build cache objects:")
        for key in deleted:
            print(key)
        print()
    print(f"Total reclaimed space: {human_size(found.get('SpaceReclaimed') or 0)}")
    return 0


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``portside build`` and ``portside builder prune`` to the subparsers."""
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
    p.add_argument(
        "--secret",
        action="append",
        metavar="id=ID,src=PATH|env=VAR",
        help="a secret for RUN --mount=type=secret (repeatable)",
    )
    p.set_defaults(func=build)
    engine_options(p)
    builder = sub.add_parser("builder", help="manage the build cache")
    bsub = builder.add_subparsers(dest="builder_command", metavar="COMMAND", required=True)
    p = bsub.add_parser("prune", help="remove build cache")
    p.add_argument("-a", "--all", action="store_true", help="remove all cache, not just dangling")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", metavar="K=V", help="e.g. until=24h")
    p.add_argument("--keep-storage", metavar="BYTES", help="keep this much recent cache")
    p.set_defaults(func=builder_prune)
    engine_options(p)
