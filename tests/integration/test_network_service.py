"""NetworkService bookkeeping: docker-shaped create/inspect/list/remove/prune, built-in
networks, subnet allocation around the host's routes, persistence under <root>/networks.

Nothing is attached here, so no bridge or iptables rule is made on the host.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from engine.errors import Conflict, Forbidden, InvalidArgument, NotFound, PortsideError
from engine.network.bridge import free_address
from engine.network.ipam import bridge_net
from engine.network.networks import NetworkService, host_routes


@pytest.fixture
async def svc(tmp_path: Path) -> NetworkService:
    s = NetworkService(tmp_path / "root")
    await s.start()
    return s


async def test_builtin_networks_look_like_dockers(svc: NetworkService) -> None:
    nets = {n["Name"]: n for n in await svc.list()}
    assert set(nets) == {"bridge", "host", "none"}
    bridge = nets["bridge"]
    assert bridge["Driver"] == "bridge" and bridge["Scope"] == "local"
    assert bridge["Options"]["com.docker.network.bridge.name"] == "portside0"
    assert len(bridge["Id"]) == 64 and bridge["Created"].endswith("Z")
    cfg = bridge["IPAM"]["Config"][0]
    subnet = ipaddress.ip_network(cfg["Subnet"])
    assert ipaddress.ip_address(cfg["Gateway"]) == subnet.network_address + 1
    assert nets["host"]["Driver"] == "host" and nets["host"]["IPAM"]["Config"] == []
    assert nets["none"]["Driver"] == "null"
    for key in ("EnableIPv6", "Internal", "Attachable", "Ingress", "ConfigOnly", "Labels"):
        assert key in bridge
    for name in ("bridge", "host", "none"):
        with pytest.raises(Forbidden, match="pre-defined"):
            await svc.remove(name)


async def test_auto_subnets_avoid_host_routes_and_each_other(svc: NetworkService) -> None:
    routes = await host_routes()
    assert routes, "the host has at least one route (its own interface's)"
    subnets = [ipaddress.ip_network((await svc.inspect("bridge"))["IPAM"]["Config"][0]["Subnet"])]
    for i in range(4):
        await svc.create(f"auto{i}")
        subnets.append(
            ipaddress.ip_network((await svc.inspect(f"auto{i}"))["IPAM"]["Config"][0]["Subnet"])
        )
    for i, s in enumerate(subnets):
        assert not any(s.overlaps(r) for r in routes), (s, routes)
        assert not any(s.overlaps(o) for o in subnets[i + 1 :])
    # a pool made only of the host's own routes is exhausted at once, with a clear message
    route = next(r for r in routes if r.prefixlen >= 8)
    pool = [(str(route), route.prefixlen)]
    tight = NetworkService(svc.dir.parent / "tight", pools=pool, bridge_pools=pool)
    with pytest.raises(Conflict, match="no free subnet"):
        await tight.start()


async def test_create_options_and_errors(svc: NetworkService) -> None:
    out = await svc.create(
        "custom",
        subnet="10.77.0.0/16",
        gateway="10.77.0.254",
        ip_range="10.77.5.0/24",
        labels={"team": "a"},
        options={"com.docker.network.driver.mtu": "1400"},
    )
    assert out["Warning"] == ""
    info = await svc.inspect(out["Id"][:10])
    assert info["Name"] == "custom"
    assert info["IPAM"]["Config"] == [
        {"Subnet": "10.77.0.0/16", "Gateway": "10.77.0.254", "IPRange": "10.77.5.0/24"}
    ]
    assert info["Labels"] == {"team": "a"}
    net = svc.get("custom")
    assert str(free_address(net.subnet, net.gateway, net.ip_range, [])) == "10.77.5.1"
    used = [f"10.77.5.{i}" for i in range(1, 254)]
    assert str(free_address(net.subnet, net.gateway, net.ip_range, used)) == "10.77.5.254"
    # round robin: a just-released address is not handed out again at once
    assert str(free_address(net.subnet, net.gateway, net.ip_range, [], "10.77.5.7")) == "10.77.5.8"
    wrapped = free_address(net.subnet, net.gateway, net.ip_range, ["10.77.5.1"], "10.77.5.254")
    assert str(wrapped) == "10.77.5.2"
    with pytest.raises(PortsideError, match="no free address"):
        free_address(net.subnet, net.gateway, net.ip_range, [*used, "10.77.5.254"])
    view = bridge_net(net)
    assert (view.mtu, view.bridge, view.masquerade) == (1400, f"br-{out['Id'][:12]}", True)

    cases = [
        ({"name": "custom"}, Conflict, "already exists"),
        ({"name": "bad name"}, InvalidArgument, "invalid network name"),
        ({"name": "x1", "subnet": "10.77.3.0/24"}, Conflict, "overlaps"),
        ({"name": "x2", "subnet": "nonsense"}, InvalidArgument, "invalid subnet"),
        (
            {"name": "x3", "subnet": "10.9.0.0/24", "gateway": "10.8.0.1"},
            InvalidArgument,
            "not a host",
        ),
        ({"name": "x4", "gateway": "10.8.0.1"}, InvalidArgument, "need --subnet"),
        (
            {"name": "x5", "subnet": "10.9.0.0/24", "ip_range": "10.10.0.0/25"},
            InvalidArgument,
            "not inside",
        ),
        ({"name": "x6", "driver": "overlay"}, InvalidArgument, "not supported"),
        (
            {"name": "x7", "options": {"com.docker.network.bridge.name": "portside0"}},
            Conflict,
            "already used",
        ),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            await svc.create(**kwargs)
    assert {n["Name"] for n in await svc.list()} == {"bridge", "host", "none", "custom"}
    with pytest.raises(NotFound, match="network nope not found"):
        await svc.inspect("nope")


async def test_list_filters_remove_prune_and_persistence(svc: NetworkService) -> None:
    await svc.create("front", labels={"tier": "web"})
    await svc.create("back", labels={"tier": "db"})
    await svc.create("misc")
    names = lambda nets: sorted(n["Name"] for n in nets)  # noqa: E731
    assert names(await svc.list({"type": ["custom"]})) == ["back", "front", "misc"]
    assert names(await svc.list({"type": ["builtin"]})) == ["bridge", "host", "none"]
    assert names(await svc.list({"label": ["tier"]})) == ["back", "front"]
    assert names(await svc.list({"label": ["tier=web"]})) == ["front"]
    assert names(await svc.list({"name": ["ba"]})) == ["back"]
    assert names(await svc.list({"driver": ["null"]})) == ["none"]
    assert names(await svc.list({"dangling": ["true"]})) == ["back", "front", "misc"]
    with pytest.raises(InvalidArgument, match="invalid network filter"):
        await svc.list({"colour": ["red"]})

    files = sorted(svc.dir.glob("*.json"))
    assert len(files) == 6
    assert {json.loads(f.read_text())["name"] for f in files} >= {"front", "back", "misc"}

    await svc.remove("misc")
    with pytest.raises(NotFound):
        await svc.inspect("misc")
    restarted = NetworkService(svc.dir.parent)
    assert names(await restarted.list()) == ["back", "bridge", "front", "host", "none"]
    ids = {n["Name"]: n["Id"] for n in await svc.list()}
    assert {n["Name"]: n["Id"] for n in await restarted.list()} == ids

    assert await restarted.prune({"label": ["tier=db"]}) == ["back"]
    assert await restarted.prune() == ["front"]
    assert names(await restarted.list()) == ["bridge", "host", "none"]
    assert len(list(svc.dir.glob("*.json"))) == 3
