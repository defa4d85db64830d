"""Base of full-screen detail views (inspect, history): a title, a body, a footer.

The body is fetched by a worker that posts ``DocumentLoaded``; until then the screen says it
is loading, and a failure is shown in place of the body, never as a traceback.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import keymap
from tui.messages import DocumentLoaded
from tui.problems import Problem
from tui.sync import one_line

if TYPE_CHECKING:
    import aiodocker

    from tui.app import PortsideApp


class DetailScreen(Screen[None]):
    """See the module docstring. Subclasses implement ``fetch`` and ``show``."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    DetailScreen > #detail-title {
        dock: top; height: 1; width: 1fr; background: $panel; padding: 0 1;
    }
    DetailScreen > #detail-status { height: auto; padding: 1 2; color: $foreground-muted; }
    """

    def __init__(self, title: str, *, autoload: bool = True) -> None:
        super().__init__()
        self.heading = title
        self.autoload = autoload
        self.data: Any = None

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble((self.heading, "bold")), id="detail-title")
        yield Static("Loading…", id="detail-status")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        if self.autoload:
            self.run_worker(self._load(), exclusive=True, group="detail")

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        raise NotImplementedError

    def prepare(self, data: Any) -> Any:
        """CPU-heavy rendering of ``data``; runs in a thread. None means "nothing to do"."""
        return None

    def show(self, data: Any, prepared: Any = None) -> None:
        raise NotImplementedError

    async def _load(self) -> None:
        docker = cast("PortsideApp", self.app).docker
        if docker is None:
            self.post_message(DocumentLoaded(error="the engine is not connected"))
            return
        from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

        try:
            data = await self.fetch(docker)
        except (DockerError, Problem) as err:
            self.post_message(DocumentLoaded(error=one_line(err.message)))
            return
        prepared = await asyncio.to_thread(self.prepare, data)
        self.post_message(DocumentLoaded(data, prepared=prepared))

    def on_document_loaded(self, message: DocumentLoaded) -> None:
        message.stop()
        status = self.query_one("#detail-status", Static)
        if message.error is not None:
            status.update(Content.assemble(("Cannot load: ", "bold $error"), message.error))
            return
        status.display = False
        self.data = message.data
        self.show(message.data, message.prepared)

    def set_summary(self, summary: str) -> None:
        """Add a muted summary after the title."""
        self.query_one("#detail-title", Static).update(
            Content.assemble((self.heading, "bold"), "  ", (summary, "$foreground-muted"))
        )

    def action_close(self) -> None:
        self.dismiss()
