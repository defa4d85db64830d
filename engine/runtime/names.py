"""Container names: docker's validation rule and random ``adjective_name`` defaults."""

from __future__ import annotations

import re
import secrets

from engine.errors import InvalidArgument

_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LEFT = (
    "agile", "bold", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly",
    "keen", "lucid", "merry", "nimble", "polite", "quiet", "rapid", "sharp", "steady", "swift",
    "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
_RIGHT = (
    "anchor", "barge", "beacon", "buoy", "cargo", "crane", "dock", "ferry", "harbor", "hull",
    "jetty", "keel", "lantern", "mast", "pier", "quay", "rudder", "sail", "schooner", "tug",
    "wharf", "yacht",
)  # fmt: skip


def validate(name: str) -> str:
    """``name`` with its leading "/" (docker stores names that way)."""
    if not _VALID.match(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name if name.startswith("/") else "/" + name


def random_name(taken: set[str]) -> str:
    for _ in range(100):
        name = f"/{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if name not in taken:
            return name
    return f"/{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}{secrets.randbelow(10000)}"
