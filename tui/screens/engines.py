"""The engine picker: every engine the dashboard can switch to, one line each.

It lists the embedded engine, ``DOCKER_HOST``, the named hosts of the config file and
Docker's own contexts (read in a worker: they are files), marks the engine in use, and
dismisses with the chosen ``EngineChoice`` (or None on escape).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from tui import keymap
from tui.client import EngineChoice, engine_choices


class EnginesScreen(ModalScreen[EngineChoice | None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    EnginesScreen { align: center middle; }
    EnginesScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 80%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    EnginesScreen #engines-hint { color: $foreground-muted; margin-bottom: 1; }
    EnginesScreen OptionList { height: auto; max-height: 20; }
    """

    def __init__(
        self,
        current_url: str,
        hosts: Mapping[str, str],
        embedded_url: str = "",
        *,
        choices: list[EngineChoice] | None = None,
    ) -> None:
        """``choices`` replaces the lookup (fixed pictures); by default it reads the files."""
        super().__init__()
        self.current_url = current_url
        self.hosts = dict(hosts)
        self.embedded_url = embedded_url
        self.fixed = choices
        self.choices: list[EngineChoice] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Switch engine"
            yield Static("Enter switches, escape keeps the current one.", id="engines-hint")
            yield OptionList(id="engines")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._load(), name="engines", exit_on_error=False)

    @property
    def option_list(self) -> OptionList:
        return self.query_one("#engines", OptionList)

    def is_current(self, choice: EngineChoice) -> bool:
        url = choice.url or self.embedded_url
        return bool(url) and url == self.current_url

    async def _load(self) -> None:
        if self.fixed is not None:
            self.choices = list(self.fixed)
        else:
            self.choices = await asyncio.to_thread(engine_choices, self.hosts)
        options = self.option_list
        options.clear_options()
        for index, choice in enumerate(self.choices):
            mark = "● " if self.is_current(choice) else "  "
            options.add_option(Option(Content(f"{mark}{choice.label}"), id=str(index)))
        current = next((i for i, c in enumerate(self.choices) if self.is_current(c)), 0)
        options.highlighted = current
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)
