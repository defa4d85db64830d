"""Per-layer progress for the pull and push dialogs: ``LayerProgress`` is one layer's row (id,
status word, bar, byte counts), ``LayerList`` the scrolling list of them, one per layer id."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget

from tui.humanize import human_size
from tui.pull_progress import EXTRACT, LayerState

ID_WIDTH = 12
STATUS_WIDTH = 18
SIZE_WIDTH = 17


def bar(fraction: float, width: int, style: str) -> list[tuple[str, str]]:
    """A horizontal bar of ``width`` cells, ``fraction`` of it filled."""
    width = max(0, width)
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return [("━" * filled, style), ("━" * (width - filled), "$foreground 15%")]


class LayerProgress(Widget):
    """See the module docstring; ``update_layer`` re-renders from a new ``LayerState``."""

    DEFAULT_CSS = """
    LayerProgress { height: 1; width: 1fr; }
    """

    def __init__(self, layer: LayerState) -> None:
        super().__init__()
        self.state = layer

    def update_layer(self, layer: LayerState) -> None:
        self.state = layer
        self.refresh()

    def render(self) -> Content:
        layer = self.state
        width = self.size.width
        if layer.done:
            style = "$success"
        elif layer.phase == EXTRACT:
            style = "$accent"
        else:
            style = "$primary"
        sizes = ""
        if layer.total and not layer.done:
            sizes = f"{human_size(layer.current)}/{human_size(layer.total)}"
        elif layer.size:
            sizes = human_size(layer.size)
        bar_width = width - ID_WIDTH - STATUS_WIDTH - SIZE_WIDTH - 3
        parts: list[tuple[str, str] | str] = [
            (layer.id[:ID_WIDTH].ljust(ID_WIDTH), "$foreground-muted"),
            " ",
            (layer.status[:STATUS_WIDTH].ljust(STATUS_WIDTH), "bold" if layer.done else ""),
            " ",
        ]
        if bar_width >= 4:
            parts.extend(bar(layer.fraction, bar_width, style))
            parts.append(" ")
        parts.append(sizes.rjust(SIZE_WIDTH))
        return Content.assemble(*parts)


class LayerList(VerticalScroll):
    """One ``LayerProgress`` row per layer id, added as layers appear and redrawn in place."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, LayerProgress] = {}

    def show(self, layer: LayerState) -> None:
        row = self.rows.get(layer.id)
        if row is None:
            row = self.rows[layer.id] = LayerProgress(layer)
            self.mount(row)
        else:
            row.update_layer(layer)

    def clear(self) -> None:
        self.rows.clear()
        self.remove_children()
