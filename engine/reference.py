"""Docker-style image references: parsing, normalisation and strict validation.

``debian`` becomes ``docker.io/library/debian:latest``; hosts with ports, ``localhost``,
tags and ``@sha256:`` pins are understood. Every part is validated against the
distribution grammar before it is used in a URL or a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.digest import Digest
from engine.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# Where docker.io's API actually lives.
DOCKER_HUB_API_HOST = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_MAX_NAME = 255


def _bad(text: str, why: str) -> InvalidArgument:
    shown = text if len(text) <= 120 else text[:117] + "..."
    return InvalidArgument(f"invalid reference {shown!r}: {why}")


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference: registry, repository and tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: bool = True) -> Reference:
        """Parse and normalise ``text``; raise InvalidArgument with the reason if malformed."""
        if not isinstance(text, str) or not text:
            raise InvalidArgument("invalid reference: empty image name; give NAME[:TAG|@DIGEST]")
        if any(c.isspace() or ord(c) < 32 for c in text):
            raise _bad(text, "names cannot contain whitespace or control characters")
        rest = text
        digest: Digest | None = None
        if "@" in rest:
            rest, _, dig = rest.partition("@")
            try:
                digest = Digest.parse(dig)
            except InvalidArgument as err:
                raise _bad(text, str(err)) from None
        tag: str | None = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise _bad(text, "a tag is up to 128 letters, digits, '_', '.' or '-'")
        if not rest:
            raise _bad(text, "missing repository name")
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            registry, path = first, remainder
            if not _DOMAIN_RE.fullmatch(registry):
                raise _bad(text, f"{registry!r} is not a valid registry host[:port]")
            if ":" in registry and not registry.startswith("["):
                port = int(registry.rsplit(":", 1)[1])
                if not 0 < port < 65536:
                    raise _bad(text, f"port {port} is out of range")
        else:
            registry, path = DEFAULT_REGISTRY, rest
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and "/" not in path:
            path = f"library/{path}"
        for component in path.split("/"):
            if not _COMPONENT_RE.fullmatch(component):
                if component != component.lower():
                    raise _bad(text, "repository names must be lowercase")
                raise _bad(
                    text, f"{component!r} is not a valid name component (a-z, 0-9, '.', '_', '-')"
                )
        if len(path) > _MAX_NAME:
            raise _bad(text, f"repository name longer than {_MAX_NAME} characters")
        if tag is None and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(registry, path, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository``, fully qualified."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The short form docker prints: ``debian`` rather than ``docker.io/library/debian``."""
        if self.registry == DEFAULT_REGISTRY:
            repo = self.repository
            return repo[len("library/") :] if repo.startswith("library/") else repo
        return self.name

    @property
    def api_host(self) -> str:
        """The host to contact for this registry's API."""
        return DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    def with_tag(self, tag: str) -> Reference:
        return Reference.parse(f"{self.name}:{tag}")

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """``debian:12`` / ``127.0.0.1:5000/app:1``: the way docker prints RepoTags."""
        out = self.familiar_name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def tagged_str(self) -> str:
        """The fully qualified ``registry/repo:tag`` used as a tag key in the store."""
        return f"{self.name}:{self.tag or DEFAULT_TAG}"
