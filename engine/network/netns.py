"""Named network namespaces (``ip netns``): create, delete, list, run a command inside.

A named namespace is a bind mount under /run/netns, so it outlives the processes in it and
an engine restart can still find and delete it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from engine.errors import InvalidArgument, PortsideError

NETNS_DIR = Path("/run/netns")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class NetnsError(PortsideError):
    """An ``ip netns`` operation failed."""


def _check(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"invalid network namespace name {name!r}: use letters, digits, '_', '.', '-'"
        )
    return name


def path_of(name: str) -> Path:
    """Where the namespace ``name`` is mounted."""
    return NETNS_DIR / _check(name)


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def create(name: str) -> Path:
    """Create the named namespace (with its loopback down, as the kernel makes it)."""
    code, out = await _ip("netns", "add", _check(name))
    if code != 0:
        raise NetnsError(f"cannot create network namespace {name}: {out}")
    return path_of(name)


async def delete(name: str) -> None:
    """Delete the named namespace; a missing one is not an error."""
    if not path_of(name).exists():
        return
    code, out = await _ip("netns", "delete", name)
    if code != 0 and path_of(name).exists():
        raise NetnsError(f"cannot delete network namespace {name}: {out}")


def exec_args(name: str, *argv: str) -> list[str]:
    """The argv running ``argv`` inside the namespace (for asyncio.create_subprocess_exec)."""
    return ["ip", "netns", "exec", _check(name), *argv]
