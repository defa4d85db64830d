"""Registry addresses as users type them to ``login`` (``https://host:5000/v2/``, ``host``).

The engine only verifies credentials (``POST /auth`` -> ``RegistryClient.check_login``), as
dockerd does; storing them is the client's job (the CLI's ``tui/cli/dockerconfig.py``, or the
docker CLI), and the engine reads what clients stored through ``credentials.py``.
"""

from __future__ import annotations

import re

from engine.errors import InvalidArgument
from engine.registry.credentials import normalise_registry_key

LOGIN_SUCCEEDED = "Login Succeeded"
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def registry_host(server: str | None) -> str:
    """``host[:port]`` for what a user typed (``https://host:5000/v2/``, ``host``, nothing
    for Docker Hub); InvalidArgument for anything else."""
    text = (server or "").strip()
    if not text:
        return "docker.io"
    host = normalise_registry_key(text)
    if not _HOST_RE.fullmatch(host):
        raise InvalidArgument(f"invalid registry address {text[:100]!r}: expected HOST[:PORT]")
    return host
