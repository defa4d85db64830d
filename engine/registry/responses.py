"""Reading registry responses safely: bounded bodies and one-line errors from status codes.

Nothing here reads a body without a cap. ``error_for_status`` turns a failed response into
the PortsideError subclass a user should see (with the registry's own message, trimmed).
"""

from __future__ import annotations

import json
import ssl

import aiohttp

from engine.errors import Forbidden, NotFound, PortsideError, RegistryError, Unauthorized

MAX_ERROR_BODY = 1024 * 1024
MAX_TOKEN_BODY = 1024 * 1024
_READ_CHUNK = 64 * 1024
_MESSAGE_LIMIT = 200


class BodyTooLarge(RegistryError):
    """A response body went over the size cap for its kind."""


class Transient(RegistryError):
    """A failure worth retrying (5xx, 429, a dropped connection); carries Retry-After."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(RegistryError):
    """The endpoint could not be contacted at all (DNS, refused, TLS): try the next one."""

    def __init__(
        self, message: str, *, tls: bool = False, answered: bool = False, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.tls = tls
        self.answered = answered  # an HTTP server answered, but it is not a registry


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (by header or by actual count)."""
    length = resp.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"{what} is {length} bytes, over the {limit} byte limit; refusing it")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await resp.content.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(f"{what} is over the {limit} byte limit; refusing it")
        chunks.append(chunk)
    return b"".join(chunks)


async def error_message(resp: aiohttp.ClientResponse) -> str:
    """The registry's error text (distribution ``errors`` JSON or plain text), capped."""
    try:
        body = await read_bounded(resp, MAX_ERROR_BODY, "error body")
    except BodyTooLarge:
        return "(error body over 1 MiB, not shown)"
    except (aiohttp.ClientError, TimeoutError):
        return ""
    return summarise_error_body(body)


def summarise_error_body(body: bytes) -> str:
    """``CODE: message`` of the first distribution error, else the first line of text."""
    text = ""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            message = errors[0].get("message")
            parts = [str(p) for p in (code, message) if isinstance(p, str) and p]
            text = ": ".join(parts)
        elif isinstance(doc.get("message"), str):
            text = doc["message"]
        elif isinstance(doc.get("details"), str):
            text = doc["details"]
    if not text and doc is None:
        text = body.decode("utf-8", errors="replace").strip().splitlines()[0] if body else ""
    return clean(text)


def error_codes(message: str) -> str:
    """The upper-case code part of a ``CODE: message`` summary ('' when none)."""
    head = message.split(":", 1)[0]
    return head if head.isupper() or "_" in head else ""


def clean(text: str) -> str:
    """One printable line of at most 200 characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
    return seconds if seconds >= 0 else None


def error_for_status(
    status: int,
    message: str,
    *,
    host: str,
    what: str,
    repository: str,
    has_credentials: bool,
    retry_after: float | None = None,
) -> PortsideError:
    """The error to raise for a non-success ``status``; ``what`` names the object asked for."""
    detail = f": {message}" if message else ""
    if status == 401:
        if has_credentials:
            return Unauthorized(
                f"wrong credentials for {host} (or no access to {repository}){detail}; "
                f"run portside login {host}"
            )
        return Unauthorized(
            f"authentication required for {host} to access {repository}{detail}; "
            f"run portside login {host}"
        )
    if status == 403:
        return Forbidden(f"access to {repository} on {host} denied{detail}; check your permissions")
    if status == 404:
        return NotFound(f"{what} not found{detail}")
    if status == 429:
        return Transient(f"too many requests to {host} (429){detail}; try again later", retry_after)
    if status >= 500:
        return Transient(
            f"registry {host} failed with {status}{detail}; try again later", retry_after
        )
    return RegistryError(f"registry {host} answered {status} for {what}{detail}")


def connection_error(host: str, err: BaseException) -> Unreachable:
    """A one-line 'cannot reach' error, with docker's advice for certificate failures."""
    reason = _reason(err)
    if isinstance(err, aiohttp.ClientConnectorCertificateError) or _is_cert_error(err):
        return Unreachable(
            f"certificate verify failed for {host}: add its CA to /etc/docker/certs.d/{host}/"
            f"ca.crt or mark it insecure ({reason})",
            tls=True,
            reason=f"certificate verify failed ({reason})",
        )
    if isinstance(err, aiohttp.ClientSSLError | ssl.SSLError):
        return Unreachable(
            f"cannot reach registry {host}: TLS failed ({reason})",
            tls=True,
            reason=f"TLS failed ({reason})",
        )
    return Unreachable(f"cannot reach registry {host}: {reason}", reason=reason)


def _is_cert_error(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(err: BaseException) -> str:
    inner = getattr(err, "os_error", None) or err
    if isinstance(inner, ssl.SSLCertVerificationError):
        return clean(inner.verify_message or str(inner))
    if isinstance(inner, ssl.SSLError) and inner.reason:
        return inner.reason.lower().replace("_", " ")
    if isinstance(inner, OSError) and inner.strerror:
        return clean(inner.strerror)
    if isinstance(err, TimeoutError):
        return "timed out"
    text = clean(str(err))
    return text or type(err).__name__
