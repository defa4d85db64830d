"""Platforms (os/architecture/variant): the host's, parsing, matching and index selection.

``select_manifest`` picks the manifest of an image index that runs on a wanted platform the
way containerd and containers/image do: attestation manifests are skipped, arm falls back
through older variants (v8, v7, v6, v5), arm64 means v8 and amd64 micro-architecture variants
are ignored.
"""

from __future__ import annotations

import platform as _pyplatform
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from engine.oci import Descriptor, Index

# Annotation buildkit puts on the attestation manifests it adds to an index.
REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_REFERENCE_TYPE = "attestation-manifest"
# containers/image marks the zstd twin of a gzip manifest in an index with this annotation.
ZSTD_ANNOTATION = "io.github.containers.compression.zstd"

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "x86": "386",
}
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")
_OS_NAMES = ("linux", "windows", "darwin", "freebsd")
# Rank given to index entries that carry no platform at all: usable, but only as a last resort.
_NO_PLATFORM_RANK = 100


@dataclass(frozen=True)
class Platform:
    """An OCI platform, normalised (``aarch64`` -> ``arm64``, arm64 ``v8`` -> no variant)."""

    os: str
    architecture: str
    variant: str | None = None

    def __post_init__(self) -> None:
        os_name, arch, variant = _normalise(self.os, self.architecture, self.variant)
        object.__setattr__(self, "os", os_name)
        object.__setattr__(self, "architecture", arch)
        object.__setattr__(self, "variant", variant)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8``, ``linux/amd64``, ``linux`` or a bare ``arm64`` (os linux)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(
                "invalid platform '': expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            )
        parts = text.strip().lower().split("/")
        ok = all(
            p and p.replace("_", "").replace("-", "").replace(".", "").isalnum() for p in parts
        )
        if not ok or len(parts) > 3:
            raise InvalidArgument(
                f"invalid platform {text[:80]!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
            )
        if len(parts) == 1:
            if parts[0] in _OS_NAMES:
                host = host_platform()
                return cls(parts[0], host.architecture, host.variant)
            return cls("linux", parts[0])
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, value: object) -> Platform:
        """The ``platform`` object of an index entry; raises ValueError when malformed."""
        if not isinstance(value, dict):
            raise ValueError("platform must be an object")
        os_name = value.get("os")
        arch = value.get("architecture")
        variant = value.get("variant")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            raise ValueError("platform needs string 'os' and 'architecture'")
        if variant is not None and not isinstance(variant, str):
            raise ValueError("platform 'variant' must be a string")
        return cls(os_name, arch, variant or None)

    def __str__(self) -> str:
        out = f"{self.os}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out


def _normalise(os_name: str, arch: str, variant: str | None) -> tuple[str, str, str | None]:
    os_name = (os_name or "").lower()
    arch = (arch or "").lower()
    variant = (variant or "").lower() or None
    if arch == "armel" and variant is None:
        variant = "v6"
    if arch == "armhf" and variant is None:
        variant = "v7"
    arch = _ARCH_ALIASES.get(arch, arch)
    if variant is not None and variant.isdigit():
        variant = f"v{variant}"
    if arch == "arm64" and variant in ("v8", "v8.0"):
        variant = None
    if arch == "amd64" and variant == "v1":
        variant = None
    return os_name, arch, variant


def host_platform() -> Platform:
    """The platform this process runs on (linux only; the arm variant from ``uname -m``)."""
    machine = _pyplatform.machine().lower()
    variant: str | None = None
    if machine.startswith("armv") and machine != "armv8l":
        digits = "".join(ch for ch in machine[4:] if ch.isdigit())
        variant = f"v{digits}" if digits else None
        machine = "arm"
    elif machine == "armv8l":  # 32-bit userland on a 64-bit core
        machine, variant = "arm", "v8"
    return Platform("linux", machine, variant)


def is_attestation(desc: Descriptor) -> bool:
    """True for buildkit attestation manifests (``unknown/unknown`` or the reference type)."""
    if desc.annotations.get(REFERENCE_TYPE_ANNOTATION) == ATTESTATION_REFERENCE_TYPE:
        return True
    plat = desc.platform
    return plat is not None and plat.os == "unknown" and plat.architecture == "unknown"


def match_rank(candidate: Platform, want: Platform) -> int | None:
    """How well ``candidate`` serves ``want``: 0 is exact, higher is a fallback, None is no."""
    if candidate.os != want.os or candidate.architecture != want.architecture:
        return None
    if candidate.variant == want.variant:
        return 0
    if want.architecture == "amd64":
        return 1  # micro-architecture levels (v2, v3) are not a requirement we can check
    if want.architecture == "arm":
        wanted = want.variant or "v7"
        order = (
            list(_ARM_VARIANTS[_ARM_VARIANTS.index(wanted) :])
            if wanted in _ARM_VARIANTS
            else [wanted]
        )
        if candidate.variant in order:
            return order.index(candidate.variant)
        if candidate.variant is None:
            return len(order)
        return None
    if candidate.variant is None or want.variant is None:
        return 1
    return None


def select_manifest(index: Index, want: Platform) -> Descriptor:
    """The best entry of ``index`` for ``want``; NotFound lists the platforms on offer."""
    best: tuple[tuple[int, int, int], Descriptor] | None = None
    available: list[str] = []
    for pos, desc in enumerate(index.manifests):
        if is_attestation(desc):
            continue
        plat = desc.platform
        available.append(str(plat) if plat else "unspecified")
        rank = _NO_PLATFORM_RANK if plat is None else match_rank(plat, want)
        if rank is None:
            continue
        zstd_pref = 0 if desc.annotations.get(ZSTD_ANNOTATION) == "true" else 1
        key = (rank, zstd_pref, pos)
        if best is None or key < best[0]:
            best = (key, desc)
    if best is None:
        offer = ", ".join(dict.fromkeys(available)) or "none"
        raise NotFound(
            f"no matching manifest for {want} in the manifest list entries "
            f"(available: {offer}); pick one of those with --platform"
        )
    return best[1]
