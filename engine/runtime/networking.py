"""Containers on networks: the ContainerService side of ``engine/network``.

A container whose NetworkMode names a network ("bridge" or a user-defined one) gets its own
named network namespace (``/run/netns/ps-<id>``) when it starts, before ``runtime create``;
the namespace is attached to every network the container is configured for (its mode's
network first, then those added by ``connect``), its ports are published on the first one
(``HostConfig.PortBindings``, ``PublishAllPorts`` with ``ExposedPorts``), and its /etc/hosts
(own address, the network's peers, ``ExtraHosts``) and resolv.conf (the embedded DNS
server on user-defined networks, else ``Dns`` or the host's) are rewritten. When the
container stops (or exits on its own, or is removed) it is detached everywhere and the
namespace is deleted. ``container:NAME`` joins the namespace of a running container.

The default NetworkMode is ``bridge`` (hostconfig.DEFAULT_NETWORK), as in docker: each
engine has a bridge device and subnet of its own (EngineConfig.default_bridge and
default_address_pool), so parallel engines (test roots in particular) never share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import Conflict, Forbidden, InvalidArgument, NotFound, PortsideError
from engine.network import netns
from engine.network.hosts import (
    HostEntry,
    hosts_content,
    parse_add_host,
    read_host_resolv_conf,
    resolv_conf_content,
)
from engine.network.model import Attachment as NetAttachment
from engine.network.model import parse_network_mode
from engine.network.ports import (
    PortMapping,
    PortSpec,
    from_docker_bindings,
    publish_all,
    to_docker_ports,
)
from engine.runtime import etcfiles, monitorclient

if TYPE_CHECKING:
    from engine.events import EventBus
    from engine.network.networks import NetworkService
    from engine.runtime.record import Record

log = logging.getLogger(__name__)


def netns_name(cid: str) -> str:
    """The named network namespace of a container."""
    return f"ps-{cid[:24]}"


def attachment_json(att: NetAttachment) -> dict[str, Any]:
    """What a record keeps of a live attachment (NetworkSettings.Networks[...])."""
    return {
        "NetworkID": att.network_id,
        "EndpointID": att.endpoint_id,
        "Gateway": att.gateway,
        "IPAddress": att.ip,
        "IPPrefixLen": att.prefix_len,
        "MacAddress": att.mac,
        "Aliases": list(att.aliases),
        "Ports": [m.__dict__ for m in att.ports],
        "DNS": att.dns,
    }


def port_specs(rec: Record) -> list[PortSpec]:
    """The ports a container publishes: PortBindings, plus ExposedPorts with -P."""
    specs = from_docker_bindings(rec.HostConfig.get("PortBindings") or {})
    if rec.HostConfig.get("PublishAllPorts"):
        specs += publish_all(rec.Config.get("ExposedPorts") or {}, specs)
    return specs


def mappings_of(rec: Record) -> list[PortMapping]:
    """Every published port of a running container."""
    return [PortMapping(**p) for a in rec.Attached.values() for p in a.get("Ports") or []]


def list_ports(rec: Record) -> list[dict[str, Any]]:
    """``/containers/json`` Ports: published ports, then exposed ones not published."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in mappings_of(rec):
        seen.add(f"{m.container_port}/{m.protocol}")
        out.append(
            {
                "IP": m.host_ip or "0.0.0.0",
                "PrivatePort": m.container_port,
                "PublicPort": m.host_port,
                "Type": m.protocol,
            }
        )
    for key in rec.Config.get("ExposedPorts") or {}:
        port, _, proto = key.partition("/")
        if key not in seen and port.isdigit():
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def settings_ports(rec: Record) -> dict[str, Any]:
    """NetworkSettings.Ports: published mappings, exposed ports as null (as dockerd)."""
    if not rec.State.Running:
        return {}
    out: dict[str, Any] = {k: None for k in rec.Config.get("ExposedPorts") or {}}
    out.update(to_docker_ports(mappings_of(rec)))
    return out


