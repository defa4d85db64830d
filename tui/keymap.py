"""The one table of dashboard commands: binding ids, default keys, scopes and help text.

Every key in the dashboard is a ``Binding`` with an ``id`` generated from ``COMMANDS``; the
footer, the ``?`` help screen, the command palette and keymap overrides from the config
file all read this same table. ``check_keymap`` validates user overrides (unknown ids,
empty keys, keys that would clash within one focus chain) before they reach Textual.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS

# Scopes: which widget carries the binding. A focus chain is a stack of scopes.
APP = "app"
MAIN = "main"
TABLE = "table"
PANEL = "panel"
CONTAINERS = "containers"
IMAGES = "images"
UNREACHABLE = "unreachable"
DIALOG = "dialog"
CONFIRM = "confirm"
LOGS = "logs"
INSPECT = "inspect"
VOLUMES = "volumes"
NETWORKS = "networks"
STATS = "stats"
TERMINALS = "terminals"
REGISTRIES = "registries"
BROWSE = "browse"

SCOPE_TITLES = {
    APP: "Everywhere",
    MAIN: "Panels",
    TABLE: "Lists",
    PANEL: "Lists",
    CONTAINERS: "Containers",
    IMAGES: "Images",
    UNREACHABLE: "Engine unreachable",
    DIALOG: "Dialogs",
    CONFIRM: "Confirmation",
    LOGS: "Logs",
    INSPECT: "Inspect",
    VOLUMES: "Volumes",
    NETWORKS: "Networks",
    STATS: "Stats",
    TERMINALS: "Terminals",
    REGISTRIES: "Registries",
    BROWSE: "Registry browser",
}

# Keys Textual or its widgets already use in a scope (bindings without ids).
RESERVED: dict[str, frozenset[str]] = {
    APP: frozenset({"ctrl+q", "ctrl+c", "ctrl+p", "tab", "shift+tab"}),
    TABLE: frozenset(
        {
            "enter",
            "up",
            "down",
            "left",
            "right",
            "pageup",
            "pagedown",
            "home",
            "end",
            "ctrl+home",
            "ctrl+end",
        }
    ),
}

# Scopes that are active together (focused widget first); keys must be unique in each.
FOCUS_CHAINS: tuple[tuple[str, ...], ...] = (
    (TABLE, PANEL, CONTAINERS, MAIN, APP),
    (TABLE, PANEL, IMAGES, MAIN, APP),
    (TABLE, PANEL, VOLUMES, MAIN, APP),
    (TABLE, PANEL, NETWORKS, MAIN, APP),
    (TABLE, PANEL, REGISTRIES, MAIN, APP),
    (TERMINALS, MAIN, APP),
    (BROWSE, DIALOG, APP),
    (LOGS, DIALOG, APP),
    (INSPECT, DIALOG, APP),
    (STATS, DIALOG, APP),
    (UNREACHABLE,),  # modal screens: app bindings other than priority ones do not apply
    (DIALOG, APP),  # full-screen detail views
    (DIALOG,),  # modal dialogs (pull, help)
    (CONFIRM,),
)


@dataclass(frozen=True, slots=True)
class Command:
    """One user command: a binding id, its default keys, and where it applies."""

    id: str
    keys: str
    action: str
    description: str
    help: str
    scope: str
    show: bool = True
    priority: bool = False

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            id=self.id,
            tooltip=self.help,
        )


COMMANDS: tuple[Command, ...] = (
    # Everywhere
    Command("app.help", "question_mark", "help", "Help", "Show every key", APP),
    Command("app.quit", "q", "quit", "Quit", "Quit portside", APP),
    Command("app.theme", "T", "next_theme", "Theme", "Switch to the next theme", APP, False),
    Command(
        "app.refresh",
        "ctrl+r",
        "refresh",
        "Refresh",
        "Reload everything from the engine",
        APP,
        False,
    ),
    Command(
        "app.engines",
        "E",
        "pick_engine",
        "Engines",
        "Switch to another engine (embedded, DOCKER_HOST, hosts, docker contexts)",
        APP,
        False,
    ),
    # Panels
    Command(
        "main.containers",
        "1",
        "show_panel('containers')",
        "Containers",
        "Show the containers panel",
        MAIN,
        False,
    ),
    Command(
        "main.images", "2", "show_panel('images')", "Images", "Show the images panel", MAIN, False
    ),
    Command(
        "main.volumes",
        "3",
        "show_panel('volumes')",
        "Volumes",
        "Show the volumes panel",
        MAIN,
        False,
    ),
    Command(
        "main.networks",
        "4",
        "show_panel('networks')",
        "Networks",
        "Show the networks panel",
        MAIN,
        False,
    ),
    Command(
        "main.terminals",
        "5",
        "show_panel('terminals')",
        "Terminals",
        "Show the terminals panel",
        MAIN,
        False,
    ),
    Command(
        "main.registries",
        "6",
        "show_panel('registries')",
        "Registries",
        "Show the registries panel",
        MAIN,
        False,
    ),
    Command("main.shell", "ctrl+t", "local_shell", "Shell", "Open a local shell tab", MAIN, False),
    # Lists
    Command("table.down", "j", "cursor_down", "Down", "Move down", TABLE, False),
    Command("table.up", "k", "cursor_up", "Up", "Move up", TABLE, False),
    Command("table.top", "g", "scroll_top", "Top", "Go to the first row", TABLE, False),
    Command("table.bottom", "G", "scroll_bottom", "Bottom", "Go to the last row", TABLE, False),
    Command("table.sort", "o", "sort_next", "Sort", "Sort by the next column", TABLE, False),
    Command(
        "table.reverse", "O", "sort_reverse", "Reverse", "Reverse the sort order", TABLE, False
    ),
    Command("table.copy", "y", "copy_id", "Copy id", "Copy the row's id", TABLE, False),
    Command("table.copy_name", "Y", "copy_name", "Copy name", "Copy the row's name", TABLE, False),
    Command("panel.filter", "slash", "filter", "Filter", "Filter the list as you type", PANEL),
    # Containers
    Command("container.start", "u", "start", "Start", "Start the container", CONTAINERS),
    Command("container.stop", "s", "stop", "Stop", "Stop the container", CONTAINERS),
    Command("container.restart", "r", "restart", "Restart", "Restart the container", CONTAINERS),
    Command(
        "container.kill", "K", "kill", "Kill", "Kill the container (asks first)", CONTAINERS, False
    ),
    Command(
        "container.pause",
        "p",
        "pause",
        "Pause",
        "Pause or unpause the container",
        CONTAINERS,
        False,
    ),
    Command(
        "container.remove", "d", "remove", "Remove", "Remove the container (asks first)", CONTAINERS
    ),
    Command(
        "container.inspect", "i", "inspect", "Inspect", "Show the container's JSON", CONTAINERS
    ),
    Command(
        "container.group",
        "b",
        "group",
        "Group",
        "Group by compose project (again: ungroup)",
        CONTAINERS,
        False,
    ),
    Command("container.logs", "l", "logs", "Logs", "Follow the container's logs", CONTAINERS),
    Command(
        "container.logs_all",
        "L",
        "logs_all",
        "Logs of all",
        "Merged logs of every listed container (filter the list first)",
        CONTAINERS,
        False,
    ),
    Command(
        "container.stats", "t", "stats", "Stats", "CPU, memory, network, I/O graphs", CONTAINERS
    ),
    Command(
        "container.stats_all",
        "A",
        "stats_all",
        "Stats of all",
        "Graphs of every listed running container",
        CONTAINERS,
        False,
    ),
    Command(
        "container.exec",
        "e",
        "screen.exec_shell",
        "Exec",
        "Open a shell in the container (bash, else sh) in a terminal tab",
        CONTAINERS,
    ),
    Command(
        "container.attach",
        "a",
        "screen.attach",
        "Attach",
        "Attach to the container's terminal in a tab (it needs a TTY)",
        CONTAINERS,
        False,
    ),
    # Images
    Command("image.pull", "p", "pull", "Pull", "Pull an image, with progress per layer", IMAGES),
    Command("image.remove", "d", "remove", "Remove", "Remove the image (asks first)", IMAGES),
    Command("image.inspect", "i", "inspect", "Inspect", "Show the image's JSON", IMAGES),
    Command("image.history", "h", "history", "History", "Show the image's layers", IMAGES),
    Command("image.scan", "s", "scan", "Scan", "Packages, risky settings, vulnerabilities", IMAGES),
    # Volumes
    Command("volume.create", "c", "create", "Create", "Create a volume", VOLUMES),
    Command("volume.remove", "d", "remove", "Remove", "Remove the volume (asks first)", VOLUMES),
    Command("volume.prune", "P", "prune", "Prune", "Remove unused volumes (asks first)", VOLUMES),
    Command("volume.inspect", "i", "inspect", "Inspect", "Show the volume's JSON", VOLUMES),
    # Networks
    Command("network.create", "c", "create", "Create", "Create a bridge network", NETWORKS),
    Command("network.remove", "d", "remove", "Remove", "Remove the network (asks first)", NETWORKS),
    Command(
        "network.prune", "P", "prune", "Prune", "Remove unused networks (asks first)", NETWORKS
    ),
    Command("network.inspect", "i", "inspect", "Inspect", "Show the network's JSON", NETWORKS),
    # Terminals
    Command(
        "terminal.close",
        "ctrl+w",
        "close_tab",
        "Close tab",
        "End the session of the shown tab and close it",
        TERMINALS,
    ),
    # Registries
    Command("registry.login", "l", "login", "Log in", "Log in to the registry", REGISTRIES),
    Command(
        "registry.logout",
        "x",
        "logout",
        "Log out",
        "Forget the stored credentials (asks first)",
        REGISTRIES,
    ),
    Command(
        "registry.browse", "b", "browse", "Browse", "Repositories, tags, manifests", REGISTRIES
    ),
    Command(
        "registry.repository",
        "n",
        "open_repository",
        "Repository",
        "Open a repository by name (when the catalog is forbidden)",
        REGISTRIES,
    ),
    Command(
        "registry.push",
        "u",
        "push",
        "Push",
        "Tag a local image and push it, with progress per layer",
        REGISTRIES,
    ),
    # Registry browser
    Command("browse.pull", "p", "pull", "Pull", "Pull the selected tag or manifest", BROWSE),
    Command(
        "browse.repository",
        "n",
        "open_repository",
        "Repository",
        "Open a repository by name",
        BROWSE,
    ),
    # Logs
    Command("logs.follow", "f", "toggle_follow", "Follow", "Keep the last line in view", LOGS),
    Command("logs.pause", "space", "toggle_pause", "Pause", "Hold new lines aside", LOGS),
    Command("logs.search", "slash", "search", "Search", "Highlight a word", LOGS),
    Command("logs.next", "n", "next_match", "Next", "Go to the next match", LOGS, False),
    Command(
        "logs.previous", "N", "previous_match", "Previous", "Go to the previous match", LOGS, False
    ),
    Command("logs.filter", "ampersand", "filter", "Filter", "Show only matching lines", LOGS),
    Command("logs.timestamps", "t", "toggle_timestamps", "Times", "Show timestamps", LOGS),
    Command("logs.wrap", "w", "toggle_wrap", "Wrap", "Wrap long lines", LOGS),
    Command("logs.save", "S", "save", "Save", "Save the shown lines to a file", LOGS),
    Command(
        "logs.copy",
        "y",
        "copy",
        "Copy",
        "Copy the matched line, else the lines in view",
        LOGS,
        False,
    ),
    Command("logs.copy_all", "Y", "copy_all", "Copy all", "Copy every shown line", LOGS, False),
    Command("logs.top", "g", "scroll_home", "Top", "Go to the first line", LOGS, False),
    Command("logs.bottom", "G", "scroll_end", "Bottom", "Go to the last line", LOGS, False),
    # Inspect
    Command("inspect.search", "slash", "search", "Search", "Find keys and values", INSPECT),
    Command("inspect.next", "n", "next_match", "Next", "Go to the next match", INSPECT, False),
    Command(
        "inspect.previous",
        "N",
        "previous_match",
        "Previous",
        "Go to the previous match",
        INSPECT,
        False,
    ),
    Command("inspect.copy", "y", "copy", "Copy", "Copy the selected value", INSPECT, False),
    Command("inspect.expand", "e", "expand_all", "Expand", "Expand everything", INSPECT),
    Command("inspect.collapse", "c", "collapse_all", "Collapse", "Collapse everything", INSPECT),
    # Engine unreachable
    Command(
        "unreachable.retry", "r", "retry", "Retry now", "Try to reach the engine now", UNREACHABLE
    ),
    Command(
        "unreachable.engines",
        "E",
        "app.pick_engine",
        "Engines",
        "Switch to another engine",
        UNREACHABLE,
    ),
    Command("unreachable.quit", "q", "app.quit", "Quit", "Quit portside", UNREACHABLE),
    # Dialogs
    Command("dialog.close", "escape", "close", "Close", "Close this view", DIALOG),
    Command("confirm.yes", "y", "confirm", "Yes", "Confirm", CONFIRM),
    Command("confirm.no", "n,escape", "cancel", "No", "Cancel", CONFIRM),
)

COMMANDS_BY_ID: dict[str, Command] = {command.id: command for command in COMMANDS}


def bindings(scope: str) -> list[Binding]:
    """The ``BINDINGS`` of the widget that owns ``scope``."""
    return [command.binding() for command in COMMANDS if command.scope == scope]


def commands(scope: str) -> list[Command]:
    return [command for command in COMMANDS if command.scope == scope]


def normalize_key(key: str) -> str:
    """A key as Textual names it: ``?`` -> ``question_mark``, ``/`` -> ``slash``."""
    key = key.strip()
    if len(key) != 1 or key.isalnum():
        return key
    try:
        name = unicodedata.name(key).lower().replace("-", "_").replace(" ", "_")
    except ValueError:
        return key
    return KEY_NAME_REPLACEMENTS.get(name, name)


def split_keys(keys: str) -> list[str]:
    return [normalize_key(key) for key in keys.split(",") if key.strip()]


def effective_keys(keymap: Mapping[str, str]) -> dict[str, list[str]]:
    """Binding id -> keys after applying ``keymap`` (validated overrides) to the defaults."""
    return {command.id: split_keys(keymap.get(command.id, command.keys)) for command in COMMANDS}


def _clashes(keys_by_id: Mapping[str, list[str]]) -> list[tuple[str, str, str]]:
    """(key, id, other) for every key bound twice within one focus chain."""
    found: list[tuple[str, str, str]] = []
    for chain in FOCUS_CHAINS:
        owner: dict[str, str] = {}
        for scope in chain:
            for key in RESERVED.get(scope, ()):
                owner.setdefault(key, f"built-in {key}")
        for scope in chain:
            for command in commands(scope):
                for key in keys_by_id[command.id]:
                    other = owner.get(key)
                    if other is not None and other != command.id:
                        found.append((key, command.id, other))
                    else:
                        owner[key] = command.id
    return found


def check_keymap(overrides: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Validate keymap overrides: return the usable ones and one-line problems for the rest.

    An override is dropped when its id is unknown, its keys are empty, or one of its keys is
    already taken in a focus chain where the binding is active.
    """
    problems: list[str] = []
    accepted: dict[str, str] = {}
    for binding_id, keys in overrides.items():
        if binding_id not in COMMANDS_BY_ID:
            problems.append(
                f"keymap: unknown binding id {binding_id!r} (the ? help screen lists the ids)"
            )
            continue
        normalized = split_keys(keys)
        if not normalized:
            problems.append(f'keymap: {binding_id!r} has no keys; give one like "x" or "ctrl+x"')
            continue
        accepted[binding_id] = ",".join(normalized)
    # Drop overrides one at a time until no clash is left, reporting each.
    while True:
        clashes = _clashes(effective_keys(accepted))
        culprit = next(
            ((key, bid, other) for key, bid, other in clashes if bid in accepted),
            None,
        ) or next(((key, other, bid) for key, bid, other in clashes if other in accepted), None)
        if culprit is None:
            break
        key, bid, other = culprit
        problems.append(
            f"keymap: {key!r} for {bid!r} is already used by {other!r}; "
            f"override ignored, pick another key"
        )
        del accepted[bid]
    return accepted, problems


def default_clashes() -> list[tuple[str, str, str]]:
    """Clashes among the default keys (a test keeps this empty)."""
    return _clashes(effective_keys({}))
