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
        # Narrower and narrower panel tabs until the engine's dot and name fit beside them
        # (at 80 columns: short labels, then no "portside" badge).
        room_for_engine = 2 + min(len(self.info.name if self.info else self.engine_name), 12) + 2
        for level in (0, 1, 2) if wide else (1, 2):
            left_content = self._tabs(level)
            if left_content.cell_length + room_for_engine <= width:
                break
        right_content = Content.assemble(*self._engine_part(wide))
        gap = width - left_content.cell_length - right_content.cell_length
        if gap < 1:
            right_content = Content.assemble(*self._engine_part(False, short=True))
            gap = width - left_content.cell_length - right_content.cell_length
        if gap < 1 and self.status == CONNECTED:
            room = width - left_content.cell_length - 4  # gap, dot and its spaces
            right_content = Content.assemble(*self._engine_part(False, short=True, bare=room))
        gap = max(1, width - left_content.cell_length - right_content.cell_length)
        return Content.assemble(left_content, " " * gap, right_content)

    def _tabs(self, level: int) -> Content:
        """The badge and panel tabs; ``level`` 0 wide labels, 1 short, 2 shortest."""
        counts = self.counts
        connected = self.status == CONNECTED
        left: list[tuple[str, str] | str] = []
        if level < 2:
            left += [(" portside ", "bold $background on $primary"), " "]
        containers = f" 1 Containers {counts.containers}" if connected else " 1 Containers"
        if connected and level == 0:
            extra = [f"{counts.running} running"]
            if counts.paused:
                extra.append(f"{counts.paused} paused")
            containers += f" ({', '.join(extra)})"
        elif connected:
            containers += f" ▶{counts.running}"
            if counts.paused:
                containers += f" ‖{counts.paused}"
        images = " 2 Images" if level < 2 else " 2 Img"
        if connected:
            images += f" {counts.images}"
        volumes = " 3 Volumes" if level == 0 else " 3 Vol"
        networks = " 4 Networks" if level == 0 else " 4 Net"
        if connected and level == 0:
            volumes += f" {counts.volumes}"
            networks += f" {counts.networks}"
        terminals = " 5 Terminals" if level == 0 else " 5 Term"
        if self.terminals:
            terminals += f" {self.terminals}"
        registries = " 6 Registries" if level == 0 else " 6 Reg"
        tabs = (
            ("containers", containers + " "),
            ("images", images + " "),
            ("volumes", volumes + " "),
            ("networks", networks + " "),
            ("terminals", terminals + " "),
            ("registries", registries + " "),
        )
        for key, text in tabs:
            style = "bold reverse $accent" if key == self.panel else "$foreground"
            left.append((text, style))
            left.append(" ")
        return Content.assemble(*left)

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
