"""The JSON of a container, image, volume or network as a collapsible tree with search.

Objects and arrays are branches (the top level opens expanded), scalars are leaves drawn as
``key: value`` in theme colours. ``/`` searches keys and values as you type: every match is
highlighted, the branches holding them open, and ``n``/``N`` move between them.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Tree
from textual.widgets.tree import TreeNode

from tui import keymap
from tui.copy import inspect_value, preview
from tui.screens.detail import DetailScreen
from tui.widgets.resource_table import theme_styles

if TYPE_CHECKING:
    import aiodocker

KINDS = ("container", "image", "volume", "network")


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        return f"{{{len(value)}}}"
    return f"[{len(value)}]"


class JsonTree(Tree[str]):
    """A tree of one JSON document; each node's data is its plain label (for search)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.styles_by_name: dict[str, Style] = {}
        self.matches: list[TreeNode[str]] = []
        self.match_index = -1
        self.search = ""
        self.original: dict[int, Text] = {}
        self.values: dict[int, Any] = {}  # node id -> the JSON value under it (for copy)

    def load(self, data: Any) -> None:
        self.styles_by_name = theme_styles(self.app.get_css_variables())
        self.clear()
        self.matches = []
        self.original = {}
        self.values = {}
        self._add(self.root, "", data, top=True)
        self.root.expand()

    def _label(self, key: str, value: Any) -> Text:
        text = Text(no_wrap=True)
        if key:
            text.append(key, style=self.styles_by_name.get("primary", Style()) + Style(bold=True))
            text.append(": ")
        if isinstance(value, dict | list):
            text.append(_summary(value), style=self.styles_by_name.get("foreground-muted", ""))
        elif isinstance(value, str):
            text.append(_scalar(value), style=self.styles_by_name.get("success", Style()))
        elif value is None or isinstance(value, bool):
            text.append(_scalar(value), style=self.styles_by_name.get("warning", Style()))
        else:
            text.append(_scalar(value), style=self.styles_by_name.get("accent", Style()))
        return text

    def _add(self, parent: TreeNode[str], key: str, value: Any, *, top: bool = False) -> None:
        items: list[tuple[str, Any]]
        if isinstance(value, dict):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"[{i}]", v) for i, v in enumerate(value)]
        else:
            items = []
        if top:
            node = parent
        elif isinstance(value, dict | list):
            label = self._label(key, value)
            node = parent.add(label, data=label.plain)
            self.original[node.id] = label
            self.values[node.id] = value
        else:
            label = self._label(key, value)
            leaf = parent.add_leaf(label, data=label.plain)
            self.original[leaf.id] = label
            self.values[leaf.id] = value
            return
        for child_key, child in items:
            self._add(node, child_key, child)

    def all_nodes(self) -> list[TreeNode[str]]:
        found: list[TreeNode[str]] = []
        stack = list(reversed(self.root.children))
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found

    def set_search(self, needle: str) -> int:
        """Highlight nodes whose key or value contains ``needle``; returns how many do."""
        self.search = needle
        pattern = re.compile(re.escape(needle), re.IGNORECASE) if needle else None
        self.matches = []
        self.match_index = -1
        for node in self.all_nodes():
            fresh = self.original.get(node.id, Text(node.data or "")).copy()
            plain = fresh.plain
            if pattern is not None:
                hits = list(pattern.finditer(plain))
                for hit in hits:
                    fresh.stylize(_MATCH, hit.start(), hit.end())
                if hits:
                    self.matches.append(node)
                    parent = node.parent
                    while parent is not None:
                        parent.expand()
                        parent = parent.parent
            node.set_label(fresh)
        return len(self.matches)

    def jump(self, backwards: bool = False) -> bool:
        if not self.matches:
            return False
        step = -1 if backwards else 1
        if self.match_index < 0 and backwards:
            self.match_index = 0
        self.match_index = (self.match_index + step) % len(self.matches)
        node = self.matches[self.match_index]
        self.move_cursor(node)
        self.scroll_to_node(node, animate=False)
        return True

    def cursor_value(self) -> tuple[bool, Any]:
        """(True, the value under the cursor), or (False, None) with no node selected."""
        node = self.cursor_node
        if node is None or node.id not in self.values:
            return False, None
        return True, self.values[node.id]

    def expand_everything(self) -> None:
        self.root.expand_all()

    def collapse_everything(self) -> None:
        for node in self.root.children:
            node.collapse_all()


