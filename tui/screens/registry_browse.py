"""Browsing a registry: its catalog, a repository's tags, and what a tag points at.

``RepositoriesScreen`` -> ``TagsScreen`` -> ``ManifestScreen`` (platforms of an index, or
config, layers and sizes of an image), each a full-screen list fetched in a worker through
the engine's ``/portside/v1`` endpoints (``tui.registries``); enter goes one level down and
escape back up. When a registry does not offer its catalog the screen says so and ``n``
opens a repository by name; ``p`` pulls the selected tag or manifest in the pull dialog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Static

from tui import keymap
from tui.humanize import human_size
from tui.messages import DocumentLoaded
from tui.refs import split_ref
from tui.registries import RegistryProblem, catalog, check_repository, manifest, tags
from tui.screens.detail import DetailScreen
from tui.screens.prompt import PromptScreen
from tui.screens.pull import PullScreen

if TYPE_CHECKING:
    import aiodocker

FORBIDDEN = "forbidden"


def ask_repository(app: App[Any], host: str) -> None:
    """Ask for a repository name in ``host`` (or a full ``HOST/NAME``) and show its tags."""

    def answered(name: str | None) -> None:
        if not name:
            return
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            full, repository = name, rest  # the user named the registry too
        elif host:
            full, repository = f"{host}/{name}", name
        else:
            app.notify("Repository: give it as HOST/NAME", severity="warning", timeout=6)
            return
        problem = check_repository(repository)
        if problem:
            app.notify(f"Repository: {problem}", severity="warning", timeout=6)
            return
        app.push_screen(TagsScreen(full))

    where = f" in {host}" if host else ""
    app.push_screen(
        PromptScreen(
            f"Open a repository{where}",
            "Its tags are listed; escape cancels.",
            "team/app" if host else "registry.example:5000/team/app",
        ),
        answered,
    )


async def pull_now(app: App[Any], reference: str) -> None:
    """Open the pull dialog on ``reference`` and start pulling at once."""
    screen = PullScreen(reference)
    await app.push_screen(screen)
    screen.start_pull(reference)


def repository_of(ref: str) -> str:
    """``host/repo`` of ``host/repo:tag`` or ``host/repo@digest``."""
    name = ref.partition("@")[0]
    return split_ref(name)[0]


class BrowseScreen(DetailScreen):
    """A title, a status line and one list (see the module docstring)."""

    BINDINGS = [*keymap.bindings(keymap.DIALOG), *keymap.bindings(keymap.BROWSE)]

    DEFAULT_CSS = """
    BrowseScreen > DataTable { height: 1fr; }
    BrowseScreen > #browse-facts { height: auto; padding: 0 1; }
    """

    host = ""
    problem_text = ""  # the last problem shown ("" when none)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="browse-facts")
        yield DataTable(id="browse-table", cursor_type="row", zebra_stripes=True)

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#browse-table", DataTable)

    @property
    def selected(self) -> str | None:
        """The key of the highlighted row."""
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        return str(key.value) if key.value is not None else None

    def on_mount(self) -> None:  # DetailScreen's own on_mount runs after this one
        self.query_one("#browse-facts", Static).display = False

    def fill(self, columns: list[str], rows: list[tuple[str, list[Text]]]) -> None:
        table = self.table
        table.clear(columns=True)
        for label in columns:
            table.add_column(Text(label, style="bold"), key=label.lower())
        for key, cells in rows:
            table.add_row(*cells, key=key)
        table.focus()

    def on_document_loaded(self, message: DocumentLoaded) -> None:
        self.problem_text = message.error or ""  # DetailScreen's handler runs next

    def problem(self, text: str) -> None:
        """Show a one-line problem where the list would be."""
        self.problem_text = text
        status = self.query_one("#detail-status", Static)
        status.display = True
        status.update(Content.assemble(("✕ ", "bold $error"), text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pull":
            return True if self.pull_reference() else None
        return True

    def pull_reference(self) -> str | None:
        return None

    async def action_pull(self) -> None:
        if ref := self.pull_reference():
            await pull_now(self.app, ref)

    def action_open_repository(self) -> None:
        ask_repository(self.app, self.host)


class RepositoriesScreen(BrowseScreen):
    """The catalog of ``host``."""

    def __init__(self, host: str, *, autoload: bool = True) -> None:
        super().__init__(f"Repositories in {host}", autoload=autoload)
        self.host = host

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        try:
            return await catalog(docker, self.host)
        except RegistryProblem as err:
            if err.forbidden:
                return {FORBIDDEN: err.message}
            raise

    def show(self, data: Any, prepared: Any = None) -> None:
        if isinstance(data, dict):
            self.problem(
                f"{self.host} does not list its repositories ({data[FORBIDDEN]}); "
                "press n to type a repository name"
            )
            return
        names = list(data or [])
        self.set_summary(f"{len(names)} repositor{'y' if len(names) == 1 else 'ies'}")
        self.fill(["REPOSITORY"], [(name, [Text(name, style="bold")]) for name in names])
        if not names:
            self.problem(f"{self.host} lists no repositories; press n to type a name")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.push_screen(TagsScreen(f"{self.host}/{event.row_key.value}"))


class TagsScreen(BrowseScreen):
    """The tags of ``repository`` (``HOST/NAME``)."""

    def __init__(self, repository: str, *, autoload: bool = True) -> None:
        super().__init__(f"Tags of {repository}", autoload=autoload)
        self.repository = repository
        self.host = repository.partition("/")[0]

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        return await tags(docker, self.repository)

    def show(self, data: Any, prepared: Any = None) -> None:
        names = list(data or [])
        self.set_summary(f"{len(names)} tag{'' if len(names) == 1 else 's'}")
        self.fill(["TAG"], [(tag, [Text(tag, style="bold")]) for tag in names])
        if not names:
            self.problem(f"{self.repository} has no tags")

    def pull_reference(self) -> str | None:
        tag = self.selected
        return f"{self.repository}:{tag}" if tag else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.push_screen(ManifestScreen(f"{self.repository}:{event.row_key.value}"))


def _command(config: dict[str, Any]) -> str:
    parts = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return " ".join(str(part) for part in parts)


def short_media_type(media_type: str) -> str:
    """``application/vnd.oci.image.layer.v1.tar+gzip`` -> ``layer.v1.tar+gzip``."""
    return media_type.rsplit(".image.", 1)[-1]


def manifest_facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines shown above the list of a manifest."""
    facts = [
        ("Digest", str(data.get("Digest") or "")),
        ("Media type", str(data.get("MediaType") or "")),
    ]
    if "Platforms" in data:
        facts.append(("Platforms", str(len(data.get("Platforms") or []))))
        return facts
    config = data.get("Config") or {}
    facts += [
        ("Platform", str(config.get("Platform") or "")),
        ("Size", f"{human_size(int(data.get('TotalSize') or 0))} compressed"),
        ("Created", str(config.get("Created") or "")[:19].replace("T", " ")),
        ("Command", _command(config)),
        ("User", str(config.get("User") or "root (none set)")),
        ("Ports", ", ".join(config.get("ExposedPorts") or [])),
        ("Config", f"{config.get('Digest', '')} ({human_size(int(config.get('Size') or 0))})"),
    ]
    return [(label, value) for label, value in facts if value]


