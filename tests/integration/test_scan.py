"""Scanning images pulled from the real registry: planted packages, keys, setuid and
world-writable files, secrets in env and history; and the merged view against the fixture's
independent flattening of the layered test image."""

from __future__ import annotations

import json

import pytest

from engine.digest import Digest
from engine.engine import Engine
from engine.errors import NotFound
from engine.oci import Manifest, parse_manifest
from engine.scan import Scanner, format_text
from engine.scan.packages import is_package_database
from engine.scan.walk import walk_layers
from engine.store.tarstream import DIR, REG
from tests.fixtures import layers as L
from tests.fixtures.images import BuiltImage

OPENSSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
RSA_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAzzzz\n-----END RSA PRIVATE KEY-----\n"
DPKG_STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
"""
APK_INSTALLED = """C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
o:musl

C:Q1def=
P:busybox
V:1.36.1-r5
A:x86_64
o:busybox
"""
SITE = "usr/lib/python3.11/site-packages"
SECRET_ENV = "hunter2-not-a-real-password"
SECRET_HISTORY = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


def planted_layers() -> list[list[L.Item]]:
    first = [
        L.directory("var"),
        L.directory("var/lib"),
        L.directory("var/lib/dpkg"),
        L.file("var/lib/dpkg/status", DPKG_STATUS),
        L.directory("lib"),
        L.directory("lib/apk"),
        L.directory("lib/apk/db"),
        L.file("lib/apk/db/installed", APK_INSTALLED),
        L.directory("usr"),
        L.directory("usr/lib"),
        L.directory("usr/lib/python3.11"),
        L.directory(SITE),
        L.directory(f"{SITE}/requests-2.31.0.dist-info"),
        L.file(
            f"{SITE}/requests-2.31.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\nName: not-this\n",
        ),
        L.directory("app"),
        L.file("app/package.json", '{"name": "my-app", "version": "0.0.1"}'),
        L.directory("app/node_modules"),
        L.directory("app/node_modules/left-pad"),
        L.file("app/node_modules/left-pad/package.json", '{"name":"left-pad","version":"1.3.0"}'),
        L.directory("app/node_modules/@types"),
        L.directory("app/node_modules/@types/node"),
        L.file(
            "app/node_modules/@types/node/package.json", '{"name":"@types/node","version":"20.1.0"}'
        ),
        L.directory("root", 0o700),
        L.directory("root/.ssh", 0o700),
        L.file("root/.ssh/id_ed25519", OPENSSH_KEY, 0o600),
        L.directory("etc"),
        L.directory("etc/ssl"),
        L.directory("etc/ssl/private", 0o700),
        L.file("etc/ssl/private/server.key", RSA_KEY, 0o600),
        L.directory("usr/bin"),
        L.file("usr/bin/suid-helper", "#!/bin/sh\n", 0o4755),
        L.file("usr/bin/sgid-helper", "#!/bin/sh\n", 0o2755, gid=50),
        L.directory("data"),
        L.file("data/open.txt", "was world-writable\n", 0o666),
        L.file("data/shared.txt", "world-writable\n", 0o666),
        L.directory("data/dropbox", 0o777),
        L.directory("tmp", 0o1777),
    ]
    second = [
        L.directory("etc"),
        L.directory("etc/ssl"),
        L.directory("etc/ssl/private", 0o700),
        L.whiteout("etc/ssl/private/server.key"),
        L.directory("data"),
        L.file("data/open.txt", "fixed\n", 0o644),
        L.directory("usr"),
        L.directory("usr/lib"),
        L.directory("usr/lib/python3.11"),
        L.directory(SITE),
        L.directory(f"{SITE}/six-1.16.0.dist-info"),
        L.file(f"{SITE}/six-1.16.0.dist-info/METADATA", "Name: six\nVersion: 1.16.0\n"),
    ]
    return [first, second]


PLANTED_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Env": [
            "PATH=/usr/bin:/bin",
            f"DB_PASSWORD={SECRET_ENV}",
            "API_TOKEN_FILE=/run/secrets/token",
            "GREETING=hello",
        ],
        "Cmd": ["sh"],
    },
    "history": [
        {"created_by": f"/bin/sh -c #(nop) ENV AWS_SECRET_ACCESS_KEY={SECRET_HISTORY}"},
        {"created_by": "/bin/sh -c #(nop) COPY dir:abc in /"},
    ],
}


@pytest.fixture(scope="module")
def planted(push_image) -> str:
    return push_image("test/planted:1", planted_layers(), config=PLANTED_CONFIG)


async def test_scan_reports_planted_facts(engine: Engine, planted: str) -> None:
    await engine.images.pull(planted)
    report = await Scanner(engine.images, engine.content).scan(planted)
    packages = {(p.type, p.name, p.version) for p in report.packages}
    assert packages == {
        ("deb", "libc6", "2.36-9+deb12u4"),
        ("deb", "bash", "5.2.15-2+b2"),
        ("apk", "musl", "1.2.4-r2"),
        ("apk", "busybox", "1.36.1-r5"),
        ("python", "requests", "2.31.0"),
        ("python", "six", "1.16.0"),
        ("npm", "left-pad", "1.3.0"),
        ("npm", "@types/node", "20.1.0"),
    }
    libc = next(p for p in report.packages if p.name == "libc6")
    assert libc.source == "glibc" and libc.arch == "amd64" and libc.path == "var/lib/dpkg/status"

    found = {(f.kind, f.message) for f in report.findings}
    assert found == {
        ("root-user", "runs as root (no User is set)"),
        ("secret-env", "environment variable DB_PASSWORD holds a secret value"),
        ("secret-history", "build history step 1 contains AWS_SECRET_ACCESS_KEY"),
        ("no-healthcheck", "no healthcheck is defined"),
        ("setuid", "/usr/bin/suid-helper is setuid (mode 4755, owner uid 0)"),
        ("setgid", "/usr/bin/sgid-helper is setgid (mode 2755, group gid 50)"),
        ("world-writable", "/data/shared.txt is a world-writable file (mode 0666)"),
        ("world-writable", "/data/dropbox is a world-writable directory (mode 0777)"),
        (
            "private-key",
            "OPENSSH private key in /root/.ssh/id_ed25519 (layer 1; present in the image)",
        ),
        (
            "private-key",
            "RSA private key in /etc/ssl/private/server.key (layer 1; removed later, but "
            "still inside that layer's blob)",
        ),
    }
    assert report.layers == 2
    text = format_text(report)
    dumped = json.dumps(report.to_json())
    for secret in (SECRET_ENV, SECRET_HISTORY, "MIIEowIBAAKCAQEA"):
        assert secret not in text and secret not in dumped
    assert "Packages: 2 apk, 2 deb, 2 npm, 2 python" in text
    assert text.index("[HIGH") < text.index("[MEDIUM") < text.index("[LOW")
    doc = report.to_json()
    assert doc["Vulnerabilities"] is None
    assert {f["Kind"] for f in doc["Findings"]} >= {"private-key", "setuid"}


async def test_scan_layered_image_and_merged_view(
    engine: Engine, pushed_images: dict[str, str], test_images: dict[str, BuiltImage]
) -> None:
    image = test_images["test/layered:1"]
    name = pushed_images["test/layered:1"]
    image_id = await engine.images.pull(name)
    report = await Scanner(engine.images, engine.content).scan(image_id[7:19])
    setids = {(f.kind, f.path) for f in report.findings if f.kind in ("setuid", "setgid")}
    assert setids == {("setuid", "opt/bin/suid-tool"), ("setgid", "opt/bin/sgid-tool")}
    writable = {f.path for f in report.findings if f.kind == "world-writable"}
    assert writable == set()  # /tmp, /var/tmp and data/sticky are sticky; data/null a device
    assert report.packages == []
    assert "root-user" in report.kinds() and "private-key" not in report.kinds()

    # The merged view equals the fixture's own flattening, path for path and mode for mode.
    row = await engine.metadata.run(engine.metadata.get_image, image_id)
    assert row is not None
    manifest = parse_manifest(engine.content.read(Digest.parse(row.manifest_digest)))
    assert isinstance(manifest, Manifest)
    paths = [engine.content.path(layer.digest) for layer in manifest.layers]
    merged = walk_layers(paths, is_package_database)
    assert image.expected is not None
    expected = {p for p in image.expected if p}
    assert set(merged.files) == expected
    for path, info in merged.files.items():
        if info.type in (REG, DIR):
            assert info.mode == image.expected[path].mode, path
    assert report.files == len(expected)


async def test_scan_unknown_image(engine: Engine) -> None:
    with pytest.raises(NotFound) as info:
        await Scanner(engine.images, engine.content).scan("nothing/here:1")
    assert str(info.value) == "No such image: nothing/here:1"
