"""``portside cp``: copy files between a container and the host, with the docker CLI's rules.

``cp [-a] [-L] CONTAINER:SRC DEST|-`` and ``cp [-a] [-L] SRC|- CONTAINER:DEST`` over the
archive endpoints (``HEAD``/``GET``/``PUT /containers/{id}/archive``). The path rules are
docker's ``pkg/archive/copy.go``: a missing destination takes the source's name, an
existing directory receives it, ``SRC/.`` copies a directory's content, a trailing ``/``
asserts a directory, ``-`` is a tar stream on stdin or stdout, ``-L`` follows a symlink
source. Tars from the engine are extracted under the checks of ``tarfile``'s ``tar`` filter
(no member outside the destination, none through a symlink leading out; made here, as
Python 3.11.2 has no filters) and never chowned, like the docker CLI; ``-a`` asks the
engine to give copied files the container user's ids.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import stat
import sys
import tarfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import aiodocker
import aiohttp

from tui.cli.images import VerbError

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_CHUNK = 1 << 20
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
_MODE_IRREGULAR = (1 << 26) | (1 << 19)  # Go ModeDevice | ModeIrregular


def decode_stat(header: str) -> dict[str, Any]:
    """The ``X-Docker-Container-Path-Stat`` header: base64 JSON."""
    try:
        return dict(json.loads(base64.b64decode(header)))
    except ValueError:
        raise VerbError("Error: the engine sent an unreadable path stat header", 1) from None


# -- docker's path helpers ------------------------------------------------------------------
def _base(path: str) -> str:
    """Go's ``filepath.Base``."""
    if not path:
        return "."
    trimmed = path.rstrip("/")
    return trimmed.rsplit("/", 1)[-1] if trimmed else "/"


def _preserve(cleaned: str, original: str) -> str:
    """``PreserveTrailingDotOrSeparator``."""
    if _base(cleaned) != "." and _base(original) == ".":
        cleaned = cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def split_dir_entry(path: str) -> tuple[str, str]:
    """``SplitPathDirEntry``: (parent, last element), ``.`` kept as the element."""
    cleaned = os.path.normpath(path)
    if _base(path) == ".":
        cleaned = cleaned.rstrip("/") + "/."
    return os.path.dirname(cleaned) or ".", _base(cleaned)


def split_arg(arg: str) -> tuple[str, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path gives ("", path)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """``GetRebaseName``: the resolved path with the request's trailing form, and the name
    archive entries must take when a symlink changed the last element ("" when not)."""
    if _base(path) == "." and _base(resolved) != ".":
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, (_base(path) if _base(path) != _base(resolved) else "")


def _replace_base(name: str, old: str, new: str) -> str:
    """``RebaseArchiveEntries`` for one name (``strings.Replace(name, old, new, 1)``)."""
    return name.replace(old, new, 1) if old != new else name


@dataclass
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase: str = ""


def destination_info(path: str) -> CopyInfo:
    """``CopyInfoDestinationPath``: a local destination, symlinks at its end followed."""
    original = path
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = split_dir_entry(path)[0]
            if not os.path.exists(parent):
                raise VerbError(f"Error: stat {parent}: no such file or directory", 1) from None
            if not os.path.isdir(parent):
                raise VerbError("Error: not a directory", 1) from None
            return CopyInfo(path)
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, exists=True, is_dir=stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(path)[0], target)
        path = target
    raise VerbError(f"Error: too many symlinks in {original}", 1)


def prepare(src: CopyInfo, dst: CopyInfo) -> tuple[str, Callable[[str], str]]:
    """``PrepareArchiveCopy``: where to extract, and how to rename each entry."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    src_base = src.rebase or split_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return dst.path, lambda n: n
    if dst.exists and src.is_dir:
        raise VerbError("Error: cannot copy directory", 1)
    if not dst.exists and not src.is_dir and dst.path.endswith(("/", "/.")):
        raise VerbError("Error: no such directory", 1)
    return dst_dir, lambda n: _replace_base(n, src_base, dst_base)


# -- local tars -----------------------------------------------------------------------------
class _NoChownTar(tarfile.TarFile):
    """Extraction as the docker CLI does it (``NoLchown``): files belong to the user."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: str, numeric_owner: bool) -> None:
        return


def extract_stream(fh: BinaryIO, dest: str, rename: Callable[[str], str]) -> None:
    """Extract a tar stream under ``dest`` (blocking; run in a thread)."""
    with _NoChownTar.open(fileobj=fh, mode="r|") as tar:
        for member in tar:
            member.name = rename(member.name)
            if member.islnk():
                member.linkname = rename(member.linkname)
            existing = os.path.join(dest, member.name)
            is_dir = os.path.isdir(existing) and not os.path.islink(existing)
            if is_dir and not member.isdir():
                raise VerbError(
                    f'Error: cannot overwrite directory "{existing}" with non-directory', 1
                )
            if member.isdir() and os.path.lexists(existing) and not is_dir:
                raise VerbError(
                    f'Error: cannot overwrite non-directory "{existing}" with directory', 1
                )
            problem = tar_filter_problem(member, dest)
            if problem:
                raise VerbError(f"Error: refusing an entry of the archive: {problem}", 1)
            tar.extract(member, dest, **_CHECKED_ALREADY)


