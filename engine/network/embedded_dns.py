"""Runs one ``dns.DNSServer`` per user-defined network that has containers, on the network's
gateway address, port 53; started and stopped as containers attach and detach.

The default "bridge" network gets none (as in docker, its containers only see /etc/hosts).
A server that cannot bind (port 53 taken on that address) is skipped with no error: its
network's containers then resolve each other through /etc/hosts alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.network.dns import DNSServer

if TYPE_CHECKING:
    from engine.network.networks import NetworkService

log = logging.getLogger(__name__)


class EmbeddedDNS:
    """The DNS servers of one NetworkService's networks."""

    def __init__(
        self,
        service: NetworkService,
        upstreams: Sequence[str | tuple[str, int]],
        port: int = 53,
    ) -> None:
        self.service = service
        self.upstreams = list(upstreams)
        self.port = port
        self._servers: dict[str, DNSServer] = {}

    def nameserver(self, network_id: str) -> str:
        """The address containers of the network should use, or "" when none is serving."""
        server = self._servers.get(network_id)
        return server.address[0] if server else ""

    def lookup(self, network_id: str, name: str) -> list[str]:
        """IPv4 addresses of the network's containers called ``name`` (name, alias, short id)."""
        name = name.rstrip(".").lower()
        out: list[str] = []
        for ep in self.service.endpoints(network_id):
            names = {ep.container_name.lower(), ep.container_id[:12].lower()}
            names.update(a.lower() for a in ep.aliases)
            if name in names:
                out.append(ep.address)
        return out

    async def sync(self) -> None:
        """Start servers for networks that have containers, stop the others."""
        wanted = {
            ep.network_id
            for ep in self.service.endpoints()
            if (net := self.service.get(ep.network_id)).name != "bridge" and net.gateway
        }
        for nid in set(self._servers) - wanted:
            await self._servers.pop(nid).close()
        for nid in wanted - set(self._servers):
            net = self.service.get(nid)
            server = DNSServer(
                lambda name, nid=nid: self.lookup(nid, name),
                self.upstreams,
                allowed=[net.subnet],
            )
            try:
                await server.start(net.gateway, self.port)
            except OSError as err:
                log.warning("no embedded DNS on %s:%s: %s", net.gateway, self.port, err)
                with contextlib.suppress(Exception):
                    await server.close()
                continue
            self._servers[nid] = server

    async def close(self) -> None:
        """Stop every server."""
        for server in self._servers.values():
            await server.close()
        self._servers.clear()
