"""Installed packages, read from the package databases found in an image's files.

- dpkg: ``var/lib/dpkg/status`` (only ``install ok installed`` entries) and the one-file-per-
  package ``var/lib/dpkg/status.d/*`` of distroless images;
- apk: ``lib/apk/db/installed``;
- Python: ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` under site- or dist-packages;
- npm: ``node_modules/NAME/package.json`` (scoped ``@scope/name`` too).

Only what the databases state is reported: a package without a name or version is skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
_PYTHON_RE = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO)$"
)
_NPM_RE = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/@][^/]*/package\.json$")


@dataclass(frozen=True, order=True)
class Package:
    """One installed package."""

    type: str  # "deb", "apk", "python", "npm"
    name: str
    version: str
    path: str  # the database file that lists it
    arch: str = ""
    source: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"Type": self.type, "Name": self.name, "Version": self.version, "Path": self.path}
        if self.arch:
            out["Architecture"] = self.arch
        if self.source:
            out["Source"] = self.source
        return out


def is_package_database(path: str) -> bool:
    """Whether ``path`` is a file the parsers here read (the walker keeps their contents)."""
    return (
        path in (DPKG_STATUS, APK_INSTALLED)
        or path.startswith(DPKG_STATUS_D)
        or bool(_PYTHON_RE.search(path))
        or bool(_NPM_RE.search(path))
    )


def find_packages(contents: dict[str, bytes]) -> list[Package]:
    """Every package the databases among ``contents`` (path -> bytes) list, sorted."""
    found: list[Package] = []
    for path, data in contents.items():
        if path == DPKG_STATUS or path.startswith(DPKG_STATUS_D):
            found.extend(_dpkg(path, data))
        elif path == APK_INSTALLED:
            found.extend(_apk(path, data))
        elif _PYTHON_RE.search(path):
            found.extend(_python(path, data))
        elif _NPM_RE.search(path):
            found.extend(_npm(path, data))
    return sorted(set(found))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style paragraphs (dpkg): ``Field: value`` with continuation lines."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                fields[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def _dpkg(path: str, data: bytes) -> Iterator[Package]:
    for fields in _stanzas(_text(data)):
        status = fields.get("Status", "install ok installed").split()
        if status[-1:] != ["installed"]:
            continue
        name, version = fields.get("Package"), fields.get("Version")
        if name and version:
            source = fields.get("Source", "").split(" ")[0]
            yield Package("deb", name, version, path, fields.get("Architecture", ""), source)


def _apk(path: str, data: bytes) -> Iterator[Package]:
    for block in _text(data).split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:].strip())
        if fields.get("P") and fields.get("V"):
            yield Package(
                "apk", fields["P"], fields["V"], path, fields.get("A", ""), fields.get("o", "")
            )


def _python(path: str, data: bytes) -> Iterator[Package]:
    header = _text(data).split("\n\n", 1)[0]
    fields = next(_stanzas(header), {})
    if fields.get("Name") and fields.get("Version"):
        yield Package("python", fields["Name"], fields["Version"], path)


def _npm(path: str, data: bytes) -> Iterator[Package]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(doc, dict):
        return
    name, version = doc.get("name"), doc.get("version")
    if isinstance(name, str) and name and isinstance(version, str) and version:
        yield Package("npm", name, version, path)
