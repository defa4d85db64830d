"""Manifest and index parsing: valid documents of both families, and every rejection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.digest import Digest
from engine.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1_SIGNED,
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Index,
    InvalidManifest,
    Manifest,
    layer_compression,
    parse_descriptor,
    parse_manifest,
)
from engine.platform import Platform

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha512:" + "3" * 128


def _manifest(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": 7},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": D2, "size": 100},
            {"mediaType": OCI_LAYER_ZSTD, "digest": D3, "size": 0},
        ],
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def _index(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": D1,
                "size": 500,
                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": D2,
                "size": 501,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def _b(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_oci_manifest() -> None:
    parsed = parse_manifest(_b(_manifest(annotations={"a": "b"})), OCI_MANIFEST)
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.config == Descriptor(OCI_CONFIG, Digest.parse(D1), 7)
    assert [layer.digest for layer in parsed.layers] == [Digest.parse(D2), Digest.parse(D3)]
    assert parsed.layers[1].size == 0
    assert parsed.annotations == {"a": "b"}


def test_docker_manifest() -> None:
    doc = _manifest(
        mediaType=DOCKER_MANIFEST,
        config={"mediaType": DOCKER_CONFIG, "digest": D1, "size": 7},
        layers=[{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": 100}],
    )
    parsed = parse_manifest(_b(doc), f"{DOCKER_MANIFEST}; charset=utf-8")
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == DOCKER_MANIFEST
    assert layer_compression(parsed.layers[0].media_type) == "gzip"


def test_oci_index_with_platforms_and_annotations() -> None:
    parsed = parse_manifest(_b(_index()), OCI_INDEX)
    assert isinstance(parsed, Index)
    first, second = parsed.manifests
    assert first.platform == Platform("linux", "arm", "v7")
    assert second.annotations["vnd.docker.reference.type"] == "attestation-manifest"


def test_docker_manifest_list() -> None:
    doc = _index(mediaType=DOCKER_MANIFEST_LIST)
    parsed = parse_manifest(_b(doc), DOCKER_MANIFEST_LIST)
    assert isinstance(parsed, Index)
    assert parsed.media_type == DOCKER_MANIFEST_LIST


def test_media_type_from_header_or_structure_when_body_has_none() -> None:
    assert parse_manifest(_b(_manifest(mediaType=None)), DOCKER_MANIFEST).media_type == (
        DOCKER_MANIFEST
    )
    assert isinstance(parse_manifest(_b(_index(mediaType=None)), None), Index)
    assert isinstance(parse_manifest(_b(_manifest(mediaType=None)), "application/json"), Manifest)


def test_descriptor_urls_are_dropped() -> None:
    doc = _manifest()
    doc["layers"][0]["urls"] = ["http://169.254.169.254/latest/meta-data"]
    parsed = parse_manifest(_b(doc), OCI_MANIFEST)
    assert isinstance(parsed, Manifest)
    assert not hasattr(parsed.layers[0], "urls")
    assert "169.254" not in repr(parsed)


def test_descriptor_to_json_round_trip() -> None:
    desc = parse_descriptor(_index()["manifests"][0])
    assert parse_descriptor(desc.to_json()) == desc


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("config"), "missing 'config'"),
        (lambda d: d.update(layers={}), "'layers' must be a list"),
        (lambda d: d.pop("layers"), "'layers' must be a list"),
        (lambda d: d["layers"][0].update(digest="sha256:../../etc/passwd"), "invalid digest"),
        (lambda d: d["layers"][0].update(digest="sha256:" + "A" * 64), "invalid digest"),
        (lambda d: d["layers"][0].update(digest="md5:" + "1" * 32), "invalid digest"),
        (lambda d: d["layers"][0].pop("digest"), "invalid digest"),
        (lambda d: d["layers"][0].update(size=-1), "size must be a non-negative integer"),
        (lambda d: d["layers"][0].update(size=1.5), "size must be a non-negative integer"),
        (lambda d: d["layers"][0].update(size=True), "size must be a non-negative integer"),
        (lambda d: d["layers"][0].update(size="10"), "size must be a non-negative integer"),
        (lambda d: d["layers"][0].pop("size"), "size must be a non-negative integer"),
        (lambda d: d["layers"][0].pop("mediaType"), "missing mediaType"),
        (lambda d: d["config"].update(mediaType=5), "missing mediaType"),
        (lambda d: d.update(layers=["x"]), "expected an object"),
        (lambda d: d.update(annotations={"a": 1}), "must map strings to strings"),
        (lambda d: d.update(schemaVersion=3), "schemaVersion must be 2"),
        (lambda d: d.update(schemaVersion="2"), "schemaVersion must be 2"),
        (lambda d: d.pop("schemaVersion"), "schemaVersion must be 2"),
        (lambda d: d.update(mediaType="text/html"), "unsupported manifest media type"),
        (lambda d: d.update(mediaType=OCI_INDEX), "content does not match media type"),
        (lambda d: d.update(manifests=[]), "both 'manifests' and 'config'"),
    ],
)
def test_manifest_rejections(mutate: Any, message: str) -> None:
    doc = _manifest()
    mutate(doc)
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(_b(doc), None)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(manifests={}), "'manifests' must be a list"),
        (lambda d: d["manifests"][0].update(platform="linux"), "platform must be an object"),
        (lambda d: d["manifests"][0].update(platform={"os": "linux"}), "'architecture'"),
        (lambda d: d["manifests"][0].update(size=-5), "non-negative"),
        (lambda d: d["manifests"][0].update(digest="sha256:/.."), "invalid digest"),
    ],
)
def test_index_rejections(mutate: Any, message: str) -> None:
    doc = _index()
    mutate(doc)
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(_b(doc), OCI_INDEX)
    assert message in str(info.value)


def test_schema1_is_refused_clearly() -> None:
    schema1 = {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [], "history": []}
    for content_type in (None, DOCKER_SCHEMA1_SIGNED, "application/json"):
        with pytest.raises(InvalidManifest) as info:
            parse_manifest(_b(schema1), content_type)
        assert "schema 1" in str(info.value) and "not supported" in str(info.value)
    with pytest.raises(InvalidManifest, match="schema 1"):
        parse_manifest(b"{}", DOCKER_SCHEMA1_SIGNED)


def test_header_and_body_media_types_must_agree() -> None:
    with pytest.raises(InvalidManifest, match="does not match mediaType"):
        parse_manifest(_b(_manifest()), DOCKER_MANIFEST)
    # A generic Content-Type says nothing and is ignored.
    assert isinstance(parse_manifest(_b(_manifest()), "application/octet-stream"), Manifest)


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"[]", b"null", b'"x"'])
def test_not_a_json_object(body: bytes) -> None:
    with pytest.raises(InvalidManifest, match="invalid manifest"):
        parse_manifest(body, OCI_MANIFEST)


def test_size_cap() -> None:
    doc = _manifest(annotations={"pad": "x" * MAX_MANIFEST_SIZE})
    with pytest.raises(InvalidManifest, match="over the 4194304 byte limit"):
        parse_manifest(_b(doc), OCI_MANIFEST)


def test_layer_compression() -> None:
    assert layer_compression(OCI_LAYER) is None
    assert layer_compression(OCI_LAYER_GZIP) == "gzip"
    assert layer_compression(OCI_LAYER_ZSTD) == "zstd"
    assert layer_compression(DOCKER_LAYER_GZIP) == "gzip"
    with pytest.raises(InvalidManifest, match="unsupported layer media type"):
        layer_compression("application/vnd.in-toto+json")


def test_accept_header_lists_all_four_types() -> None:
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        assert media_type in MANIFEST_ACCEPT
    assert "v1+prettyjws" not in MANIFEST_ACCEPT
