"""The logs of one or several containers, followed live in a virtual ``LogView``.

One worker per container follows ``GET /containers/{id}/logs?follow=1&timestamps=1`` and
posts ``LogLines``; the view merges them in arrival order, colour-coded by container. A
one-line bar below the view asks for a search word, a filter or a file name to save to.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from tui import keymap
from tui.copy import lines_text, preview
from tui.sync import one_line
from tui.widgets.log_buffer import DEFAULT_CAP
from tui.widgets.log_view import LogView

if TYPE_CHECKING:
    from tui.app import PortsideApp

DEFAULT_TAIL = 500
PROMPTS = {"search": "search", "filter": "filter", "save": "save to"}


class LogLines(Message):
    """Lines (raw, stamp first) that one container wrote; ``ended`` when its stream closed."""

    def __init__(
        self, source: int, lines: Sequence[str], *, ended: bool = False, error: str = ""
    ) -> None:
        super().__init__()
        self.source = source
        self.lines = lines
        self.ended = ended
        self.error = error


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class LogBar(Horizontal):
    """The one-line prompt for a search word, a filter, or a file name."""

    DEFAULT_CSS = """
    LogBar { height: 1; display: none; background: $panel; }
    LogBar.-active { display: block; }
    LogBar > #log-prompt { width: auto; padding: 0 1; color: $accent; text-style: bold; }
    LogBar > Input { width: 1fr; height: 1; border: none; padding: 0; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="log-prompt")
        yield Input(compact=True, id="log-input")


