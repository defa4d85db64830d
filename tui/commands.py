"""Command palette entries (ctrl+p), generated from the same table as the key bindings.

Every panel action is offered by name with its current key, so anything reachable by key is
reachable by typing its name too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from textual.app import SystemCommand

from tui import keymap

PALETTE_SCOPES = {
    keymap.APP: "",
    keymap.MAIN: "",
    keymap.TABLE: "List",
    keymap.PANEL: "List",
    keymap.CONTAINERS: "Container",
    keymap.IMAGES: "Image",
    keymap.VOLUMES: "Volume",
    keymap.NETWORKS: "Network",
    keymap.LOGS: "Logs",
    keymap.INSPECT: "Inspect",
    keymap.TERMINALS: "Terminal",
    keymap.REGISTRIES: "Registry",
    keymap.BROWSE: "Registry",
}
_SKIPPED = {"app.help", "app.quit", "table.down", "table.up", "table.top", "table.bottom"}


def palette_commands(
    overrides: Mapping[str, str],
    run: Callable[[keymap.Command], None],
    *,
    scopes: Iterable[str] = tuple(PALETTE_SCOPES),
) -> list[SystemCommand]:
    """A ``SystemCommand`` per command in ``scopes``; ``run`` performs the chosen one."""
    wanted = set(scopes)
    effective = keymap.effective_keys(overrides)
    found = []
    for command in keymap.COMMANDS:
        if command.scope not in wanted or command.id in _SKIPPED:
            continue
        prefix = PALETTE_SCOPES[command.scope]
        title = f"{prefix}: {command.description}" if prefix else command.help
        keys = ", ".join(effective[command.id])
        found.append(
            SystemCommand(
                title, f"{command.help} (key: {keys})", lambda command=command: run(command)
            )
        )
    return found
