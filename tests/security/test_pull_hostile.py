"""Hostile images pulled end to end from a real registry: nothing escapes, nothing partial.

Layer-level attacks are covered entry by entry in test_layer_hostile.py; here each attack
travels the whole way (registry -> content store -> unpacker) and the store is checked
afterwards: no image record, no tag, no committed snapshot of the bad layer, and no file
written outside the engine's snapshot directories.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import PortsideError
from tests.fixtures.engine import engine_config
from tests.fixtures.layers import directory, file, symlink


def _escaped(base: Path, marker: str) -> list[Path]:
    """Files named ``marker`` anywhere under ``base`` but outside snapshot trees."""
    found = []
    for path in base.rglob(marker):
        if "snapshots" not in path.relative_to(base).parts:
            found.append(path)
    return found


@pytest.fixture
async def hostile_engine(tmp_path):
    eng = await Engine.open(engine_config(tmp_path / "deep" / "er" / "root"))
    try:
        yield eng
    finally:
        await eng.close()


async def _assert_no_image(eng: Engine) -> None:
    assert await eng.images.list_images() == []
    md = eng.metadata
    assert await md.run(md.all_tags) == {}


async def test_wrong_diff_id_is_refused(hostile_engine: Engine, push_image):
    ref = push_image("hostile/diffid:1", [[file("a", "x")], [file("b", "y")]], bad_diff_id=True)
    with pytest.raises(PortsideError, match=r"(?i)diff ?id"):
        await hostile_engine.images.pull(ref)
    await _assert_no_image(hostile_engine)
    # The good first layer may stay as a reusable snapshot; the bad one is never committed.
    assert len(hostile_engine.snapshots.list()) <= 1


@pytest.mark.parametrize(
    "name",
    ["../../../../escaped-dotdot", "a/../../../../../escaped-dotdot", "/../escaped-dotdot"],
)
async def test_traversal_entries(hostile_engine: Engine, push_image, tmp_path, name):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    ref = push_image(f"hostile/trav{zlib.crc32(name.encode())}:1", [buf.getvalue()])
    try:
        await hostile_engine.images.pull(ref)
    except PortsideError:
        await _assert_no_image(hostile_engine)
    assert _escaped(tmp_path, "escaped-dotdot") == []


@pytest.mark.parametrize("target", ["/", "../../../../../..", "/tmp/../.."])
async def test_symlink_escape_across_layers(hostile_engine: Engine, push_image, tmp_path, target):
    ref = push_image(
        f"hostile/link{zlib.crc32(target.encode())}:1",
        [[symlink("evil", target)], [directory("evil"), file("evil/escaped-link", "pwned")]],
    )
    try:
        await hostile_engine.images.pull(ref)
    except PortsideError:
        await _assert_no_image(hostile_engine)
    assert _escaped(tmp_path, "escaped-link") == []
    assert not Path("/escaped-link").exists()


async def test_symlink_escape_within_layer(hostile_engine: Engine, push_image, tmp_path):
    ref = push_image(
        "hostile/samelayer:1", [[symlink("evil", "/"), file("evil/escaped-same", "pwned")]]
    )
    try:
        await hostile_engine.images.pull(ref)
    except PortsideError:
        await _assert_no_image(hostile_engine)
    assert _escaped(tmp_path, "escaped-same") == []
    assert not Path("/escaped-same").exists()


async def test_config_layer_count_mismatch(hostile_engine: Engine, registry, tmp_path):
    """A config whose diff_ids do not match the manifest's layers is refused up front."""
    from tests.fixtures.layers import compress, layer_tar
    from tests.fixtures.oci import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, OciLayout

    layout = OciLayout(tmp_path / "layout")
    tar = layer_tar([file("a", "x")])
    layer = layout.add_layer(tar, compress(tar, "gzip"), OCI_LAYER_GZIP)
    config = layout.add_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id, layer.diff_id]},
        },
        OCI_CONFIG,
    )
    manifest = layout.add_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.descriptor.to_json()],
        },
        OCI_MANIFEST,
    )
    layout.tag(manifest, "latest")
    ref = registry.push(layout.root, "hostile/count:1")
    with pytest.raises(PortsideError, match="2 layers but the manifest has 1"):
        await hostile_engine.images.pull(ref)
    await _assert_no_image(hostile_engine)
    assert hostile_engine.snapshots.list() == []
