"""Published-port specs (every ``docker run -p`` form), -P, PortBindings round trips, and
host-port resolution against other containers and real host listeners on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from engine.errors import Conflict, InvalidArgument
from engine.network.ports import (
    PortMapping,
    PortSpec,
    ephemeral_range,
    from_docker_bindings,
    parse_port_spec,
    parse_port_specs,
    publish_all,
    resolve,
    to_docker_bindings,
    to_docker_ports,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortSpec(80)]),
        ("80/udp", [PortSpec(80, "udp")]),
        ("8080:80", [PortSpec(80, "tcp", "", 8080)]),
        ("8080:80/TCP", [PortSpec(80, "tcp", "", 8080)]),
        ("127.0.0.1:8080:80", [PortSpec(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortSpec(80, "tcp", "127.0.0.1", 0)]),
        ("0.0.0.0:53:53/udp", [PortSpec(53, "udp", "0.0.0.0", 53)]),
        ("[::1]:8080:80", [PortSpec(80, "tcp", "::1", 8080)]),
        ("[::]::80/sctp", [PortSpec(80, "sctp", "::", 0)]),
        ("7000-7001:80-81", [PortSpec(80, "tcp", "", 7000), PortSpec(81, "tcp", "", 7001)]),
        ("80-82", [PortSpec(80), PortSpec(81), PortSpec(82)]),
        ("9000-9010:80", [PortSpec(80, "tcp", "", 0, (9000, 9010))]),
    ],
)
def test_port_spec_forms(spec: str, expected: list[PortSpec]) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty port spec"),
        ("abc", "invalid container port 'abc'"),
        ("0", "ports are 1 to 65535"),
        ("70000:80", "ports are 1 to 65535"),
        ("80/icmp", "invalid protocol 'icmp'"),
        ("1.2.3:80:80", "invalid host IP '1.2.3'"),
        ("a:b:c:d", "use \\[IP:\\]"),
        ("90-80", "end before start"),
        ("7000-7002:80-81", "differ in size"),
        ("[::1:80:80", "use \\[IPv6\\]"),
    ],
)
def test_bad_port_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_port_spec(spec)


def test_same_host_port_twice_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="host port 8080/tcp is published twice"):
        parse_port_specs(["8080:80", "8080:81"])
    assert len(parse_port_specs(["8080:80", "8080:80/udp", "127.0.0.1:8081:80"])) == 3


def test_publish_all_and_docker_shapes() -> None:
    explicit = parse_port_specs(["8080:80"])
    extra = publish_all(["80/tcp", "443/tcp", "53/udp", "9000"], explicit)
    assert [p.key for p in extra] == ["443/tcp", "53/udp", "9000/tcp"]
    assert all(p.host_port == 0 for p in extra)
    with pytest.raises(InvalidArgument, match="protocol must be"):
        publish_all(["80/xyz"])

    specs = parse_port_specs(["127.0.0.1:8080:80", "9000-9001:81", "53/udp"])
    bindings = to_docker_bindings(specs)
    assert bindings == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "81/tcp": [{"HostIp": "", "HostPort": "9000-9001"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }
    assert from_docker_bindings(bindings) == specs
    ports = to_docker_ports([PortMapping("", 8080, 80), PortMapping("127.0.0.1", 53, 53, "udp")])
    assert ports == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
    }


def test_resolve_checks_other_containers_and_the_host() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(
            Conflict, match=rf"127\.0\.0\.1:{busy}/tcp: .* by a process on the host"
        ):
            resolve(parse_port_specs([f"127.0.0.1:{busy}:80"]), [])
        # udp on the same number is another port
        udp = resolve(parse_port_specs([f"127.0.0.1:{busy}:80/udp"]), [])
        assert udp == [PortMapping("127.0.0.1", busy, 80, "udp")]

    held = [(PortMapping("", 18080, 80), "web")]
    with pytest.raises(Conflict, match=r"0\.0\.0\.0:18080/tcp: port is already allocated by web"):
        resolve(parse_port_specs(["18080:80"]), held)
    with pytest.raises(Conflict, match="already allocated by web"):
        resolve(parse_port_specs(["127.0.0.1:18080:80"]), held)
    # a different address on both sides does not clash
    other = [(PortMapping("127.0.0.2", 18081, 80), "db")]
    assert resolve(parse_port_specs(["127.0.0.1:18081:80"]), other, check_host=False)

    lo, hi = ephemeral_range()
    picked = resolve(parse_port_specs(["127.0.0.1::80", "127.0.0.1::81"]), [])
    assert all(lo <= m.host_port <= hi for m in picked)
    assert picked[0].host_port != picked[1].host_port

    ranged = resolve(
        parse_port_specs(["18090-18092:80"]), [(PortMapping("", 18090, 1), "a")], check_host=False
    )
    assert ranged == [PortMapping("", 18091, 80)]
    with pytest.raises(Conflict, match="no free host port in 18090-18091"):
        resolve(
            parse_port_specs(["18090-18091:80"]),
            [(PortMapping("", 18090, 1), "a"), (PortMapping("", 18091, 1), "b")],
            check_host=False,
        )
