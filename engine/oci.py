"""OCI and Docker image objects: media types, descriptors, manifests and indexes.

``parse_manifest`` turns registry bytes into a ``Manifest`` or an ``Index`` after checking
every field a puller relies on (required fields, strict digests, non-negative sizes, a size
cap) and refuses the Docker schema 1 format. Descriptor ``urls`` are dropped on purpose: they
are never fetched (CVE-2020-15157).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.digest import Digest
from engine.errors import InvalidArgument, VerificationError
from engine.platform import Platform

# Image index / manifest list.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Image manifest.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Legacy schema 1 (refused).
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
# Image configuration.
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
# Layers.
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_MEDIA_TYPES = INDEX_MEDIA_TYPES | IMAGE_MANIFEST_MEDIA_TYPES
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
CONFIG_MEDIA_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# Layer media type -> compression ("gzip", "zstd" or None for a plain tar).
LAYER_MEDIA_TYPES: dict[str, str | None] = {
    OCI_LAYER: None,
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: None,
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER: None,
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
}
# Accept header for manifest requests: all four current types, preferred first.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 4 * 1024 * 1024
_MAX_SIZE_FIELD = 1 << 53  # larger "size" values are nonsense (and not exact in JSON numbers)


class InvalidManifest(VerificationError):
    """A manifest or index that is malformed or of a format portside does not support."""


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a blob is, its digest and exact size (``urls`` ignored)."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.platform is not None:
            plat: dict[str, str] = {
                "architecture": self.platform.architecture,
                "os": self.platform.os,
            }
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker v2 schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None


@dataclass(frozen=True)
class Index:
    """An image index (OCI) or manifest list (Docker)."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    subject: Descriptor | None = None


def layer_compression(media_type: str) -> str | None:
    """``"gzip"``, ``"zstd"`` or None for a layer media type; InvalidManifest if not a layer."""
    base = media_type.split(";", 1)[0].strip()
    if base not in LAYER_MEDIA_TYPES:
        raise InvalidManifest(
            f"unsupported layer media type {base[:100]!r}: expected an OCI or Docker tar layer"
        )
    return LAYER_MEDIA_TYPES[base]


def base_media_type(content_type: str | None) -> str | None:
    """A Content-Type without its parameters, lowercased; None when empty."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def parse_manifest(data: bytes, content_type: str | None = None) -> Manifest | Index:
    """Parse and validate manifest bytes; ``content_type`` is the registry's Content-Type."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidManifest(
            f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_SIZE} byte limit; refusing it"
        )
    header_type = base_media_type(content_type)
    if header_type in SCHEMA1_MEDIA_TYPES:
        raise _schema1()
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidManifest(f"invalid manifest: not JSON ({_short(err)})") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("invalid manifest: expected a JSON object")
    version = doc.get("schemaVersion")
    if version == 1:
        raise _schema1()
    if version != 2 or isinstance(version, bool):
        raise InvalidManifest(f"invalid manifest: schemaVersion must be 2, got {_show(version)}")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise InvalidManifest("invalid manifest: mediaType must be a string")
    has_index_fields = "manifests" in doc
    has_manifest_fields = "config" in doc or "layers" in doc
    if has_index_fields and has_manifest_fields:
        # An ambiguous document could be read as either kind (CVE-2021-41190).
        raise InvalidManifest("invalid manifest: has both 'manifests' and 'config'/'layers'")
    kind = _kind(body_type, header_type, has_index_fields)
    if kind in INDEX_MEDIA_TYPES:
        return _parse_index(doc, kind)
    return _parse_image_manifest(doc, kind)


def _kind(body_type: str | None, header_type: str | None, looks_like_index: bool) -> str:
    if body_type in SCHEMA1_MEDIA_TYPES:
        raise _schema1()
    if body_type is not None:
        if body_type not in MANIFEST_MEDIA_TYPES:
            raise InvalidManifest(
                f"unsupported manifest media type {body_type[:100]!r}: expected an OCI or "
                "Docker image manifest or index"
            )
        if header_type in MANIFEST_MEDIA_TYPES and header_type != body_type:
            raise InvalidManifest(
                f"invalid manifest: Content-Type {header_type} does not match mediaType {body_type}"
            )
        kind = body_type
    elif header_type in MANIFEST_MEDIA_TYPES:
        kind = header_type
    else:
        kind = OCI_INDEX if looks_like_index else OCI_MANIFEST
    if (kind in INDEX_MEDIA_TYPES) != looks_like_index:
        raise InvalidManifest(f"invalid manifest: content does not match media type {kind}")
    return kind


def _parse_image_manifest(doc: dict[str, Any], media_type: str) -> Manifest:
    if "config" not in doc:
        raise InvalidManifest("invalid manifest: missing 'config'")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("invalid manifest: 'layers' must be a list")
    config = parse_descriptor(doc["config"], "config")
    parsed = tuple(parse_descriptor(item, f"layers[{i}]") for i, item in enumerate(layers))
    subject = parse_descriptor(doc["subject"], "subject") if doc.get("subject") else None
    return Manifest(
        media_type=media_type,
        config=config,
        layers=parsed,
        annotations=_annotations(doc.get("annotations"), "annotations"),
        subject=subject,
        artifact_type=_optional_str(doc.get("artifactType"), "artifactType"),
    )


def _parse_index(doc: dict[str, Any], media_type: str) -> Index:
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidManifest("invalid index: 'manifests' must be a list")
    parsed = tuple(parse_descriptor(item, f"manifests[{i}]") for i, item in enumerate(manifests))
    subject = parse_descriptor(doc["subject"], "subject") if doc.get("subject") else None
    return Index(
        media_type=media_type,
        manifests=parsed,
        annotations=_annotations(doc.get("annotations"), "annotations"),
        subject=subject,
    )


def parse_descriptor(value: object, where: str = "descriptor") -> Descriptor:
    """Validate one descriptor object; ``urls`` are deliberately not kept."""
    if not isinstance(value, dict):
        raise InvalidManifest(f"invalid descriptor {where}: expected an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifest(f"invalid descriptor {where}: missing mediaType")
    if len(media_type) > 255:
        raise InvalidManifest(f"invalid descriptor {where}: mediaType too long")
    try:
        digest = Digest.parse(value.get("digest"))  # type: ignore[arg-type]
    except InvalidArgument as err:
        raise InvalidManifest(f"invalid descriptor {where}: {err}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > _MAX_SIZE_FIELD:
        raise InvalidManifest(
            f"invalid descriptor {where}: size must be a non-negative integer, got {_show(size)}"
        )
    platform = None
    if value.get("platform") is not None:
        try:
            platform = Platform.from_json(value["platform"])
        except ValueError as err:
            raise InvalidManifest(f"invalid descriptor {where}: {err}") from None
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=platform,
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
        artifact_type=_optional_str(value.get("artifactType"), f"{where}.artifactType"),
    )


def _annotations(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidManifest(f"invalid manifest: {where} must map strings to strings")
    return dict(value)


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidManifest(f"invalid manifest: {where} must be a string")
    return value


def _schema1() -> InvalidManifest:
    return InvalidManifest(
        "unsupported manifest format: Docker image manifest v2 schema 1 is deprecated and not "
        "supported; push the image again with a current docker or buildah"
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _short(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:120]