_MATCH = Style(reverse=True, bold=True)


class InspectScreen(DetailScreen):
    """``kind`` is one of ``KINDS``; ``target`` its id or name."""

    BINDINGS = [*keymap.bindings(keymap.INSPECT), *keymap.bindings(keymap.DIALOG)]

    DEFAULT_CSS = """
    InspectScreen > #inspect-tree { height: 1fr; padding: 0 1; }
    InspectScreen > #inspect-bar { height: 1; display: none; background: $panel; }
    InspectScreen > #inspect-bar.-active { display: block; }
    InspectScreen #inspect-prompt { width: auto; padding: 0 1; color: $accent; text-style: bold; }
    InspectScreen #inspect-input { width: 1fr; height: 1; border: none; padding: 0; }
    InspectScreen #inspect-count { width: auto; padding: 0 1; color: $foreground-muted; }
    """

    def __init__(self, kind: str, target: str, title: str, *, autoload: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"cannot inspect a {kind!r}: use one of {', '.join(KINDS)}")
        super().__init__(f"Inspect {kind} {title}", autoload=autoload)
        self.kind = kind
        self.target = target

    def compose_body(self) -> ComposeResult:
        yield JsonTree(id="inspect-tree")
        with Horizontal(id="inspect-bar"):
            yield Label("search", id="inspect-prompt")
            yield Input(compact=True, id="inspect-input", placeholder="key or value")
            yield Label("", id="inspect-count")

    @property
    def tree(self) -> JsonTree:
        return self.query_one(JsonTree)

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        if self.kind == "container":
            return await docker.containers.container(self.target).show()
        if self.kind == "volume":
            return await docker._query_json(f"volumes/{self.target}")
        if self.kind == "network":
            return await docker._query_json(f"networks/{self.target}")
        return await docker.images.inspect(self.target)

    def show(self, data: Any, prepared: Any = None) -> None:
        self.tree.load(data)
        self.tree.focus()

    def action_search(self) -> None:
        bar = self.query_one("#inspect-bar")
        bar.add_class("-active")
        self.query_one("#inspect-input", Input).focus()

    @on(Input.Changed, "#inspect-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        count = self.tree.set_search(event.value)
        self.query_one("#inspect-count", Label).update(f"{count} found" if event.value else "")

    @on(Input.Submitted, "#inspect-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.tree.focus()
        if event.value:
            self.action_next_match()
        else:
            self.query_one("#inspect-bar").remove_class("-active")

    def action_next_match(self) -> None:
        if self.tree.search and not self.tree.jump():
            self.notify(f"“{self.tree.search}” not found", severity="warning", timeout=3)

    def action_previous_match(self) -> None:
        if self.tree.search and not self.tree.jump(backwards=True):
            self.notify(f"“{self.tree.search}” not found", severity="warning", timeout=3)

    def action_expand_all(self) -> None:
        self.tree.expand_everything()

    def action_collapse_all(self) -> None:
        self.tree.collapse_everything()

    def action_copy(self) -> None:
        found, value = self.tree.cursor_value()
        if not found:
            self.notify("Copy: select a key first", severity="warning", timeout=3)
            return
        text = inspect_value(value)
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {preview(text)}", timeout=2)

    def action_close(self) -> None:
        if self.query_one("#inspect-bar").has_class("-active") and self.focused is not self.tree:
            self.query_one("#inspect-bar").remove_class("-active")
            self.tree.focus()
            return
        self.dismiss()
