"""Blob uploads to a registry: existence checks, cross-repository mounts, monolithic and
chunked uploads, and resuming an interrupted chunked upload (in this process or a later one).

The protocol is the distribution (OCI) one: ``HEAD blobs/<digest>``; ``POST blobs/uploads/``
(with ``?mount=&from=`` to mount); then either one ``PUT <location>&digest=`` carrying the
whole blob, or ``PATCH`` chunks with ``Content-Range`` and a final empty ``PUT``. After every
chunk the upload's location is saved in a small JSON file (mode 0600) under the engine's
state directory, so a push interrupted between chunks continues where it stopped: the next
attempt asks the registry how much it holds (``GET <location>``, ``Range: 0-N``) and sends
the rest. Upload locations are followed only on the registry's own host and under the
repository's ``/blobs/uploads/`` path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from yarl import URL

from engine.digest import Digest
from engine.errors import (
    NotFound,
    PortsideError,
    RegistryError,
    Unauthorized,
    VerificationError,
)
from engine.registry.client import RegistryClient
from engine.registry.credentials import AuthConfig

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20  # bytes read from the content store per step of an upload
DEFAULT_CHUNK_SIZE = 64 << 20  # blobs up to this size go in one PUT; bigger ones in chunks
_RANGE_RE = re.compile(r"^\s*(?:bytes=)?(\d+)-(\d+)\s*$")
_RESUME_ATTEMPTS = 3

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class BlobTarget:
    """Where a blob goes: registry host[:port], repository, credentials."""

    registry: str
    repository: str
    auth: AuthConfig | None = None


class BlobUploader:
    """Uploads blobs of the content store (``blob_path(digest)``) to registries."""

    def __init__(
        self,
        client: RegistryClient,
        state_dir: Path,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.client = client
        self.state_dir = state_dir
        self.chunk_size = chunk_size

    # -- questions ---------------------------------------------------------------------------

    async def exists(self, target: BlobTarget, digest: Digest) -> bool:
        """Whether the registry already has ``digest`` in ``target``'s repository."""
        resp = await self.client.send(
            "HEAD",
            target.registry,
            f"/v2/{target.repository}/blobs/{digest}",
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            ok=(200, 404),
            what=f"blob {digest}",
        )
        resp.release()
        return resp.status == 200

    async def mount(self, target: BlobTarget, digest: Digest, source: str) -> str | None:
        """Mount ``digest`` from repository ``source``: None when mounted, else the upload
        location the registry opened instead (the caller uploads there)."""
        query = f"mount={quote(str(digest), safe=':')}&from={quote(source, safe='/')}"
        resp = await self.client.send(
            "POST",
            target.registry,
            f"/v2/{target.repository}/blobs/uploads/",
            query=query,
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            extra_scopes=frozenset({f"repository:{source}:pull"}),
            headers={"Content-Length": "0"},
            ok=(201, 202),
            what=f"mount of blob {digest} from {source}",
        )
        try:
            if resp.status == 201:
                return None
            return self._location(target, resp.headers.get("Location"))
        finally:
            resp.release()

    # -- upload ------------------------------------------------------------------------------

    async def upload(
        self,
        target: BlobTarget,
        digest: Digest,
        size: int,
        blob_path: Path,
        *,
        location: str | None = None,
        progress: ProgressFn | None = None,
        chunk_done: ProgressFn | None = None,
    ) -> None:
        """Upload the blob at ``blob_path`` (``size`` bytes, verified content) to ``target``.

        ``location`` is an upload the registry already opened (a refused mount). Blobs up
        to ``chunk_size`` go in one PUT (``progress`` sees every step); bigger ones are sent
        in chunks, each acknowledged and saved before the next (``chunk_done`` sees the
        offset after each). An interrupted chunked upload resumes from its saved location.
        """
        if not await asyncio.to_thread(blob_path.is_file):
            raise NotFound(
                f"blob {digest} is not in the local content store; pull or build the image again"
            )
        state = _StateFile(self.state_dir, target, digest)
        offset = 0
        if location is None and size > self.chunk_size:
            saved = await state.load()
            if saved is not None:
                resumed = await self._status(target, saved)
                if resumed is not None and resumed[1] <= size:
                    location, offset = resumed
                    log.info("resuming upload of %s at %d of %d bytes", digest, offset, size)
                else:
                    await state.clear()
        if location is None:
            location = await self._start(target)
        if progress is not None:
            progress(offset)
        if size <= self.chunk_size and offset == 0:
            for attempt in range(_RESUME_ATTEMPTS):
                try:
                    await self._monolithic(target, digest, size, blob_path, location, progress)
                    break
                except Unauthorized:
                    raise
                except RegistryError as err:  # a broken connection or a 5xx: upload anew
                    if attempt == _RESUME_ATTEMPTS - 1:
                        raise
                    log.info("upload of %s failed (%s); starting it again", digest, err)
                    location = await self._start(target)
            await state.clear()
            return
        await self._chunked(target, digest, size, blob_path, location, offset, state, chunk_done)
        await state.clear()

    async def _start(self, target: BlobTarget) -> str:
        resp = await self.client.send(
            "POST",
            target.registry,
            f"/v2/{target.repository}/blobs/uploads/",
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            headers={"Content-Length": "0"},
            ok=(202,),
            what=f"upload to {target.repository}",
        )
        try:
            return self._location(target, resp.headers.get("Location"))
        finally:
            resp.release()

    async def _monolithic(
        self,
        target: BlobTarget,
        digest: Digest,
        size: int,
        blob_path: Path,
        location: str,
        progress: ProgressFn | None,
    ) -> None:
        path, query = _split(location)
        resp = await self.client.send(
            "PUT",
            target.registry,
            path,
            query=_with_digest(query, digest),
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=lambda: _read_blob(blob_path, 0, size, progress),
            ok=(201,),
            retry=False,
            what=f"upload of blob {digest}",
        )
        try:
            _check_digest(resp.headers.get("Docker-Content-Digest"), digest, target)
        finally:
            resp.release()

    async def _chunked(
        self,
        target: BlobTarget,
        digest: Digest,
        size: int,
        blob_path: Path,
        location: str,
        offset: int,
        state: _StateFile,
        chunk_done: ProgressFn | None,
    ) -> None:
        failures = 0
        while offset < size:
            length = min(self.chunk_size, size - offset)
            path, query = _split(location)
            try:
                resp = await self.client.send(
                    "PATCH",
                    target.registry,
                    path,
                    query=query or None,
                    repository=target.repository,
                    auth=target.auth,
                    actions="pull,push",
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(length),
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    body=lambda o=offset, n=length: _read_blob(blob_path, o, n, None),
                    ok=(202, 204),
                    retry=False,
                    what=f"upload of blob {digest}",
                )
            except RegistryError as err:
                # The connection broke or the registry refused the chunk: ask it what it holds.
                failures += 1
                if failures > _RESUME_ATTEMPTS:
                    raise
                log.info(
                    "chunk of %s failed (%s); asking the registry where to resume", digest, err
                )
                resumed = await self._status(target, location)
                if resumed is None:
                    location, offset = await self._start(target), 0
                else:
                    location, offset = resumed
                continue
            try:
                location = self._location(target, resp.headers.get("Location") or location)
                held = _range_end(resp.headers.get("Range"))
            finally:
                resp.release()
            offset = held if held is not None else offset + length
            await state.save(location, offset)
            if chunk_done is not None:
                chunk_done(offset)
        path, query = _split(location)
        resp = await self.client.send(
            "PUT",
            target.registry,
            path,
            query=_with_digest(query, digest),
            repository=target.repository,
            auth=target.auth,
            actions="pull,push",
            headers={"Content-Length": "0"},
            ok=(201,),
            what=f"upload of blob {digest}",
        )
        try:
            _check_digest(resp.headers.get("Docker-Content-Digest"), digest, target)
        finally:
            resp.release()

    async def _status(self, target: BlobTarget, location: str) -> tuple[str, int] | None:
        """(location, bytes held) of an open upload, or None when it is gone or invalid."""
        path, query = _split(location)
        try:
            resp = await self.client.send(
                "GET",
                target.registry,
                path,
                query=query or None,
                repository=target.repository,
                auth=target.auth,
                actions="pull,push",
                ok=(204, 200),
                what="upload status",
            )
        except PortsideError as err:
            log.info("cannot resume upload in %s: %s", target.repository, err)
            return None
        try:
            held = _range_end(resp.headers.get("Range"))
            new_location = resp.headers.get("Location") or location
            return self._location(target, new_location), held or 0
        except RegistryError:
            return None
        finally:
            resp.release()

    def _location(self, target: BlobTarget, value: str | None) -> str:
        """A registry's upload Location as ``path?query``, checked to stay on the registry
        and under ``/v2/<repository>/blobs/uploads/``."""
        if not value:
            raise RegistryError(f"registry {target.registry} opened an upload without a Location")
        base = self.client.endpoint_base(target.registry)
        home = URL(base) if base else URL(f"https://{target.registry}")
        try:
            url = home.join(URL(value.strip(), encoded=True))
        except ValueError:
            raise RegistryError(
                f"registry {target.registry} sent an invalid upload Location"
            ) from None
        if (url.raw_host or "").lower() != (home.raw_host or "").lower() or url.port != home.port:
            raise RegistryError(
                f"registry {target.registry} sent an upload Location on another host "
                f"({url.raw_host}); refusing to send the blob and credentials there"
            )
        prefix = f"/v2/{target.repository}/blobs/uploads/"
        if not url.raw_path.startswith(prefix) or ".." in url.raw_path.split("/"):
            raise RegistryError(
                f"registry {target.registry} sent an upload Location outside {prefix}; refusing it"
            )
        return url.raw_path + (f"?{url.raw_query_string}" if url.raw_query_string else "")


