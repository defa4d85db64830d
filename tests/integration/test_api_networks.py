"""Networks over the Docker Engine API, as the docker CLI drives them against a real
``portside serve``: network create/ls/inspect/rm/prune with dockerd's shapes and errors,
containers on a user-defined network reaching each other by alias, a published port reached
from the host on 127.0.0.1, and connect/disconnect at run time.

Only user-defined networks are used (their bridges are named after their ids), and every
network and container is removed at the end, with the CNI iptables chains it created.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.fixtures.dockerd import DockerdFixture
from tests.fixtures.engine import portside as portside_cli
from tests.fixtures.portside import PortsideFixture, start_portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture
from tests.integration.test_network_bridge import host_chains

__all__ = ["host_chains"]  # the module fixture restoring the host's iptables chains


BUSYBOX = "test/busybox:1"
HTTPD = "mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def serve(
    registry: RegistryFixture, pushed_images: dict[str, str]
) -> Iterator[tuple[PortsideFixture, str]]:
    base = short_tempdir("ps-net-")
    try:
        with start_portside(base, "--insecure-registry", registry.host) as engine:
            image = pushed_images[BUSYBOX]
            docker(engine, "pull", "-q", image)
            yield engine, image
            ids = docker(engine, "ps", "-aq", check=False).stdout.split()
            if ids:
                docker(engine, "rm", "-f", *ids, check=False)
            docker(engine, "network", "prune", "-f", check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def docker(
    engine: PortsideFixture, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [engine.cli, *args],
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def get(url: str) -> str:
    """GET ``url`` from the host, retrying while the server in the container starts."""
    last: Exception | None = None
    for _ in range(50):
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read().decode()
        except OSError as err:
            last = err
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered: {last}")


def test_network_verbs_and_errors(serve: tuple[PortsideFixture, str]) -> None:
    eng, _ = serve
    name = f"pst-api-{secrets.token_hex(3)}"
    out = docker(eng, "network", "create", "--label", "team=a", "--subnet", "10.231.7.0/24", name)
    net_id = out.stdout.strip()
    assert len(net_id) == 64
    info = json.loads(docker(eng, "network", "inspect", name).stdout)[0]
    assert info["Id"] == net_id and info["Driver"] == "bridge" and info["Scope"] == "local"
    assert info["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.1"}]
    assert info["Labels"] == {"team": "a"} and info["Containers"] == {}
    listed = docker(eng, "network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.split("\n")
    assert {"bridge bridge", "host host", "none null", f"{name} bridge"} <= set(listed)
    filtered = docker(eng, "network", "ls", "-q", "--filter", "label=team=a").stdout.split()
    assert filtered == [net_id[:12]]

    err = docker(eng, "network", "create", name, check=False)
    assert err.returncode == 1 and f"network with name {name} already exists" in err.stderr
    err = docker(eng, "network", "rm", "bridge", check=False)
    assert err.returncode == 1 and "pre-defined network and cannot be removed" in err.stderr
    err = docker(eng, "network", "inspect", "pst-nope", check=False)
    assert err.returncode == 1 and "network pst-nope not found" in err.stderr
    err = docker(eng, "network", "create", "--ipv6", "pst-v6", check=False)
    assert err.returncode == 1 and "IPv6" in err.stderr
    err = docker(eng, "network", "create", "-d", "overlay", "pst-ov", check=False)
    assert err.returncode == 1 and "not supported" in err.stderr

    docker(eng, "network", "rm", name)
    assert name not in docker(eng, "network", "ls", "--format", "{{.Name}}").stdout.split()
    spare = f"pst-spare-{secrets.token_hex(3)}"
    docker(eng, "network", "create", spare)
    pruned = docker(eng, "network", "prune", "-f").stdout
    assert spare in pruned
    assert spare not in docker(eng, "network", "ls", "--format", "{{.Name}}").stdout.split()


def test_containers_on_a_network_connect_disconnect(serve: tuple[PortsideFixture, str]) -> None:
    eng, image = serve
    tag = secrets.token_hex(3)
    front, back, web = f"pst-front-{tag}", f"pst-back-{tag}", f"pst-web-{tag}"
    docker(eng, "network", "create", front)
    docker(eng, "network", "create", back)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    docker(
        eng, "run", "-d", "--name", web, "--network", front, "--network-alias", "www",
        "-p", f"127.0.0.1:{port}:80", image, "sh", "-c", HTTPD.format(token=token),
    )  # fmt: skip
    try:
        assert get(f"http://127.0.0.1:{port}/").strip() == token
        fetch = "for i in $(seq 10); do wget -qO- http://{0}/ && exit 0; sleep 0.3; done; exit 1"
        out = docker(eng, "run", "--rm", "--network", front, image, "sh", "-c", fetch.format("www"))
        assert out.stdout.strip() == token
        info = json.loads(docker(eng, "inspect", web).stdout)[0]
        ns = info["NetworkSettings"]
        assert ns["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert "www" in ns["Networks"][front]["Aliases"]
        assert ns["Networks"][front]["IPAddress"]
        ps = docker(eng, "ps", "--filter", f"name={web}", "--format", "{{.Ports}}").stdout
        assert f"127.0.0.1:{port}->80/tcp" in ps

        docker(eng, "network", "connect", "--alias", "api", back, web)
        nets = json.loads(docker(eng, "inspect", web).stdout)[0]["NetworkSettings"]["Networks"]
        assert set(nets) == {front, back}
        out = docker(eng, "run", "--rm", "--network", back, image, "sh", "-c", fetch.format("api"))
        assert out.stdout.strip() == token
        members = json.loads(docker(eng, "network", "inspect", back).stdout)[0]["Containers"]
        assert [m["Name"] for m in members.values()] == [web]
        err = docker(eng, "network", "connect", back, web, check=False)
        assert err.returncode == 1 and "already exists" in err.stderr
        err = docker(eng, "network", "rm", back, check=False)
        assert err.returncode == 1 and "active endpoints" in err.stderr

        docker(eng, "network", "disconnect", back, web)
        nets = json.loads(docker(eng, "inspect", web).stdout)[0]["NetworkSettings"]["Networks"]
        assert set(nets) == {front}
        err = docker(eng, "network", "disconnect", back, web, check=False)
        assert err.returncode == 1 and "not connected" in err.stderr
        docker(eng, "network", "rm", back)
    finally:
        docker(eng, "rm", "-f", web, check=False)
    docker(eng, "network", "rm", front)
    assert get_refused(f"http://127.0.0.1:{port}/")


def get_refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3).close()
    except OSError:
        return True
    return False


def test_portside_network_verbs(serve: tuple[PortsideFixture, str]) -> None:
    eng, image = serve
    tag = secrets.token_hex(3)
    net, box = f"pst-cli-{tag}", f"pst-box-{tag}"

    def verb(*args: str) -> subprocess.CompletedProcess[str]:
        return portside_cli("network", *args, "--host", eng.host)

    out = verb("create", "--label", "k=v", "--subnet", "10.232.9.0/24", net)
    assert out.returncode == 0 and len(out.stdout.strip()) == 64, out.stderr
    net_id = out.stdout.strip()
    out = verb("ls", "--filter", f"name={net}")
    assert out.stdout.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert out.stdout.splitlines()[1].split() == [net_id[:12], net, "bridge", "local"]
    info = json.loads(verb("inspect", net).stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == "10.232.9.0/24" and info["Labels"] == {"k": "v"}
    bad = verb("inspect", "pst-nope")
    assert bad.returncode == 1 and "network pst-nope not found" in bad.stderr

    docker(eng, "run", "-d", "--name", box, "--network", "none", image, "sleep", "60")
    try:
        bad = verb("connect", net, box)
        assert bad.returncode == 1 and "cannot be connected" in bad.stderr
        docker(eng, "rm", "-f", box)
        docker(eng, "run", "-d", "--name", box, "--network", net, image, "sleep", "60")
        other = f"pst-other-{tag}"
        assert verb("create", other).returncode == 0
        out = verb("connect", "--alias", "boxy", other, box)
        assert out.returncode == 0, out.stderr
        nets = json.loads(docker(eng, "inspect", box).stdout)[0]["NetworkSettings"]["Networks"]
        assert set(nets) == {net, other} and "boxy" in nets[other]["Aliases"]
        assert verb("disconnect", other, box).returncode == 0
        bad = verb("rm", net)
        assert bad.returncode == 1 and "active endpoints" in bad.stderr
    finally:
        docker(eng, "rm", "-f", box, check=False)
    out = verb("rm", net)
    assert out.returncode == 0 and out.stdout.strip() == net
    out = verb("prune", "-f")
    assert out.returncode == 0 and other in out.stdout.split()
    assert net not in verb("ls", "-q", "--no-trunc").stdout


def test_serve_sigkilled_and_restarted_keeps_networked_containers(
    registry: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    base = short_tempdir("ps-netkill-")
    image = pushed_images[BUSYBOX]
    token = secrets.token_hex(8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    net, web = f"pst-kill-{token[:6]}", f"pst-kweb-{token[:6]}"
    try:
        with start_portside(base, "--insecure-registry", registry.host) as eng:
            docker(eng, "pull", "-q", image)
            docker(eng, "network", "create", net)
            docker(
                eng, "run", "-d", "--name", web, "--network", net, "-p", f"127.0.0.1:{port}:80",
                image, "sh", "-c", HTTPD.format(token=token),
            )  # fmt: skip
            assert get(f"http://127.0.0.1:{port}/").strip() == token
            before = json.loads(docker(eng, "inspect", web).stdout)[0]["NetworkSettings"]
            eng.proc.kill()  # SIGKILL: no clean shutdown at all
            eng.proc.wait()
        assert get(f"http://127.0.0.1:{port}/").strip() == token  # no engine, still served
        with start_portside(base, "--insecure-registry", registry.host) as eng:
            try:
                after = json.loads(docker(eng, "inspect", web).stdout)[0]["NetworkSettings"]
                assert after["Networks"][net]["IPAddress"] == before["Networks"][net]["IPAddress"]
                assert after["Ports"] == before["Ports"]
                members = json.loads(docker(eng, "network", "inspect", net).stdout)[0]
                assert list(members["Containers"]) == [before["SandboxID"]]
                assert get(f"http://127.0.0.1:{port}/").strip() == token
                # name resolution works again through the restarted engine's DNS
                fetch = f"nslookup {web} && wget -qO- http://{web}/"
                out = docker(eng, "run", "--rm", "--network", net, image, "sh", "-c", fetch)
                assert token in out.stdout
                docker(eng, "stop", "-t", "1", web)
                assert get_refused(f"http://127.0.0.1:{port}/")
                members = json.loads(docker(eng, "network", "inspect", net).stdout)[0]
                assert members["Containers"] == {}
            finally:
                docker(eng, "rm", "-f", web, check=False)
                docker(eng, "network", "rm", net, check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.dockerd
def test_shapes_and_errors_match_dockerd(
    serve: tuple[PortsideFixture, str], dockerd: DockerdFixture
) -> None:
    """The same commands against dockerd and portside: same inspect keys, same errors."""
    seen: dict[str, tuple[set[str], set[str], list[str]]] = {}
    for label, eng in (("dockerd", dockerd), ("portside", serve[0])):
        name = f"pst-cmp-{secrets.token_hex(3)}"
        docker(eng, "network", "create", "--subnet", "10.233.4.0/24", name)
        try:
            info = json.loads(docker(eng, "network", "inspect", name).stdout)[0]
            lines = docker(eng, "network", "ls", "--format", "{{json .}}").stdout.splitlines()
            listed = next(e for e in map(json.loads, lines) if e["Name"] == name)
            errors = [
                docker(eng, *args, check=False).stderr.splitlines()[0].replace(name, "NAME")
                for args in (("network", "create", name), ("network", "rm", "none"))
            ]
            # a missing network: a 404 either way (this CLI words dockerd 1.41's differently)
            for args in (("network", "inspect", "pst-nope"), ("network", "rm", "pst-nope")):
                err = docker(eng, *args, check=False)
                assert err.returncode == 1 and "pst-nope" in err.stderr, (label, err.stderr)
        finally:
            docker(eng, "network", "rm", name, check=False)
        assert info["IPAM"]["Config"][0]["Subnet"] == "10.233.4.0/24", label
        seen[label] = (set(info), set(listed) - {"IPv4"}, errors)  # IPv4: this CLI's guess
    assert seen["portside"] == seen["dockerd"]
