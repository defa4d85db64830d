"""Typed messages that carry engine data from workers to the widgets.

Workers never touch widgets: they post one of these to the app, whose handlers update the
store and the panels. Snapshot tests post the same messages with fixed content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from textual.message import Message

from tui.model import ContainerRow, EngineInfo, EngineProblem, ImageRow, NetworkRow, VolumeRow


class EngineConnecting(Message):
    """A connection attempt has started."""

    def __init__(self, attempt: int) -> None:
        super().__init__()
        self.attempt = attempt


class EngineSwitched(Message):
    """The user chose another engine: forget the old one's data, connect to this one."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__()
        self.name = name
        self.url = url


class EngineConnected(Message):
    """The engine answered ``/version``; data messages follow."""

    def __init__(self, info: EngineInfo) -> None:
        super().__init__()
        self.info = info


class EngineUnreachable(Message):
    """The engine could not be reached (or was lost); another attempt comes after ``retry_in``."""

    def __init__(self, problem: EngineProblem, *, attempt: int, retry_in: float) -> None:
        super().__init__()
        self.problem = problem
        self.attempt = attempt
        self.retry_in = retry_in


class ContainersUpdated(Message):
    """Fresh container rows. ``complete`` rows replace everything; otherwise they are merged
    and ``removed`` ids dropped."""

    def __init__(
        self,
        rows: Iterable[ContainerRow],
        *,
        complete: bool,
        removed: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.rows = tuple(rows)
        self.complete = complete
        self.removed = frozenset(removed)


class ImagesUpdated(Message):
    """The complete list of image rows."""

    def __init__(self, rows: Iterable[ImageRow]) -> None:
        super().__init__()
        self.rows = tuple(rows)


class ActionFinished(Message):
    """A user action on the engine finished; ``error`` is a one-line reason when it failed."""

    def __init__(self, summary: str, *, error: str | None = None) -> None:
        super().__init__()
        self.summary = summary
        self.error = error


class DocumentLoaded(Message):
    """An inspect or history answer arrived for a detail screen."""

    def __init__(self, data: Any = None, *, error: str | None = None, prepared: Any = None) -> None:
        super().__init__()
        self.data = data
        self.error = error
        self.prepared = prepared  # rendering work already done off the event loop


class PullEvent(Message):
    """One JSON object of the engine's pull progress stream."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        super().__init__()
        self.event = event


class PullFinished(Message):
    """The pull stream ended; ``error`` is set when the pull failed."""

    def __init__(self, reference: str, *, error: str | None = None) -> None:
        super().__init__()
        self.reference = reference
        self.error = error


class VolumesUpdated(Message):
    """The complete list of volumes."""

    def __init__(self, rows: Iterable[VolumeRow], *, error: str = "") -> None:
        super().__init__()
        self.rows = tuple(rows)
        self.error = error  # why the engine would not list them


class NetworksUpdated(Message):
    """The complete list of networks."""

    def __init__(self, rows: Iterable[NetworkRow], *, error: str = "") -> None:
        super().__init__()
        self.rows = tuple(rows)
        self.error = error  # why the engine would not list them


class RowStatsSampled(Message):
    """One-shot stats answers for containers rows on screen: id -> (cpu %, memory bytes)."""

    def __init__(self, figures: Mapping[str, tuple[float, float]]) -> None:
        super().__init__()
        self.figures = dict(figures)
