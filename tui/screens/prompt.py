"""A one-field dialog that asks for a name (new volume, new network); escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui import keymap


class PromptScreen(ModalScreen[str | None]):
    """Dismisses with the stripped text on enter (None on escape or when empty)."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical {
        width: 64; max-width: 100%; height: auto;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    PromptScreen .question { text-style: bold; width: 1fr; }
    PromptScreen .detail { color: $foreground-muted; margin: 1 0 0 0; width: 1fr; }
    PromptScreen Input { margin-top: 1; }
    """

    def __init__(self, question: str, detail: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, classes="question", markup=False)
            yield Input(placeholder=self.placeholder, id="prompt-input")
            yield Static(self.detail, classes="detail", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_close(self) -> None:
        self.dismiss(None)
