"""Where a registry lives and how to talk to it: endpoints, mirrors, insecure hosts, TLS.

``HostResolver.endpoints(registry)`` lists the base URLs to try in order, like dockerd:
registry mirrors first for docker.io, then the registry itself over verified https; for a
registry listed in ``insecure_registries`` (host[:port] or a CIDR) https without verification,
then plain http. TLS trust comes from docker-style ``certs.d/HOST[:PORT]/`` directories
(``*.crt`` CAs, ``*.cert`` + ``*.key`` client certificates).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

from engine.config import EngineConfig
from engine.errors import RegistryError
from engine.reference import DEFAULT_REGISTRY, DOCKER_HUB_API_HOST

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One base URL serving a registry's ``/v2/`` API."""

    registry: str  # the registry this endpoint serves (docker.io for Hub and its mirrors)
    base: URL  # scheme://host[:port][/prefix], no trailing slash
    ssl: ssl.SSLContext | None  # None for plain http
    mirror: bool = False
    insecure: bool = False  # plain http, or https without certificate verification

    @property
    def host(self) -> str:
        """``host[:port]`` as written in certs.d and credential keys."""
        return host_port(self.base)

    def url(self, path: str) -> URL:
        """``path`` (starting with /v2/) under this endpoint; never re-encodes validated names."""
        prefix = self.base.raw_path.rstrip("/")
        return self.base.with_path(prefix + path, encoded=True)

    def __str__(self) -> str:
        return str(self.base)


