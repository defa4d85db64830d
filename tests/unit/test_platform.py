"""Platform parsing, normalisation, host detection and index entry selection."""

from __future__ import annotations

import platform as pyplatform

import pytest

from engine.digest import Digest
from engine.errors import InvalidArgument, NotFound
from engine.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Descriptor, Index
from engine.platform import (
    ZSTD_ANNOTATION,
    Platform,
    host_platform,
    is_attestation,
    match_rank,
    select_manifest,
)


def _desc(n: int, plat: str | None, annotations: dict[str, str] | None = None) -> Descriptor:
    return Descriptor(
        media_type=OCI_MANIFEST,
        digest=Digest.of_bytes(f"manifest {n}".encode()),
        size=100 + n,
        platform=Platform.parse(plat) if plat and "unknown" not in plat else _raw(plat),
        annotations=annotations or {},
    )


def _raw(plat: str | None) -> Platform | None:
    if plat is None:
        return None
    os_name, arch = plat.split("/")[:2]
    return Platform(os_name, arch)


def _index(*descs: Descriptor) -> Index:
    return Index(media_type=OCI_INDEX, manifests=tuple(descs))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", ("linux", "amd64", None)),
        ("linux/arm64/v8", ("linux", "arm64", None)),
        ("linux/arm64", ("linux", "arm64", None)),
        ("linux/aarch64", ("linux", "arm64", None)),
        ("linux/x86_64", ("linux", "amd64", None)),
        ("linux/arm/v7", ("linux", "arm", "v7")),
        ("linux/arm/7", ("linux", "arm", "v7")),
        ("linux/armhf", ("linux", "arm", "v7")),
        ("linux/armel", ("linux", "arm", "v6")),
        ("LINUX/AMD64", ("linux", "amd64", None)),
        ("linux/i386", ("linux", "386", None)),
        ("arm64", ("linux", "arm64", None)),
        ("linux/s390x", ("linux", "s390x", None)),
    ],
)
def test_parse_normalises(text: str, expected: tuple[str, str, str | None]) -> None:
    plat = Platform.parse(text)
    assert (plat.os, plat.architecture, plat.variant) == expected


def test_parse_os_only_uses_host_architecture() -> None:
    assert Platform.parse("linux") == host_platform()


@pytest.mark.parametrize(
    "text", ["", "   ", "linux/", "/amd64", "a/b/c/d", "linux/am d64", "x/../y"]
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        Platform.parse(text)


def test_str_round_trips() -> None:
    for text in ("linux/amd64", "linux/arm/v6", "windows/amd64"):
        assert str(Platform.parse(text)) == text
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64"


def test_equal_after_normalisation() -> None:
    assert Platform("linux", "aarch64", "v8") == Platform("linux", "arm64")
    assert hash(Platform("Linux", "x86_64")) == hash(Platform("linux", "amd64"))


def test_from_json_checks_types() -> None:
    assert Platform.from_json({"os": "linux", "architecture": "arm", "variant": "v6"}) == Platform(
        "linux", "arm", "v6"
    )
    for bad in (
        None,
        [],
        {"os": "linux"},
        {"os": 1, "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": 7},
    ):
        with pytest.raises(ValueError):
            Platform.from_json(bad)


def test_host_platform_matches_uname() -> None:
    host = host_platform()
    assert host.os == "linux"
    machine = pyplatform.machine()
    expected = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}.get(machine)
    if expected:
        assert host.architecture == expected
        assert host.variant is None
    assert match_rank(host, host) == 0


def test_select_exact_platform() -> None:
    amd, arm = _desc(1, "linux/amd64"), _desc(2, "linux/arm64")
    index = _index(amd, arm)
    assert select_manifest(index, Platform.parse("linux/arm64")) == arm
    assert select_manifest(index, Platform.parse("linux/amd64")) == amd
    assert select_manifest(index, Platform.parse("linux/arm64/v8")) == arm


