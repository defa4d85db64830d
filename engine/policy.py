"""The image policy: which registries images may come from, and which must be pinned.

Rules live in ``[engine]`` of config.toml::

    allowed_registries = ["127.0.0.1:5000", "docker.io/library/*"]   # empty: all allowed
    denied_registries  = ["docker.io/evil/*"]
    require_digest     = ["docker.io"]      # these must be named NAME@sha256:...

(plus ``insecure_registries``, which decides plain http and is enforced by the registry
client). A pattern is matched against the full name ``registry/repository`` with shell
globs (``*`` ``?`` ``[...]``); a pattern without ``/`` names a whole registry (``ghcr.io``,
``*.example.com``, ``127.0.0.1:*``) and ``registry/path`` also covers everything under that
path. Denials win over allowances. ``check`` raises ``Forbidden`` naming the rule that
refused; pulls, runs and builds (each ``FROM``) call it before touching the image.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from engine.config import EngineConfig
from engine.errors import Forbidden, InvalidArgument
from engine.reference import Reference

ACTIONS = {"pull": "pull", "run": "run", "build": "build (FROM)", "push": "push"}


def pattern_matches(pattern: str, ref: Reference) -> bool:
    """Whether ``pattern`` (see the module docstring) covers ``ref``'s repository."""
    pattern = pattern.strip().lower()
    name = ref.name.lower()
    if "/" not in pattern:
        return fnmatch.fnmatchcase(ref.registry.lower(), pattern)
    pattern = pattern.rstrip("/")
    if fnmatch.fnmatchcase(name, pattern):
        return True
    # "registry/path" covers what is under it (globs allowed in each part).
    parts = name.split("/")
    depth = pattern.count("/") + 1
    return len(parts) > depth and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern)


@dataclass(frozen=True)
class ImagePolicy:
    """Compiled rules of one engine config."""

    allowed: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    require_digest: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: EngineConfig) -> ImagePolicy:
        return cls(
            allowed=_patterns(config.allowed_registries, "allowed_registries"),
            denied=_patterns(config.denied_registries, "denied_registries"),
            require_digest=_patterns(config.require_digest, "require_digest"),
        )

    @property
    def empty(self) -> bool:
        return not (self.allowed or self.denied or self.require_digest)

    def check(self, ref: Reference | str, action: str = "pull") -> None:
        """Return if ``ref`` may be used for ``action`` (pull, run, build); else Forbidden."""
        reference = Reference.parse(ref) if isinstance(ref, str) else ref
        doing = ACTIONS.get(action, action)
        shown = reference.familiar()
        for pattern in self.denied:
            if pattern_matches(pattern, reference):
                raise Forbidden(
                    f"{doing} of {shown} refused by rule denied_registries {pattern!r} of the "
                    "engine config"
                )
        if self.allowed and not any(pattern_matches(p, reference) for p in self.allowed):
            listed = ", ".join(repr(p) for p in self.allowed)
            raise Forbidden(
                f"{doing} of {shown} refused by rule allowed_registries: {reference.registry}/"
                f"{reference.repository} matches none of {listed}"
            )
        if reference.digest is None:
            for pattern in self.require_digest:
                if pattern_matches(pattern, reference):
                    raise Forbidden(
                        f"{doing} of {shown} refused by rule require_digest {pattern!r}: name "
                        f"the image by digest ({reference.familiar_name}@sha256:...)"
                    )


def check(config: EngineConfig, ref: Reference | str, action: str = "pull") -> None:
    """``ImagePolicy.from_config(config).check(ref, action)``."""
    ImagePolicy.from_config(config).check(ref, action)


def _patterns(values: object, key: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise InvalidArgument(f'[engine] {key} must be a list of patterns, like ["ghcr.io"]')
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise InvalidArgument(
                f"[engine] {key}: invalid pattern {str(value)[:60]!r}; use HOST[:PORT][/PATH]"
            )
        out.append(value.strip())
    return tuple(out)
