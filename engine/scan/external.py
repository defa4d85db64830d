"""Vulnerability reports from an external scanner (trivy or grype), when one is installed.

The image is handed over as an OCI image layout whose blobs are symlinks into the content
store (nothing is copied or extracted): ``trivy image --input DIR --format json`` or
``grype oci-dir:DIR -o json``. Their JSON is reduced to ``Vulnerability`` records; a scanner
that fails (no database, no network) yields a one-line note instead of a report.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.digest import Digest
from engine.store.content import ContentStore

SCANNERS = ("trivy", "grype")
_TIMEOUT = 600.0
_MAX_OUTPUT = 64 << 20


@dataclass(frozen=True, order=True)
class Vulnerability:
    """One vulnerability a scanner matched to an installed package."""

    id: str
    package: str
    version: str
    severity: str
    fixed: str = ""
    title: str = ""
    scanner: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "ID": self.id,
            "Package": self.package,
            "Version": self.version,
            "Severity": self.severity,
            "FixedVersion": self.fixed,
            "Title": self.title,
            "Scanner": self.scanner,
        }


def find_scanner() -> str | None:
    """The path of the first of trivy, grype found on PATH."""
    for name in SCANNERS:
        path = shutil.which(name)
        if path:
            return path
    return None


async def run_scanner(
    program: str,
    content: ContentStore,
    manifest: Digest,
    media_type: str,
    blobs: list[Digest],
) -> tuple[list[Vulnerability] | None, str]:
    """Run ``program`` on the image; (vulnerabilities, note). None when it failed."""
    name = Path(program).name
    with tempfile.TemporaryDirectory(prefix="portside-scan-") as tmp:
        layout = Path(tmp) / "layout"
        size = content.size(manifest) or 0
        await asyncio.to_thread(_write_layout, layout, content, manifest, media_type, size, blobs)
        if name == "grype":
            argv = [program, f"oci-dir:{layout}", "-o", "json", "-q"]
        else:
            argv = [program, "image", "--quiet", "--format", "json", "--input", str(layout)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            return None, f"{name} could not start: {err.strerror or err}"
        try:
            out, err_out = await asyncio.wait_for(proc.communicate(), _TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, f"{name} did not finish within {_TIMEOUT:.0f} s"
    if proc.returncode != 0 or len(out) > _MAX_OUTPUT:
        lines = err_out.decode(errors="replace").strip().splitlines()
        last = lines[-1][:200] if lines else f"exit status {proc.returncode}"
        return None, f"{name} failed: {last}"
    try:
        doc = json.loads(out)
    except ValueError:
        return None, f"{name} printed output that is not JSON"
    parse = _grype if name == "grype" else _trivy
    return sorted(set(parse(doc, name))), f"vulnerabilities from {name}"


def _write_layout(
    layout: Path,
    content: ContentStore,
    manifest: Digest,
    media_type: str,
    size: int,
    blobs: list[Digest],
) -> None:
    for digest in {manifest, *blobs}:
        target = layout / "blobs" / digest.algorithm / digest.hex
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(content.path(digest), target)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": media_type, "digest": str(manifest), "size": size}],
    }
    (layout / "index.json").write_text(json.dumps(index))


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _trivy(doc: Any, scanner: str) -> list[Vulnerability]:
    out: list[Vulnerability] = []
    results = doc.get("Results") if isinstance(doc, dict) else None
    for result in results if isinstance(results, list) else []:
        vulns = result.get("Vulnerabilities") if isinstance(result, dict) else None
        for v in vulns if isinstance(vulns, list) else []:
            if isinstance(v, dict) and _s(v.get("VulnerabilityID")):
                out.append(
                    Vulnerability(
                        _s(v.get("VulnerabilityID")),
                        _s(v.get("PkgName")),
                        _s(v.get("InstalledVersion")),
                        _s(v.get("Severity")).lower() or "unknown",
                        _s(v.get("FixedVersion")),
                        _s(v.get("Title"))[:200],
                        scanner,
                    )
                )
    return out


def _grype(doc: Any, scanner: str) -> list[Vulnerability]:
    out: list[Vulnerability] = []
    matches = doc.get("matches") if isinstance(doc, dict) else None
    for m in matches if isinstance(matches, list) else []:
        if not isinstance(m, dict):
            continue
        vuln = m.get("vulnerability") if isinstance(m.get("vulnerability"), dict) else {}
        art = m.get("artifact") if isinstance(m.get("artifact"), dict) else {}
        fix = vuln.get("fix") if isinstance(vuln.get("fix"), dict) else {}
        versions = fix.get("versions") if isinstance(fix.get("versions"), list) else []
        if _s(vuln.get("id")):
            out.append(
                Vulnerability(
                    _s(vuln.get("id")),
                    _s(art.get("name")),
                    _s(art.get("version")),
                    _s(vuln.get("severity")).lower() or "unknown",
                    ", ".join(v for v in versions if isinstance(v, str)),
                    _s(vuln.get("description"))[:200],
                    scanner,
                )
            )
    return out
