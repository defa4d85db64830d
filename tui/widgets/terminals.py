"""The Terminals panel: sessions (container exec/attach, local shells) in tabs.

Sessions keep running while another panel is shown. A double escape inside a terminal
hands focus back to the dashboard (the tab bar), where `ctrl+w` ends and closes the shown
tab; a tab whose program ended shows ``[exited N]`` and closes the same way. An exec of
``bash`` that fails with 126/127 (no such shell) is replaced by ``sh`` in the same place.
The tab bar and the terminal stack behind it (emulator, pyte) are loaded and mounted with
the first session, so a dashboard that never opens one does not pay for them at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static, Tabs

from tui import keymap

if TYPE_CHECKING:
    from tui.terminal.docker_session import DockerExecSession
    from tui.terminal.session import TerminalSession
    from tui.terminal.tabs import TerminalTabs
    from tui.terminal.terminal import Terminal
    from tui.terminal.widget import TerminalView

EMPTY_TEXT = (
    "No terminal open.\n\n"
    "From the containers panel: e  a shell in the container, a  attach to its TTY.\n"
    "Anywhere: ctrl+t  a local shell.  In a terminal, escape twice returns to the dashboard."
)
NO_SHELL = (126, 127)


class TerminalsChanged(Message):
    """The number of open terminal tabs changed."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count


class TerminalsPanel(Widget):
    """See the module docstring."""

    DEFAULT_CSS = """
    TerminalsPanel { height: 1fr; }
    TerminalsPanel #terminals-empty { padding: 1 2; color: $foreground-muted; }
    TerminalsPanel.-empty TerminalTabs { display: none; }
    TerminalsPanel #terminals-empty { display: none; }
    TerminalsPanel.-empty #terminals-empty { display: block; }
    """
    BINDINGS = keymap.bindings(keymap.TERMINALS)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")
        self._fallbacks: dict[int, DockerExecSession] = {}

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_TEXT, id="terminals-empty")

    @property
    def tabs(self) -> TerminalTabs:
        """The tab bar (mounted with the first session)."""
        from tui.terminal.tabs import TerminalTabs

        return self.query_one("#terminal-tabs", TerminalTabs)

    @property
    def has_tabs(self) -> bool:
        return bool(self.query("#terminal-tabs"))

    async def _ensure_tabs(self) -> TerminalTabs:
        if not self.has_tabs:
            from tui.terminal.tabs import TerminalTabs

            await self.mount(TerminalTabs(id="terminal-tabs"))
        return self.tabs

    @property
    def terminals(self) -> list[Terminal]:
        """The open terminals, in tab order."""
        return self.tabs.terminals if self.has_tabs else []

    @property
    def active_terminal(self) -> Terminal | None:
        if not self.has_tabs:
            return None
        pane = self.tabs.active_pane
        if pane is None:
            return None
        from tui.terminal.widget import TerminalView

        return pane.query_one(TerminalView).terminal

    async def open_session(
        self, session: TerminalSession, *, fallback: DockerExecSession | None = None
    ) -> TerminalView | None:
        """Open a tab running `session`; a failure to start is a notification, not a tab.

        `fallback` replaces the session when it ends with 126/127 (its command is missing).
        """
        from tui.terminal.errors import TerminalError
        from tui.terminal.terminal import Terminal

        tabs = await self._ensure_tabs()
        terminal = Terminal(session)
        if fallback is not None:
            self._fallbacks[id(terminal)] = fallback
        self.remove_class("-empty")
        try:
            view = await tabs.open_terminal(terminal)
        except (TerminalError, OSError) as error:
            self._fallbacks.pop(id(terminal), None)
            self._update_empty()
            self.notify(str(error), severity="error", timeout=8)
            return None
        self._count_changed()
        pane = view.parent
        if pane is not None and pane.id:
            # The tab bar may still be settling its own activation: show the new tab after it.
            self.call_after_refresh(self._show, pane.id, view)
        return view

    def _show(self, pane_id: str, view: TerminalView, attempts: int = 6) -> None:
        """Show the new tab, and keep it shown for a few frames: a tab activation the tab bar
        queued before the new pane existed can arrive late and flip back to an older tab."""
        if not view.is_attached:
            return
        if self.tabs.active != pane_id:
            self.tabs.active = pane_id
            view.focus()
        if attempts > 1:
            self.set_timer(0.05, lambda: self._show(pane_id, view, attempts - 1))

    def focus_panel(self) -> None:
        """Focus the shown terminal if its program runs, else the tab bar."""
        terminal = self.active_terminal
        if terminal is not None and not terminal.exited:
            self.tabs.view_for(terminal).focus()
        elif terminal is not None:
            self.tabs.query_one(Tabs).focus()

    async def action_close_tab(self) -> None:
        terminal = self.active_terminal
        if terminal is None:
            return
        self._fallbacks.pop(id(terminal), None)
        await self.tabs.close_terminal(terminal)
        self._update_empty()
        self._count_changed()
        if self.terminals:
            self.tabs.query_one(Tabs).focus()

    def on_terminal_view_leave(self, message: TerminalView.Leave) -> None:
        self.call_after_refresh(self.tabs.query_one(Tabs).focus)

    async def on_terminal_view_exited(self, message: TerminalView.Exited) -> None:
        terminal = message.terminal
        fallback = self._fallbacks.pop(id(terminal), None)
        if fallback is not None and terminal.session.returncode in NO_SHELL:
            await self.tabs.close_terminal(terminal)
            await self.open_session(fallback)
            return
        if message.view.has_focus:
            self.tabs.query_one(Tabs).focus()

    def _update_empty(self) -> None:
        self.set_class(not self.terminals, "-empty")

    def _count_changed(self) -> None:
        self.post_message(TerminalsChanged(len(self.terminals)))