def test_attestations_are_skipped() -> None:
    att = _desc(0, "unknown/unknown", {"vnd.docker.reference.type": "attestation-manifest"})
    # An attestation that (wrongly) claims a real platform is skipped by its annotation.
    att2 = _desc(3, "linux/amd64", {"vnd.docker.reference.type": "attestation-manifest"})
    amd = _desc(1, "linux/amd64")
    index = _index(att, att2, amd)
    assert is_attestation(att) and is_attestation(att2) and not is_attestation(amd)
    assert select_manifest(index, Platform.parse("linux/amd64")) == amd
    with pytest.raises(NotFound) as info:
        select_manifest(_index(att, att2), Platform.parse("linux/amd64"))
    assert "no matching manifest for linux/amd64" in str(info.value)


def test_unknown_platform_alone_is_not_selected() -> None:
    att = _desc(0, "unknown/unknown")
    with pytest.raises(NotFound):
        select_manifest(_index(att), Platform.parse("linux/amd64"))


def test_arm_variant_fallback_prefers_newest_compatible() -> None:
    v5, v6, v7 = _desc(5, "linux/arm/v5"), _desc(6, "linux/arm/v6"), _desc(7, "linux/arm/v7")
    index = _index(v5, v6, v7)
    assert select_manifest(index, Platform.parse("linux/arm/v8")) == v7
    assert select_manifest(index, Platform.parse("linux/arm/v7")) == v7
    assert select_manifest(_index(v5, v6), Platform.parse("linux/arm/v7")) == v6
    assert select_manifest(_index(v5, v6), Platform.parse("linux/arm/v6")) == v6
    # An older CPU cannot run newer code.
    with pytest.raises(NotFound) as info:
        select_manifest(_index(v7), Platform.parse("linux/arm/v6"))
    assert "linux/arm/v7" in str(info.value)


def test_arm_without_variant_is_a_last_resort() -> None:
    plain, v6 = _desc(1, "linux/arm"), _desc(6, "linux/arm/v6")
    assert select_manifest(_index(plain, v6), Platform.parse("linux/arm/v7")) == v6
    assert select_manifest(_index(plain), Platform.parse("linux/arm/v7")) == plain


def test_amd64_variant_is_ignored_but_exact_preferred() -> None:
    v3, plain = _desc(3, "linux/amd64/v3"), _desc(1, "linux/amd64")
    assert select_manifest(_index(v3), Platform.parse("linux/amd64")) == v3
    assert select_manifest(_index(v3, plain), Platform.parse("linux/amd64")) == plain


def test_other_os_or_arch_never_match() -> None:
    index = _index(_desc(1, "windows/amd64"), _desc(2, "linux/ppc64le"), _desc(3, "linux/arm64"))
    with pytest.raises(NotFound) as info:
        select_manifest(index, Platform.parse("linux/amd64"))
    message = str(info.value)
    assert "windows/amd64" in message and "linux/ppc64le" in message
    assert "linux/arm64" in message and "\n" not in message


def test_entry_without_platform_is_used_last() -> None:
    bare = Descriptor(DOCKER_MANIFEST, Digest.of_bytes(b"bare"), 10)
    amd = _desc(1, "linux/amd64")
    assert select_manifest(_index(bare, amd), Platform.parse("linux/amd64")) == amd
    assert select_manifest(_index(bare), Platform.parse("linux/amd64")) == bare


def test_zstd_twin_is_preferred_at_equal_rank() -> None:
    gz = _desc(1, "linux/amd64")
    zst = _desc(2, "linux/amd64", {ZSTD_ANNOTATION: "true"})
    assert select_manifest(_index(gz, zst), Platform.parse("linux/amd64")) == zst
    # ... but never over a better platform match.
    zst_v3 = _desc(3, "linux/amd64/v3", {ZSTD_ANNOTATION: "true"})
    assert select_manifest(_index(zst_v3, gz), Platform.parse("linux/amd64")) == gz


def test_first_of_equal_entries_wins() -> None:
    a, b = _desc(1, "linux/amd64"), _desc(2, "linux/amd64")
    assert select_manifest(_index(a, b), Platform.parse("linux/amd64")) == a
