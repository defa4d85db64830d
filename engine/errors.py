"""Engine error types: each carries a one-line message saying what was wrong and what to do.

The API layer maps them onto dockerd's status codes through ``status``; the CLI prints
``str(err)`` and exits with docker's codes (125 for engine errors).
"""

from __future__ import annotations


class PortsideError(Exception):
    """Base of every error the engine reports to a user."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(PortsideError):
    """Bad input from the user (a malformed reference, option or value)."""

    status = 400


class NotFound(PortsideError):
    """An image, container, blob or registry object that does not exist."""

    status = 404


class Conflict(PortsideError):
    """An operation that clashes with the current state (an image in use, a name taken)."""

    status = 409


class Forbidden(PortsideError):
    """A policy or permission refusal."""

    status = 403


class RegistryError(PortsideError):
    """A registry answered with an error or could not be reached."""

    status = 500


class Unauthorized(RegistryError):
    """The registry refused our credentials (or wants some)."""

    status = 401


class VerificationError(PortsideError):
    """Content did not match its digest, size or DiffID."""

    status = 500
