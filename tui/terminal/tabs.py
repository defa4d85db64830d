"""`TerminalTabs`: several terminals side by side in tabs, each running while hidden.

Every tab holds one `TerminalView` on its own `Terminal`; a hidden tab's terminal keeps
reading and feeding its program (its view just does not render). Tab labels follow the
program's title and show when it ended or detached.
"""

from __future__ import annotations

import itertools

from textual.widgets import TabbedContent, TabPane

from .terminal import Terminal
from .widget import TerminalView

_ids = itertools.count(1)


class TerminalTabs(TabbedContent):
    """Tabs of terminals; `open_terminal` adds one and starts its session."""

    DEFAULT_CSS = """
    TerminalTabs { height: 1fr; }
    TerminalTabs TabPane { padding: 0; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._terminals: dict[str, Terminal] = {}

    @property
    def terminals(self) -> list[Terminal]:
        """The open terminals, in tab order."""
        return list(self._terminals.values())

    def view_for(self, terminal: Terminal) -> TerminalView:
        """The view showing `terminal`."""
        for pane_id, candidate in self._terminals.items():
            if candidate is terminal:
                return self.get_pane(pane_id).query_one(TerminalView)
        raise KeyError("that terminal is not in these tabs")

    async def open_terminal(self, terminal: Terminal, *, focus: bool = True) -> TerminalView:
        """Add a tab for `terminal`, start its session, and show it."""
        pane_id = f"terminal-{next(_ids)}"
        view = TerminalView(terminal)
        self._terminals[pane_id] = terminal
        await self.add_pane(TabPane(terminal.title, view, id=pane_id))
        if not terminal.started:
            try:
                await terminal.start()
            except Exception:
                await self.close_terminal(terminal)
                raise
        self.active = pane_id
        if focus:
            view.focus()
        return view

    async def close_terminal(self, terminal: Terminal) -> None:
        """End the terminal's session and remove its tab."""
        for pane_id, candidate in list(self._terminals.items()):
            if candidate is terminal:
                del self._terminals[pane_id]
                if terminal.started and not terminal.exited:
                    await terminal.close()
                await self.remove_pane(pane_id)
                return

    def _pane_id(self, view: TerminalView) -> str | None:
        for pane_id, terminal in self._terminals.items():
            if view.terminal is terminal:
                return pane_id
        return None

    def on_terminal_view_title_changed(self, message: TerminalView.TitleChanged) -> None:
        pane_id = self._pane_id(message.view)
        if pane_id is not None:
            self.get_tab(pane_id).label = message.title or self._terminals[pane_id].title

    def on_terminal_view_exited(self, message: TerminalView.Exited) -> None:
        pane_id = self._pane_id(message.view)
        if pane_id is None:
            return
        session = message.terminal.session
        if session.detached:
            state = "detached"
        elif session.returncode is None:
            state = "ended"
        else:
            state = f"exited {session.returncode}"
        self.get_tab(pane_id).label = f"{message.terminal.title} [{state}]"

    async def on_unmount(self) -> None:
        for terminal in list(self._terminals.values()):
            if terminal.started and not terminal.exited:
                await terminal.close()
