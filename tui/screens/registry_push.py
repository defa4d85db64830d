"""The push dialog: a local image, where to push it, and a bar per layer while it goes.

Enter on the target tags the local image as ``HOST/REPOSITORY[:TAG]`` and pushes it with
the user's stored credentials (``tui.registries.push_image``) in a worker; each progress
object becomes a ``PushEvent`` that ``PushProgress`` folds into the layer rows. The result
line names the digest the registry now holds. Escape closes (cancelling a running push).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from tui import keymap
from tui.registries import PushProgress, RegistryProblem, push_image, split_target
from tui.screens.pull import TotalBar
from tui.widgets.layer_progress import LayerList

if TYPE_CHECKING:
    from tui.app import PortsideApp


class PushEvent(Message):
    """One progress object of a running push."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        super().__init__()
        self.event = event


class PushFinished(Message):
    """The push stream ended (``error`` when it failed)."""

    def __init__(self, target: str, error: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.error = error


class PushScreen(ModalScreen[None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    PushScreen { align: center middle; }
    PushScreen > Vertical {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; border-title-style: bold;
        background: $surface; padding: 0 1;
    }
    PushScreen Input { margin-bottom: 1; }
    PushScreen #push-status { height: auto; }
    PushScreen #push-layers { height: auto; max-height: 16; }
    PushScreen .hint { color: $foreground-muted; }
    """

    def __init__(self, source: str = "", target: str = "") -> None:
        super().__init__()
        self.source = source
        self.target = target
        self.progress: PushProgress | None = None
        self.running = False
        self.finished_error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Push an image"
            yield Label("Local image")
            yield Input(self.source, placeholder="app:1.2 or an image id", id="push-source")
            yield Label("Push to")
            yield Input(self.target, placeholder="registry:5000/team/app:1.2", id="push-target")
            yield Static("", id="push-status")
            yield TotalBar()
            yield LayerList(id="push-layers")
            yield Label("enter pushes · escape closes (and cancels a running push)", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TotalBar).display = False
        self.query_one("#push-target" if self.source else "#push-source", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.running:
            return
        source = self.query_one("#push-source", Input).value.strip()
        target = self.query_one("#push-target", Input).value.strip()
        if event.input.id == "push-source" and not target.rstrip("/").count("/"):
            self.query_one("#push-target", Input).focus()
            return
        if not source:
            self._status("✕ ", "type the local image to push (name:tag or id)")
            return
        try:
            name, tag = split_target(target)
        except RegistryProblem as err:
            self._status("✕ ", err.message)
            return
        self.start_push(source, f"{name}:{tag}")

    def start_push(self, source: str, target: str) -> None:
        """Tag ``source`` as ``target`` and push it in a worker."""
        self.begin(target, source)
        self.run_worker(self._push(source, target), exclusive=True, group="push")

    def begin(self, target: str, source: str) -> None:
        """Reset the dialog for a push whose events are about to arrive."""
        self.progress = PushProgress(target)
        self.query_one("#push-layers", LayerList).clear()
        for field in ("#push-source", "#push-target"):
            self.query_one(field, Input).disabled = True
        self.query_one(TotalBar).display = True
        self.running = True
        self.finished_error = None
        self._status("◌ ", f"Pushing {source} to {target}…")
        self._draw_total()

    async def _push(self, source: str, target: str) -> None:
        docker = cast("PortsideApp", self.app).docker
        if docker is None:
            self.post_message(PushFinished(target, error="the engine is not connected"))
            return
        try:
            async for event in push_image(docker, source, target):
                self.post_message(PushEvent(event))
        except RegistryProblem as err:
            self.post_message(PushFinished(target, error=err.message))
            return
        self.post_message(PushFinished(target))

    def on_push_event(self, message: PushEvent) -> None:
        message.stop()
        if self.progress is None:
            return
        layer_id = self.progress.feed(message.event)
        if layer_id is not None:
            layer = self.progress.layers[layer_id]
            self.query_one("#push-layers", LayerList).show(layer)
        elif self.progress.lines:
            self._status("◌ ", self.progress.lines[-1])
        self._draw_total()

    def on_push_finished(self, message: PushFinished) -> None:
        message.stop()
        self.running = False
        for field in ("#push-source", "#push-target"):
            self.query_one(field, Input).disabled = False
        error = message.error or (self.progress.error if self.progress else None)
        self.finished_error = error
        if error:
            self._status("✕ ", f"Push failed: {error}")
            self.notify(f"Push of {message.target} failed: {error}", severity="error")
        else:
            digest = self.progress.digest if self.progress else ""
            self._status("✔ ", f"Pushed {message.target}" + (f" ({digest})" if digest else ""))
            self.notify(f"Pushed {message.target}")
            cast("PortsideApp", self.app).sync.request_refresh()
        self._draw_total()

    def _status(self, mark: str, text: str) -> None:
        style = {"✕ ": "bold $error", "◌ ": "$warning"}.get(mark, "bold $success")
        self.query_one("#push-status", Static).update(Content.assemble((mark, style), text))

    def _draw_total(self) -> None:
        progress = self.progress
        if progress is None:
            return
        done = sum(1 for layer in progress.layers.values() if layer.done)
        fraction = 1.0 if (not self.running and not self.finished_error) else progress.fraction
        self.query_one(TotalBar).set_progress(fraction, done, len(progress.layers))

    def action_close(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "push")
            self.notify("Push cancelled", severity="warning")
        self.dismiss()
