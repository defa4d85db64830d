"""The JSON of a container or image (``docker inspect``), highlighted and scrollable.

Highlighting uses Textual's theme-aware highlighter, so colours follow the current theme.
"""

from __future__ import annotations

import json
from typing import Any

import aiodocker
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static

from tui.screens.detail import DetailScreen

KINDS = ("container", "image")


class InspectScreen(DetailScreen):
    """``kind`` is "container" or "image"; ``target`` its id."""

    DEFAULT_CSS = """
    InspectScreen > #inspect-scroll { height: 1fr; }
    InspectScreen #inspect-json { width: auto; padding: 0 1; }
    """

    def __init__(self, kind: str, target: str, title: str, *, autoload: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"cannot inspect a {kind!r}: use one of {', '.join(KINDS)}")
        super().__init__(f"Inspect {kind} {title}", autoload=autoload)
        self.kind = kind
        self.target = target

    def compose_body(self) -> ComposeResult:
        with ScrollableContainer(id="inspect-scroll"):
            yield Static(id="inspect-json")

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        if self.kind == "container":
            return await docker.containers.container(self.target).show()
        return await docker.images.inspect(self.target)

    def prepare(self, data: Any) -> Content:
        return highlight(json.dumps(data, indent=2, ensure_ascii=False), language="json")

    def show(self, data: Any, prepared: Any = None) -> None:
        content = prepared if isinstance(prepared, Content) else self.prepare(data)
        self.query_one("#inspect-json", Static).update(content)
        self.query_one("#inspect-scroll").focus()
