"""The ``?`` screen: every key, generated from the command table and the active keymap.

Rows come from ``tui.keymap.COMMANDS`` with the user's overrides applied, so the help can
never disagree with the bindings; each row also shows the binding id to use in the
``[dashboard.keymap]`` table of the config file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from tui import keymap

BUILTINS: tuple[tuple[str, str, str], ...] = (
    ("ctrl+p", "Command palette: every action by name", "(Textual)"),
    ("ctrl+q", "Quit", "(Textual)"),
    ("tab", "Move focus", "(Textual)"),
    ("enter", "Inspect the selected row", "(list)"),
    ("↑ ↓ pgup pgdn", "Move in a list", "(list)"),
)


def help_rows(
    overrides: Mapping[str, str], key_display: Callable[[Binding], str] | None = None
) -> list[tuple[str, str, str, str]]:
    """(section, keys, description, id) for every command, in table order."""
    effective = keymap.effective_keys(overrides)
    rows = []
    for command in keymap.COMMANDS:
        keys = effective[command.id]
        shown = ", ".join(
            key_display(Binding(key, command.action)) if key_display else key for key in keys
        )
        rows.append((keymap.SCOPE_TITLES[command.scope], shown, command.help, command.id))
    return rows


class HelpScreen(ModalScreen[None]):
    """See the module docstring."""

    BINDINGS = [
        *keymap.bindings(keymap.DIALOG),
        Binding("question_mark", "close", "Close", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90; max-width: 100%; height: 100%; max-height: 40;
        border: thick $primary; border-title-style: bold; background: $surface;
    }
    HelpScreen #help-intro { color: $foreground-muted; padding: 0 1; height: auto; }
    HelpScreen DataTable { height: 1fr; }
    """

    def __init__(self, overrides: Mapping[str, str]) -> None:
        super().__init__()
        self.overrides = dict(overrides)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Keys"
            yield Static(
                'Rebind any key in [dashboard.keymap] of the config file: "id" = "keys".',
                id="help-intro",
                markup=False,
            )
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(Text("KEYS", style="bold"), key="keys")
        table.add_column(Text("WHAT IT DOES", style="bold"), key="what")
        table.add_column(Text("ID", style="bold"), key="id")
        section = None
        for title, keys, what, binding_id in help_rows(self.overrides, self.app.get_key_display):
            if title != section:
                section = title
                table.add_row(Text(title, style="bold underline"), Text(""), Text(""))
            table.add_row(Text(keys, style="bold"), Text(what), Text(binding_id, style="dim"))
        table.add_row(Text("Built in", style="bold underline"), Text(""), Text(""))
        for keys, what, origin in BUILTINS:
            table.add_row(Text(keys, style="bold"), Text(what), Text(origin, style="dim"))
        table.focus()

    def action_close(self) -> None:
        self.dismiss()
