"""The scan view: a local image's packages, risky settings and known vulnerabilities.

The engine's scan (``GET /portside/v1/images/{name}/scan``, as ``portside scan`` uses it)
runs in a worker; the report shows as a summary line and three tabs (findings,
vulnerabilities, packages) with severities in the theme's colours (``tui.widgets.scan``).
Engines without the endpoint (dockerd, podman) get a one-line explanation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from tui.messages import DocumentLoaded
from tui.screens.detail import DetailScreen
from tui.sync import one_line
from tui.widgets.resource_table import theme_styles
from tui.widgets.scan import (
    FINDING_COLUMNS,
    PACKAGE_COLUMNS,
    VULNERABILITY_COLUMNS,
    Row,
    finding_rows,
    package_rows,
    summary_text,
    vulnerability_rows,
)

if TYPE_CHECKING:
    import aiodocker

SCAN_PATH = "portside/v1/images/{}/scan"
NOT_PORTSIDE = "scanning needs a portside engine; this engine has no /portside/v1/.../scan endpoint"


async def fetch_scan(docker: aiodocker.Docker, image: str) -> dict[str, Any]:
    """The engine's scan report of the local image ``image`` (JSON)."""
    from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

    path = SCAN_PATH.format(quote(image, safe="/:@"))
    try:
        report = await docker._query_json(path, "GET", versioned_api=False)
    except DockerError as err:
        if err.status == 404 and one_line(err.message).lower().endswith("page not found"):
            raise DockerError(404, NOT_PORTSIDE) from None
        raise
    if not isinstance(report, dict):
        raise DockerError(500, f"the engine sent no scan report for {image}")
    return report


class ScanScreen(DetailScreen):
    """The scan report of ``image`` (see the module docstring)."""

    DEFAULT_CSS = """
    ScanScreen > #scan-facts { height: auto; padding: 0 1; }
    ScanScreen > TabbedContent { height: 1fr; }
    ScanScreen DataTable { height: 1fr; }
    """

    def __init__(self, image: str, *, autoload: bool = True) -> None:
        super().__init__(f"Scan of {image}", autoload=autoload)
        self.image = image
        self.problem_text = ""
        self.status = "Scanning… (reading every layer; large images take a while)"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="scan-facts")
        with TabbedContent(id="scan-tabs"):
            with TabPane("Findings", id="scan-findings"):
                yield DataTable(id="findings-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Vulnerabilities", id="scan-vulns"):
                yield DataTable(id="vulns-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Packages", id="scan-packages"):
                yield DataTable(id="packages-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:  # DetailScreen's own on_mount runs after this one
        self.query_one("#detail-status", Static).update(self.status)
        self.query_one("#scan-facts").display = False
        self.query_one(TabbedContent).display = False

    async def fetch(self, docker: aiodocker.Docker) -> Any:
        return await fetch_scan(docker, self.image)

    def on_document_loaded(self, message: DocumentLoaded) -> None:
        self.problem_text = message.error or ""  # DetailScreen's handler shows it next

    def show(self, data: Any, prepared: Any = None) -> None:
        styles = theme_styles(self.app.get_css_variables())
        image_id = str(data.get("Id") or "")
        facts = Text()
        facts.append_text(summary_text(data, styles))
        facts.append(
            f"\n{image_id[:19]} · {data.get('Layers', 0)} layers · {data.get('Files', 0)} files"
            f" · {data.get('Scanner') or ''}",
            style=styles.get("foreground-muted"),
        )
        block = self.query_one("#scan-facts", Static)
        block.update(facts)
        block.display = True
        findings = finding_rows(data, styles)
        vulns = vulnerability_rows(data, styles)
        packages = package_rows(data, styles)
        self._fill("#findings-table", FINDING_COLUMNS, findings)
        self._fill("#vulns-table", VULNERABILITY_COLUMNS, vulns)
        self._fill("#packages-table", PACKAGE_COLUMNS, packages)
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("scan-findings").label = Content(f"Findings {len(findings)}")
        scanned = data.get("Vulnerabilities") is not None
        tabs.get_tab("scan-vulns").label = Content(
            f"Vulnerabilities {len(vulns)}" if scanned else "Vulnerabilities (not scanned)"
        )
        tabs.get_tab("scan-packages").label = Content(f"Packages {len(packages)}")
        tabs.display = True
        self.set_summary(f"{len(findings)} findings · {len(vulns)} vulnerabilities")
        self.query_one("#findings-table", DataTable).focus()

    def _fill(self, selector: str, columns: list[str], rows: list[Row]) -> None:
        table = self.query_one(selector, DataTable)
        table.clear(columns=True)
        for label in columns:
            table.add_column(Text(label, style="bold"), key=label.lower())
        for key, cells in rows:
            table.add_row(*cells, key=key)
