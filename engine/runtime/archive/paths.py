"""docker's path rules for ``docker cp`` and the path-stat object it exchanges.

dockerd keeps a trailing ``/`` or ``/.`` through path cleaning (``/a/b/`` asks for the
directory's content the way ``cp -r a/b/`` does, ``/a/b/.`` for its content without the
directory itself); the ``X-Docker-Container-Path-Stat`` header is base64 of
``{"name","size","mode","mtime","linkTarget"}`` where ``mode`` is a Go ``os.FileMode``.
Everything here is pure and cheap: the helper process and the API both use it.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
from typing import Any

# Go os.FileMode type bits (io/fs): the permission bits are the unix ones.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20

_TYPES = {
    stat.S_IFDIR: MODE_DIR,
    stat.S_IFLNK: MODE_SYMLINK,
    stat.S_IFBLK: MODE_DEVICE,
    stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE,
    stat.S_IFIFO: MODE_NAMED_PIPE,
    stat.S_IFSOCK: MODE_SOCKET,
}


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` of an absolute path (``..`` stops at ``/``)."""
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/" + "/".join(parts)


def container_abs_path(path: str) -> str:
    """docker's ``PreserveTrailingDotOrSeparator(Join("/", path), path)``."""
    cleaned = clean("/" + path)
    if base(path) == ".":
        cleaned = cleaned.rstrip("/") + "/."
    if path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def split(abs_path: str) -> tuple[str, str]:
    """Go's ``filepath.Split``: (directory with its trailing slash, last element)."""
    i = abs_path.rfind("/")
    return abs_path[: i + 1], abs_path[i + 1 :]


def base(abs_path: str) -> str:
    """Go's ``filepath.Base``."""
    if not abs_path:
        return "."
    trimmed = abs_path.rstrip("/")
    if not trimmed:
        return "/"
    return trimmed.rsplit("/", 1)[-1]


def go_mode(st_mode: int) -> int:
    """A unix ``st_mode`` as Go's ``os.FileMode``."""
    mode = (st_mode & 0o777) | _TYPES.get(stat.S_IFMT(st_mode), 0)
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def rfc3339nano(ns: int) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339, trailing zeros of the fraction trimmed)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def path_stat(name: str, st: os.stat_result, link_target: str) -> dict[str, Any]:
    """docker's ``ContainerPathStat``."""
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_mode(st.st_mode),
        "mtime": rfc3339nano(st.st_mtime_ns),
        "linkTarget": link_target,
    }


def stat_header(info: dict[str, Any]) -> str:
    """The ``X-Docker-Container-Path-Stat`` header value."""
    return base64.b64encode(json.dumps(info, separators=(",", ":")).encode()).decode()


def decode_stat_header(value: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(value)))
