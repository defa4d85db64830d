"""Shown while the engine cannot be reached: why, how to fix it, and when the next try is.

The engine worker keeps retrying with a bounded backoff and the screen closes by itself
once the engine answers; ``r`` skips the wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui import keymap
from tui.model import EngineProblem

if TYPE_CHECKING:
    from tui.app import PortsideApp


class UnreachableScreen(ModalScreen[None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.UNREACHABLE)

    DEFAULT_CSS = """
    UnreachableScreen { align: center middle; }
    UnreachableScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $error; border-title-color: $error; border-title-style: bold;
        background: $surface; padding: 1 2;
    }
    UnreachableScreen #target { text-style: bold; margin-bottom: 1; }
    UnreachableScreen .row { height: auto; }
    UnreachableScreen .label { width: 5; text-style: bold; }
    UnreachableScreen #why-label { color: $error; }
    UnreachableScreen #fix-label { color: $success; }
    UnreachableScreen .text { width: 1fr; }
    UnreachableScreen #retry { margin-top: 1; color: $foreground-muted; }
    """

    def __init__(
        self, engine: str, url: str, problem: EngineProblem, attempt: int, retry_in: float
    ) -> None:
        super().__init__()
        self.engine = engine
        self.url = url
        self.problem = problem
        self.attempt = attempt
        self.retry_in = retry_in
        self.trying = False
        self.resolved = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Cannot reach the engine"
            yield Static(id="target")
            with Horizontal(classes="row"):
                yield Static("Why", id="why-label", classes="label")
                yield Static(id="why", classes="text")
            with Horizontal(classes="row"):
                yield Static("Fix", id="fix-label", classes="label")
                yield Static(id="fix", classes="text")
            yield Static(id="retry")
        yield Footer()

    def on_mount(self) -> None:
        self._render_text(force=True)

    def on_screen_resume(self) -> None:
        if self.resolved:
            self.dismiss()

    def update_problem(self, problem: EngineProblem, attempt: int, retry_in: float) -> None:
        self.problem, self.attempt, self.retry_in = problem, attempt, retry_in
        self.trying = False
        self._render_text()

    def show_trying(self) -> None:
        self.trying = True
        self._render_text()

    def _render_text(self, *, force: bool = False) -> None:
        if not (force or self.is_mounted):
            return
        where = f" at {self.url}" if self.url and self.url != self.engine else ""
        self.query_one("#target", Static).update(Content(f"{self.engine}{where}"))
        self.query_one("#why", Static).update(Content(self.problem.reason))
        self.query_one("#fix", Static).update(Content(self.problem.hint))
        if self.trying:
            retry = f"Trying again now (attempt {self.attempt + 1})…"
        else:
            retry = (
                f"Retrying by itself: attempt {self.attempt} failed, "
                f"next in {self.retry_in:g} s. Press r to retry now."
            )
        self.query_one("#retry", Static).update(Content(retry))

    def action_retry(self) -> None:
        cast("PortsideApp", self.app).retry_now()
        self.show_trying()
