"""Lenient parsing of Docker Engine API query parameters, the way dockerd reads them.

Booleans accept ``1``/``true``/``yes`` (anything but empty, ``0``, ``no``, ``false`` and
``none``); filters accept the JSON list form ``{"dangling":["true"]}``, the map form
``{"dangling":{"true":true}}``, an empty string and ``null``. Bad values raise
``InvalidArgument`` (400) with a one-line message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping

from engine.errors import InvalidArgument

_FALSE = frozenset({"", "0", "no", "false", "none"})
_TIMESTAMP_RE = re.compile(r"^-?\d+(?:\.\d{1,9})?$")

Filters = dict[str, list[str]]


def query_str(query: Mapping[str, str], key: str, default: str = "") -> str:
    """The value of ``key`` (the first one when repeated), or ``default`` when absent."""
    value = query.get(key)
    return default if value is None else value


def query_bool(query: Mapping[str, str], key: str, default: bool = False) -> bool:
    """dockerd's ``BoolValue``: absent gives ``default``; empty, 0, no, false, none are false."""
    value = query.get(key)
    if value is None:
        return default
    return value.strip().lower() not in _FALSE


def query_int(query: Mapping[str, str], key: str, default: int | None = None) -> int | None:
    """An integer parameter; absent or empty gives ``default``."""
    value = query.get(key, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key!r}: {value!r} is not an integer") from None


def query_timestamp(query: Mapping[str, str], key: str) -> float | None:
    """A unix timestamp as docker clients send it (``SECONDS[.NANOSECONDS]``), or None."""
    value = query.get(key, "").strip()
    if not value:
        return None
    if not _TIMESTAMP_RE.match(value):
        raise InvalidArgument(
            f"invalid value for {key!r}: {value!r} is not a unix timestamp (SECONDS[.NANOS])"
        )
    return float(value)


def parse_filters(text: str | None, allowed: Collection[str] | None = None) -> Filters:
    """Decode a ``filters`` JSON value into ``{name: [values]}``.

    With ``allowed``, unknown filter names are refused like dockerd does
    (``Invalid filter 'name'``).
    """
    if text is None or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid filters {_shown(text)}: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(
            f"invalid filters {_shown(text)}: expected a JSON object like "
            '{"name":["value"]} or {"name":{"value":true}}'
        )
    out: Filters = {}
    for name, values in raw.items():
        if isinstance(values, dict):
            out[name] = [str(v) for v in values]
        elif isinstance(values, list):
            out[name] = [v if isinstance(v, str) else json.dumps(v) for v in values]
        elif isinstance(values, str):
            out[name] = [values]
        else:
            raise InvalidArgument(
                f"invalid filters {_shown(text)}: the values of {name!r} must be a list of strings"
            )
    if allowed is not None:
        for name in out:
            if name not in allowed:
                raise InvalidArgument(f"Invalid filter '{name}'")
    return out


def query_filters(
    query: Mapping[str, str], key: str = "filters", allowed: Collection[str] | None = None
) -> Filters:
    """The parsed ``filters`` parameter of a request (see ``parse_filters``)."""
    return parse_filters(query.get(key), allowed)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
