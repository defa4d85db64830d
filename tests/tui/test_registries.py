"""The registries panel against real engines and registries, driven with keys.

On each engine (dockerd and ``portside serve``, both trusting the htpasswd+TLS registry):
a wrong password is refused and nothing is stored; the right one is verified through
``/auth`` and stored in the user's config.json (mode 0600); a local image is pushed from
the panel with per-layer progress, and the digest it reports is the one the registry
serves; browsing lists the catalog on portside and, on dockerd, explains in one line that
it needs a portside engine; logout erases the entry. A second test browses on portside:
tags are refused before login (the repository typed by name), then catalog -> tags ->
index -> platform manifest match the registry, and ``p`` pulls that manifest.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.portside import PortsideFixture
from tests.fixtures.registry import RegistryFixture
from tests.integration.test_cli_registry import remote_digest
from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.registries import NOT_PORTSIDE
from tui.screens.confirm import ConfirmScreen
from tui.screens.pull import PullScreen
from tui.screens.registry_browse import ManifestScreen, RepositoriesScreen, TagsScreen
from tui.screens.registry_login import LoginScreen
from tui.screens.registry_push import PushScreen
from tui.widgets.header import CONNECTED
from tui.widgets.layer_progress import LayerList

BUSYBOX = "test/busybox:1"


def trust(engine: Any, kind: str, reg: RegistryFixture) -> None:
    """Make ``engine`` trust the TLS registry's CA (dockerd: /etc/docker/certs.d; portside:
    the certs.d under its root)."""
    if kind == "dockerd":
        engine.trust(reg)
        return
    assert reg.ca_file is not None
    certs = engine.root / "certs.d" / reg.host
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reg.ca_file, certs / "ca.crt")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard user's own DOCKER_CONFIG directory (empty at first)."""
    path = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


def auths(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "config.json"
    return json.loads(path.read_text()).get("auths", {}) if path.exists() else {}


def panel_row(app: PortsideApp, host: str) -> Any:
    return app.main.registries.table.rows_by_key.get(host)


async def open_panel(pilot: Any, app: PortsideApp) -> None:
    await wait_for(pilot, lambda: app.status == CONNECTED, "engine connected")
    await wait_for(pilot, lambda: app.images, "image list")
    await pilot.press("6")
    panel = app.main.registries
    await wait_for(pilot, lambda: panel.loads >= 1, "registries listed")
    header = app.main.header
    assert header.panel == "registries" and " 6 Reg" in header.render().plain


async def select_host(pilot: Any, app: PortsideApp, host: str) -> None:
    table = app.main.registries.table
    await wait_for(pilot, lambda: host in table.rows_by_key, f"{host} listed")
    assert table.select_key(host)
    table.focus()
    await pilot.pause()


async def log_in(pilot: Any, app: PortsideApp, host: str, user: str, password: str) -> LoginScreen:
    await pilot.press("l")
    await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen), "login dialog")
    screen = app.screen
    assert isinstance(screen, LoginScreen)
    screen.query_one("#login-server").value = host  # type: ignore[attr-defined]
    screen.query_one("#login-user").value = ""  # type: ignore[attr-defined]
    screen.query_one("#login-user").focus()
    await pilot.press(*user, "enter", *password, "enter")
    return screen


async def test_login_push_logout(
    dockerd: Any,
    engine_kind: str,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    busybox: str,
    docker_config: Path,
) -> None:
    trust(dockerd, engine_kind, registry_tls)
    host, password = registry_tls.host, str(registry_tls.password)
    repo_path = f"tui/{secrets.token_hex(4)}"
    target = f"{host}/{repo_path}:1"
    app = dashboard(dockerd.host)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await open_panel(pilot, app)
            # the registry of a local image is listed, not logged in
            local = panel_row(app, busybox.split("/")[0])
            assert local.images >= 1 and "images" in local.sources
            assert local.secure is False  # the engine treats it as insecure (plain http)
            assert str(app.main.registries.table.get_cell(local.host, "engine")) == "insecure"

            screen = await log_in(pilot, app, host, "alice", "wrong-" + secrets.token_hex(3))
            await wait_for(pilot, lambda: "Login failed" in screen.status_line, "refusal")
            assert "401" in screen.status_line or "unauthorized" in screen.status_line.lower()
            assert app.screen is screen
            assert host not in auths(docker_config)
            await pilot.press(*password, "enter")
            await wait_for(pilot, lambda: app.screen is not screen, "login dialog closed")
            config_file = docker_config / "config.json"
            assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
            entry = auths(docker_config)[host]
            assert base64.b64decode(entry["auth"]).decode() == f"alice:{password}"
            await wait_for(
                pilot,
                lambda: getattr(panel_row(app, host), "logged_in", False),
                "logged-in mark",
            )
            assert panel_row(app, host).username == "alice"
            assert "login" in panel_row(app, host).sources
            assert "alice" in str(app.main.registries.table.get_cell(host, "login"))

            # push a local image from the panel: tag, then push with the stored login
            await select_host(pilot, app, host)
            await pilot.press("u")
            await wait_for(pilot, lambda: isinstance(app.screen, PushScreen), "push dialog")
            push = app.screen
            assert isinstance(push, PushScreen)
            push.query_one("#push-source").value = busybox  # type: ignore[attr-defined]
            push.query_one("#push-target").value = ""  # type: ignore[attr-defined]
            push.query_one("#push-target").focus()
            await pilot.press(*target, "enter")
            await wait_for(pilot, lambda: push.progress is not None and not push.running, "push")
            assert push.finished_error is None
            progress = push.progress
            assert progress is not None and progress.layers
            assert all(layer.done for layer in progress.layers.values())
            assert len(push.query_one("#push-layers", LayerList).rows) == len(progress.layers)
            assert progress.digest == remote_digest(registry_tls, repo_path, "1")
            await pilot.press("escape")

            # browsing: portside lists the catalog, dockerd lacks the endpoints (one line)
            await pilot.press("b")
            await wait_for(
                pilot, lambda: isinstance(app.screen, RepositoriesScreen), "repositories"
            )
            browse = app.screen
            assert isinstance(browse, RepositoriesScreen)
            await wait_for(
                pilot, lambda: browse.problem_text or browse.table.row_count, "catalog answer"
            )
            if engine_kind == "dockerd":
                assert browse.problem_text == NOT_PORTSIDE
            else:
                assert not browse.problem_text
                assert repo_path in [str(key.value) for key in browse.table.rows]
            await pilot.press("escape")

            await select_host(pilot, app, host)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm")
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: not getattr(panel_row(app, host), "logged_in", True),
                "logged out",
            )
            assert host not in auths(docker_config)
    finally:
        await cli(dockerd, "rmi", target, check=False)


