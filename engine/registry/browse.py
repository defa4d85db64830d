"""Browsing a registry: its catalog, a repository's tags, manifest details, and deletion.

Lists follow the registry's pagination (``?n=`` and ``Link: <...>; rel="next"``), and also
work with registries that ignore ``n`` and answer everything at once. A registry that
forbids the catalog (token scope ``registry:catalog:*`` refused, or no catalog at all) gets
a ``Forbidden`` saying so and pointing at browsing a named repository, which needs only pull
access. Deleting a tag uses the OCI tag delete where the registry has it and otherwise
deletes the manifest the tag points at (distribution 2.x), saying so in the result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from engine.errors import (
    Forbidden,
    InvalidArgument,
    NotFound,
    PortsideError,
    RegistryError,
    Unauthorized,
)
from engine.oci import (
    CONFIG_MEDIA_TYPES,
    MAX_CONFIG_SIZE,
    Descriptor,
    Index,
    parse_manifest,
)
from engine.platform import is_attestation
from engine.reference import Reference
from engine.registry.client import RegistryClient
from engine.registry.credentials import AuthConfig
from engine.registry.responses import error_message, read_bounded

DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 10_000
_MAX_LIST_BODY = 16 * 1024 * 1024
_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    """One page of a list; ``next`` is the query string of the following page (or None)."""

    items: list[str]
    next: str | None


@dataclass(frozen=True)
class PlatformEntry:
    """One manifest of an index."""

    platform: str  # "linux/arm64/v8", or "unknown/unknown" for attestations
    digest: str
    media_type: str
    size: int
    attestation: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "Platform": self.platform,
            "Digest": self.digest,
            "MediaType": self.media_type,
            "Size": self.size,
            "Attestation": self.attestation,
        }


@dataclass(frozen=True)
class ManifestDetails:
    """What a reference points at: an index (``platforms``) or an image (config, layers)."""

    reference: str
    digest: str
    media_type: str
    size: int
    platforms: list[PlatformEntry] = field(default_factory=list)
    config_digest: str | None = None
    config_media_type: str | None = None
    config_size: int | None = None
    config: dict[str, Any] | None = None  # the image config's fields a user looks at
    layers: list[dict[str, Any]] = field(default_factory=list)  # digest, media type, size

    @property
    def is_index(self) -> bool:
        return bool(self.platforms) or self.config_digest is None

    @property
    def total_size(self) -> int:
        """Bytes of config and layers (compressed, as stored in the registry)."""
        return (self.config_size or 0) + sum(int(layer["Size"]) for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Reference": self.reference,
            "Digest": self.digest,
            "MediaType": self.media_type,
            "Size": self.size,
        }
        if self.platforms or self.config_digest is None:
            out["Platforms"] = [p.to_json() for p in self.platforms]
        else:
            out["Config"] = {
                "Digest": self.config_digest,
                "MediaType": self.config_media_type,
                "Size": self.config_size,
                **(self.config or {}),
            }
            out["Layers"] = list(self.layers)
            out["TotalSize"] = self.total_size
        return out


@dataclass(frozen=True)
class DeleteResult:
    """What a deletion removed: a tag only, or a manifest with every tag pointing at it."""

    reference: str
    digest: str | None
    tag_only: bool

    @property
    def message(self) -> str:
        if self.tag_only:
            return f"Deleted tag {self.reference}"
        return f"Deleted manifest {self.digest} (and every tag that pointed at it)"


class RegistryBrowser:
    """Read-mostly views of registries, over one ``RegistryClient``."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    # -- catalog -----------------------------------------------------------------------------

    async def catalog_page(
        self,
        registry: str,
        *,
        auth: AuthConfig | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        query: str | None = None,
    ) -> Page:
        """One page of repository names: from the start, after ``after``, or at ``query``
        (a previous page's ``next``)."""
        query = query or _first_query(page_size, after)
        try:
            doc, next_query = await self._list(
                registry,
                "/v2/_catalog",
                query,
                repository=None,
                auth=auth,
                extra_scopes=frozenset({"registry:catalog:*"}),
                what=f"catalog of {registry}",
            )
        except (Forbidden, NotFound, RegistryError) as err:
            if not _catalog_refusal(err):
                raise
            raise Forbidden(
                f"registry {registry} does not allow listing its repositories ({err}); "
                f"name one instead: portside registry tags {registry}/REPOSITORY"
            ) from None
        return Page(_names(doc, "repositories", registry), next_query)

    async def catalog(
        self,
        registry: str,
        *,
        auth: AuthConfig | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        limit: int | None = None,
    ) -> list[str]:
        """Every repository of ``registry`` (sorted), following pagination."""
        out: list[str] = []
        query: str | None = None
        for _ in range(MAX_PAGES):
            page = await self.catalog_page(registry, auth=auth, page_size=page_size, query=query)
            out.extend(page.items)
            if page.next is None or (limit is not None and len(out) >= limit):
                break
            query = page.next
        names = sorted(dict.fromkeys(out))
        return names[:limit] if limit is not None else names

    # -- tags --------------------------------------------------------------------------------

    async def tags_page(
        self,
        repository: Reference | str,
        *,
        auth: AuthConfig | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        query: str | None = None,
    ) -> Page:
        ref = _repository(repository)
        doc, next_query = await self._list(
            ref.registry,
            f"/v2/{ref.repository}/tags/list",
            query or _first_query(page_size, after),
            repository=ref.repository,
            auth=auth,
            what=f"tags of {ref.familiar_name}",
            not_found=f"repository {ref.familiar_name} not found",
        )
        return Page(_names(doc, "tags", ref.registry), next_query)

    async def tags(
        self,
        repository: Reference | str,
        *,
        auth: AuthConfig | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        limit: int | None = None,
    ) -> list[str]:
        """Every tag of a repository (sorted), following pagination."""
        out: list[str] = []
        query: str | None = None
        for _ in range(MAX_PAGES):
            page = await self.tags_page(repository, auth=auth, page_size=page_size, query=query)
            out.extend(page.items)
            if page.next is None or (limit is not None and len(out) >= limit):
                break
            query = page.next
        names = sorted(dict.fromkeys(out))
        return names[:limit] if limit is not None else names

    # -- manifests ---------------------------------------------------------------------------

    async def inspect(
        self, ref: Reference | str, *, auth: AuthConfig | None = None
    ) -> ManifestDetails:
        """The manifest or index ``ref`` points at, with platforms or config and layers."""
        reference = Reference.parse(ref) if isinstance(ref, str) else ref
        raw, media_type, digest = await self.client.get_manifest(reference, auth=auth)
        parsed = parse_manifest(raw, media_type)
        shown = reference.familiar()
        if isinstance(parsed, Index):
            return ManifestDetails(
                reference=shown,
                digest=str(digest),
                media_type=parsed.media_type,
                size=len(raw),
                platforms=[_platform_entry(d) for d in parsed.manifests],
            )
        config: dict[str, Any] | None = None
        if parsed.config.media_type in CONFIG_MEDIA_TYPES:
            blob = await self.client.get_blob(
                reference, parsed.config, max_size=MAX_CONFIG_SIZE, auth=auth
            )
            config = _config_summary(blob)
        return ManifestDetails(
            reference=shown,
            digest=str(digest),
            media_type=parsed.media_type,
            size=len(raw),
            config_digest=str(parsed.config.digest),
            config_media_type=parsed.config.media_type,
            config_size=parsed.config.size,
            config=config,
            layers=[
                {"Digest": str(d.digest), "MediaType": d.media_type, "Size": d.size}
                for d in parsed.layers
            ],
        )

    async def delete(self, ref: Reference | str, *, auth: AuthConfig | None = None) -> DeleteResult:
        """Delete a tag or a manifest (by digest) where the registry allows deletion."""
        reference = Reference.parse(ref, default_tag=False) if isinstance(ref, str) else ref
        if reference.digest is None and not reference.tag:
            raise InvalidArgument(
                f"say what to delete in {reference.familiar_name}: give :TAG or @DIGEST"
            )
        if reference.digest is not None:
            await self._delete_manifest(reference, str(reference.digest), auth)
            return DeleteResult(reference.familiar(), str(reference.digest), tag_only=False)
        assert reference.tag is not None
        if await self._delete_manifest(reference, reference.tag, auth, tag=True):
            return DeleteResult(reference.familiar(), None, tag_only=True)
        # No tag deletion here (distribution 2.x): delete what the tag points at.
        _, _, digest = await self.client.get_manifest(reference, auth=auth)
        await self._delete_manifest(reference, str(digest), auth)
        return DeleteResult(reference.familiar(), str(digest), tag_only=False)

    async def _delete_manifest(
        self, ref: Reference, ident: str, auth: AuthConfig | None, *, tag: bool = False
    ) -> bool:
        """DELETE a manifest; False when ``tag`` deletion is not supported by the registry."""
        resp = await self.client.send(
            "DELETE",
            ref.registry,
            f"/v2/{ref.repository}/manifests/{ident}",
            repository=ref.repository,
            auth=auth,
            actions="delete",
            ok=(200, 202, 204, 400, 405),
            what=f"{ref.familiar_name}:{ident}" if tag else f"manifest {ident}",
            not_found=f"{ref.familiar_name}{':' if tag else '@'}{ident} not found in the registry",
        )
        try:
            if resp.status in (200, 202, 204):
                return True
            message = await error_message(resp)
        finally:
            resp.release()
        if tag:
            # distribution 2.x cannot delete a tag alone (400 DIGEST_INVALID, or 405).
            return False
        if resp.status == 405:
            raise Forbidden(
                f"registry {ref.registry} does not allow deleting images ({message or '405'}); "
                "deletion must be enabled on the registry (storage delete)"
            )
        raise RegistryError(
            f"registry {ref.registry} refused to delete {ref.familiar_name}@{ident}: "
            f"{message or resp.status}"
        )

    # -- plumbing ----------------------------------------------------------------------------

    async def _list(
        self,
        registry: str,
        path: str,
        query: str,
        *,
        repository: str | None,
        auth: AuthConfig | None,
        what: str,
        extra_scopes: frozenset[str] = frozenset(),
        not_found: str | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        resp = await self.client.send(
            "GET",
            registry,
            path,
            query=query or None,
            repository=repository,
            auth=auth,
            extra_scopes=extra_scopes,
            headers={"Accept": "application/json"},
            what=what,
            not_found=not_found,
        )
        try:
            body = await read_bounded(resp, _MAX_LIST_BODY, what)
            link = resp.headers.get("Link")
        finally:
            resp.release()
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(f"registry {registry} sent invalid JSON for the {what}") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"registry {registry} sent invalid JSON for the {what}")
        return doc, _next_query(link, path, registry)


