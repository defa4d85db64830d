"""Progress events for long work (pulls, pushes, builds) in the shape of Docker's JSON stream.

Services report ``ProgressEvent`` objects to a callback; the API layer writes them as
JSON lines (``{"status", "id", "progressDetail"}``) and the CLI draws them as bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One status line: ``id`` is a layer's short digest, or None for whole-operation lines."""

    status: str
    id: str | None = None
    current: int | None = None
    total: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.id is not None:
            out["id"] = self.id
        if self.current is not None:
            detail: dict[str, int] = {"current": self.current}
            if self.total:
                detail["total"] = self.total
            out["progressDetail"] = detail
        return out


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A callback that drops every event."""