# Python 3.11.4+ can check members itself (``filter="tar"``); Debian 12's 3.11.2 cannot, so
# the checks are made here on every version and tarfile is told they were.
_CHECKED_ALREADY: dict[str, Any] = (
    {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
)


def tar_filter_problem(member: tarfile.TarInfo, dest: str) -> str:
    """What tarfile's ``tar`` filter refuses, or "" (the member is then made safe in place):
    leading slashes go, nothing may land outside ``dest`` (resolving the symlinks already
    there), a hard link may not point outside it, and setuid/setgid/sticky bits and
    group/other write permission are dropped."""
    name = member.name.lstrip("/" + os.sep)
    if os.path.isabs(name):
        return f"{member.name!r} is an absolute path"
    root = os.path.realpath(dest)
    for label, path in (("", name), ("a hard link to ", member.linkname if member.islnk() else "")):
        if not path:
            continue
        target = os.path.realpath(os.path.join(root, path.lstrip("/" + os.sep)))
        if os.path.commonpath([root, target]) != root:
            return f"{member.name!r} would be {label}{target!r}, outside {dest}"
    member.name = name
    if member.islnk():
        member.linkname = member.linkname.lstrip("/" + os.sep)
    if member.mode is not None and not member.issym():
        member.mode &= 0o755
    return ""


def write_source_tar(fh: BinaryIO, source: str, arcname: str) -> None:
    """``TarResource``: ``source`` (not followed) and what it holds, under ``arcname``."""
    with tarfile.open(fileobj=fh, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=arcname, recursive=True)


async def _pipe_from_thread(work: Callable[[BinaryIO], None]) -> AsyncIterator[bytes]:
    """Run ``work(file)`` in a thread writing to a pipe; yield what it writes."""
    rfd, wfd = os.pipe()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with open(wfd, "wb", buffering=_CHUNK) as out:
                work(out)
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        with open(rfd, "rb", buffering=0) as src:
            while chunk := await asyncio.to_thread(src.read, _CHUNK):
                yield chunk
    finally:
        await asyncio.to_thread(thread.join)
    if failure:
        raise failure[0]


# -- engine side ----------------------------------------------------------------------------
async def _stat(docker: aiodocker.Docker, container: str, path: str) -> dict[str, Any] | None:
    """``HEAD .../archive``: the path's stat, or None when it does not exist.

    aiodocker's query helpers decode error bodies as JSON and a HEAD answer has none, so
    this one request goes through the client's session directly.
    """
    await docker._check_version()
    url = docker._canonicalize_url(f"containers/{container}/archive", versioned_api=True)
    async with docker.session.request("HEAD", url, params={"path": path}) as resp:
        if resp.status == 404:
            return None
        header = resp.headers.get("X-Docker-Container-Path-Stat")
        if resp.status != 200 or not header:
            raise aiodocker.DockerError(
                resp.status, f"cannot stat {container}:{path} (status {resp.status})"
            )
        return decode_stat(header)


async def copy_from_container(
    docker: aiodocker.Docker, container: str, src: str, dst: str, follow: bool
) -> int:
    if dst != "-":
        dst = _preserve(os.path.abspath(dst), dst)
    rebase = ""
    if follow:
        found = await _stat(docker, container, src)
        if found and found["mode"] & MODE_SYMLINK:
            target = found["linkTarget"]
            if not target.startswith("/"):
                target = os.path.join(split_dir_entry(src)[0], target)
            src, rebase = rebase_name(src, target)
    async with docker._query(
        f"containers/{container}/archive", params={"path": src}, timeout=_NO_TIMEOUT
    ) as resp:
        header = resp.headers.get("X-Docker-Container-Path-Stat")
        found = decode_stat(header) if header else {"mode": 0}
        if dst == "-":
            async for chunk in resp.content.iter_chunked(_CHUNK):
                await asyncio.to_thread(sys.stdout.buffer.write, chunk)
            await asyncio.to_thread(sys.stdout.buffer.flush)
            return 0
        src_info = CopyInfo(src, exists=True, is_dir=bool(found["mode"] & MODE_DIR))
        src_info.rebase = rebase
        dst_info = await asyncio.to_thread(destination_info, dst)
        dest_dir, rename = prepare(src_info, dst_info)
        if rebase:  # entries carry the link target's name: give them the link's first
            target_base = split_dir_entry(src)[1]
            then = rename

            def rename(name: str) -> str:
                return then(_replace_base(name, target_base, rebase))

        await _extract(resp.content.iter_chunked(_CHUNK), dest_dir, rename)
    return 0


async def _extract(chunks: AsyncIterator[bytes], dest: str, rename: Callable[[str], str]) -> None:
    rfd, wfd = os.pipe()
    reader = open(rfd, "rb")  # noqa: SIM115 - closed below, after the thread
    task = asyncio.ensure_future(asyncio.to_thread(extract_stream, reader, dest, rename))
    try:
        with open(wfd, "wb", buffering=0) as writer:
            async for chunk in chunks:
                if task.done():
                    break
                try:
                    await asyncio.to_thread(writer.write, chunk)
                except BrokenPipeError:
                    break
    except BrokenPipeError:
        pass
    finally:
        try:
            await task
        finally:
            reader.close()


async def copy_to_container(
    docker: aiodocker.Docker,
    src: str,
    container: str,
    dst: str,
    *,
    follow: bool,
    archive: bool,
) -> int:
    if src != "-":
        src = _preserve(os.path.abspath(src), src)
    dst_path = dst
    found = await _stat(docker, container, dst)
    if found and found["mode"] & MODE_SYMLINK:
        target = found["linkTarget"]
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(dst)[0], target)
        dst_path = target
        found = await _stat(docker, container, target)
    if found and found["mode"] & _MODE_IRREGULAR:
        raise VerbError(
            f'Error: destination "{container}:{dst}" must be a directory or a regular file', 1
        )
    dst_info = CopyInfo(dst_path, exists=found is not None)
    dst_info.is_dir = bool(found and found["mode"] & MODE_DIR)
    if src == "-":
        if not dst_info.is_dir:
            raise VerbError(f'Error: destination "{container}:{dst}" must be a directory', 1)
        target_dir = dst_info.path

        async def stdin_chunks() -> AsyncIterator[bytes]:
            while chunk := await asyncio.to_thread(sys.stdin.buffer.read1, _CHUNK):
                yield chunk

        body: AsyncIterator[bytes] = stdin_chunks()
    else:
        src_info = await asyncio.to_thread(source_info, src, follow)
        target_dir, rename = prepare(src_info, dst_info)
        parent, base = split_dir_entry(src_info.path)
        arcname = rename(src_info.rebase or base)
        source = os.path.join(parent, base)
        body = _pipe_from_thread(lambda fh: write_source_tar(fh, source, arcname))
    params = {"path": target_dir, "noOverwriteDirNonDir": "true"}
    if archive:
        params["copyUIDGID"] = "true"
    async with docker._query(
        f"containers/{container}/archive",
        method="PUT",
        params=params,
        data=body,
        headers={"Content-Type": "application/x-tar"},
        timeout=_NO_TIMEOUT,
    ):
        pass
    return 0


