"""``portside version`` as typed, against ``portside serve`` and the fixture dockerd: the
client part always, the engine's part as the docker CLI reads it, exit 1 without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.portside import PortsideFixture, private_portside


@pytest.fixture(scope="module")
def serve() -> Iterator[PortsideFixture]:
    with private_portside("pv-") as engine:
        yield engine


def portside(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "DOCKER_"))}
    env["PORTSIDE_CMDSERVER"] = "0"
    return subprocess.run(
        [str(Path(sys.executable).with_name("portside")), "version", "--host", host, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("engine", ["portside", "dockerd"])
def test_version_names_both_sides(engine: str, request: pytest.FixtureRequest) -> None:
    target: Any = request.getfixturevalue("serve" if engine == "portside" else "dockerd")
    server_version = target.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    shown = portside(target.host)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Client: portside"
    assert f" Version:           {server_version}" in lines[lines.index("") :]
    assert any(line.startswith(" API version:") for line in lines)
    as_json = json.loads(portside(target.host, "--format", "json").stdout)
    assert as_json["Server"]["Version"] == server_version
    assert as_json["Client"]["PythonVersion"] == ".".join(map(str, sys.version_info[:3]))


def test_an_unreachable_engine_still_shows_the_client(tmp_path: Path) -> None:
    shown = portside(f"unix://{tmp_path}/none.sock")
    assert shown.returncode == 1
    assert shown.stdout.startswith("Client: portside\n") and "Server" not in shown.stdout
    assert "cannot reach the engine" in shown.stderr and "Traceback" not in shown.stderr
