"""The records of the network layer: networks and endpoints as persisted under
<root>/networks, the Attachment handed to the runtime, and NetworkMode (``--network``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidArgument, PortsideError
from engine.network.ports import PortMapping

DEFAULT_BRIDGE = "portside0"
# The default bridge's subnets: /24s of a block clear of docker's 172.17-31 and 192.168
DEFAULT_BRIDGE_POOL = "10.213.0.0/16"
DEFAULT_BRIDGE_SIZE = 24
BUILTIN = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"


class NetworkError(PortsideError):
    """Networking cannot be set up on this host (missing iptables, plugins, ...)."""


@dataclass
class Network:
    """One network's persisted definition."""

    id: str
    name: str
    driver: str  # "bridge" | "host" | "null"
    created: str
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    user_subnet: bool = False

    @property
    def bridge(self) -> str:
        return self.options.get(OPT_BRIDGE_NAME) or f"br-{self.id[:12]}"

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN


@dataclass
class Endpoint:
    """One container's attachment to one network, persisted until detach."""

    container_id: str
    container_name: str
    network_id: str
    endpoint_id: str
    netns: str
    ifname: str
    ip: str  # with prefix, "172.18.0.2/16"
    gateway: str
    mac: str
    aliases: list[str]
    ports: list[dict[str, Any]]
    host_if: str = ""  # the veth's host end

    @property
    def mappings(self) -> list[PortMapping]:
        return [PortMapping(**p) for p in self.ports]

    @property
    def address(self) -> str:
        return self.ip.split("/", 1)[0]


@dataclass(frozen=True)
class Attachment:
    """What the runtime needs after attaching a container to a network."""

    network_id: str
    network_name: str
    endpoint_id: str
    ifname: str
    ip: str
    prefix_len: int
    gateway: str
    mac: str
    aliases: tuple[str, ...]
    ports: tuple[PortMapping, ...]
    dns: str = ""  # the embedded DNS server's address for resolv.conf, "" = none


@dataclass(frozen=True)
class NetworkMode:
    """A container's HostConfig.NetworkMode, decoded.

    ``kind`` is "network" (attach to the bridge network named ``target``), "host", "none" or
    "container" (join the netns of the container named ``target``).
    """

    kind: str
    target: str = ""


def parse_network_mode(mode: str) -> NetworkMode:
    """``--network`` / NetworkMode: "", "default", "bridge", "host", "none",
    "container:NAME|ID", or a user-defined network's name or id."""
    if mode in ("", "default"):
        return NetworkMode("network", "bridge")
    if mode in ("host", "none"):
        return NetworkMode(mode)
    if mode.startswith("container:"):
        target = mode.partition(":")[2]
        if not target:
            raise InvalidArgument("--network container: needs a container name or id")
        return NetworkMode("container", target)
    if not NAME_RE.match(mode):
        raise InvalidArgument(
            f"invalid --network {mode!r}: use bridge, host, none, container:NAME or a network name"
        )
    return NetworkMode("network", mode)