class NetworkingMixin:
    """Network setup and teardown of ContainerService (see the module docstring)."""

    networks: NetworkService
    events: EventBus
    _records: dict[str, Record]

    if TYPE_CHECKING:

        def _get(self, name: str) -> Record: ...
        def _dir(self, cid: str) -> Path: ...
        async def _save(self, rec: Record) -> None: ...
        def _publish(
            self, rec: Record, action: str, extra: dict[str, str] | None = None
        ) -> None: ...

    # -- create ------------------------------------------------------------------------------
    async def _network_config(
        self, mode: str, networking: dict[str, Any] | None
    ) -> tuple[str, dict[str, dict[str, Any]], str]:
        """Check a new container's NetworkMode against the networks and containers that
        exist; returns (mode as stored, configured networks, gateway for host-gateway)."""
        parsed = parse_network_mode(mode)
        endpoints = (networking or {}).get("EndpointsConfig") or {}
        if not isinstance(endpoints, dict):
            raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
        if parsed.kind == "container":
            other = self._get(parsed.target)
            return f"container:{other.Id}", {}, ""
        if parsed.kind != "network":
            return mode, {}, ""
        await self.networks.start()
        net = self.networks.get(parsed.target)
        if net.driver != "bridge":
            return net.name, {}, ""
        configured: dict[str, dict[str, Any]] = {}
        for key in [parsed.target, *endpoints]:
            # docker >= 23 names the endpoint of NetworkMode "default" "default"
            other = self.networks.get(parsed.target if key == "default" else key)
            if other.driver != "bridge":
                raise InvalidArgument(
                    f"container cannot be connected to network {other.name} and {net.name}"
                )
            cfg = endpoints.get(key) or {}
            aliases = [str(a) for a in (cfg.get("Aliases") or [])]
            prev = configured.setdefault(other.name, {"Aliases": []})
            prev["Aliases"] = list(dict.fromkeys([*prev["Aliases"], *aliases]))
        return net.name, configured, net.gateway

    # -- start / stop ------------------------------------------------------------------------
    async def _net_up(self, rec: Record) -> tuple[str, dict[str, Path] | None]:
        """Prepare the network of a starting container: (netns path for the spec, etc files
        to bind instead of its own, for ``container:``)."""
        parsed = parse_network_mode(rec.Network)
        if parsed.kind == "container":
            other = self._get(parsed.target)
            if not other.State.Running or not other.State.Pid:
                raise Conflict(
                    f"cannot join network of a non running container: {other.short_name}"
                )
            path = other.Netns or f"/proc/{other.State.Pid}/ns/net"
            odir = self._dir(other.Id)
            return path, {n: odir / n for n in ("hosts", "hostname", "resolv.conf")}
        if parsed.kind != "network" or not rec.Networks:
            return "", None
        name = netns_name(rec.Id)
        await netns.delete(name)  # a stale one from a crash
        path = await netns.create(name)
        rec.Netns = str(path)
        try:
            specs = port_specs(rec)
            attached: dict[str, dict[str, Any]] = {}
            for i, (net_name, cfg) in enumerate(rec.Networks.items()):
                att = await self.networks.attach(
                    rec.Id,
                    path,
                    net_name,
                    name=rec.short_name,
                    aliases=cfg.get("Aliases") or [],
                    ports=specs if i == 0 else (),
                )
                attached[att.network_name] = attachment_json(att)
            rec.Attached = attached
            await self._write_net_etc(rec)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._net_down(rec)
            raise
        return str(path), None

    async def _write_net_etc(self, rec: Record) -> None:
        """/etc/hosts and resolv.conf of a networked container (docker's contents)."""
        first = next(iter(rec.Attached.values()), None)
        if first is None:
            return
        hostname = rec.Config.get("Hostname") or rec.Id[:12]
        gateway = first["Gateway"]
        extra = [parse_add_host(h, gateway) for h in rec.HostConfig.get("ExtraHosts") or []]
        peers: list[HostEntry] = []
        for net_name in rec.Attached:
            peers += self.networks.peers(net_name, exclude=rec.Id)
        hosts = hosts_content(
            hostname=hostname,
            domainname=rec.Config.get("Domainname") or "",
            ips=[a["IPAddress"] for a in rec.Attached.values()],
            extra_hosts=extra,
            peers=peers,
        )
        dns_server = next((a["DNS"] for a in rec.Attached.values() if a.get("DNS")), "")
        host = rec.HostConfig
        resolv = resolv_conf_content(
            await read_host_resolv_conf(),
            dns=[dns_server] if dns_server else list(host.get("Dns") or []),
            dns_search=list(host.get("DnsSearch") or []),
            dns_options=list(host.get("DnsOptions") or []),
        )
        cdir = self._dir(rec.Id)
        await asyncio.to_thread(etcfiles.write, cdir / "hosts", hosts)
        await asyncio.to_thread(etcfiles.write, cdir / "resolv.conf", resolv)

    async def _net_down(self, rec: Record) -> None:
        """Detach a container that is no longer running and delete its namespace."""
        if not rec.Netns and not rec.Attached:
            return
        try:
            await self.networks.detach_all(rec.Id, netns_going=True)
        except PortsideError as err:
            log.warning("detaching container %s: %s", rec.Id[:12], err)
        with contextlib.suppress(PortsideError):
            await netns.delete(netns_name(rec.Id))
        rec.Attached = {}
        rec.Netns = ""

    async def _net_reconcile(self) -> None:
        """After an engine restart, before restart policies start anything: release the
        endpoints of containers whose monitor is gone (or that are not running)."""
        if not await _has_endpoints(self.networks.ep_dir):
            return
        live = [
            r.Id
            for r in self._records.values()
            if (r.State.Running or r.State.Paused)
            and r.Netns
            and monitorclient.alive(r.MonitorPid, r.MonitorStart)
        ]
        gone = await self.networks.reconcile(live)
        for cid in gone:
            with contextlib.suppress(PortsideError):
                await netns.delete(netns_name(cid))

    # -- connect / disconnect ------------------------------------------------------------------
    async def connect(
        self, container: str, network: str, *, aliases: list[str] | None = None
    ) -> None:
        """``docker network connect``: attach now if running, else at the next start."""
        rec = self._get(container)
        await self.networks.start()
        net = self.networks.get(network)
        kind = parse_network_mode(rec.Network).kind
        if kind != "network" or net.driver != "bridge" or not rec.Networks:
            raise Forbidden(
                f"container {rec.short_name} shares a network namespace (network mode "
                f"{rec.Network}) or the network {net.name} is a mode: it cannot be connected"
            )
        if net.name in rec.Networks:
            raise Forbidden(
                f"endpoint with name {rec.short_name} already exists in network {net.name}"
            )
        cfg = {"Aliases": list(dict.fromkeys(aliases or []))}
        if rec.State.Running and rec.Netns:
            att = await self.networks.attach(
                rec.Id, rec.Netns, net.name, name=rec.short_name, aliases=cfg["Aliases"]
            )
            rec.Attached[att.network_name] = attachment_json(att)
        rec.Networks[net.name] = cfg
        await self._save(rec)
        self.events.publish("network", "connect", net.id, {"name": net.name, "container": rec.Id})

    async def disconnect(self, container: str, network: str, *, force: bool = False) -> None:
        """``docker network disconnect``."""
        await self.networks.start()
        net = self.networks.get(network)
        try:
            rec = self._get(container)
        except NotFound:
            if not force:
                raise
            for ep in self.networks.endpoints(net.id):
                if ep.container_id.startswith(container) or ep.container_name == container:
                    await self.networks.detach(ep.container_id, net.id)
                    return
            raise
        if net.name not in rec.Networks and net.name not in rec.Attached:
            raise NotFound(f"container {rec.short_name} is not connected to network {net.name}")
        if net.name in rec.Attached:
            with contextlib.suppress(NotFound):
                await self.networks.detach(rec.Id, net.id)
            rec.Attached.pop(net.name, None)
        rec.Networks.pop(net.name, None)
        await self._save(rec)
        self.events.publish(
            "network", "disconnect", net.id, {"name": net.name, "container": rec.Id}
        )


async def _has_endpoints(ep_dir: Path) -> bool:
    def check() -> bool:
        try:
            return any(ep_dir.glob("*.json"))
        except OSError:
            return False

    return await asyncio.to_thread(check)
