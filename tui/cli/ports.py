"""docker's ``-p``/``--publish`` and ``--expose`` syntax, turned into the ContainerCreate
fields ``ExposedPorts`` and ``HostConfig.PortBindings``.

``-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`` where either port may be a range
(``8000-8002:80-82``; a host range with one container port lets the engine pick one of
them), IPv6 addresses go in brackets (``[::1]:8080:80``), PROTO is tcp, udp or sctp.
"""

from __future__ import annotations

from typing import Any

from tui.cli.images import VerbError

PROTOCOLS = ("tcp", "udp", "sctp")


def _range(text: str, what: str, spec: str) -> tuple[int, int]:
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise VerbError(
            f"invalid {what} {text!r} in {spec!r}: give a port or a range", 125
        ) from None
    if not 0 < first <= last < 65536:
        raise VerbError(f"invalid {what} {text!r} in {spec!r}: ports are 1-65535", 125)
    return first, last


def _split_proto(spec: str) -> tuple[str, str]:
    body, slash, proto = spec.rpartition("/")
    if not slash:
        return spec, "tcp"
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise VerbError(f"invalid protocol {proto!r} in {spec!r}: use tcp, udp or sctp", 125)
    return body, proto


def _split_ip(body: str, spec: str) -> tuple[str, str]:
    """(host IP, the rest) of ``[IP:]...``, with IPv6 in brackets."""
    if body.startswith("["):
        end = body.find("]:")
        if end < 0:
            raise VerbError(f"invalid address in {spec!r}: use [IPv6]:HOST:CONTAINER", 125)
        return body[1:end], body[end + 2 :]
    parts = body.split(":")
    if len(parts) == 3:
        return parts[0], f"{parts[1]}:{parts[2]}"
    if len(parts) > 3:
        raise VerbError(f"invalid publish spec {spec!r}: put IPv6 addresses in brackets", 125)
    return "", body


def parse_publish(specs: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``-p`` values -> (ExposedPorts, PortBindings)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        body, proto = _split_proto(spec.strip())
        ip, rest = _split_ip(body, spec)
        host_text, colon, container_text = rest.rpartition(":")
        if not colon:
            host_text, container_text = "", rest
        c_first, c_last = _range(container_text, "container port", spec)
        if host_text:
            h_first, h_last = _range(host_text, "host port", spec)
            count_c, count_h = c_last - c_first + 1, h_last - h_first + 1
            if count_c > 1 and count_c != count_h:
                raise VerbError(
                    f"invalid publish spec {spec!r}: the host and container ranges differ in size",
                    125,
                )
        for offset, port in enumerate(range(c_first, c_last + 1)):
            key = f"{port}/{proto}"
            exposed[key] = {}
            if not host_text:
                host_port = ""
            elif c_first == c_last and h_first != h_last:
                host_port = f"{h_first}-{h_last}"
            else:
                host_port = str(h_first + offset)
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_port})
    return exposed, bindings


def parse_expose(specs: list[str]) -> dict[str, Any]:
    """``--expose PORT[-PORT][/PROTO]`` values -> ExposedPorts."""
    exposed: dict[str, Any] = {}
    for spec in specs:
        body, proto = _split_proto(spec.strip())
        first, last = _range(body, "port", spec)
        for port in range(first, last + 1):
            exposed[f"{port}/{proto}"] = {}
    return exposed
