"""Resolve a container's ``User`` (``name|uid[:group|gid]``) from the image's own files.

The rootfs's /etc/passwd and /etc/group are read through ``fsroot.read_file``: symlinks stay
inside the root, only regular files up to ``MAX_FILE`` bytes are read (a FIFO or /dev/zero
in their place is refused, CVE-2024-9676), and no NSS code ever runs. Semantics follow
docker: a numeric uid needs no passwd entry (gid 0, home /), an unknown *name* is an error,
supplementary groups are the primary group, /etc/group membership and ``--group-add``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidArgument
from engine.runtime import fsroot

MAX_FILE = 4 << 20
MAX_ID = 0xFFFFFFFE  # (uid_t)-1 is "no change" for the kernel


@dataclass(frozen=True)
class ExecUser:
    """What the runtime needs to start a process as a user."""

    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _parse_id(text: str, what: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"{what} {text} is out of range (0 to {MAX_ID})")
    return value


def _read(root: Path, path: str) -> list[list[str]]:
    try:
        data = fsroot.read_file(root, path, limit=MAX_FILE)
    except OSError as err:
        raise InvalidArgument(
            f"cannot read {path} in the container: {err.strerror or err}; the image's {path} "
            f"must be a regular file under {MAX_FILE >> 20} MiB"
        ) from None
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rows.append(line.split(":"))
    return rows


def _passwd(root: Path) -> list[_Passwd]:
    out = []
    for f in _read(root, "/etc/passwd"):
        if len(f) < 4 or not f[2].isdigit() or not f[3].isdigit():
            continue
        out.append(_Passwd(f[0], int(f[2]), int(f[3]), f[5] if len(f) > 5 and f[5] else "/"))
    return out


def _groups(root: Path) -> list[_Group]:
    out = []
    for f in _read(root, "/etc/group"):
        if len(f) < 3 or not f[2].isdigit():
            continue
        members = tuple(m for m in (f[3].split(",") if len(f) > 3 else []) if m)
        out.append(_Group(f[0], int(f[2]), members))
    return out


def resolve_user(root: Path, spec: str, group_add: list[str] | None = None) -> ExecUser:
    """The uid, gid, supplementary gids and home of ``spec`` inside the rootfs ``root``."""
    spec = (spec or "").strip()
    user_part, _, group_part = spec.partition(":")
    if ":" in group_part:
        raise InvalidArgument(f"invalid user {spec!r}: use name|uid[:group|gid]")
    passwd = _passwd(root)
    entry: _Passwd | None = None
    uid_num = _parse_id(user_part, "uid") if user_part else 0
    if uid_num is not None:
        entry = next((p for p in passwd if p.uid == uid_num), None)
        uid = uid_num
    else:
        entry = next((p for p in passwd if p.name == user_part), None)
        if entry is None:
            raise InvalidArgument(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid = entry.uid
    gid = entry.gid if entry else 0
    home = entry.home if entry else "/"
    name = entry.name if entry else ""
    groups: list[_Group] | None = None
    if group_part:
        gid_num = _parse_id(group_part, "gid")
        if gid_num is not None:
            gid = gid_num
        else:
            groups = _groups(root)
            found = next((g for g in groups if g.name == group_part), None)
            if found is None:
                raise InvalidArgument(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            gid = found.gid
    additional: list[int] = [gid]  # as docker: the primary group is a supplementary one too
    if name and not group_part:
        groups = groups if groups is not None else _groups(root)
        additional += [g.gid for g in groups if name in g.members and g.gid != gid]
    for extra in group_add or []:
        num = _parse_id(extra, "gid")
        if num is None:
            groups = groups if groups is not None else _groups(root)
            found = next((g for g in groups if g.name == extra), None)
            if found is None:
                raise InvalidArgument(
                    f"unable to find group {extra}: no matching entries in group file"
                )
            num = found.gid
        if num not in additional:
            additional.append(num)
    return ExecUser(uid=uid, gid=gid, additional_gids=additional, home=home, name=name)