def _first_query(page_size: int, after: str | None) -> str:
    if page_size < 1:
        raise InvalidArgument(f"invalid page size {page_size}: give a positive number")
    query = f"n={page_size}"
    if after:
        query += f"&last={quote(after, safe='')}"
    return query


def _next_query(link: str | None, path: str, registry: str) -> str | None:
    """The query of a ``Link: <path?query>; rel="next"`` for the same list, else None."""
    if not link:
        return None
    match = _LINK_RE.search(link)
    if not match:
        return None
    target = match.group(1).strip()
    if "://" in target:
        target = "/" + target.split("://", 1)[1].split("/", 1)[-1]
    target_path, _, query = target.partition("?")
    if target_path != path or not query or any(c in query for c in " \r\n#"):
        raise RegistryError(
            f"registry {registry} sent a pagination link to another place ({target[:80]!r}); "
            "refusing it"
        )
    return query


def _names(doc: dict[str, Any], key: str, registry: str) -> list[str]:
    values = doc.get(key)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RegistryError(f"registry {registry} sent an invalid {key} list")
    return [v for v in values if v and len(v) <= 255 and v.isprintable()]


def _repository(value: Reference | str) -> Reference:
    ref = Reference.parse(value, default_tag=False) if isinstance(value, str) else value
    if ref.tag or ref.digest:
        raise InvalidArgument(
            f"give a repository without tag or digest, not {ref.familiar()}: HOST/REPOSITORY"
        )
    return ref


