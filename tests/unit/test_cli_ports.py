"""docker's -p / --expose syntax as the run verb parses it."""

from __future__ import annotations

import pytest

from tui.cli.images import VerbError
from tui.cli.ports import parse_expose, parse_publish


@pytest.mark.parametrize(
    ("spec", "key", "binding"),
    [
        ("8080:80", "80/tcp", {"HostIp": "", "HostPort": "8080"}),
        ("80", "80/tcp", {"HostIp": "", "HostPort": ""}),
        ("127.0.0.1:8080:80/udp", "80/udp", {"HostIp": "127.0.0.1", "HostPort": "8080"}),
        ("127.0.0.1::80", "80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""}),
        ("[::1]:8080:80", "80/tcp", {"HostIp": "::1", "HostPort": "8080"}),
        ("8000-8010:80", "80/tcp", {"HostIp": "", "HostPort": "8000-8010"}),
        ("9000:53/SCTP", "53/sctp", {"HostIp": "", "HostPort": "9000"}),
    ],
)
def test_one_port(spec: str, key: str, binding: dict[str, str]) -> None:
    exposed, bindings = parse_publish([spec])
    assert exposed == {key: {}}
    assert bindings == {key: [binding]}


def test_ranges_pair_up_and_repeats_add_bindings() -> None:
    exposed, bindings = parse_publish(["8000-8002:80-82", "127.0.0.1:9080:80"])
    assert sorted(exposed) == ["80/tcp", "81/tcp", "82/tcp"]
    assert bindings["81/tcp"] == [{"HostIp": "", "HostPort": "8001"}]
    assert bindings["80/tcp"] == [
        {"HostIp": "", "HostPort": "8000"},
        {"HostIp": "127.0.0.1", "HostPort": "9080"},
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("8080:http", "container port"),
        ("70000:80", "ports are 1-65535"),
        ("0:80", "ports are 1-65535"),
        ("80/icmp", "use tcp, udp or sctp"),
        ("8000-8001:80-83", "ranges differ"),
        ("::1:8080:80", "brackets"),
        ("[::1:8080:80", "[IPv6]"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(VerbError, match=message) as info:
        parse_publish([spec])
    assert info.value.code == 125


def test_expose_ranges_and_protocols() -> None:
    assert parse_expose(["80", "53/udp", "7000-7001"]) == {
        "80/tcp": {},
        "53/udp": {},
        "7000/tcp": {},
        "7001/tcp": {},
    }
    with pytest.raises(VerbError, match="give a port or a range"):
        parse_expose(["web"])
