"""The scan service: one image's packages, risky configuration and (optionally) vulnerabilities.

``Scanner.scan(name)`` resolves the image, reads its config and manifest from the content
store, walks its layer blobs in a worker thread (``engine.scan.walk``), and assembles the
report; an external scanner's findings are merged in when trivy or grype is installed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from engine.digest import Digest
from engine.errors import NotFound, PortsideError
from engine.oci import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from engine.scan.checks import config_findings, file_findings
from engine.scan.external import find_scanner, run_scanner
from engine.scan.packages import find_packages, is_package_database
from engine.scan.report import ScanReport
from engine.scan.walk import walk_layers

if TYPE_CHECKING:
    from engine.images import ImageService
    from engine.store.content import ContentStore


class Scanner:
    """Scans images of one engine root."""

    def __init__(self, images: ImageService, content: ContentStore) -> None:
        self.images = images
        self.content = content

    async def scan(self, name: str, *, external: bool = True) -> ScanReport:
        """Scan image ``name`` (a tag, digest reference or id); NotFound if it is not here."""
        image_id = await self.images.resolve(name)
        md = self.images.metadata
        row = await md.run(md.get_image, image_id)
        if row is None:
            raise NotFound(f"No such image: {name}")
        config = await self.images.config(image_id)
        manifest_digest = Digest.parse(row.manifest_digest)
        try:
            raw = await asyncio.to_thread(self.content.read, manifest_digest, MAX_MANIFEST_SIZE)
        except NotFound:
            raise NotFound(
                f"image {name} has no manifest in the content store; pull it again to scan it"
            ) from None
        manifest = parse_manifest(raw, row.manifest_media_type)
        if not isinstance(manifest, Manifest):
            raise PortsideError(f"image {name} points at an index, not an image; cannot scan it")
        paths = [self.content.path(layer.digest) for layer in manifest.layers]
        missing = [
            str(layer.digest) for layer in manifest.layers if not self.content.has(layer.digest)
        ]
        if missing:
            raise NotFound(
                f"layer blob {missing[0]} of {name} is not in the content store; pull the "
                "image again to scan it"
            )
        files = await asyncio.to_thread(walk_layers, paths, is_package_database)
        report = ScanReport(
            image=name,
            image_id=image_id,
            layers=len(paths),
            files=len(files.files),
            packages=find_packages(files.contents),
            findings=sorted([*config_findings(config), *file_findings(files)]),
        )
        program = find_scanner() if external else None
        if program is not None:
            blobs = [manifest.config.digest, *(layer.digest for layer in manifest.layers)]
            vulns, note = await run_scanner(
                program, self.content, manifest_digest, manifest.media_type, blobs
            )
            report.vulnerabilities = vulns
            report.scanner_note = note
        elif not external:
            report.scanner_note = "external scanners not asked for"
        return report
