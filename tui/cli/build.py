"""``portside build``: tar a build context client-side and stream ``POST /build``.

The context directory is sent whole (the engine applies ``.dockerignore``, with the same
rules the docker CLI uses); a ``-f`` Dockerfile outside the context is added to the tar
under a generated name and listed in the sent ``.dockerignore``, as the docker CLI does.
``PATH`` ``-`` reads stdin: a tar (plain or compressed) is sent as the context, anything
else is taken as a lone Dockerfile. The tar is written to a temporary file in a thread and
streamed from there. ``--secret`` values travel in one request header (portside engines
only; docker's legacy build API has no secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import secrets
import stat
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
from tui.humanize import human_size

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_CHUNK = 1 << 16
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


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_tree(tar: tarfile.TarFile, directory: Path, prefix: str, skip: str | None) -> None:
    """Add ``directory``'s entries (sorted, recursively) as the docker CLI sends a context:
    owned by 0:0 with no user or group names, whole-second mtimes, hard links kept."""
    links: dict[tuple[int, int], str] = tar.inodes  # type: ignore[attr-defined]
    for entry in sorted(os.listdir(directory)):
        if entry == skip:
            continue
        path = directory / entry
        st = os.lstat(path)
        info = tarfile.TarInfo(prefix + entry)
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            inode = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and inode in links:
                info.type, info.linkname = tarfile.LNKTYPE, links[inode]
                tar.addfile(info)
                continue
            if st.st_nlink > 1:
                links[inode] = info.name
            info.size = st.st_size
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
        elif kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            _add_tree(tar, path, info.name + "/", None)
        elif kind == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            tar.addfile(info)
        elif kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):  # the engine refuses these
            info.type = {stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFCHR: tarfile.CHRTYPE}.get(
                kind, tarfile.BLKTYPE
            )
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tar.addfile(info)
        # sockets are left out, as tar and the docker CLI do


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
        try:
            _add_tree(tar, root, "", skip=".dockerignore" if extra is not None else None)
        except OSError as err:
            where = f" {err.filename!r}" if err.filename else ""
            raise VerbError(f"unable to prepare context:{where} {err.strerror or err}", 1) from None
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
        if args.secret:
            headers[SECRETS_HEADER] = await asyncio.to_thread(_secrets_header, args.secret)
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
