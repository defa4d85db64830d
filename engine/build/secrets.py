"""Build secrets on the wire: the ``X-Portside-Build-Secrets`` header of ``POST /build``.

Docker's legacy build API has no secrets (BuildKit passes them over its session), so
portside's CLI sends them in one request header: base64url of a JSON object mapping each
secret id to its base64 content. ``decode_header`` checks it strictly and returns
``{id: bytes}`` for ``RUN --mount=type=secret``; the values are never logged, stored in
the image or written anywhere but the step's private temporary directory.
"""

from __future__ import annotations

import base64
import binascii
import json

from engine.errors import InvalidArgument

HEADER = "X-Portside-Build-Secrets"
MAX_SECRET = 500 * 1024  # bytes per secret, as BuildKit
MAX_SECRETS = 64


def encode_header(secrets: dict[str, bytes]) -> str:
    """The header value for ``secrets`` (the CLI writes the same format)."""
    doc = {k: base64.b64encode(v).decode() for k, v in secrets.items()}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def decode_header(value: str) -> dict[str, bytes]:
    """``{id: content}`` from a header value; a one-line error when it is malformed."""
    problem = f"invalid {HEADER} header: use base64url JSON of {{id: base64 content}}"
    try:
        doc = json.loads(base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidArgument(problem) from None
    if not isinstance(doc, dict) or len(doc) > MAX_SECRETS:
        raise InvalidArgument(problem)
    out: dict[str, bytes] = {}
    for key, data in doc.items():
        if not isinstance(key, str) or not key or not isinstance(data, str):
            raise InvalidArgument(problem)
        try:
            content = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidArgument(f"{problem} (secret {key!r})") from None
        if len(content) > MAX_SECRET:
            raise InvalidArgument(f"secret {key!r} is larger than {MAX_SECRET} bytes")
        out[key] = content
    return out
