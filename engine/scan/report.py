"""The scan report: packages, findings and vulnerabilities, as JSON or as text for a terminal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.scan.checks import Finding
from engine.scan.external import Vulnerability
from engine.scan.packages import Package

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass
class ScanReport:
    """Everything ``portside scan IMAGE`` reports about one image."""

    image: str  # the name asked for
    image_id: str
    layers: int
    files: int
    packages: list[Package] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    vulnerabilities: list[Vulnerability] | None = None  # None: no external scanner ran
    scanner_note: str = "no external scanner (trivy or grype) installed"

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        return {
            "Image": self.image,
            "Id": self.image_id,
            "Layers": self.layers,
            "Files": self.files,
            "Packages": [p.to_json() for p in self.packages],
            "Findings": [f.to_json() for f in self.findings],
            "Vulnerabilities": None
            if self.vulnerabilities is None
            else [v.to_json() for v in self.vulnerabilities],
            "Scanner": self.scanner_note,
        }


def format_text(report: ScanReport) -> str:
    """A plain-text report (no colours), sections in a fixed order."""
    lines = [
        f"Image: {report.image} ({report.image_id[:19]})",
        f"Layers: {report.layers}  Files: {report.files}",
        "",
    ]
    counts = Counter(p.type for p in report.packages)
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) or "none found"
    lines.append(f"Packages: {summary}")
    for pkg in report.packages:
        lines.append(f"  {pkg.type:<7} {pkg.name} {pkg.version}")
    lines.append("")
    lines.append(f"Findings: {len(report.findings) or 'none'}")
    for finding in sorted(report.findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f)):
        lines.append(f"  [{finding.severity.upper():<6}] {finding.message}")
    lines.append("")
    if report.vulnerabilities is None:
        lines.append(f"Vulnerabilities: not scanned ({report.scanner_note})")
    else:
        lines.append(f"Vulnerabilities: {len(report.vulnerabilities)} ({report.scanner_note})")
        for v in sorted(
            report.vulnerabilities, key=lambda v: (_SEVERITY_ORDER.get(v.severity, 9), v)
        ):
            fixed = f" (fixed in {v.fixed})" if v.fixed else ""
            lines.append(f"  {v.severity.upper():<8} {v.id} {v.package} {v.version}{fixed}")
    return "\n".join(lines) + "\n"
