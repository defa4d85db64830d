"""The builder's step failure, shared by the executor and its helpers."""

from __future__ import annotations

from engine.errors import PortsideError


class BuildError(PortsideError):
    """A build step failed (a RUN exiting non-zero, a missing source...); ``exit_code`` is
    the failing command's status (1 when no command failed), for ``portside build``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
