"""What the copy keys put on the clipboard: a row's id or name, log lines, an inspect value.

Pure functions (no widgets): the callers hand the text to ``App.copy_to_clipboard``, which
keeps it in ``app.clipboard`` and writes it to the terminal as an OSC 52 sequence.
"""

from __future__ import annotations

import json
from typing import Any

from tui.model import ContainerRow, ImageRow, NetworkRow, VolumeRow


def row_id(row: object) -> str:
    """The full id of a row (the name for volumes, which have no id)."""
    if isinstance(row, VolumeRow):
        return row.name
    if isinstance(row, ContainerRow | ImageRow | NetworkRow):
        return row.id
    raise TypeError(f"no id to copy for {type(row).__name__}")


def row_name(row: object) -> str:
    """The name people type: container and network name, image repo:tag, volume name."""
    if isinstance(row, ImageRow):
        return row.id if row.dangling else f"{row.repository}:{row.tag}"
    if isinstance(row, ContainerRow | NetworkRow | VolumeRow):
        return row.name
    raise TypeError(f"no name to copy for {type(row).__name__}")


def inspect_value(value: Any) -> str:
    """A scalar as it reads (strings unquoted), anything else as indented JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value)


def lines_text(lines: list[str]) -> str:
    """Lines as one text, each ending with a newline."""
    return "".join(f"{line}\n" for line in lines)


def preview(text: str, width: int = 40) -> str:
    """A one-line reminder of what was copied, for the notification."""
    first = text.splitlines()[0] if text else ""
    more = len(text.splitlines()) > 1 or len(first) > width
    return (first[:width] + "…") if more else first
