"""Fixtures for engine-level integration tests: an Engine on a temporary root."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.engine import Engine


def engine_config(root: Path, **kw: object) -> EngineConfig:
    """A config that touches nothing outside ``root`` (no ~/.docker, no host certs.d)."""
    docker_config = root.parent / f"{root.name}-docker-config"
    docker_config.mkdir(parents=True, exist_ok=True)
    return EngineConfig(root=root, docker_config=docker_config, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await Engine.open(engine_config(tmp_path / "root"))
    try:
        yield eng
    finally:
        await eng.close()


def portside(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``portside`` command line (as a user types it) and capture its output."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PORTSIDE_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
    )


def _push_image(
    registry,
    tmp: Path,
    name: str,
    layers_items: list,
    *,
    config: dict | None = None,
    bad_diff_id: bool = False,
) -> str:
    """Build an OCI layout from layer item lists, push it, return the reference."""
    from tests.fixtures.layers import compress, layer_tar
    from tests.fixtures.oci import OCI_LAYER_GZIP, OciLayout

    layout = OciLayout(tmp / name.replace("/", "_").replace(":", "_"))
    layers = []
    for items in layers_items:
        tar = items if isinstance(items, bytes) else layer_tar(items)
        layers.append(layout.add_layer(tar, compress(tar, "gzip"), OCI_LAYER_GZIP))
    if bad_diff_id:
        from dataclasses import replace

        layers[-1] = replace(layers[-1], diff_id="sha256:" + "0" * 64)
    cfg = config or {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    manifest, _ = layout.add_image(layers, cfg)
    layout.tag(manifest, "latest")
    return registry.push(layout.root, name)


@pytest.fixture(scope="session")
def big_image(registry, tmp_path_factory) -> str:
    """An image with 3 layers of 24 MB incompressible data: slow enough to kill a pull."""
    from tests.fixtures.layers import file

    tmp = tmp_path_factory.mktemp("big-image")
    layers = [[file(f"data/{i}.bin", os.urandom(24 << 20))] for i in range(3)]
    return _push_image(registry, tmp, "test/big:1", layers)


@pytest.fixture(scope="session")
def push_image(registry, tmp_path_factory):
    """Push an ad-hoc image built from layer item lists; returns its reference."""
    tmp = tmp_path_factory.mktemp("adhoc-images")

    def push(name: str, layers_items: list, **kw: object) -> str:
        return _push_image(registry, tmp, name, layers_items, **kw)

    return push
