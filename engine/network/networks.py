"""NetworkService: docker-shaped networks (create/list/inspect/remove/prune) and per-container
attach/detach through CNI plugins.

State lives under ``<root>/networks/``: one ``<id>.json`` per network, one
``endpoints/<container>.<network>.json`` per attachment (with the exact CNI config used, so
DEL after an engine restart undoes what ADD did), and ``ipam/`` as host-local's dataDir, so
addresses survive a restart without leaking. Bridge networks chain the plugins
``bridge`` (+ host-local IPAM, outbound NAT by ``ipMasq``) -> ``portmap`` (published ports,
with its SNAT option so 127.0.0.1 reaches them) -> ``firewall``; a netns's loopback is brought
up by the ``loopback`` plugin. The built-in networks are "bridge" (bridge device
``portside0``), "host" and "none"; the last two are modes the runtime applies itself.
User-defined networks with containers get an embedded DNS responder (``embedded_dns``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import Conflict, Forbidden, InvalidArgument, NotFound
from engine.network import cni
from engine.network.embedded_dns import EmbeddedDNS
from engine.network.hosts import DEFAULT_DNS_V4, HostEntry, read_host_resolv_conf
from engine.network.ipam import DEFAULT_POOLS, bridge_conflist, host_routes, plan_addresses
from engine.network.model import (
    DEFAULT_BRIDGE,
    NAME_RE,
    OPT_BRIDGE_NAME,
    OPT_MASQ,
    OPT_MTU,
    Attachment,
    Endpoint,
    Network,
    NetworkError,
    NetworkMode,
    parse_network_mode,
)
from engine.network.ports import PortMapping, PortSpec, resolve

__all__ = [
    "Attachment",
    "Endpoint",
    "Network",
    "NetworkError",
    "NetworkMode",
    "NetworkService",
    "host_routes",
    "parse_network_mode",
]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class NetworkService:
    """Networks of one engine, and the containers attached to them."""

    def __init__(
        self,
        root: Path,
        *,
        plugin_dir: Path | None = None,
        default_bridge: str = DEFAULT_BRIDGE,
        pools: Sequence[tuple[str, int]] = DEFAULT_POOLS,
        embedded_dns: bool = True,
        dns_upstreams: Sequence[str | tuple[str, int]] | None = None,
        dns_port: int = 53,
    ) -> None:
        self.dir = Path(root) / "networks"
        self.ep_dir = self.dir / "endpoints"
        self.ipam_dir = self.dir / "ipam"
        self._plugin_dir = plugin_dir
        self.default_bridge = default_bridge
        self.pools = list(pools)
        self._nets: dict[str, Network] = {}
        self._eps: dict[tuple[str, str], Endpoint] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._dns_wanted = embedded_dns
        self._dns_upstreams = dns_upstreams
        self._dns_port = dns_port
        self.dns: EmbeddedDNS | None = None

    # ----- state -----

    @property
    def plugin_dir(self) -> Path:
        if self._plugin_dir is None:
            self._plugin_dir = cni.find_plugin_dir()
        return self._plugin_dir

    async def start(self) -> None:
        """Load networks and endpoints from disk; create the built-in networks if missing."""
        async with self._lock:
            if self._started:
                return
            nets, eps = await asyncio.to_thread(self._load)
            self._nets = {n.id: n for n in nets}
            self._eps = {(e.container_id, e.network_id): e for e in eps}
            names = {n.name for n in nets}
            if "bridge" not in names:
                opts = {
                    OPT_BRIDGE_NAME: self.default_bridge,
                    OPT_MASQ: "true",
                    "com.docker.network.bridge.default_bridge": "true",
                }
                await self._create_locked("bridge", "bridge", options=opts)
            if "host" not in names:
                await self._create_locked("host", "host")
            if "none" not in names:
                await self._create_locked("none", "null")
            if self._dns_wanted:
                upstreams = self._dns_upstreams
                if upstreams is None:
                    # the responder runs in the host's netns: loopback upstreams work too
                    upstreams = (await read_host_resolv_conf()).nameservers or list(DEFAULT_DNS_V4)
                self.dns = EmbeddedDNS(self, upstreams, self._dns_port)
                await self.dns.sync()
            self._started = True

    def _load(self) -> tuple[list[Network], list[Endpoint]]:
        self.ep_dir.mkdir(parents=True, exist_ok=True)
        self.ipam_dir.mkdir(parents=True, exist_ok=True)
        nets = [Network(**_read_json(p)) for p in sorted(self.dir.glob("*.json"))]
        eps = [Endpoint(**_read_json(p)) for p in sorted(self.ep_dir.glob("*.json"))]
        return nets, eps

    def _ep_path(self, container_id: str, network_id: str) -> Path:
        return self.ep_dir / f"{container_id}.{network_id}.json"

    # ----- lookup -----

    def get(self, name_or_id: str) -> Network:
        """A network by full name, full id or unique id prefix (docker's rules)."""
        if not name_or_id:
            raise InvalidArgument("no network given: name one by name or id")
        if name_or_id in self._nets:
            return self._nets[name_or_id]
        for n in self._nets.values():
            if n.name == name_or_id:
                return n
        found = [n for n in self._nets.values() if n.id.startswith(name_or_id)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFound(f"network {name_or_id} is ambiguous: {len(found)} networks match")
        raise NotFound(f"network {name_or_id} not found")

    def endpoints(self, network: str | None = None) -> list[Endpoint]:
        """Every attachment, or those of one network."""
        nid = self.get(network).id if network else None
        return [e for e in self._eps.values() if nid is None or e.network_id == nid]

    def container_endpoints(self, container_id: str) -> list[Endpoint]:
        return [e for e in self._eps.values() if e.container_id == container_id]

    def peers(self, network: str, exclude: str = "") -> list[HostEntry]:
        """/etc/hosts entries naming the network's containers (name, aliases, short id)."""
        out: list[HostEntry] = []
        for e in self.endpoints(network):
            if e.container_id == exclude:
                continue
            names = [e.container_name, *e.aliases, e.container_id[:12]]
            out.append(HostEntry(e.address, tuple(dict.fromkeys(n for n in names if n))))
        return out

    def published(self, exclude: str = "") -> list[tuple[PortMapping, str]]:
        """Every published port of every container but ``exclude``, with its owner's name."""
        return [
            (m, e.container_name or e.container_id[:12])
            for e in self._eps.values()
            if e.container_id != exclude
            for m in e.mappings
        ]

    # ----- create / inspect / list / remove / prune -----

    async def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """``docker network create``; answers ``{"Id": ..., "Warning": ""}``."""
        await self.start()
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported: use bridge")
        if not NAME_RE.match(name or ""):
            raise InvalidArgument(
                f"invalid network name {name!r}: use letters, digits, '_', '.', '-' "
                "(first a letter or digit)"
            )
        async with self._lock:
            net = await self._create_locked(
                name,
                driver,
                subnet=subnet,
                gateway=gateway,
                ip_range=ip_range,
                internal=internal,
                labels=labels,
                options=options,
            )
        return {"Id": net.id, "Warning": ""}

    async def _create_locked(
        self,
        name: str,
        driver: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        if any(n.name == name for n in self._nets.values()):
            raise Conflict(f"network with name {name} already exists")
        opts = dict(options or {})
        net = Network(
            id=secrets.token_hex(32),
            name=name,
            driver=driver,
            created=_now(),
            internal=internal,
            labels=dict(labels or {}),
            options=opts,
        )
        if driver == "bridge":
            bridge = opts.get(OPT_BRIDGE_NAME)
            if bridge is not None and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", bridge):
                raise InvalidArgument(f"invalid bridge name {bridge!r}: 1-15 letters or digits")
            if bridge and any(
                n.driver == "bridge" and n.bridge == bridge for n in self._nets.values()
            ):
                raise Conflict(f"bridge {bridge} is already used by another network")
            if OPT_MTU in opts and not opts[OPT_MTU].isdigit():
                raise InvalidArgument(f"invalid {OPT_MTU} {opts[OPT_MTU]!r}: give a number")
            taken = [ipaddress.IPv4Network(n.subnet) for n in self._nets.values() if n.subnet]
            net.subnet, net.gateway, net.ip_range = await plan_addresses(
                subnet, gateway, ip_range, taken, self.pools
            )
            net.user_subnet = subnet is not None
        elif subnet or gateway or ip_range:
            raise InvalidArgument(f"network {name}: driver {driver} takes no subnet")
        await asyncio.to_thread(_write_json, self.dir / f"{net.id}.json", asdict(net))
        self._nets[net.id] = net
        return net

    def _inspect(self, net: Network) -> dict[str, Any]:
        containers = {
            e.container_id: {
                "Name": e.container_name,
                "EndpointID": e.endpoint_id,
                "MacAddress": e.mac,
                "IPv4Address": e.ip,
                "IPv6Address": "",
            }
            for e in self._eps.values()
            if e.network_id == net.id
        }
        config: list[dict[str, str]] = []
        if net.subnet:
            entry = {"Subnet": net.subnet, "Gateway": net.gateway}
            if net.ip_range:
                entry["IPRange"] = net.ip_range
            config.append(entry)
        return {
            "Name": net.name,
            "Id": net.id,
            "Created": net.created,
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": net.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(net.options),
            "Labels": dict(net.labels),
        }

    async def inspect(self, name_or_id: str) -> dict[str, Any]:
        """``docker network inspect`` of one network."""
        await self.start()
        return self._inspect(self.get(name_or_id))

    async def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """``GET /networks``: every network matching ``filters`` (name, id, driver, label,
        type=custom|builtin, dangling=true|false), sorted by name."""
        await self.start()
        out = [
            self._inspect(n)
            for n in sorted(self._nets.values(), key=lambda n: n.name)
            if self._matches(n, filters or {})
        ]
        return out

    def _matches(self, net: Network, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "name":
                ok = any(v in net.name for v in values)
            elif key == "id":
                ok = any(net.id.startswith(v) for v in values)
            elif key == "driver":
                ok = net.driver in values
            elif key == "type":
                ok = ("builtin" if net.builtin else "custom") in values
            elif key == "dangling":
                in_use = any(e.network_id == net.id for e in self._eps.values())
                ok = any((v.lower() in ("1", "true")) != (in_use or net.builtin) for v in values)
            elif key == "label":
                ok = all(self._label_match(net, v) for v in values)
            else:
                raise InvalidArgument(f"invalid network filter {key!r}")
            if not ok:
                return False
        return True

    @staticmethod
    def _label_match(net: Network, spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in net.labels and (not eq or net.labels[key] == value)

    async def remove(self, name_or_id: str) -> None:
        """``docker network rm``: refused for built-in networks and networks in use."""
        await self.start()
        async with self._lock:
            net = self.get(name_or_id)
            if net.builtin:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            users = [e.container_name or e.container_id[:12] for e in self.endpoints(net.id)]
            if users:
                raise Conflict(
                    f"network {net.name} has active endpoints ({', '.join(sorted(users))}); "
                    "disconnect or remove them first"
                )
            await self._delete_locked(net)

    async def _delete_locked(self, net: Network) -> None:
        await _del_link(net.bridge)
        await asyncio.to_thread(shutil.rmtree, self.ipam_dir / net.cni_name, True)
        (self.dir / f"{net.id}.json").unlink(missing_ok=True)
        del self._nets[net.id]

    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """``docker network prune``: remove unused user-defined networks; their names."""
        await self.start()
        removed: list[str] = []
        async with self._lock:
            for net in sorted(self._nets.values(), key=lambda n: n.name):
                if net.builtin or any(e.network_id == net.id for e in self._eps.values()):
                    continue
                if not self._matches(net, {k: v for k, v in (filters or {}).items()}):
                    continue
                await self._delete_locked(net)
                removed.append(net.name)
        return removed

    async def close(self) -> None:
        """Stop the embedded DNS servers (attachments stay; they are on disk)."""
        if self.dns is not None:
            await self.dns.close()

    # ----- attach / detach -----

    async def attach(
        self,
        container_id: str,
        netns: str | Path,
        network: str = "bridge",
        *,
        name: str = "",
        aliases: Iterable[str] = (),
        ports: Iterable[PortSpec] = (),
        ifname: str | None = None,
    ) -> Attachment:
        """Connect a container's network namespace to ``network``: loopback up, a veth on the
        network's bridge with an address from its subnet, and ``ports`` published (host ports
        checked against other containers and the host). Undone completely on failure."""
        await self.start()
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        netns = str(netns)
        async with self._lock:
            net = self.get(network)
            if net.driver != "bridge":
                raise InvalidArgument(
                    f"network {net.name} is the {net.name} mode: the runtime applies it, "
                    "there is nothing to attach"
                )
            if (container_id, net.id) in self._eps:
                raise Conflict(
                    f"container {name or container_id[:12]} is already connected to "
                    f"network {net.name}"
                )
            specs = list(ports)
            if specs and net.internal:
                raise InvalidArgument(
                    f"network {net.name} is internal: ports cannot be published on it"
                )
            if not net.internal and shutil.which("iptables") is None:
                raise NetworkError(
                    "outbound NAT and published ports need iptables (iptables-nft is fine); "
                    "install iptables, or use an --internal network or --network none"
                )
            mappings = await asyncio.to_thread(resolve, specs, self.published(exclude=container_id))
            own = self.container_endpoints(container_id)
            if ifname is None:
                used = {e.ifname for e in own}
                ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
            rt = cni.CNIRuntime(container_id, netns, ifname)
            plugin_dir = self.plugin_dir
            if not own:
                lo = {"cniVersion": cni.CNI_VERSION, "name": "portside-lo", "type": "loopback"}
                await cni.invoke(plugin_dir, "ADD", lo, cni.CNIRuntime(container_id, netns, "lo"))
            conflist = bridge_conflist(net, self.ipam_dir)
            runtime_config = {"portMappings": [m.to_cni() for m in mappings]}
            result = await cni.add_list(plugin_dir, conflist, rt, runtime_config)
            try:
                ep = self._endpoint(
                    net, container_id, name, netns, ifname, aliases, mappings,
                    conflist, runtime_config, result,
                )  # fmt: skip
                await asyncio.to_thread(
                    _write_json, self._ep_path(container_id, net.id), asdict(ep)
                )
            except BaseException:
                await cni.del_list(
                    plugin_dir, conflist, rt, runtime_config, prev_result=result, quiet=True
                )
                raise
            self._eps[(container_id, net.id)] = ep
            if self.dns is not None:
                await self.dns.sync()
            dns = self.dns.nameserver(net.id) if self.dns is not None else ""
        addr, _, plen = ep.ip.partition("/")
        return Attachment(
            network_id=net.id,
            network_name=net.name,
            endpoint_id=ep.endpoint_id,
            ifname=ifname,
            ip=addr,
            prefix_len=int(plen or 32),
            gateway=ep.gateway,
            mac=ep.mac,
            aliases=tuple(ep.aliases),
            ports=tuple(mappings),
            dns=dns,
        )

    @staticmethod
    def _endpoint(
        net: Network,
        container_id: str,
        name: str,
        netns: str,
        ifname: str,
        aliases: Iterable[str],
        mappings: list[PortMapping],
        conflist: dict[str, Any],
        runtime_config: dict[str, Any],
        result: dict[str, Any],
    ) -> Endpoint:
        ifaces = result.get("interfaces") or []
        ip_entry = next(
            (i for i in result.get("ips") or [] if ":" not in str(i.get("address", ""))), None
        )
        if ip_entry is None:
            raise NetworkError(f"CNI gave no IPv4 address on network {net.name}")
        mac = ""
        idx = ip_entry.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(ifaces):
            mac = str(ifaces[idx].get("mac", ""))
        else:
            mac = next((str(i.get("mac", "")) for i in ifaces if i.get("sandbox")), "")
        return Endpoint(
            container_id=container_id,
            container_name=name.lstrip("/"),
            network_id=net.id,
            endpoint_id=secrets.token_hex(32),
            netns=netns,
            ifname=ifname,
            ip=str(ip_entry["address"]),
            gateway=str(ip_entry.get("gateway", "")),
            mac=mac,
            aliases=list(dict.fromkeys(a for a in aliases if a)),
            ports=[asdict(m) for m in mappings],
            conflist=conflist,
            runtime_config=runtime_config,
            result=result,
        )

    async def detach(self, container_id: str, network: str) -> None:
        """Disconnect a container from ``network``: its address goes back to the pool and its
        port rules are removed. Works after an engine restart and with the netns gone."""
        await self.start()
        async with self._lock:
            net = self.get(network)
            ep = self._eps.get((container_id, net.id))
            if ep is None:
                raise NotFound(f"container {container_id[:12]} is not connected to {net.name}")
            await self._detach_locked(ep)

    async def detach_all(self, container_id: str) -> None:
        """Disconnect a container from every network (when it stops or is removed)."""
        await self.start()
        async with self._lock:
            for ep in self.container_endpoints(container_id):
                await self._detach_locked(ep)

    async def _detach_locked(self, ep: Endpoint) -> None:
        netns = ep.netns if Path(ep.netns).exists() else ""
        rt = cni.CNIRuntime(ep.container_id, netns, ep.ifname)
        await cni.del_list(
            self.plugin_dir, ep.conflist, rt, ep.runtime_config, prev_result=ep.result
        )
        self._ep_path(ep.container_id, ep.network_id).unlink(missing_ok=True)
        self._eps.pop((ep.container_id, ep.network_id), None)
        if self.dns is not None:
            await self.dns.sync()

    async def reconcile(self, live: Iterable[str]) -> list[str]:
        """After a restart: detach every endpoint whose container is not in ``live``; the ids
        of the containers cleaned up."""
        await self.start()
        keep = set(live)
        gone: list[str] = []
        async with self._lock:
            for ep in list(self._eps.values()):
                if ep.container_id not in keep:
                    await self._detach_locked(ep)
                    gone.append(ep.container_id)
        return sorted(set(gone))


async def _del_link(name: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "link",
        "delete",
        name,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
