"""Content digests: strict validation and hashing helpers.

A digest string is checked against ``sha256:[a-f0-9]{64}`` or ``sha512:[a-f0-9]{128}``
before it is ever used in a URL or a path (CVE-2024-3727 class).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from engine.errors import InvalidArgument

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
ALGORITHMS = ("sha256", "sha512")


@dataclass(frozen=True, order=True)
class Digest:
    """A validated ``algorithm:hex`` content digest."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str) or not _DIGEST_RE.fullmatch(text):
            shown = text if isinstance(text, str) and len(text) < 200 else "<value>"
            raise InvalidArgument(
                f"invalid digest {shown!r}: expected sha256:<64 hex> or sha512:<128 hex>"
            )
        alg, _, hexpart = text.partition(":")
        return cls(alg, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        """The 12-character id docker shows."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_digest(text: str) -> bool:
    return isinstance(text, str) and bool(_DIGEST_RE.fullmatch(text))


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """ChainID of every prefix of ``diff_ids`` (image-spec config.md)."""
    out: list[Digest] = []
    for diff in diff_ids:
        if not out:
            out.append(diff)
        else:
            text = f"{out[-1]} {diff}".encode()
            out.append(Digest.of_bytes(text))
    return out
