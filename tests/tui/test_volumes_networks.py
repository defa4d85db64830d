"""The volumes and networks panels against a real dockerd: lists that follow the engine's
events, create, remove (asks first), prune, and the inspect tree with search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.tui.helpers import cli, dashboard, wait_for
from tui.app import PortsideApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.inspect import InspectScreen
from tui.screens.prompt import PromptScreen


@pytest.fixture
def cleanup(dockerd: Any, scratch: str) -> Iterator[str]:
    """``scratch``; volumes and networks named with it are removed afterwards."""
    yield scratch
    for kind in ("volume", "network"):
        names = dockerd.docker(kind, "ls", "-q", check=False).stdout.split()
        if kind == "network":
            listing = dockerd.docker("network", "ls", "--format", "{{.Name}}", check=False)
            names = listing.stdout.split()
        mine = [name for name in names if name.startswith(scratch)]
        if mine:
            dockerd.docker(kind, "rm", *mine, check=False)


def volume_names(app: PortsideApp) -> set[str]:
    return set(app.main.volumes.table.rows_by_key)


def network_names(app: PortsideApp) -> set[str]:
    return {row.name for row in app.main.networks.table.rows_by_key.values()}


async def test_volumes_create_remove_prune_inspect(dockerd: Any, cleanup: str) -> None:
    prefix = cleanup
    await cli(dockerd, "volume", "create", "--label", "com.docker.compose.project=shop", prefix)
    app = dashboard(dockerd.host)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        panel = app.main.volumes
        await wait_for(pilot, lambda: prefix in volume_names(app), "the volume listed")
        assert app.focused is panel.table
        assert panel.table.rows_by_key[prefix].project == "shop"
        assert str(panel.table.get_cell(prefix, "driver")) == "local"

        # Create asks for a name; the list follows the engine's event.
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "name prompt")
        await pilot.press(*f"{prefix}new", "enter")
        await wait_for(pilot, lambda: f"{prefix}new" in volume_names(app), "created volume")
        listed = (await cli(dockerd, "volume", "ls", "-q")).split()
        assert f"{prefix}new" in listed

        # A bad name is the engine's one-line error, shown, not raised.
        await pilot.press("c", *"bad/name", "enter")
        await wait_for(
            pilot,
            lambda: any(r.error and "bad/name" in r.summary for r in app.action_results),
            "the refusal",
        )

        # Inspect opens the tree; search finds the label and opens its branch.
        await pilot.press("slash", *prefix, "enter")
        await wait_for(pilot, lambda: len(panel.table.shown_keys) == 2, "filtered list")
        assert panel.table.select_key(prefix)
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect view")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_for(pilot, lambda: screen.data is not None, "inspect data")
        assert screen.data["Name"] == prefix
        await pilot.press("slash", *"compose.project", "enter")
        tree = screen.tree
        assert len(tree.matches) == 1
        node = tree.matches[0]
        assert node.data == 'com.docker.compose.project: "shop"'
        assert tree.cursor_node is node
        assert node.parent is not None and node.parent.is_expanded
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, InspectScreen)
        await pilot.press("escape")  # clear the list filter

        # Remove asks first; "n" keeps it, "y" removes it.
        assert panel.table.select_key(f"{prefix}new")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert f"{prefix}new" in volume_names(app)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: f"{prefix}new" not in volume_names(app), "removed")
        assert f"{prefix}new" not in (await cli(dockerd, "volume", "ls", "-q")).split()

        # Prune removes unused volumes (ours is unused) after asking.
        await pilot.press("P")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: prefix not in volume_names(app), "pruned")
        assert prefix not in (await cli(dockerd, "volume", "ls", "-q")).split()


async def test_networks_create_remove_inspect(dockerd: Any, cleanup: str) -> None:
    prefix = cleanup
    app = dashboard(dockerd.host)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("4")
        panel = app.main.networks
        await wait_for(pilot, lambda: "none" in network_names(app), "built-in networks")

        await pilot.press("c", *f"{prefix}net", "enter")
        await wait_for(pilot, lambda: f"{prefix}net" in network_names(app), "created network")
        facts = json.loads(await cli(dockerd, "network", "inspect", f"{prefix}net"))[0]
        row = next(r for r in panel.table.rows_by_key.values() if r.name == f"{prefix}net")
        assert row.id == facts["Id"] and row.driver == "bridge"

        # The engine's own networks cannot be removed: the action is greyed out.
        builtin = next(r for r in panel.table.rows_by_key.values() if r.name == "none")
        assert panel.table.select_key(builtin.id)
        await pilot.pause()
        assert panel.check_action("remove", ()) is None

        assert panel.table.select_key(row.id)
        await pilot.pause()
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen), "inspect view")
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        await wait_for(pilot, lambda: screen.data is not None, "inspect data")
        assert screen.data["Id"] == facts["Id"]
        tree = screen.tree
        await pilot.press("e")
        branches = [node for node in tree.all_nodes() if node.allow_expand]
        assert branches and all(node.is_expanded for node in branches)
        await pilot.press("c")
        assert not any(node.is_expanded for node in tree.root.children)
        await pilot.press("escape")

        await pilot.press("d", "y")
        await wait_for(pilot, lambda: f"{prefix}net" not in network_names(app), "removed")
        names = (await cli(dockerd, "network", "ls", "--format", "{{.Name}}")).split()
        assert f"{prefix}net" not in names
