"""The files the engine writes for a container and binds over /etc: hosts, hostname and
resolv.conf (docker's rules for the none and host networks; ``write`` is the atomic writer
the networking code uses to rewrite them for networked containers)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument

HOST_RESOLV = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")
_DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,252}[a-zA-Z0-9])?$")


def check_hostname(name: str) -> None:
    if name and not _HOSTNAME.match(name):
        raise InvalidArgument(f"invalid hostname {name!r}: use letters, digits, '-' and '.'")


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _extra_hosts(extra: list[str], host_gateway: str = "") -> str:
    lines = []
    for item in extra:
        name, sep, addr = item.partition(":") if ":" in item else (item, "", "")
        if not sep or not name:
            raise InvalidArgument(f"invalid extra host {item!r}: use name:ip")
        if addr == "host-gateway":
            if not host_gateway:
                raise InvalidArgument(
                    "host-gateway needs a bridge or user-defined network: use --network"
                )
            addr = host_gateway
        try:
            ipaddress.ip_address(addr.strip("[]"))
        except ValueError:
            raise InvalidArgument(f"invalid IP address {addr!r} in extra host {item!r}") from None
        lines.append(f"{addr.strip('[]')}\t{name}\n")
    return "".join(lines)


def hosts_text(network: str, hostname: str, extra: list[str], host_gateway: str = "") -> str:
    if network == "host":
        try:
            base = HOST_HOSTS.read_text()
        except OSError:
            base = _DEFAULT_HOSTS
    else:
        base = _DEFAULT_HOSTS
    return base + _extra_hosts(extra, host_gateway)


def resolv_text(network: str, host: dict[str, Any]) -> str:
    """Host's resolv.conf (minus loopback servers unless on the host network) + overrides."""
    try:
        lines = HOST_RESOLV.read_text().splitlines()
    except OSError:
        lines = []
    servers = list(host.get("Dns") or [])
    search = list(host.get("DnsSearch") or [])
    options = list(host.get("DnsOptions") or [])
    for s in servers:
        try:
            ipaddress.ip_address(s)
        except ValueError:
            raise InvalidArgument(f"invalid DNS server {s!r}: give an IP address") from None
    out = []
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            out.append(line)
            continue
        if words[0] == "nameserver":
            if servers:
                continue
            if network != "host" and len(words) > 1 and _is_loopback(words[1]):
                continue
        elif (words[0] in ("search", "domain") and search) or (words[0] == "options" and options):
            continue
        out.append(line)
    out.extend(f"nameserver {s}" for s in servers)
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def write_all(
    directory: Path,
    *,
    network: str,
    hostname: str,
    domainname: str,
    host: dict[str, Any],
    host_gateway: str = "",
) -> dict[str, Path]:
    """Write hosts, hostname and resolv.conf into ``directory``; returns their paths."""
    if network == "host":
        hostname = socket.gethostname()
    paths = {
        "hosts": directory / "hosts",
        "hostname": directory / "hostname",
        "resolv.conf": directory / "resolv.conf",
    }
    extra = list(host.get("ExtraHosts") or [])
    write(paths["hosts"], hosts_text(network, hostname, extra, host_gateway))
    write(paths["hostname"], hostname + "\n")
    write(paths["resolv.conf"], resolv_text(network, host))
    del domainname
    return paths