class LogsScreen(Screen[None]):
    """``targets`` are (container id, name) pairs; one gives a plain log, several a merged one."""

    BINDINGS = [*keymap.bindings(keymap.LOGS), *keymap.bindings(keymap.DIALOG)]

    DEFAULT_CSS = """
    LogsScreen > #logs-title { dock: top; height: 1; background: $panel; padding: 0 1; }
    LogsScreen > #logs-status { height: 1; padding: 0 1; color: $foreground-muted; }
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, str]],
        *,
        autoload: bool = True,
        cap: int = DEFAULT_CAP,
        tail: int = DEFAULT_TAIL,
    ) -> None:
        super().__init__()
        if not targets:
            raise ValueError("logs of no container: select one first")
        self.targets = list(targets)
        self.autoload = autoload
        self.cap = cap
        self.tail = tail
        self.mode = ""
        self.filter_text = ""
        self.ended: set[int] = set()
        self.saved_to: Path | None = None

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.targets]

    def compose(self) -> ComposeResult:
        title = "Logs " + ", ".join(self.names)
        yield Static(Content.assemble((title, "bold")), id="logs-title")
        yield LogView(self.names, cap=self.cap, id="log-view")
        yield LogBar()
        yield Static("", id="logs-status")
        yield Footer()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.view.focus()
        self._update_status()
        if self.autoload:
            for index, (cid, _) in enumerate(self.targets):
                self.run_worker(self._follow(index, cid), group="logs")

    async def _follow(self, index: int, cid: str) -> None:
        docker = cast("PortsideApp", self.app).docker
        if docker is None:
            self.post_message(LogLines(index, (), ended=True, error="engine not connected"))
            return
        import aiohttp  # loaded with the client (tui.client.open_client)
        from aiodocker import DockerError

        carry = ""
        try:
            stream = docker.containers.container(cid).log(
                stdout=True, stderr=True, follow=True, timestamps=True, tail=str(self.tail)
            )
            async for chunk in stream:
                parts = (carry + chunk).split("\n")
                carry = parts.pop()
                if parts:
                    self.post_message(LogLines(index, [p.rstrip("\r") for p in parts]))
        except DockerError as err:
            self.post_message(LogLines(index, (), ended=True, error=one_line(err.message)))
            return
        except (OSError, TimeoutError, aiohttp.ClientError) as err:
            self.post_message(LogLines(index, (), ended=True, error=one_line(str(err))))
            return
        self.post_message(LogLines(index, [carry] if carry else [], ended=True))

    def on_log_lines(self, message: LogLines) -> None:
        message.stop()
        if message.lines:
            self.view.add_lines(message.source, message.lines)
        if message.ended:
            self.ended.add(message.source)
            name = self.names[message.source]
            if message.error:
                self.notify(f"Logs of {name}: {message.error}", severity="error", timeout=6)
        self._update_status()

    # -- status --------------------------------------------------------------------------

    def _update_status(self) -> None:
        view = self.view
        parts = [
            "paused" if view.paused else ("following" if view.follow else "not following"),
            f"{len(view.buffer.rows)} rows, {len(view.buffer)} of {view.buffer.cap} lines kept",
        ]
        if view.pending:
            parts.append(f"{len(view.pending)} held")
        if self.filter_text:
            parts.append(f"filter “{self.filter_text}”")
        if view.search:
            parts.append(f"search “{view.search}”")
        if self.ended:
            parts.append("ended: " + ", ".join(self.names[i] for i in sorted(self.ended)))
        if self.saved_to is not None:
            parts.append(f"saved to {self.saved_to}")
        self.query_one("#logs-status", Static).update(" · ".join(parts))

    # -- the prompt bar --------------------------------------------------------------------

    def _ask(self, mode: str, value: str) -> None:
        self.mode = mode
        bar = self.query_one(LogBar)
        bar.add_class("-active")
        bar.query_one("#log-prompt", Label).update(PROMPTS[mode])
        field = bar.query_one(Input)
        field.value = value
        field.cursor_position = len(value)
        field.focus()

    def _close_bar(self) -> None:
        self.mode = ""
        self.query_one(LogBar).remove_class("-active")
        self.view.focus()

    @on(Input.Changed, "#log-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.mode == "search":
            self.view.set_search(event.value)
        elif self.mode == "filter":
            self.filter_text = event.value
            self.view.set_filter(event.value)
        self._update_status()

    @on(Input.Submitted, "#log-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        mode = self.mode
        self._close_bar()
        if mode == "search" and event.value:
            self.action_next_match()
        elif mode == "save" and event.value.strip():
            self.run_worker(self._save(Path(event.value.strip()).expanduser()), group="save")

    async def _save(self, path: Path) -> None:
        text = self.view.saved_text()
        try:
            await asyncio.to_thread(write_file, path, text)
        except OSError as err:
            self.notify(
                f"Cannot save to {path}: {err.strerror or err}; choose another path",
                severity="error",
                timeout=8,
            )
            return
        self.saved_to = path
        self.notify(f"Saved {text.count(chr(10))} lines to {path}", timeout=4)
        self._update_status()

    # -- actions ---------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        self.view.follow = not self.view.follow
        self._update_status()

    def action_toggle_pause(self) -> None:
        self.view.paused = not self.view.paused
        self._update_status()

    def action_search(self) -> None:
        self._ask("search", self.view.search)

    def action_filter(self) -> None:
        self._ask("filter", self.filter_text)

    def action_save(self) -> None:
        stem = "-".join(self.names)[:60].replace("/", "_")
        self._ask("save", str(Path.cwd() / f"{stem}.log"))

    def action_next_match(self) -> None:
        if self.view.search and not self.view.jump():
            self.notify(f"“{self.view.search}” not found", severity="warning", timeout=3)
        self._update_status()

    def action_previous_match(self) -> None:
        if self.view.search and not self.view.jump(backwards=True):
            self.notify(f"“{self.view.search}” not found", severity="warning", timeout=3)
        self._update_status()

    def action_toggle_timestamps(self) -> None:
        self.view.set_timestamps(not self.view.show_timestamps)

    def action_toggle_wrap(self) -> None:
        self.view.set_wrap(not self.view.wrap)

    def action_scroll_home(self) -> None:
        self.view.follow = False
        self.view.scroll_home(animate=False)
        self._update_status()

    def action_scroll_end(self) -> None:
        self.view.scroll_end(animate=False)

    def action_copy(self) -> None:
        """The line of the current search match, else the lines in view."""
        match = self.view.match_line()
        self._copy(lines_text([match] if match is not None else self.view.lines_in_view()))

    def action_copy_all(self) -> None:
        self._copy(self.view.saved_text())

    def _copy(self, text: str) -> None:
        if not text:
            self.notify("Copy: no lines to copy", severity="warning", timeout=3)
            return
        self.app.copy_to_clipboard(text)
        count = text.count("\n")
        what = preview(text) if count == 1 else f"{count} lines"
        self.notify(f"Copied {what}", timeout=2)

    def action_close(self) -> None:
        if self.mode:
            self._close_bar()
            return
        self.workers.cancel_group(self, "logs")
        self.dismiss()
