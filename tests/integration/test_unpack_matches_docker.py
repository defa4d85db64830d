"""Acceptance: an image unpacks to the same file tree as ``docker export`` of it on dockerd.

Paths, types, modes, owners, link targets, device numbers and contents are compared
entry by entry, for both snapshotters (overlay and the copy fallback). ``docker export``
drops user xattrs, so those are compared against the expected tree instead.
"""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest

from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.store.snapshots import merged_view
from tests.fixtures.engine import engine_config
from tests.fixtures.trees import (
    diff_trees,
    tree_of_dir,
    tree_of_tar,
    without_docker_additions,
    without_xattrs,
)


def _docker_export_tree(dockerd: Any, ref: str) -> dict:
    dockerd.docker("pull", ref)
    cid = dockerd.docker("create", ref).stdout.strip()
    try:
        exported = subprocess.run(
            [dockerd.cli, "export", cid],
            env=dockerd.env,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    finally:
        dockerd.docker("rm", "-f", cid)
    return without_docker_additions(tree_of_tar(io.BytesIO(exported)))


async def _portside_tree(tmp_path, ref: str, snapshotter: str) -> dict:
    config = engine_config(tmp_path / f"root-{snapshotter}", snapshotter=snapshotter)
    eng = await Engine.open(config)
    try:
        assert eng.snapshots.driver == snapshotter
        image_id = await eng.images.pull(ref)
        info = await eng.images.inspect(image_id)
        top = chain_ids([Digest.parse(d) for d in info["RootFS"]["Layers"]])[-1]
        async with merged_view(eng.snapshots, top) as path:
            return without_docker_additions(tree_of_dir(path))
    finally:
        await eng.close()


@pytest.mark.parametrize("snapshotter", ["overlay", "copy"])
@pytest.mark.parametrize("name", ["test/layered-docker:1", "test/busybox2:1"])
async def test_same_tree_as_docker_export(
    tmp_path, dockerd, pushed_images, test_images, snapshotter, name
):
    ref = pushed_images[name]
    want = _docker_export_tree(dockerd, ref)
    got = await _portside_tree(tmp_path, ref, snapshotter)
    assert diff_trees(want, without_xattrs(got)) == []
    # xattrs (which docker export cannot show) match the image's own expected tree.
    expected = test_images[name].expected
    assert expected is not None
    assert diff_trees(without_docker_additions(expected), got) == []


@pytest.mark.parametrize("snapshotter", ["overlay", "copy"])
@pytest.mark.parametrize("name", ["test/layered:1", "test/docker-mt:1"])
async def test_images_dockerd_cannot_pull_match_the_spec(
    tmp_path, pushed_images, test_images, snapshotter, name
):
    """zstd layers and hardlinks into lower layers (beyond dockerd 20.10): the spec's tree."""
    got = await _portside_tree(tmp_path, pushed_images[name], snapshotter)
    expected = test_images[name].expected
    assert expected is not None
    assert diff_trees(without_docker_additions(expected), got) == []
