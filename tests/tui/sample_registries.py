"""Fixed data for the registries panel, the registry browser, the push dialog and the scan
view (snapshots and README screenshots). The answers are shaped like portside's
``/portside/v1`` endpoints (catalog, tags, manifests, scan) and dockerd's push stream, and go
through the same rendering as live ones."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui import sample_data
from tui.messages import DocumentLoaded
from tui.registries import RegistryRow
from tui.screens.registry_browse import ManifestScreen, RepositoriesScreen, TagsScreen
from tui.screens.registry_push import PushEvent, PushScreen
from tui.screens.scan import ScanScreen

REGISTRY_ROWS = [
    RegistryRow(
        "registry.local:5000",
        logged_in=True,
        username="alice",
        store="config.json",
        sources=("login", "images"),
        images=4,
    ),
    RegistryRow(
        "ghcr.io",
        logged_in=True,
        username="shop-ci",
        store="helper pass",
        sources=("helper",),
    ),
    RegistryRow(
        "docker.io",
        sources=("engine", "images"),
        secure=True,
        mirrors=("https://mirror.local:5001",),
        images=2,
    ),
    RegistryRow("mirror.local:5001", sources=("mirror",)),
    RegistryRow("10.0.0.7:5000", sources=("engine",), secure=False),
    RegistryRow(
        "quay.io",
        sources=("helper",),
        problem="credential helper docker-credential-secretservice is not on PATH",
    ),
]

REPOSITORIES = ["shop/api", "shop/db-migrate", "shop/web", "shop/worker", "tools/busybox"]
TAGS = ["2.2", "2.3", "2.4", "latest"]
WEB = "registry.local:5000/shop/web"

MANIFEST_JSON: dict[str, Any] = {
    "Reference": f"{WEB}:2.4",
    "Digest": "sha256:7d3e1f0b2a4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e1f",
    "MediaType": "application/vnd.oci.image.manifest.v1+json",
    "Size": 1093,
    "Config": {
        "Digest": "sha256:9b1f0e2d3c4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344",
        "MediaType": "application/vnd.oci.image.config.v1+json",
        "Size": 2841,
        "Platform": "linux/amd64",
        "Created": "2025-12-30T16:42:05Z",
        "User": "app",
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "PORT=8080"],
        "Entrypoint": ["/usr/local/bin/web"],
        "Cmd": ["--port", "8080"],
        "WorkingDir": "/srv",
        "ExposedPorts": ["8080/tcp"],
        "Labels": {"org.opencontainers.image.source": "https://git.local/shop/web"},
        "History": 7,
    },
    "Layers": [
        {
            "Digest": "sha256:1f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071",
            "MediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "Size": 29_126_484,
        },
        {
            "Digest": "sha256:2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819",
            "MediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "Size": 4_194_304,
        },
        {
            "Digest": "sha256:3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b",
            "MediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "Size": 18_874_368,
        },
        {
            "Digest": "sha256:4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c",
            "MediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "Size": 912,
        },
    ],
    "TotalSize": 52_198_909,
}

PUSH_EVENTS: list[dict[str, Any]] = [
    {"status": f"The push refers to repository [{WEB}]"},
    {"status": "Preparing", "progressDetail": {}, "id": "4d5e6f708192"},
    {"status": "Preparing", "progressDetail": {}, "id": "3c4d5e6f7081"},
    {"status": "Preparing", "progressDetail": {}, "id": "1f2e3d4c5b6a"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "1f2e3d4c5b6a"},
    {
        "status": "Pushing",
        "progressDetail": {"current": 11_010_048, "total": 18_874_368},
        "progress": "[=============>      ]  11.01MB/18.87MB",
        "id": "3c4d5e6f7081",
    },
    {"status": "Pushed", "progressDetail": {}, "id": "4d5e6f708192"},
]

SCAN_JSON: dict[str, Any] = {
    "Image": f"{WEB}:2.4",
    "Id": MANIFEST_JSON["Config"]["Digest"],
    "Layers": 4,
    "Files": 3127,
    "Packages": [
        {
            "Type": "deb",
            "Name": "libc6",
            "Version": "2.36-9+deb12u4",
            "Path": "/var/lib/dpkg/status",
        },
        {
            "Type": "deb",
            "Name": "openssl",
            "Version": "3.0.11-1~deb12u2",
            "Path": "/var/lib/dpkg/status",
        },
        {
            "Type": "deb",
            "Name": "zlib1g",
            "Version": "1:1.2.13.dfsg-1",
            "Path": "/var/lib/dpkg/status",
        },
        {
            "Type": "python",
            "Name": "requests",
            "Version": "2.31.0",
            "Path": "/usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        },
        {
            "Type": "npm",
            "Name": "left-pad",
            "Version": "1.3.0",
            "Path": "/srv/node_modules/left-pad/package.json",
        },
    ],
    "Findings": [
        {
            "Kind": "private-key",
            "Severity": "high",
            "Message": "private key file /root/.ssh/id_ed25519",
            "Path": "/root/.ssh/id_ed25519",
            "Layer": 2,
        },
        {
            "Kind": "secret-env",
            "Severity": "high",
            "Message": "environment variable DB_PASSWORD holds a secret value",
        },
        {
            "Kind": "setuid",
            "Severity": "medium",
            "Message": "setuid file /usr/bin/suid-helper (mode 4755)",
            "Path": "/usr/bin/suid-helper",
            "Layer": 1,
        },
        {
            "Kind": "world-writable",
            "Severity": "low",
            "Message": "world-writable file /data/shared.txt (mode 666)",
            "Path": "/data/shared.txt",
            "Layer": 1,
        },
    ],
    "Vulnerabilities": [
        {
            "ID": "CVE-2024-5535",
            "Package": "openssl",
            "Version": "3.0.11-1~deb12u2",
            "Severity": "critical",
            "FixedVersion": "3.0.14-1~deb12u1",
            "Title": "openssl: SSL_select_next_proto buffer overread",
            "Scanner": "trivy",
        },
        {
            "ID": "CVE-2023-5678",
            "Package": "openssl",
            "Version": "3.0.11-1~deb12u2",
            "Severity": "medium",
            "FixedVersion": "3.0.13-1~deb12u1",
            "Title": "openssl: Generating excessively long X9.42 DH keys is slow",
            "Scanner": "trivy",
        },
    ],
    "Scanner": "vulnerabilities from trivy",
}


async def load(pilot: Pilot[Any]) -> None:
    """``sample_data.load``, then the registries panel with ``REGISTRY_ROWS``."""
    await sample_data.load(pilot)
    await open_registries(pilot)


async def open_registries(pilot: Pilot[Any]) -> None:
    """The registries panel with ``REGISTRY_ROWS``."""
    await pilot.press("6")
    pilot.app.main.registries.show_rows(REGISTRY_ROWS)  # type: ignore[attr-defined]
    await sample_data.settle(pilot)


async def _loaded(pilot: Pilot[Any], screen: Any, data: Any) -> None:
    await pilot.app.push_screen(screen)
    await sample_data.settle(pilot)
    screen.post_message(DocumentLoaded(data))
    await sample_data.settle(pilot)


async def open_catalog(pilot: Pilot[Any]) -> None:
    await _loaded(pilot, RepositoriesScreen("registry.local:5000", autoload=False), REPOSITORIES)


async def open_catalog_forbidden(pilot: Pilot[Any]) -> None:
    screen = RepositoriesScreen("ghcr.io", autoload=False)
    await _loaded(pilot, screen, {"forbidden": "authentication required to list the catalog"})


async def open_tags(pilot: Pilot[Any]) -> None:
    await _loaded(pilot, TagsScreen(WEB, autoload=False), TAGS)


async def open_manifest(pilot: Pilot[Any]) -> None:
    await _loaded(pilot, ManifestScreen(f"{WEB}:2.4", autoload=False), MANIFEST_JSON)


async def open_push(pilot: Pilot[Any]) -> None:
    """The push dialog part-way through ``PUSH_EVENTS`` (the worker is not started)."""
    screen = PushScreen("shop/web:2.4", f"{WEB}:2.4")
    await pilot.app.push_screen(screen)
    await sample_data.settle(pilot)
    screen.begin(f"{WEB}:2.4", "shop/web:2.4")
    for event in PUSH_EVENTS:
        screen.post_message(PushEvent(event))
    await sample_data.settle(pilot)


async def open_scan(pilot: Pilot[Any]) -> None:
    await _loaded(pilot, ScanScreen(f"{WEB}:2.4", autoload=False), SCAN_JSON)
