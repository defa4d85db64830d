"""Folds an engine's pull progress stream into per-layer state for the pull dialog.

The stream is Docker's JSON progress shape (``status``, ``id``, ``progressDetail``
``{current, total}``, ``error``/``errorDetail``), as dockerd, podman and portside's own
engine send it from ``POST /images/create``. Pure data: the dialog renders ``layers`` and
``lines``; tests feed real streams into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DOWNLOAD = "download"
EXTRACT = "extract"

# Status words that finish a layer, and the phase other statuses belong to.
_DONE_STATUSES = ("pull complete", "already exists")
_PHASES = {
    "pulling fs layer": DOWNLOAD,
    "waiting": DOWNLOAD,
    "downloading": DOWNLOAD,
    "verifying checksum": DOWNLOAD,
    "download complete": DOWNLOAD,
    "retrying": DOWNLOAD,
    "extracting": EXTRACT,
}


@dataclass(slots=True)
class LayerState:
    """What one layer is doing: its status word, phase and byte counts of that phase."""

    id: str
    status: str = "Waiting"
    phase: str = DOWNLOAD
    current: int = 0
    total: int | None = None
    size: int | None = None  # download size once known, kept through extraction
    done: bool = False

    @property
    def fraction(self) -> float:
        """0..1 progress over both phases (download is the first half)."""
        if self.done:
            return 1.0
        part = 0.0
        if self.total:
            part = min(1.0, self.current / self.total)
        elif self.status.lower() in ("download complete", "verifying checksum"):
            part = 1.0
        return part / 2 if self.phase == DOWNLOAD else 0.5 + part / 2


class PullProgress:
    """State of one pull, updated event by event."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.layers: dict[str, LayerState] = {}
        self.lines: list[str] = []
        self.error: str | None = None

    def feed(self, event: Mapping[str, Any]) -> str | None:
        """Apply one stream object; return the id of the layer it changed, if any."""
        error = event.get("error") or (event.get("errorDetail") or {}).get("message")
        if error:
            self.error = " ".join(str(error).split())
            return None
        status = str(event.get("status") or "").strip()
        layer_id = event.get("id")
        if not layer_id or status.lower().startswith("pulling from"):
            if status:
                self.lines.append(f"{status}" if not layer_id else f"{layer_id}: {status}")
            return None
        layer = self.layers.get(str(layer_id))
        if layer is None:
            layer = self.layers[str(layer_id)] = LayerState(str(layer_id))
        layer.status = status
        lowered = status.lower()
        if lowered in _DONE_STATUSES:
            layer.done = True
            return layer.id
        phase = _PHASES.get(lowered.split(" ")[0] if lowered.startswith("retrying") else lowered)
        if phase is not None and phase != layer.phase:
            layer.phase = phase
            layer.current, layer.total = 0, None
        detail = event.get("progressDetail") or {}
        if isinstance(detail, Mapping):
            current = detail.get("current")
            total = detail.get("total")
            if isinstance(current, int | float) and not isinstance(current, bool):
                layer.current = int(current)
            if isinstance(total, int | float) and not isinstance(total, bool) and total > 0:
                layer.total = int(total)
                if layer.phase == DOWNLOAD:
                    layer.size = int(total)
        if lowered == "download complete" and layer.total:
            layer.current = layer.total
        return layer.id

    @property
    def fraction(self) -> float:
        """Progress over all known layers (0..1)."""
        if not self.layers:
            return 0.0
        return sum(layer.fraction for layer in self.layers.values()) / len(self.layers)

    @property
    def summary(self) -> str:
        """The engine's closing line (``Status: Downloaded newer image ...``), if any."""
        for line in reversed(self.lines):
            if line.startswith("Status:"):
                return line.removeprefix("Status:").strip()
        return ""
