"""Fixtures for dashboard tests: the busybox test image inside the fixture dockerd, and a
per-test name prefix whose containers and images are removed afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def busybox(dockerd: Any, pushed_images: dict[str, str]) -> str:
    """Reference of "test/busybox:1" from the fixture registry, present in dockerd."""
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