def _catalog_refusal(err: PortsideError) -> bool:
    """401/403 (scope refused), 404/405 (no catalog endpoint): the catalog is not offered."""
    return isinstance(err, Unauthorized | Forbidden | NotFound) or " answered 405" in str(err)


def _platform_entry(desc: Descriptor) -> PlatformEntry:
    plat = desc.platform
    name = "unknown/unknown"
    if plat is not None:
        name = "/".join(p for p in (plat.os, plat.architecture, plat.variant) if p)
    return PlatformEntry(
        platform=name,
        digest=str(desc.digest),
        media_type=desc.media_type,
        size=desc.size,
        attestation=is_attestation(desc),
    )


def _config_summary(blob: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    history = doc.get("history") if isinstance(doc.get("history"), list) else []
    platform = "/".join(
        str(doc[k]) for k in ("os", "architecture", "variant") if isinstance(doc.get(k), str)
    )
    return {
        "Platform": platform,
        "Created": doc.get("created") if isinstance(doc.get("created"), str) else None,
        "User": cfg.get("User") or "",
        "Env": cfg.get("Env") or [],
        "Entrypoint": cfg.get("Entrypoint"),
        "Cmd": cfg.get("Cmd"),
        "WorkingDir": cfg.get("WorkingDir") or "",
        "ExposedPorts": sorted((cfg.get("ExposedPorts") or {}).keys())
        if isinstance(cfg.get("ExposedPorts"), dict)
        else [],
        "Labels": cfg.get("Labels") or {},
        "History": len(history),
    }
