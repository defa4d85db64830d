"""The scan action of the images panel against both engines, driven with keys.

On ``portside serve`` the image with planted facts (``tests/integration/test_scan.py``:
packages, private keys, setuid files, secrets in env and history) is pulled from the
fixture registry, selected, and ``s`` shows the engine's report: the planted findings with
their severities, the packages, and "not scanned" for vulnerabilities (no trivy or grype
here). dockerd has no scan endpoint: the view says so in one line. The command palette
reaches the same action.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_scan import PLANTED_CONFIG, planted_layers
from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.screens.scan import NOT_PORTSIDE, ScanScreen
from tui.widgets.header import CONNECTED


@pytest.fixture(scope="module")
def planted_ref(push_image: Any) -> str:
    return push_image("test/planted-view:1", planted_layers(), config=PLANTED_CONFIG)


def column(table: Any, key: str) -> list[str]:
    return [str(table.get_cell(row, key)) for row in table.rows]


async def select_image(pilot: Any, app: PortsideApp, ref: str) -> None:
    await wait_for(pilot, lambda: app.status == CONNECTED, "engine connected")
    await pilot.press("2")
    table = app.main.images.table
    await wait_for(
        pilot, lambda: any(r.repo_tag == ref for r in table.rows_by_key.values()), "image listed"
    )
    await pilot.press("slash", *ref, "enter")
    await wait_for(pilot, lambda: len(table.shown_keys) == 1, "filtered to the image")


async def test_scan_view(dockerd: Any, engine_kind: str, busybox: str, planted_ref: str) -> None:
    ref = planted_ref if engine_kind == "portside" else busybox
    if engine_kind == "portside":
        await cli(dockerd, "pull", ref)
    app = dashboard(dockerd.host)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await select_image(pilot, app, ref)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), "scan view")
            screen = app.screen
            assert isinstance(screen, ScanScreen) and screen.image == ref
            if engine_kind == "dockerd":
                await wait_for(pilot, lambda: screen.problem_text, "refusal")
                assert screen.problem_text == NOT_PORTSIDE
                return
            await wait_for(pilot, lambda: screen.data is not None, "report", timeout=120)
            findings = screen.query_one("#findings-table")
            kinds = column(findings, "kind")
            severities = dict(zip(kinds, column(findings, "severity"), strict=True))
            assert severities["secret-env"] == "HIGH"
            assert severities["private-key"] == "HIGH"
            assert severities["setuid"] == "MEDIUM"
            assert kinds.count("private-key") == 2
            assert {"secret-history", "world-writable", "root-user", "setgid"} <= set(kinds)
            # most severe first
            order = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
            ranks = [order.index(s) for s in column(findings, "severity")]
            assert ranks == sorted(ranks) and len(kinds) == len(screen.data["Findings"])
            packages = screen.query_one("#packages-table")
            assert set(column(packages, "name")) == {
                "libc6",
                "bash",
                "musl",
                "busybox",
                "requests",
                "six",
                "left-pad",
                "@types/node",
            }
            assert screen.query_one("#vulns-table").row_count == 0  # type: ignore[attr-defined]
            tabs = screen.query_one("#scan-tabs")
            assert "not scanned" in str(tabs.get_tab("scan-vulns").label)  # type: ignore[attr-defined]
            # secrets are named, never shown
            shown = " ".join(column(findings, "message"))
            assert "hunter2" not in shown and "DB_PASSWORD" in shown

            # the command palette reaches the same action
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ScanScreen), "closed")
            await pilot.press("ctrl+p")
            await pilot.press(*"image scan")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), "scan again")
    finally:
        if engine_kind == "portside":
            await cli(dockerd, "rmi", ref, check=False)
