"""``Problem``: a failure the dashboard shows as one line, with an HTTP-like status.

It has the shape of aiodocker's ``DockerError`` (``status``, ``message``) without needing
aiodocker (and aiohttp) loaded, so modules on the dashboard's start path can raise it; the
views that show engine errors catch both.
"""

from __future__ import annotations


class Problem(Exception):
    """See the module docstring; ``status`` 0 means "no HTTP status"."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message