class ManifestScreen(BrowseScreen):
    """What ``ref`` points at: platforms (enter opens one) or config and layers."""

    def __init__(self, ref: str, *, autoload: bool = True) -> None:
        super().__init__(f"Manifest of {ref}", autoload=autoload)
        self.ref = ref
        self.host = ref.partition("/")[0]

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        return await manifest(docker, self.ref)

    def show(self, data: Any, prepared: Any = None) -> None:
        facts = self.query_one("#browse-facts", Static)
        width = max(len(label) for label, _ in manifest_facts(data))
        lines: list[tuple[str, str] | str] = []
        for label, value in manifest_facts(data):
            if lines:
                lines.append("\n")
            lines += [(f"{label:<{width}}  ", "bold"), value]
        facts.update(Content.assemble(*lines))
        facts.display = True
        if "Platforms" in data:
            platforms = data.get("Platforms") or []
            self.set_summary(f"index of {len(platforms)} manifests")
            rows = [
                (
                    str(p.get("Digest")),
                    [
                        Text(str(p.get("Platform") or "?"), style="bold"),
                        Text(str(p.get("Digest"))),
                        Text(human_size(int(p.get("Size") or 0)), justify="right"),
                        Text("attestation" if p.get("Attestation") else ""),
                    ],
                )
                for p in platforms
            ]
            self.fill(["PLATFORM", "DIGEST", "SIZE", "KIND"], rows)
            return
        layers = data.get("Layers") or []
        total = int(data.get("TotalSize") or 0)
        self.set_summary(f"image, {len(layers)} layers, {human_size(total)}")
        rows = [
            (
                str(layer.get("Digest")),
                [
                    Text(str(index), justify="right"),
                    Text(str(layer.get("Digest"))),
                    Text(human_size(int(layer.get("Size") or 0)), justify="right"),
                    Text(short_media_type(str(layer.get("MediaType") or "")), style="dim"),
                ],
            )
            for index, layer in enumerate(layers, 1)
        ]
        self.fill(["#", "DIGEST", "SIZE", "MEDIA TYPE"], rows)

    def pull_reference(self) -> str | None:
        return self.ref

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if isinstance(self.data, dict) and "Platforms" in self.data and event.row_key.value:
            self.app.push_screen(ManifestScreen(f"{repository_of(self.ref)}@{event.row_key.value}"))
