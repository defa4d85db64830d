"""``tui.registries.list_registries`` against a real docker config: ``auths`` entries, a real
``docker-credential-*`` helper program (a file-backed store speaking the helper protocol),
image references and a broken helper, each giving the right row and login state."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli_registry import HELPER
from tui.registries import RegistryProblem, list_registries, logout, split_target


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-filestore"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    store = tmp_path / "helper-store.json"
    store.write_text(json.dumps({"helped.example:5000": {"Username": "carol", "Secret": "s3cret"}}))
    monkeypatch.setenv("WIRE8_CRED_FILE", str(store))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


async def test_rows_from_config_helper_and_images(config_dir: Path) -> None:
    basic = base64.b64encode(b"alice:pw").decode()
    (config_dir / "config.json").write_text(
        json.dumps(
            {
                "auths": {"https://plain.example:5000/v1/": {"auth": basic}, "empty.example": {}},
                "credHelpers": {
                    "helped.example:5000": "filestore",
                    "broken.example": "not-installed",
                },
            }
        )
    )
    refs = ["plain.example:5000/team/app", "busybox", "library/alpine", "localhost/x"]
    rows, problem = await list_registries(None, refs)
    assert problem == ""
    by_host = {row.host: row for row in rows}
    assert set(by_host) == {
        "plain.example:5000",
        "empty.example",
        "helped.example:5000",
        "broken.example",
        "docker.io",
        "localhost",
    }
    plain = by_host["plain.example:5000"]
    assert (plain.logged_in, plain.username, plain.store) == (True, "alice", "config.json")
    assert plain.sources == ("login", "images") and plain.images == 1
    helped = by_host["helped.example:5000"]
    assert (helped.logged_in, helped.username, helped.store) == (True, "carol", "helper filestore")
    assert not by_host["empty.example"].logged_in
    broken = by_host["broken.example"]
    assert not broken.logged_in
    assert broken.problem.startswith("credential helper docker-credential-not-installed is not")
    assert by_host["docker.io"].images == 2 and by_host["docker.io"].sources == ("images",)
    assert "pw" not in repr(rows) and "s3cret" not in repr(rows)

    # logging out through the helper erases it there
    assert await logout("helped.example:5000") == "Logged out of helped.example:5000"
    rows, _ = await list_registries(None, [])
    assert not {row.host: row for row in rows}["helped.example:5000"].logged_in


async def test_broken_config_is_one_line(config_dir: Path) -> None:
    (config_dir / "config.json").write_text("{not json")
    rows, problem = await list_registries(None, ["plain.example:5000/app"])
    assert problem == f"{config_dir / 'config.json'} is not valid JSON; fix or remove it"
    assert [row.host for row in rows] == ["plain.example:5000"]


def test_push_targets() -> None:
    assert split_target("reg.example:5000/team/app") == ("reg.example:5000/team/app", "latest")
    assert split_target("reg.example:5000/team/app:2") == ("reg.example:5000/team/app", "2")
    for bad, message in [
        ("", "type where to push"),
        ("app:1", "give the registry and repository"),
        ("reg.example/app@sha256:" + "a" * 64, "cannot push to a digest"),
        ("reg.example/team app", "type where to push"),
    ]:
        with pytest.raises(RegistryProblem) as err:
            split_target(bad)
        assert err.value.message.startswith(message), bad
