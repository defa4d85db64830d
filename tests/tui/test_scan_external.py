"""The engine's merge of an external scanner's report, with a STAND-IN for trivy.

Neither trivy nor grype can be installed on these machines: Debian 12 has no package for
either (``apt-cache policy trivy grype`` lists nothing), PyPI has no distribution of them
(``pip index versions trivy`` / ``grype``: "No matching distribution found") and npm has
neither name (``npm view trivy`` / ``grype``: 404). So this test puts an executable named
``trivy`` on PATH that is clearly NOT trivy: a small Python program that does what the
engine relies on trivy for. It accepts only trivy's command line (``image --quiet --format
json --input DIR``), reads the OCI layout the engine hands it (index.json -> manifest ->
layer blobs), finds the dpkg and Python packages really inside the layers, looks them up in
a three-entry table standing in for trivy's database, and prints a report in trivy's
documented JSON schema (SchemaVersion 2: ``Results[].Vulnerabilities[]`` with
``VulnerabilityID``, ``PkgName``, ``InstalledVersion``, ``FixedVersion``, ``Severity``,
``Title``...). The test checks that the engine runs it, feeds it a real layout, and merges
its findings into the scan report; and that a failing scanner becomes a one-line note.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.engine import Engine
from engine.scan import Scanner, format_text
from tests.integration.test_scan import PLANTED_CONFIG, planted_layers

STAND_IN = r'''#!{python}
"""STAND-IN for trivy (not trivy): see tests/tui/test_scan_external.py."""
import email.parser, json, os, sys, tarfile

DATABASE = {  # (package type, name) -> what a vulnerability database would say
    ("debian", "libc6"): ("CVE-2024-2961", "2.36-9+deb12u7", "HIGH",
                          "glibc: Out of bounds write in iconv may lead to remote code execution"),
    ("debian", "bash"): ("CVE-2022-3715", "", "LOW",
                         "bash: a heap-buffer-overflow in valid_parameter_transform"),
    ("python-pkg", "requests"): ("CVE-2024-35195", "2.32.0", "MEDIUM",
                                 "requests: later requests to a host skip cert verification"),
}

log = os.environ["TRIVY_STANDIN_LOG"]
with open(log, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\n")
if os.environ.get("TRIVY_STANDIN_FAIL"):
    print("2026-01-01T00:00:00Z\tFATAL\tinit error: DB error: failed to download vulnerability DB",
          file=sys.stderr)
    sys.exit(1)
args = sys.argv[1:]
if args[:4] != ["image", "--quiet", "--format", "json"] or args[4] != "--input":
    print("unexpected arguments", args, file=sys.stderr)
    sys.exit(2)
layout = args[5]

def blob(digest):
    algo, hexa = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexa)

index = json.load(open(os.path.join(layout, "index.json")))
manifest_digest = index["manifests"][0]["digest"]
manifest = json.load(open(blob(manifest_digest)))
config = json.load(open(blob(manifest["config"]["digest"])))
found = {}  # (type, name) -> (version, layer digest)
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"]), "r:*") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if name == "var/lib/dpkg/status":
                text = tar.extractfile(member).read().decode()
                for para in text.split("\n\n"):
                    fields = email.parser.Parser().parsestr(para)
                    if fields["Package"] and "installed" in (fields["Status"] or "").split():
                        found[("debian", fields["Package"])] = (fields["Version"], layer["digest"])
            elif name.endswith(".dist-info/METADATA"):
                fields = email.parser.Parser().parsestr(tar.extractfile(member).read().decode())
                found[("python-pkg", fields["Name"].lower())] = (fields["Version"], layer["digest"])
results = {}
for (kind, pkg), (version, layer) in sorted(found.items()):
    hit = DATABASE.get((kind, pkg))
    if hit is None:
        continue
    vid, fixed, severity, title = hit
    target = "image (debian 12.4)" if kind == "debian" else "Python"
    result = results.setdefault(target, {
        "Target": target,
        "Class": "os-pkgs" if kind == "debian" else "lang-pkgs",
        "Type": kind,
        "Vulnerabilities": [],
    })
    result["Vulnerabilities"].append({
        "VulnerabilityID": vid,
        "PkgID": f"{pkg}@{version}",
        "PkgName": pkg,
        "InstalledVersion": version,
        "FixedVersion": fixed,
        "Status": "fixed" if fixed else "affected",
        "Layer": {"Digest": layer},
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{vid.lower()}",
        "DataSource": {"ID": "debian", "Name": "Debian Security Tracker",
                       "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"},
        "Title": title,
        "Description": title,
        "Severity": severity,
        "CweIDs": ["CWE-787"],
        "References": [],
    })
print(json.dumps({
    "SchemaVersion": 2,
    "ArtifactName": layout,
    "ArtifactType": "container_image",
    "Metadata": {
        "OS": {"Family": "debian", "Name": "12.4"},
        "ImageID": manifest["config"]["digest"],
        "DiffIDs": config["rootfs"]["diff_ids"],
        "RepoDigests": [],
        "ImageConfig": config,
    },
    "Results": list(results.values()),
}))
'''


@pytest.fixture(scope="module")
def planted_ref(push_image: Any) -> str:
    return push_image("test/planted-ext:1", planted_layers(), config=PLANTED_CONFIG)


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in ``trivy`` first on PATH; returns the file it logs its arguments to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "trivy"
    program.write_text(STAND_IN.replace("{python}", sys.executable, 1))
    program.chmod(0o755)
    log = tmp_path / "trivy-calls.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TRIVY_STANDIN_LOG", str(log))
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_trivy_report_is_merged(engine: Engine, planted_ref: str, stand_in: Path) -> None:
    await engine.images.pull(planted_ref)
    scanner = Scanner(engine.images, engine.content)
    report = await scanner.scan(planted_ref)

    (call,) = _calls(stand_in)
    assert call[:5] == ["image", "--quiet", "--format", "json", "--input"]
    assert not Path(call[5]).exists()  # the temporary layout is gone afterwards
    assert report.scanner_note == "vulnerabilities from trivy"
    assert report.vulnerabilities is not None
    merged = {(v.id, v.package, v.version, v.severity, v.fixed) for v in report.vulnerabilities}
    # Exactly the table entries whose packages are really installed in the image's layers.
    assert merged == {
        ("CVE-2024-2961", "libc6", "2.36-9+deb12u4", "high", "2.36-9+deb12u7"),
        ("CVE-2022-3715", "bash", "5.2.15-2+b2", "low", ""),
        ("CVE-2024-35195", "requests", "2.31.0", "medium", "2.32.0"),
    }
    assert {v.scanner for v in report.vulnerabilities} == {"trivy"}
    assert all(v.title for v in report.vulnerabilities)
    # the engine's own findings are still there, next to the scanner's
    assert {"private-key", "secret-env", "setuid"} <= report.kinds()
    doc = report.to_json()
    assert len(doc["Vulnerabilities"]) == 3 and doc["Scanner"] == "vulnerabilities from trivy"
    text = format_text(report)
    assert "Vulnerabilities: 3 (vulnerabilities from trivy)" in text
    assert text.index("HIGH     CVE-2024-2961") < text.index("MEDIUM   CVE-2024-35195")

    skipped = await scanner.scan(planted_ref, external=False)
    assert skipped.vulnerabilities is None and len(_calls(stand_in)) == 1


async def test_failing_trivy_is_a_note(
    engine: Engine, planted_ref: str, stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIVY_STANDIN_FAIL", "1")
    await engine.images.pull(planted_ref)
    report = await Scanner(engine.images, engine.content).scan(planted_ref)
    assert len(_calls(stand_in)) == 1
    assert report.vulnerabilities is None
    assert report.scanner_note == (
        "trivy failed: 2026-01-01T00:00:00Z\tFATAL\tinit error: DB error: "
        "failed to download vulnerability DB"
    )
    assert report.packages and report.findings  # the rest of the report is unaffected
