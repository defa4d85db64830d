"""Per-container /etc/hosts, /etc/hostname and /etc/resolv.conf content, as docker writes them.

Pure text generation plus reading the host's resolv.conf; the runtime writes the files into
the container's bundle. Name resolution between containers of a user-defined network is by
/etc/hosts entries for the network's other containers (``peers``), refreshed by the runtime
when a container joins or leaves the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidArgument

DEFAULT_DNS_V4 = ("8.8.8.8", "8.8.4.4")
DEFAULT_DNS_V6 = ("2001:4860:4860::8888", "2001:4860:4860::8844")
HOST_GATEWAY = "host-gateway"
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_STANDARD = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)


def check_hostname(name: str) -> str:
    """A valid RFC 1123 host name (as ``--hostname`` and ``--add-host`` need)."""
    if len(name) > 253 or not _HOSTNAME.match(name):
        raise InvalidArgument(
            f"invalid hostname {name!r}: use letters, digits, '-' and dots (at most 63 per label)"
        )
    return name


def parse_add_host(spec: str, host_gateway: str | None = None) -> tuple[str, str]:
    """``--add-host NAME:IP`` (or ``NAME=IP``, IP may be ``host-gateway``) as (name, ip)."""
    sep = "=" if "=" in spec else ":"
    name, ok, ip = spec.partition(sep)
    if not ok or not name or not ip:
        raise InvalidArgument(f"invalid --add-host {spec!r}: use NAME:IP")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip == HOST_GATEWAY:
        if not host_gateway:
            raise InvalidArgument(f"--add-host {spec!r}: no host gateway known for this network")
        ip = host_gateway
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise InvalidArgument(f"invalid IP {ip!r} in --add-host {spec!r}") from None
    return check_hostname(name), ip


@dataclass(frozen=True)
class HostEntry:
    """One /etc/hosts line: an address and its names."""

    ip: str
    names: tuple[str, ...]


def hosts_content(
    *,
    hostname: str = "",
    domainname: str = "",
    ips: Sequence[str] = (),
    extra_hosts: Iterable[tuple[str, str]] = (),
    peers: Iterable[HostEntry] = (),
) -> str:
    """The container's /etc/hosts: docker's standard lines, ``--add-host`` entries, the
    container's own addresses (``ips``) named by its hostname, then its network peers."""
    lines = [f"{ip}\t{names}" for ip, names in _STANDARD]
    lines += [f"{ip}\t{name}" for name, ip in extra_hosts]
    if hostname:
        names = hostname
        if domainname:
            names = f"{hostname}.{domainname} {hostname}"
        lines += [f"{ip}\t{names}" for ip in ips]
    for peer in peers:
        if peer.names:
            lines.append(f"{peer.ip}\t{' '.join(peer.names)}")
    return "\n".join(lines) + "\n"


def hostname_content(hostname: str) -> str:
    """The container's /etc/hostname."""
    return f"{check_hostname(hostname)}\n"


@dataclass
class ResolvConf:
    """The parts of a resolv.conf docker keeps: nameservers, search domains, options."""

    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> ResolvConf:
    """The nameserver, search/domain and options lines of a resolv.conf."""
    rc = ResolvConf()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not line:
            continue
        key, args = line[0], line[1:]
        if key == "nameserver" and args:
            rc.nameservers.append(args[0])
        elif key in ("search", "domain"):
            rc.search = list(args)
        elif key == "options":
            rc.options.extend(args)
    return rc


def _is_loopback(ns: str) -> bool:
    try:
        return ipaddress.ip_address(ns.split("%", 1)[0]).is_loopback
    except ValueError:
        return True  # unparsable entries are dropped too


def resolv_conf_content(
    host: ResolvConf,
    *,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    ipv6: bool = False,
) -> str:
    """The container's /etc/resolv.conf, docker's way: ``--dns*`` options replace the host's
    values; the host's loopback nameservers (and IPv6 ones without IPv6) are dropped; when no
    nameserver is left, Google's public servers are used."""
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(f"invalid --dns {server!r}: give an IP address") from None
    if dns:
        servers = list(dns)
    else:
        servers = [
            s
            for s in host.nameservers
            if not _is_loopback(s) and (ipv6 or ipaddress.ip_address(s.split("%")[0]).version == 4)
        ]
        if not servers:
            servers = [*DEFAULT_DNS_V4, *(DEFAULT_DNS_V6 if ipv6 else ())]
    search = list(dns_search) if dns_search else host.search
    options = list(dns_options) if dns_options else host.options
    lines = [f"nameserver {s}" for s in servers]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def host_resolv_conf_path() -> Path:
    """/etc/resolv.conf, or systemd-resolved's upstream list when /etc has only its stub."""
    etc = Path("/etc/resolv.conf")
    upstream = Path("/run/systemd/resolve/resolv.conf")
    try:
        servers = parse_resolv_conf(etc.read_text()).nameservers
    except OSError:
        servers = []
    if servers == ["127.0.0.53"] and upstream.is_file():
        return upstream
    return etc


async def read_host_resolv_conf(path: Path | None = None) -> ResolvConf:
    """The host's resolv.conf, parsed (an unreadable one counts as empty)."""

    def read() -> str:
        try:
            return (path or host_resolv_conf_path()).read_text()
        except OSError:
            return ""

    return parse_resolv_conf(await asyncio.to_thread(read))
