"""The pull dialog: type a reference, watch every layer download and extract.

The pull runs in a worker that streams ``POST /images/create`` through aiodocker and posts
each progress object as a ``PullEvent``; ``PullProgress`` folds them into layer states and
one ``LayerProgress`` row per layer redraws. Escape closes the dialog (cancelling a pull
that is still running).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Static

from tui import keymap
from tui.cli import dockerconfig
from tui.messages import PullEvent, PullFinished
from tui.pull_progress import PullProgress
from tui.sync import one_line
from tui.widgets.layer_progress import LayerList, bar

if TYPE_CHECKING:
    from tui.app import PortsideApp


def check_reference(text: str) -> str | None:
    """A one-line problem with what the user typed, or None when it is worth sending."""
    if not text:
        return "type an image reference such as registry.example:5000/team/app:1.2"
    if any(ch.isspace() for ch in text):
        return "an image reference has no spaces"
    if text != text.strip("/:@"):
        return "a reference cannot start or end with '/', ':' or '@'"
    return None


class TotalBar(Widget):
    """The whole pull's progress: one bar and "done/total layers"."""

    DEFAULT_CSS = "TotalBar { height: 1; width: 1fr; }"

    def __init__(self) -> None:
        super().__init__(id="pull-total")
        self.fraction = 0.0
        self.done = 0
        self.total = 0

    def set_progress(self, fraction: float, done: int, total: int) -> None:
        self.fraction, self.done, self.total = fraction, done, total
        self.refresh()

    def render(self) -> Content:
        label = f" {self.done}/{self.total} layers"
        width = max(4, self.size.width - len(label))
        style = "$success" if self.fraction >= 1 else "$primary"
        return Content.assemble(*bar(self.fraction, width, style), label)


class PullScreen(ModalScreen[None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    PullScreen { align: center middle; }
    PullScreen > Vertical {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; border-title-style: bold;
        background: $surface; padding: 0 1;
    }
    PullScreen Input { margin-bottom: 1; }
    PullScreen #pull-status { height: auto; }
    PullScreen #pull-total { height: 1; }
    PullScreen #pull-layers { height: auto; max-height: 16; }
    PullScreen .hint { color: $foreground-muted; }
    """

    def __init__(self, reference: str = "") -> None:
        super().__init__()
        self.initial = reference
        self.progress: PullProgress | None = None
        self.running = False
        self.finished_error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Pull an image"
            yield Input(self.initial, placeholder="registry/repository:tag", id="pull-ref")
            yield Static("", id="pull-status")
            yield TotalBar()
            yield LayerList(id="pull-layers")
            yield Label("enter pulls · escape closes (and cancels a running pull)", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pull-total").display = False
        self.query_one("#pull-ref", Input).focus()

    @on(Input.Submitted, "#pull-ref")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.running:
            return
        reference = event.value.strip()
        problem = check_reference(reference)
        if problem:
            self._status(Content.assemble(("✕ ", "bold $error"), problem))
            return
        self.start_pull(reference)

    def start_pull(self, reference: str) -> None:
        """Start pulling ``reference`` in a worker."""
        self.begin(reference)
        self.run_worker(self._pull(reference), exclusive=True, group="pull")

    def begin(self, reference: str) -> None:
        """Reset the dialog for a pull of ``reference`` whose events are about to arrive."""
        self.progress = PullProgress(reference)
        self.query_one("#pull-layers", LayerList).clear()
        ref_input = self.query_one("#pull-ref", Input)
        ref_input.value = reference
        ref_input.disabled = True
        self.query_one("#pull-total").display = True
        self.running = True
        self.finished_error = None
        self._status(Content.assemble(("◌ ", "$warning"), f"Pulling {reference}…"))
        self._draw_total()

    async def _pull(self, reference: str) -> None:
        docker = cast("PortsideApp", self.app).docker
        if docker is None:
            self.post_message(PullFinished(reference, error="the engine is not connected"))
            return
        from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

        try:
            name, auth = await dockerconfig.request_auth(reference)  # the user's login
            async for event in docker.images.pull(name, auth=auth, stream=True):
                self.post_message(PullEvent(event))
        except dockerconfig.CredentialError as err:
            self.post_message(PullFinished(reference, error=str(err)))
            return
        except DockerError as err:
            self.post_message(PullFinished(reference, error=one_line(err.message)))
            return
        self.post_message(PullFinished(reference))

    def on_pull_event(self, message: PullEvent) -> None:
        message.stop()
        if self.progress is None:
            return
        layer_id = self.progress.feed(message.event)
        if layer_id is not None:
            layer = self.progress.layers[layer_id]
            self.query_one("#pull-layers", LayerList).show(layer)
        elif self.progress.lines:
            self._status(Content.assemble(("◌ ", "$warning"), self.progress.lines[-1]))
        self._draw_total()

    def on_pull_finished(self, message: PullFinished) -> None:
        message.stop()
        self.running = False
        self.query_one("#pull-ref", Input).disabled = False
        error = message.error or (self.progress.error if self.progress else None)
        self.finished_error = error
        if error:
            self._status(Content.assemble(("✕ ", "bold $error"), f"Pull failed: {error}"))
            self.notify(f"Pull of {message.reference} failed: {error}", severity="error")
        else:
            summary = (self.progress.summary if self.progress else "") or "Pull complete"
            self._status(Content.assemble(("✔ ", "bold $success"), summary))
            self.notify(f"Pulled {message.reference}")
        self._draw_total()

    def _status(self, content: Content) -> None:
        self.query_one("#pull-status", Static).update(content)

    def _draw_total(self) -> None:
        progress = self.progress
        if progress is None:
            return
        done = sum(1 for layer in progress.layers.values() if layer.done)
        fraction = 1.0 if (not self.running and not self.finished_error) else progress.fraction
        self.query_one(TotalBar).set_progress(fraction, done, len(progress.layers))

    def action_close(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "pull")
            self.notify("Pull cancelled", severity="warning")
        self.dismiss()
