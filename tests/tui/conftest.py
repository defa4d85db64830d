"""Fixtures for dashboard tests: the engine they run against, the busybox test image inside it,
and a per-test name prefix whose containers and images are removed afterwards.

``dockerd`` is overridden here: every dashboard test that asks for it runs twice, once
against the session's real dockerd and once against a ``portside serve`` (one per session,
busybox pulled from the fixture registry). Both sides offer ``.host`` and ``.docker(...)``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.portside import PortsideFixture, start_portside
from tests.fixtures.procs import short_tempdir, unmount_under
from tests.fixtures.registry import RegistryFixture

ENGINES = ("dockerd", "portside")


@pytest.fixture(scope="session")
def portside_engine(
    registry: RegistryFixture, pushed_images: dict[str, str]
) -> Iterator[PortsideFixture]:
    """A ``portside serve`` for the whole session, with the busybox test image pulled."""
    base = short_tempdir("ps-tui-")
    try:
        with start_portside(base, "--insecure-registry", registry.host) as engine:
            engine.docker("pull", pushed_images["test/busybox:1"])
            try:
                yield engine
            finally:
                engine.remove_containers()
    finally:
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=ENGINES)
def dockerd(request: pytest.FixtureRequest) -> Any:
    """The engine under test: the session dockerd, or the session ``portside serve``."""
    if request.param == "portside":
        return request.getfixturevalue("portside_engine")
    return request.getfixturevalue("dockerd")  # the session dockerd of tests/conftest.py


@pytest.fixture
def engine_kind(dockerd: Any) -> str:
    """ "portside" or "dockerd": which engine ``dockerd`` is in this test."""
    return "portside" if isinstance(dockerd, PortsideFixture) else "dockerd"


@pytest.fixture
def busybox(dockerd: Any, pushed_images: dict[str, str]) -> str:
    """Reference of "test/busybox:1" from the fixture registry, present in the engine."""
    ref = pushed_images["test/busybox:1"]
    if dockerd.docker("image", "inspect", ref, check=False).returncode != 0:
        dockerd.docker("pull", ref)
    return ref


@pytest.fixture
def scratch(dockerd: Any) -> Iterator[str]:
    """A unique name prefix; containers and image tags starting with it are removed after."""
    prefix = f"pt{secrets.token_hex(3)}"
    yield prefix
    ids = dockerd.docker("ps", "-aq", "--filter", f"name=^/{prefix}", check=False).stdout.split()
    if ids:
        dockerd.docker("rm", "-f", *ids, check=False)
    listing = dockerd.docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", check=False
    ).stdout.split()
    tags = [tag for tag in listing if tag.startswith(prefix)]
    if tags:
        dockerd.docker("rmi", "-f", *tags, check=False)