async def test_browse_and_pull_on_portside(
    portside_engine: PortsideFixture,
    registry_tls: RegistryFixture,
    pushed_images_tls: dict[str, str],
    docker_config: Path,
) -> None:
    trust(portside_engine, "portside", registry_tls)
    host, password = registry_tls.host, str(registry_tls.password)
    app = dashboard(portside_engine.host)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.status == CONNECTED, "engine connected")
        await pilot.press("6")
        await wait_for(pilot, lambda: app.main.registries.loads >= 1, "registries listed")

        # Not logged in: the registry refuses its catalog; a repository can be typed instead.
        await pilot.press("n")
        await pilot.press(*f"{host}/test/busybox", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen), "tags screen")
        tags = app.screen
        assert isinstance(tags, TagsScreen) and tags.repository == f"{host}/test/busybox"
        await wait_for(pilot, lambda: tags.problem_text, "tags refused")
        assert "401" in tags.problem_text or "unauthorized" in tags.problem_text.lower()
        await pilot.press("escape")

        screen = await log_in(pilot, app, host, "alice", password)
        await wait_for(pilot, lambda: app.screen is not screen, "logged in")
        await select_host(pilot, app, host)
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoriesScreen), "catalog")
        repos = app.screen
        assert isinstance(repos, RepositoriesScreen)
        await wait_for(pilot, lambda: repos.table.row_count, "repositories listed")
        assert not repos.problem_text
        names = [str(key.value) for key in repos.table.rows]
        assert "test/busybox" in names and names == sorted(names)

        assert "test/multi" in names
        repos.table.move_cursor(row=names.index("test/multi"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TagsScreen), "tags")
        tags = app.screen
        assert isinstance(tags, TagsScreen)
        await wait_for(pilot, lambda: tags.table.row_count, "tags listed")
        assert [str(key.value) for key in tags.table.rows] == ["1"]

        # an index: one row per platform (and the attestation), enter opens one
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ManifestScreen), "index")
        index = app.screen
        assert isinstance(index, ManifestScreen)
        await wait_for(pilot, lambda: index.data is not None, "index loaded")
        assert index.data["Digest"] == remote_digest(registry_tls, "test/multi", "1")
        platforms = index.data["Platforms"]
        assert [p["Platform"] for p in platforms][:2] == ["linux/amd64", "linux/arm64"]
        assert index.table.row_count == len(platforms) == 3
        amd64 = platforms[0]["Digest"]
        index.table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not index, "platform manifest")
        image = app.screen
        assert isinstance(image, ManifestScreen)
        assert image.ref == f"{host}/test/multi@{amd64}"
        await wait_for(pilot, lambda: image.data is not None, "image manifest loaded")
        assert image.data["Digest"] == amd64
        layers = image.data["Layers"]
        assert len(layers) == 2 and image.table.row_count == 2
        assert [str(key.value) for key in image.table.rows] == [lay["Digest"] for lay in layers]
        assert image.data["Config"]["Platform"] == "linux/amd64"
        assert image.data["TotalSize"] == image.data["Config"]["Size"] + sum(
            lay["Size"] for lay in layers
        )

        # pull it from here: the pull dialog with a bar per layer it downloads
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PullScreen), "pull dialog")
        pull = app.screen
        assert isinstance(pull, PullScreen)
        await wait_for(pilot, lambda: pull.progress is not None and not pull.running, "pull")
        assert pull.finished_error is None
        short = {lay["Digest"].removeprefix("sha256:")[:12] for lay in layers}
        rows = pull.query_one("#pull-layers", LayerList).rows
        assert rows and set(rows) <= short
        assert pull.progress is not None
        assert all(layer.done for layer in pull.progress.layers.values())
        docker = app.docker
        assert docker is not None
        info = await docker.images.inspect(f"{host}/test/multi@{amd64}")
        assert f"{host}/test/multi@{amd64}" in info["RepoDigests"]
