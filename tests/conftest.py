"""Shared pytest fixtures: real registries (plain, TLS+htpasswd, token), test images, dockerd.

Everything is session-scoped (started once, on first use) and listens on 127.0.0.1 only.
Implementations live in ``tests/fixtures/``; this file only wires them into pytest.

- ``registry`` / ``registry_tls`` / ``registry_token``: ``RegistryFixture``
- ``test_images``: ``{"test/busybox:1": BuiltImage, ...}`` (OCI layouts + expected trees)
- ``pushed_images`` / ``pushed_images_tls`` / ``pushed_images_token``: ``{name: full ref}``
- ``dockerd``: ``DockerdFixture`` (tests using it are marked ``dockerd`` automatically)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.engine import Engine
from tests.fixtures.dockerd import DockerdFixture, start_dockerd
from tests.fixtures.engine import _push_image, engine_config
from tests.fixtures.images import BuiltImage, build_all
from tests.fixtures.registry import RegistryFixture, start_registry


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "dockerd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dockerd)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """Plain HTTP registry, no auth, delete enabled."""
    with start_registry("plain", tmp_path_factory.mktemp("registry-plain")) as reg:
        yield reg


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """HTTPS registry (test CA) with htpasswd auth: user "alice", random password."""
    with start_registry("tls", tmp_path_factory.mktemp("registry-tls")) as reg:
        yield reg


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFixture]:
    """HTTPS registry with Bearer-token auth from a token server (``token_server_url``)."""
    with start_registry("token", tmp_path_factory.mktemp("registry-token")) as reg:
        yield reg


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltImage]:
    """Every test image, built once per session, keyed "repository:tag"."""
    return build_all(tmp_path_factory.mktemp("images"))


def _push_all(
    reg: RegistryFixture, images: dict[str, BuiltImage], extra: dict[str, str] | None = None
) -> dict[str, str]:
    refs = {name: reg.push(image.skopeo_source, name) for name, image in images.items()}
    for name, source in (extra or {}).items():
        refs[name] = reg.push(images[source].skopeo_source, name)
    return refs


@pytest.fixture(scope="session")
def pushed_images(registry: RegistryFixture, test_images: dict[str, BuiltImage]) -> dict[str, str]:
    """Test images in ``registry``: {"test/busybox:1": "127.0.0.1:PORT/test/busybox:1", ...}."""
    return _push_all(registry, test_images)


@pytest.fixture(scope="session")
def pushed_images_tls(
    registry_tls: RegistryFixture, test_images: dict[str, BuiltImage]
) -> dict[str, str]:
    """Test images in ``registry_tls`` (same names as ``pushed_images``)."""
    return _push_all(registry_tls, test_images)


@pytest.fixture(scope="session")
def pushed_images_token(
    registry_token: RegistryFixture, test_images: dict[str, BuiltImage]
) -> dict[str, str]:
    """Test images in ``registry_token``, plus "public/busybox:1" (anonymous pull allowed)."""
    return _push_all(registry_token, test_images, {"public/busybox:1": "test/busybox:1"})


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerdFixture]:
    """A private dockerd 20.10 (overlay2, else vfs); ``dockerd.docker(...)`` runs the CLI."""
    with start_dockerd() as daemon:
        yield daemon


# -- engine-level fixtures -----------------------------------------------------------------


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An Engine on a temporary root that touches nothing outside it."""
    eng = await Engine.open(engine_config(tmp_path / "root"))
    try:
        yield eng
    finally:
        await eng.close()


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
