"""The scan report's tables: findings, vulnerabilities and packages, severities in colour.

Pure rendering of the engine's scan JSON (``/portside/v1/images/{name}/scan``: ``Findings``,
``Vulnerabilities``, ``Packages``) into rows of ``rich.text.Text`` (never markup: names
from an image cannot inject styles), most severe first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.style import Style
from rich.text import Text

from tui.humanize import ellipsize

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
_STYLE = {"critical": "error", "high": "error", "medium": "warning", "low": "primary"}


def severity_rank(severity: str) -> int:
    value = severity.lower()
    return SEVERITIES.index(value) if value in SEVERITIES else len(SEVERITIES)


def severity_text(severity: str, styles: Mapping[str, Style]) -> Text:
    """``HIGH`` etc. in the theme's colour for it (critical is bold as well)."""
    value = (severity or "unknown").lower()
    style = styles.get(_STYLE.get(value, "foreground-muted"), Style())
    if value == "critical":
        style = style + Style(bold=True, reverse=True)
    elif value == "high":
        style = style + Style(bold=True)
    return Text(value.upper(), style=style, no_wrap=True)


def _items(report: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = report.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def counts(report: Mapping[str, Any]) -> Counter[str]:
    """How many findings and vulnerabilities there are of each severity."""
    found: Counter[str] = Counter()
    for item in [*_items(report, "Findings"), *_items(report, "Vulnerabilities")]:
        found[str(item.get("Severity") or "unknown").lower()] += 1
    return found


def summary_text(report: Mapping[str, Any], styles: Mapping[str, Style]) -> Text:
    """One line: packages, then the count per severity in its colour."""
    text = Text(no_wrap=True)
    text.append(f"{len(_items(report, 'Packages'))} packages  ", style="bold")
    found = counts(report)
    if not found:
        text.append("no findings", style=styles.get("success", Style()))
    for severity in SEVERITIES:
        if found.get(severity):
            text.append_text(severity_text(severity, styles))
            text.append(f" {found[severity]}  ")
    return text


Row = tuple[str, list[Text]]


def finding_rows(report: Mapping[str, Any], styles: Mapping[str, Style]) -> list[Row]:
    items = sorted(
        _items(report, "Findings"),
        key=lambda f: (severity_rank(str(f.get("Severity") or "")), str(f.get("Message") or "")),
    )
    return [
        (
            f"finding-{index}",
            [
                severity_text(str(item.get("Severity") or ""), styles),
                Text(str(item.get("Kind") or ""), no_wrap=True),
                Text(ellipsize(str(item.get("Message") or ""), 90)),
                Text(str(item.get("Path") or ""), style=styles.get("foreground-muted", Style())),
            ],
        )
        for index, item in enumerate(items)
    ]


def vulnerability_rows(report: Mapping[str, Any], styles: Mapping[str, Style]) -> list[Row]:
    items = sorted(
        _items(report, "Vulnerabilities"),
        key=lambda v: (severity_rank(str(v.get("Severity") or "")), str(v.get("ID") or "")),
    )
    return [
        (
            f"vuln-{index}",
            [
                severity_text(str(item.get("Severity") or ""), styles),
                Text(str(item.get("ID") or ""), style="bold", no_wrap=True),
                Text(str(item.get("Package") or ""), no_wrap=True),
                Text(str(item.get("Version") or ""), no_wrap=True),
                Text(str(item.get("FixedVersion") or ""), style=styles.get("success", Style())),
                Text(ellipsize(str(item.get("Title") or ""), 70)),
            ],
        )
        for index, item in enumerate(items)
    ]


def package_rows(report: Mapping[str, Any], styles: Mapping[str, Style]) -> list[Row]:
    items = sorted(
        _items(report, "Packages"),
        key=lambda p: (str(p.get("Type") or ""), str(p.get("Name") or "")),
    )
    muted = styles.get("foreground-muted", Style())
    return [
        (
            f"pkg-{index}",
            [
                Text(str(item.get("Type") or ""), style=muted, no_wrap=True),
                Text(str(item.get("Name") or ""), style="bold", no_wrap=True),
                Text(str(item.get("Version") or ""), no_wrap=True),
                Text(ellipsize(str(item.get("Path") or ""), 60), style=muted),
            ],
        )
        for index, item in enumerate(items)
    ]


FINDING_COLUMNS = ["SEVERITY", "KIND", "MESSAGE", "PATH"]
VULNERABILITY_COLUMNS = ["SEVERITY", "ID", "PACKAGE", "VERSION", "FIXED IN", "TITLE"]
PACKAGE_COLUMNS = ["TYPE", "NAME", "VERSION", "FOUND IN"]
