"""Published ports: docker's ``-p``/``-P`` specs parsed, expanded and checked for conflicts.

Forms accepted (as ``docker run -p``): ``CPORT``, ``HPORT:CPORT``, ``IP:HPORT:CPORT``,
``IP::CPORT``, ``[IPv6]:HPORT:CPORT``, each port possibly a range ``A-B``, and a ``/tcp``,
``/udp`` or ``/sctp`` suffix. A host range with one container port means "any free port of
the range". Host port 0 (or none) means "an ephemeral port chosen at publish time".
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import Conflict, InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortSpec:
    """One container port to publish; ``host_port`` 0 = pick from ``host_range`` or ephemeral."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_range: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        """Docker's port key, e.g. ``"80/tcp"``."""
        return f"{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class PortMapping:
    """A resolved publication: host address and port to container port."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def describe(self) -> str:
        host = f"[{self.host_ip}]" if ":" in self.host_ip else (self.host_ip or "0.0.0.0")
        return f"{host}:{self.host_port}->{self.container_port}/{self.protocol}"


def _port_range(text: str, spec: str, what: str) -> tuple[int, int]:
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} port {text!r} in {spec!r}: use a number or a range like 8000-8010"
        ) from None
    if not (0 < lo <= 65535 and 0 < hi <= 65535):
        raise InvalidArgument(f"invalid {what} port {text!r} in {spec!r}: ports are 1 to 65535")
    if hi < lo:
        raise InvalidArgument(f"invalid {what} port range {text!r} in {spec!r}: end before start")
    return lo, hi


def _host_ip(text: str, spec: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"invalid host IP {text!r} in port spec {spec!r}") from None


def parse_port_spec(spec: str) -> list[PortSpec]:
    """One ``-p`` value as one PortSpec per container port."""
    raw = spec.strip()
    if not raw:
        raise InvalidArgument("empty port spec: use [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
    body, _, proto = raw.rpartition("/") if "/" in raw else (raw, "", "tcp")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in port spec {spec!r}: use tcp|udp|sctp")
    if body.startswith("["):
        end = body.find("]")
        if end < 0 or body[end + 1 : end + 2] != ":":
            raise InvalidArgument(
                f"invalid port spec {spec!r}: use [IPv6]:HOST_PORT:CONTAINER_PORT"
            )
        ip_text, rest = body[: end + 1], body[end + 2 :]
        host_text, sep, cont_text = rest.rpartition(":")
        if not sep:
            raise InvalidArgument(f"invalid port spec {spec!r}: no container port")
        parts = [ip_text, host_text, cont_text]
    else:
        parts = body.split(":")
        if len(parts) > 3:
            raise InvalidArgument(
                f"invalid port spec {spec!r}: use [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"
            )
        parts = [""] * (3 - len(parts)) + parts
    ip_text, host_text, cont_text = parts
    host_ip = _host_ip(ip_text, spec)
    c_lo, c_hi = _port_range(cont_text, spec, "container")
    if not host_text:
        return [PortSpec(p, proto, host_ip) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _port_range(host_text, spec, "host")
    if c_lo == c_hi and h_lo != h_hi:
        return [PortSpec(c_lo, proto, host_ip, 0, (h_lo, h_hi))]
    if (h_hi - h_lo) != (c_hi - c_lo):
        raise InvalidArgument(
            f"invalid port spec {spec!r}: host range {host_text} and container range "
            f"{cont_text} differ in size"
        )
    return [
        PortSpec(c, proto, host_ip, h)
        for c, h in zip(range(c_lo, c_hi + 1), range(h_lo, h_hi + 1), strict=True)
    ]


def parse_port_specs(specs: Iterable[str]) -> list[PortSpec]:
    """Every ``-p`` value; a host port asked twice on one address is refused."""
    out: list[PortSpec] = []
    for s in specs:
        out.extend(parse_port_spec(s))
    seen: set[tuple[str, int, str]] = set()
    for p in out:
        if p.host_port:
            k = (p.host_ip, p.host_port, p.protocol)
            if k in seen:
                raise InvalidArgument(
                    f"host port {p.host_port}/{p.protocol} is published twice; use another port"
                )
            seen.add(k)
    return out


def parse_exposed(key: str) -> tuple[int, str]:
    """An ExposedPorts key (``"80/tcp"``, ``"53/udp"``, ``"8080"``) as (port, protocol)."""
    port_s, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid exposed port {key!r}: protocol must be tcp|udp|sctp")
    lo, hi = _port_range(port_s, key, "exposed")
    if lo != hi:
        raise InvalidArgument(f"invalid exposed port {key!r}: one port per key")
    return lo, proto


def publish_all(exposed: Iterable[str], explicit: Iterable[PortSpec] = ()) -> list[PortSpec]:
    """``-P``: every exposed port not already published explicitly, on an ephemeral host port."""
    taken = {p.key for p in explicit}
    out: list[PortSpec] = []
    for key in exposed:
        port, proto = parse_exposed(key)
        spec = PortSpec(port, proto)
        if spec.key not in taken:
            taken.add(spec.key)
            out.append(spec)
    return out


def from_docker_bindings(bindings: dict[str, list[dict[str, str]] | None]) -> list[PortSpec]:
    """HostConfig.PortBindings (``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``)."""
    out: list[PortSpec] = []
    for key, entries in (bindings or {}).items():
        port, proto = parse_exposed(key)
        for entry in entries or [{}]:
            ip = _host_ip(str(entry.get("HostIp") or ""), key)
            hp = str(entry.get("HostPort") or "")
            if not hp or hp == "0":
                out.append(PortSpec(port, proto, ip))
                continue
            lo, hi = _port_range(hp, key, "host")
            out.append(
                PortSpec(port, proto, ip, lo if lo == hi else 0, None if lo == hi else (lo, hi))
            )
    return out


def to_docker_bindings(specs: Iterable[PortSpec]) -> dict[str, list[dict[str, str]]]:
    """PortSpecs as HostConfig.PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in specs:
        if p.host_range:
            hp = f"{p.host_range[0]}-{p.host_range[1]}"
        else:
            hp = str(p.host_port) if p.host_port else ""
        out.setdefault(p.key, []).append({"HostIp": p.host_ip, "HostPort": hp})
    return out