def source_info(path: str, follow: bool) -> CopyInfo:
    """``CopyInfoSourcePath``: symlinks before the last element resolved (all with -L)."""
    rebase = ""
    if follow:
        resolved, rebase = rebase_name(path, os.path.realpath(path))
    else:
        head, tail = os.path.split(path)
        resolved = os.path.realpath(head or ".").rstrip("/") + "/" + tail
        if path.endswith("/") and _base(path) != _base(resolved):
            rebase = _base(path)
    try:
        st = os.lstat(resolved)
    except FileNotFoundError:
        raise VerbError(f"Error: lstat {path}: no such file or directory", 1) from None
    return CopyInfo(resolved, exists=True, is_dir=stat.S_ISDIR(st.st_mode), rebase=rebase)


async def cp(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    src_ctr, src_path = split_arg(args.source)
    dst_ctr, dst_path = split_arg(args.destination)
    if not src_path:
        raise VerbError("Error: source can not be empty", 1)
    if not dst_path:
        raise VerbError("Error: destination can not be empty", 1)
    if src_ctr and dst_ctr:
        raise VerbError("Error: copying between containers is not supported", 1)
    if not src_ctr and not dst_ctr:
        raise VerbError("Error: must specify at least one container source", 1)
    with contextlib.suppress(BrokenPipeError):
        if src_ctr:
            return await copy_from_container(docker, src_ctr, src_path, dst_path, args.follow_link)
        return await copy_to_container(
            docker, src_path, dst_ctr, dst_path, follow=args.follow_link, archive=args.archive
        )
    return 1


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``cp`` to the ``portside`` subparsers."""
    p = sub.add_parser(
        "cp",
        help="copy files between a container and the host",
        description="Copy files between a container and the host ('-' is a tar stream).",
    )
    p.add_argument(
        "-a", "--archive", action="store_true", help="give copied files the container user's ids"
    )
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink source")
    p.add_argument("source", metavar="CONTAINER:SRC_PATH|SRC_PATH|-")
    p.add_argument("destination", metavar="DEST_PATH|-|CONTAINER:DEST_PATH")
    engine_options(p)
    p.set_defaults(func=cp)
