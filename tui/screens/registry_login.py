"""The login dialog: server, user name and a masked password, verified by the engine.

Enter moves to the next field and, on the password, logs in (``tui.registries.login``) in
a worker: the engine checks the credentials against the registry (``POST /auth``) and only
then are they stored, like ``docker login`` does. A failure stays in the dialog as one
line; success dismisses it with a summary. Escape cancels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui import keymap
from tui.registries import RegistryProblem, config_dir_hint, login

if TYPE_CHECKING:
    from tui.app import PortsideApp


class LoginScreen(ModalScreen[str | None]):
    """See the module docstring."""

    BINDINGS = keymap.bindings(keymap.DIALOG)

    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen > Vertical {
        width: 72; max-width: 100%; height: auto;
        border: thick $accent; border-title-style: bold;
        background: $surface; padding: 0 1;
    }
    LoginScreen Label { margin-top: 1; }
    LoginScreen #login-status { height: auto; margin-top: 1; }
    LoginScreen .hint { color: $foreground-muted; margin-top: 1; width: 1fr; }
    """

    def __init__(self, server: str = "", username: str = "") -> None:
        super().__init__()
        self.server = server
        self.username = username
        self.busy = False
        self.status_line = ""

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Log in to a registry"
            yield Label("Registry")
            yield Input(self.server, placeholder="registry.example:5000", id="login-server")
            yield Label("User")
            yield Input(self.username, placeholder="user name", id="login-user")
            yield Label("Password or access token")
            yield Input(password=True, placeholder="never shown", id="login-password")
            yield Static("", id="login-status")
            yield Label(
                f"enter logs in · escape cancels · kept in {config_dir_hint()} (mode 0600) "
                "or the credential helper it names",
                classes="hint",
                markup=False,
            )

    def on_mount(self) -> None:
        first = "#login-password" if self.server and self.username else "#login-server"
        if self.server and not self.username:
            first = "#login-user"
        self.query_one(first, Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["login-server", "login-user", "login-password"]
        current = event.input.id or ""
        if current != order[-1] and not self._value("login-password"):
            self.query_one(f"#{order[order.index(current) + 1]}", Input).focus()
            return
        self.submit()

    def _value(self, name: str) -> str:
        return self.query_one(f"#{name}", Input).value

    def submit(self) -> None:
        """Verify and store what the fields hold, in a worker."""
        if self.busy:
            return
        docker = cast("PortsideApp", self.app).docker
        if docker is None:
            self._status("✕ ", "the engine is not connected")
            return
        server = self._value("login-server").strip()
        user, password = self._value("login-user"), self._value("login-password")
        self.busy = True
        self._status("◌ ", f"Checking the credentials with {server or 'Docker Hub'}…")
        self.run_worker(self._login(docker, server, user, password), group="login")

    async def _login(self, docker: object, server: str, user: str, password: str) -> None:
        try:
            summary = await login(docker, server, user, password)  # type: ignore[arg-type]
        except RegistryProblem as err:
            self.busy = False
            self._status("✕ ", f"Login failed: {err.message}")
            self.query_one("#login-password", Input).value = ""
            return
        self.busy = False
        self.dismiss(summary)

    def _status(self, mark: str, text: str) -> None:
        self.status_line = text
        style = {"✕ ": "bold $error", "◌ ": "$warning"}.get(mark, "$success")
        self.query_one("#login-status", Static).update(Content.assemble((mark, style), text))

    def action_close(self) -> None:
        self.workers.cancel_group(self, "login")
        self.dismiss(None)
