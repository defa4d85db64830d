"""``ADD <url>``: download one http(s) source for a build step, verified when asked.

``download(url, directory, checksum)`` streams the body through aiohttp into a new file in
``directory`` (hashing on the way, writes in a thread), checks ``--checksum`` when given,
and gives the file docker's treatment: mode 0600 and the ``Last-Modified`` time as mtime
(epoch 0 when the server sends none). URL archives are never extracted. ``is_git(src)``
tells git sources apart, which this builder refuses with a clear error.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import posixpath
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from engine.build.errors import BuildError
from engine.errors import InvalidArgument

MAX_DOWNLOAD = 8 << 30  # bytes; a larger ADD source is refused
_CHUNK = 1 << 20
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=300)


@dataclass(frozen=True)
class Downloaded:
    """One downloaded source: where it is, its content digest and its file name."""

    path: Path
    digest: str
    name: str


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def is_git(src: str) -> bool:
    if src.startswith(("git@", "git://")):
        return True
    path = urllib.parse.urlsplit(src).path if is_url(src) else src
    return is_url(src) and (path.endswith(".git") or ("#" in src and ".git" in src))


def url_filename(url: str) -> str:
    """The file name docker gives a download: the last component of the URL's path."""
    name = posixpath.basename(urllib.parse.urlsplit(url).path.rstrip("/"))
    return urllib.parse.unquote(name)


async def download(url: str, directory: Path, checksum: str | None, index: int = 0) -> Downloaded:
    """Download ``url`` into ``directory`` (see the module docstring)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"invalid ADD URL {url!r}: use http:// or https:// with a host")
    target = directory / f"download-{index}"
    digest = hashlib.sha256()
    size = 0
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.get(url, allow_redirects=True) as resp,
        ):
            if resp.status != 200:
                raise BuildError(f"ADD {url}: the server answered {resp.status} {resp.reason}")
            fh = await asyncio.to_thread(open, target, "xb")
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise BuildError(f"ADD {url}: larger than {MAX_DOWNLOAD} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(fh.write, chunk)
            finally:
                await asyncio.to_thread(fh.close)
            modified = resp.headers.get("Last-Modified")
    except aiohttp.ClientError as err:
        await asyncio.to_thread(lambda: target.unlink(missing_ok=True))
        raise BuildError(f"ADD {url}: download failed: {err}") from None
    except BaseException:
        await asyncio.to_thread(lambda: target.unlink(missing_ok=True))
        raise
    found = "sha256:" + digest.hexdigest()
    if checksum is not None and found != checksum:
        await asyncio.to_thread(lambda: target.unlink(missing_ok=True))
        raise BuildError(f"ADD {url}: digest mismatch: expected {checksum}, got {found}")
    mtime = 0
    if modified:
        parsed = email.utils.parsedate_to_datetime(modified) if _valid_date(modified) else None
        mtime = int(parsed.timestamp()) if parsed is not None else 0

    def finish() -> None:
        os.chmod(target, 0o600)
        os.utime(target, (mtime, mtime))

    await asyncio.to_thread(finish)
    return Downloaded(target, found, url_filename(url))


def _valid_date(text: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return False
    return True
