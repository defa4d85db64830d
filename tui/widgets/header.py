"""The one-line header: panels with live counts, and which engine we talk to and its state.

Everything shown comes from the engine (``/version`` for the engine, the container and
image lists for the counts); the header itself only formats, narrower when space is short.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from tui.humanize import ellipsize
from tui.model import EngineInfo

CONNECTING = "connecting"
CONNECTED = "connected"
UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Counts:
    """Totals for the header."""

    containers: int = 0
    running: int = 0
    paused: int = 0
    images: int = 0
    volumes: int = 0
    networks: int = 0


class EngineHeader(Widget):
    """See the module docstring."""

    DEFAULT_CSS = """
    EngineHeader {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $foreground;
    }
    """

    status: reactive[str] = reactive(CONNECTING)
    info: reactive[EngineInfo | None] = reactive(None)
    counts: reactive[Counts] = reactive(Counts())
    panel: reactive[str] = reactive("containers")
    engine_name: reactive[str] = reactive("")
    terminals: reactive[int] = reactive(0)

    def render(self) -> Content:
        width = self.size.width
        wide = width >= 120
        counts = self.counts
        left: list[tuple[str, str] | str] = [(" portside ", "bold $background on $primary"), " "]
        containers = f" 1 Containers {counts.containers}"
        if self.status == CONNECTED:
            if wide:
                extra = [f"{counts.running} running"]
                if counts.paused:
                    extra.append(f"{counts.paused} paused")
                containers += f" ({', '.join(extra)})"
            else:
                containers += f" ▶{counts.running}"
                if counts.paused:
                    containers += f" ‖{counts.paused}"
        else:
            containers = " 1 Containers"
        connected = self.status == CONNECTED
        images = f" 2 Images {counts.images}" if connected else " 2 Images"
        volumes = " 3 Volumes" if wide else " 3 Vol"
        networks = " 4 Networks" if wide else " 4 Net"
        if connected and wide:
            volumes += f" {counts.volumes}"
            networks += f" {counts.networks}"
        terminals = " 5 Terminals" if wide else " 5 Term"
        if self.terminals:
            terminals += f" {self.terminals}"
        tabs = (
            ("containers", containers + " "),
            ("images", images + " "),
            ("volumes", volumes + " "),
            ("networks", networks + " "),
            ("terminals", terminals + " "),
        )
        for key, text in tabs:
            style = "bold reverse $accent" if key == self.panel else "$foreground"
            left.append((text, style))
            left.append(" ")
        right = self._engine_part(wide)
        left_content = Content.assemble(*left)
        right_content = Content.assemble(*right)
        gap = width - left_content.cell_length - right_content.cell_length
        if gap < 1:
            right = self._engine_part(False, short=True)
            right_content = Content.assemble(*right)
            gap = width - left_content.cell_length - right_content.cell_length
        if gap < 1 and self.status == CONNECTED:
            room = width - left_content.cell_length - 4  # gap, dot and its spaces
            right = self._engine_part(False, short=True, bare=max(room, 1))
            right_content = Content.assemble(*right)
        gap = max(1, width - left_content.cell_length - right_content.cell_length)
        return Content.assemble(left_content, " " * gap, right_content)

    def _engine_part(
        self, wide: bool, *, short: bool = False, bare: int = 0
    ) -> list[tuple[str, str] | str]:
        """The engine's part; ``bare``: only the dot and the name in that many cells."""
        info = self.info
        name = ellipsize(info.name if info else self.engine_name, 16 if short else 28)
        if self.status == CONNECTED and info is not None and bare:
            return [("● ", "bold $success"), (ellipsize(name, bare) + " ", "$foreground")]
        if self.status == CONNECTED and info is not None:
            text = f"{name} {info.version}"
            if wide:
                text = f"{name} · {info.product} {info.version} · API {info.api_version}"
            elif not short:
                text += f" API {info.api_version}"
            return [("● ", "bold $success"), (text + " ", "$foreground")]
        if self.status == UNREACHABLE:
            return [("○ ", "bold $error"), (f"{name} unreachable ", "$error")]
        return [("◌ ", "$warning"), (f"connecting to {name}… ", "$foreground-muted")]