async def _read_blob(
    path: Path, start: int, length: int, progress: ProgressFn | None
) -> AsyncIterator[bytes]:
    """Bytes ``start`` .. ``start + length`` of a committed blob, read off the event loop."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pos, end = start, start + length
        while pos < end:
            chunk = await asyncio.to_thread(os.pread, fd, min(READ_SIZE, end - pos), pos)
            if not chunk:
                raise VerificationError(f"blob {path.name} is shorter than its descriptor says")
            pos += len(chunk)
            yield chunk
            if progress is not None:
                progress(pos)
    finally:
        os.close(fd)


def _split(location: str) -> tuple[str, str]:
    path, _, query = location.partition("?")
    return path, query


def _with_digest(query: str, digest: Digest) -> str:
    part = f"digest={quote(str(digest), safe=':')}"
    return f"{query}&{part}" if query else part


def _range_end(value: str | None) -> int | None:
    """Bytes held according to a ``Range: 0-N`` header (N + 1), or None without one."""
    match = _RANGE_RE.match(value or "")
    if not match:
        return None
    return int(match.group(2)) + 1


def _check_digest(header: str | None, digest: Digest, target: BlobTarget) -> None:
    if header and header.strip() != str(digest):
        raise VerificationError(
            f"registry {target.registry} stored blob {digest} under another digest "
            f"({header.strip()[:80]}); the upload is not trustworthy"
        )


class _StateFile:
    """Where an unfinished chunked upload of one blob to one repository is remembered."""

    def __init__(self, state_dir: Path, target: BlobTarget, digest: Digest) -> None:
        key = hashlib.sha256(f"{target.registry}/{target.repository}@{digest}".encode())
        self.path = state_dir / f"{key.hexdigest()}.json"
        self.target = target
        self.digest = digest

    async def load(self) -> str | None:
        def read() -> str | None:
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                return None
            if not isinstance(data, dict) or data.get("digest") != str(self.digest):
                return None
            location = data.get("location")
            return location if isinstance(location, str) else None

        return await asyncio.to_thread(read)

    async def save(self, location: str, offset: int) -> None:
        record = {
            "registry": self.target.registry,
            "repository": self.target.repository,
            "digest": str(self.digest),
            "location": location,
            "offset": offset,
        }

        def write() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            os.replace(tmp, self.path)

        await asyncio.to_thread(write)

    async def clear(self) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

        await asyncio.to_thread(remove)
