"""Names and JSON documents of image archives (docker's legacy layout and OCI's).

An archive written by portside carries both, as docker 25 writes them: every blob once
under ``blobs/sha256/<hex>``; ``oci-layout`` and ``index.json`` (one entry per image and
name, annotated with ``io.containerd.image.name`` and ``org.opencontainers.image.ref.name``);
``manifest.json`` (``Config``, ``RepoTags``, ``Layers`` pointing at the same blobs) and
``repositories`` for older loaders.
"""

from __future__ import annotations

import json
from typing import Any

from engine.digest import Digest
from engine.reference import Reference

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


def blob_name(digest: Digest) -> str:
    """Where a blob lives inside an archive."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def index_entry(manifest: dict[str, Any], name: Reference | None) -> dict[str, Any]:
    """An ``index.json`` entry for a manifest descriptor, named like docker names it."""
    entry = dict(manifest)
    if name is not None and name.tag:
        entry["annotations"] = {
            IMAGE_NAME_ANNOTATION: name.tagged_str(),
            REF_NAME_ANNOTATION: name.tag,
        }
    return entry


def repositories(names: list[tuple[Reference, str]]) -> dict[str, dict[str, str]]:
    """The legacy ``repositories`` file: familiar repo -> tag -> top layer id (hex)."""
    out: dict[str, dict[str, str]] = {}
    for ref, top in names:
        if ref.tag:
            out.setdefault(ref.familiar_name, {})[ref.tag] = top
    return out