def host_port(url: URL) -> str:
    """``host`` or ``host:port`` of ``url`` (explicit port only), IPv6 in brackets."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.explicit_port}" if url.explicit_port else host


def split_host(hostport: str) -> str:
    """The hostname of ``host[:port]`` (brackets removed for IPv6)."""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_internal_literal(host: str) -> bool:
    """True for IP literals that are loopback, private, link-local or otherwise special."""
    addr = ip_literal(host)
    if addr is None:
        return False
    return (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_unspecified
        or addr.is_multicast
        or addr.is_reserved
    )


def is_link_local_literal(host: str) -> bool:
    addr = ip_literal(host)
    return addr is not None and (addr.is_link_local or addr.is_unspecified)


class HostResolver:
    """Endpoint lists and TLS contexts for registries, cached for one client."""

    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        self._ssl: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._insecure: dict[str, bool] = {}
        self._exact: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in config.insecure_registries:
            text = entry.strip().lower()
            if "://" in text:
                text = text.split("://", 1)[1]
            text = text.rstrip("/")
            if "/" in text:
                try:
                    self._networks.append(ipaddress.ip_network(text, strict=False))
                    continue
                except ValueError:
                    log.warning(
                        "ignoring insecure registry entry %r: not host[:port] or CIDR", entry
                    )
                    continue
            self._exact.add(text)

    async def is_insecure(self, hostport: str) -> bool:
        """Whether ``host[:port]`` is listed (exactly, or by an address in a listed CIDR)."""
        key = hostport.lower()
        if key in self._insecure:
            return self._insecure[key]
        result = key in self._exact
        if not result and self._networks:
            host = split_host(key)
            addrs: set[str] = set()
            if ip_literal(host) is not None:
                addrs.add(str(ip_literal(host)))
            else:
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        host, None, type=socket.SOCK_STREAM
                    )
                    addrs = {str(info[4][0]) for info in infos}
                except OSError:
                    addrs = set()
            result = any(
                ipaddress.ip_address(addr.split("%", 1)[0]) in net
                for addr in addrs
                for net in self._networks
            )
        self._insecure[key] = result
        return result

    async def ssl_context(self, hostport: str, *, verify: bool = True) -> ssl.SSLContext:
        """A TLS context trusting system CAs plus certs.d/HOST[:PORT]/*.crt, with client certs."""
        key = (hostport.lower(), verify)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = await asyncio.to_thread(self._build_ssl, hostport, verify)
            self._ssl[key] = ctx
        return ctx

    def certs_dirs_for(self, hostport: str) -> list[Path]:
        names = [hostport, hostport.lower()]
        out: list[Path] = []
        for base in self._config.all_certs_dirs():
            for name in dict.fromkeys(names):
                if "/" in name or name in ("", ".", ".."):
                    continue
                candidate = base / name
                if candidate.is_dir() and candidate not in out:
                    out.append(candidate)
        return out

    def _build_ssl(self, hostport: str, verify: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client_loaded = False
        for directory in self.certs_dirs_for(hostport):
            try:
                entries = sorted(directory.iterdir())
            except OSError as err:
                raise RegistryError(
                    f"cannot read certificates in {directory}: {err.strerror}"
                ) from None
            for path in entries:
                if path.suffix == ".crt" and verify:
                    try:
                        ctx.load_verify_locations(cafile=str(path))
                    except (ssl.SSLError, OSError) as err:
                        raise RegistryError(
                            f"invalid CA certificate {path}: {_ssl_reason(err)}; fix or remove it"
                        ) from None
                elif path.suffix == ".cert" and not client_loaded:
                    key = path.with_suffix(".key")
                    if not key.is_file():
                        raise RegistryError(
                            f"client certificate {path} has no matching key {key.name}; add it"
                        )
                    try:
                        ctx.load_cert_chain(str(path), str(key))
                    except (ssl.SSLError, OSError) as err:
                        raise RegistryError(
                            f"invalid client certificate {path}: {_ssl_reason(err)}"
                        ) from None
                    client_loaded = True
                elif path.suffix == ".key" and not path.with_suffix(".cert").is_file():
                    raise RegistryError(
                        f"client key {path} has no matching certificate {path.stem}.cert; add it"
                    )
        return ctx

    async def registry_endpoints(self, registry: str) -> list[Endpoint]:
        """The registry's own endpoints (no mirrors), in the order to try them."""
        api_host = DOCKER_HUB_API_HOST if registry == DEFAULT_REGISTRY else registry
        if await self.is_insecure(api_host) or await self.is_insecure(registry):
            return [
                Endpoint(
                    registry,
                    URL(f"https://{api_host}"),
                    await self.ssl_context(api_host, verify=False),
                    insecure=True,
                ),
                Endpoint(registry, URL(f"http://{api_host}"), None, insecure=True),
            ]
        return [Endpoint(registry, URL(f"https://{api_host}"), await self.ssl_context(api_host))]

    async def endpoints(self, registry: str) -> list[Endpoint]:
        """Mirrors (docker.io only) first, then the registry's own endpoints."""
        out: list[Endpoint] = []
        if registry == DEFAULT_REGISTRY:
            for text in self._config.registry_mirrors:
                mirror = await self._mirror_endpoint(text)
                if mirror is not None:
                    out.append(mirror)
        out.extend(await self.registry_endpoints(registry))
        return out

    async def _mirror_endpoint(self, text: str) -> Endpoint | None:
        try:
            url = URL(text.strip())
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.raw_host:
            log.warning("ignoring registry mirror %r: expected http(s)://HOST[:PORT]", text)
            return None
        if url.user or url.password or url.query_string or url.fragment:
            log.warning("ignoring registry mirror %r: no credentials, query or fragment", text)
            return None
        base = url.with_path(url.raw_path.rstrip("/") or "/", encoded=True)
        if base.raw_path.endswith("/v2"):
            base = base.with_path(base.raw_path[: -len("/v2")] or "/", encoded=True)
        base = base.with_path(base.raw_path.rstrip("/"), encoded=True)
        hostport = host_port(base)
        if base.scheme == "http":
            return Endpoint(DEFAULT_REGISTRY, base, None, mirror=True, insecure=True)
        insecure = await self.is_insecure(hostport)
        ctx = await self.ssl_context(hostport, verify=not insecure)
        return Endpoint(DEFAULT_REGISTRY, base, ctx, mirror=True, insecure=insecure)


def _ssl_reason(err: Exception) -> str:
    if isinstance(err, ssl.SSLError) and err.reason:
        return str(err.reason).lower().replace("_", " ")
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__