def to_docker_ports(mappings: Iterable[PortMapping]) -> dict[str, list[dict[str, str]]]:
    """Resolved mappings as NetworkSettings.Ports."""
    out: dict[str, list[dict[str, str]]] = {}
    for m in mappings:
        out.setdefault(f"{m.container_port}/{m.protocol}", []).append(
            {"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}
        )
    return out


def _overlaps(a_ip: str, b_ip: str) -> bool:
    return (
        not a_ip
        or not b_ip
        or a_ip == b_ip
        or a_ip in ("0.0.0.0", "::")
        or b_ip
        in (
            "0.0.0.0",
            "::",
        )
    )


def host_port_free(host_ip: str, port: int, protocol: str) -> bool:
    """Whether a host socket could bind ``host_ip:port`` (nothing on the host listens there)."""
    if protocol == "sctp":
        return True
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError:
            return False
    return True


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (docker picks published ports from it too)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def resolve(
    specs: Iterable[PortSpec],
    in_use: Iterable[tuple[PortMapping, str]],
    *,
    check_host: bool = True,
) -> list[PortMapping]:
    """Give every spec a host port; Conflict names who holds a port asked for explicitly.

    ``in_use`` is every published mapping of other containers with its owner's name.
    """
    used = list(in_use)
    out: list[PortMapping] = []

    def holder(ip: str, port: int, proto: str) -> str | None:
        for m, owner in used:
            if m.host_port == port and m.protocol == proto and _overlaps(m.host_ip, ip):
                return owner
        for m in out:
            if m.host_port == port and m.protocol == proto and _overlaps(m.host_ip, ip):
                return "this container"
        if check_host and not host_port_free(ip, port, proto):
            return "a process on the host"
        return None

    for p in specs:
        if p.host_port:
            who = holder(p.host_ip, p.host_port, p.protocol)
            if who:
                raise Conflict(
                    f"cannot publish {p.host_ip or '0.0.0.0'}:{p.host_port}/{p.protocol}: "
                    f"port is already allocated by {who}; choose another host port"
                )
            port = p.host_port
        else:
            lo, hi = p.host_range or ephemeral_range()
            port = next(
                (c for c in range(lo, hi + 1) if holder(p.host_ip, c, p.protocol) is None), 0
            )
            if not port:
                raise Conflict(
                    f"cannot publish {p.key}: no free host port in {lo}-{hi}; "
                    "free one or choose another range"
                )
        out.append(PortMapping(p.host_ip, port, p.container_port, p.protocol))
    return out
