"""Containers, exec and volumes over the Docker Engine API, as the docker CLI drives them.

Every test runs against ``portside serve`` (a real subprocess) AND the reference dockerd
with the same commands and assertions (a test dockerd fails is a wrong test). Containers use
``--network none`` (the dockerd fixture has no bridge) and unique names.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import secrets
import select
import socket
import struct
import subprocess
import tarfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import docker
import docker.errors
import pytest

from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    private_portside,
)
from tests.fixtures.procs import ServiceError
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
NONE = ("--network", "none")


@dataclass
class Engine:
    name: str
    host: str
    env: dict[str, str]
    cli: str

    @property
    def socket_path(self) -> str:
        return self.host.removeprefix("unix://")

    def docker(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.cli, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise ServiceError(
                f"[{self.name}] docker {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip()}"
            )
        return result

    def raw(self, request: bytes, timeout: float = 60) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(self.socket_path)
        sock.sendall(request)
        return sock


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    with private_portside("ps-ctr-", "--insecure-registry", registry.host) as engine:
        yield engine


@pytest.fixture(
    scope="module",
    params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)],
)
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pushed_images: dict[str, str],
) -> Iterator[Engine]:
    if request.param == "portside":
        host = request.getfixturevalue("portside").host
    else:
        host = request.getfixturevalue("dockerd").host
    config_dir = tmp_path_factory.mktemp(f"ctr-{request.param}")
    eng = Engine(request.param, host, client_env(host, config_dir), docker_cli())
    eng.docker("pull", "-q", pushed_images[BUSYBOX])
    yield eng
    # leftovers of failed tests: remove every container this module labelled
    ids = eng.docker("ps", "-aq", "--filter", "label=portside-test", check=False).stdout.split()
    if ids:
        eng.docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


def _name(prefix: str = "c") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _run(engine: Engine, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return engine.docker("run", "--label", "portside-test", *NONE, *args, **kw)  # type: ignore[arg-type]


# -- run ------------------------------------------------------------------------------------


def test_run_rm_and_exit_codes(engine: Engine, busybox: str) -> None:
    name = _name()
    result = _run(engine, "--rm", "--name", name, busybox, "true")
    assert result.returncode == 0
    assert engine.docker("ps", "-aq", "--filter", f"name={name}").stdout.strip() == ""
    failed = _run(
        engine, "--rm", busybox, "sh", "-c", "echo out; echo err >&2; exit 3", check=False
    )
    assert failed.returncode == 3
    assert failed.stdout == "out\n"
    assert failed.stderr.strip().endswith("err")
    missing = _run(engine, "--rm", busybox, "no-such-command", check=False)
    assert missing.returncode == 127


def test_run_interactive_stdin_half_close(engine: Engine, busybox: str) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    result = _run(
        engine, "--rm", "-i", busybox, "sh", "-c", "cat; sleep 0.5; echo after-eof", input=text
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == text + "after-eof\n"


def test_run_tty_through_pty(engine: Engine, busybox: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: docker run -t on a real terminal
        os.environ.clear()
        os.environ.update(engine.env)
        os.execv(
            engine.cli,
            [
                engine.cli,
                "run",
                "--rm",
                "-t",
                *NONE,
                "--label",
                "portside-test",
                busybox,
                "sh",
                "-c",
                "tty; sleep 0.5; stty size; echo done; exit 5",
            ],
        )
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = out.decode(errors="replace")
    assert "/dev/pts/" in text or "/dev/console" in text
    assert "done\r" in text  # a TTY turns \n into \r\n
    assert "30 100" in text  # the client's terminal size reached the container
    assert os.waitstatus_to_exitcode(status) == 5


# -- a long-running container --------------------------------------------------------------


def test_detached_container_verbs(engine: Engine, busybox: str) -> None:
    name = _name("web")
    cid = _run(
        engine, "-d", "--name", name, busybox, "sh", "-c", "echo started; sleep 100"
    ).stdout.strip()
    try:
        assert len(cid) == 64
        ps = engine.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
        assert f"{cid[:12]} {name} Up" in ps
        filtered = engine.docker("ps", "-a", "-q", "--no-trunc", "--filter", f"name={name}").stdout
        assert filtered.split() == [cid]
        assert engine.docker("exec", name, "echo", "hi").stdout == "hi\n"
        piped = engine.docker("exec", "-i", name, "sh", "-c", "tr a-z A-Z", input="hello\n")
        assert piped.stdout == "HELLO\n"
        assert engine.docker("exec", name, "sh", "-c", "exit 7", check=False).returncode == 7
        top = engine.docker("top", name).stdout
        assert "sleep 100" in top
        stats = engine.docker("stats", "--no-stream", "--format", "{{.Name}}", name).stdout
        assert stats.strip() == name
        engine.docker("pause", name)
        state = json.loads(engine.docker("inspect", name).stdout)[0]["State"]
        assert state["Paused"] is True and state["Status"] == "paused"
        engine.docker("unpause", name)
        new = _name("renamed")
        engine.docker("rename", name, new)
        name = new
        info = json.loads(engine.docker("inspect", name).stdout)[0]
        assert info["Id"] == cid and info["Name"] == "/" + new
        assert engine.docker("logs", name).stdout == "started\n"
        engine.docker("stop", "-t", "1", name)
        assert engine.docker("wait", name).stdout.strip() == "137"
        again = engine.docker("start", name)
        assert again.stdout.strip() == name
        engine.docker("kill", name)
        assert engine.docker("wait", name).stdout.strip() == "137"
        rm = engine.docker("rm", name, check=False)
        assert rm.returncode == 0
    finally:
        engine.docker("rm", "-f", cid, check=False)
    assert engine.docker("inspect", cid, check=False).returncode != 0


def test_rm_running_needs_force(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sleep", "100").stdout.strip()
    refused = engine.docker("rm", cid, check=False)
    assert refused.returncode != 0
    assert "cannot remove a running container" in refused.stderr.lower() or (
        "stop the container before attempting removal" in refused.stderr.lower()
    )
    engine.docker("rm", "-f", cid)
    assert engine.docker("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""


def test_logs_follow_ends_with_container(engine: Engine, busybox: str) -> None:
    cid = _run(
        engine, "-d", busybox, "sh", "-c", "echo one; echo two >&2; sleep 1; echo three"
    ).stdout.strip()
    try:
        followed = engine.docker("logs", "-f", cid, timeout=60)
        assert followed.stdout == "one\nthree\n"
        assert followed.stderr == "two\n"
        tail = engine.docker("logs", "--tail", "1", cid)
        assert tail.stdout + tail.stderr in ("three\n",)
        stamped = engine.docker("logs", "-t", cid).stdout.splitlines()
        assert stamped[0].endswith(" one") and stamped[0][:4].isdigit()
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_commit_and_export(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sh", "-c", "echo payload > /made; sleep 100").stdout.strip()
    tag = f"committed/{_name('img')}:1"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "/made" in engine.docker("diff", cid).stdout:
                break
            time.sleep(0.2)
        engine.docker("commit", cid, tag)
        out = _run(engine, "--rm", tag, "cat", "/made").stdout
        assert out == "payload\n"
        exported = subprocess.run(
            [engine.cli, "export", cid],
            env=engine.env,
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(exported)) as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert "made" in names and "bin/busybox" in names
    finally:
        engine.docker("rm", "-f", cid, check=False)
        engine.docker("rmi", tag, check=False)


def test_volumes(engine: Engine, busybox: str) -> None:
    vol = _name("vol")
    engine.docker("volume", "create", "--label", "portside-test=1", vol)
    try:
        listed = engine.docker("volume", "ls", "-q", "--filter", "label=portside-test").stdout
        assert vol in listed.split()
        info = json.loads(engine.docker("volume", "inspect", vol).stdout)[0]
        assert info["Name"] == vol and info["Driver"] == "local"
        _run(engine, "--rm", "-v", f"{vol}:/data", busybox, "sh", "-c", "echo kept > /data/f")
        out = _run(engine, "--rm", "-v", f"{vol}:/data", busybox, "cat", "/data/f").stdout
        assert out == "kept\n"
    finally:
        engine.docker("volume", "rm", vol)
    assert engine.docker("volume", "inspect", vol, check=False).returncode != 0


# -- wire details ---------------------------------------------------------------------------


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_wait_flushes_headers_first_and_start_304(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sleep", "100").stdout.strip()
    try:
        sock = engine.raw(
            f"POST /v1.41/containers/{cid}/wait?condition=not-running HTTP/1.1\r\n"
            "Host: docker\r\nContent-Length: 0\r\n\r\n".encode()
        )
        head = _read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")  # before the container stops
        start = engine.raw(
            f"POST /v1.41/containers/{cid}/start HTTP/1.1\r\nHost: docker\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        assert _read_until(start, b"\r\n").startswith(b"HTTP/1.1 304")
        start.close()
        engine.docker("kill", cid)
        body = _read_until(sock, b"}\n")
        sock.close()
        assert b'"StatusCode":137' in body.replace(b" ", b"")
    finally:
        engine.docker("rm", "-f", cid, check=False)


def _frames(body: bytes) -> dict[int, bytes]:
    """The payloads of a multiplexed stream, joined per stream id."""
    frames: dict[int, bytes] = {}
    while body:
        kind, size = body[0], int.from_bytes(body[4:8], "big")
        frames[kind] = frames.get(kind, b"") + body[8 : 8 + size]
        body = body[8 + size :]
    return frames


def test_exec_hijack_preamble_and_framing(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sleep", "100").stdout.strip()
    try:
        create = json.dumps(
            {
                "Cmd": ["sh", "-c", "echo out; echo err >&2"],
                "AttachStdout": True,
                "AttachStderr": True,
            }
        ).encode()
        sock = engine.raw(
            f"POST /v1.41/containers/{cid}/exec HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(create)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + create
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        sock.close()
        eid = json.loads(reply.split(b"\r\n\r\n", 1)[1].strip().splitlines()[-1])["Id"]
        start = b'{"Detach":false,"Tty":false}'
        sock = engine.raw(
            f"POST /v1.41/exec/{eid}/start HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(start)}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
            + start
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 UPGRADED"
        # API 1.41 (dockerd 20.10): the raw-stream label, framed all the same
        assert b"Content-Type: application/vnd.docker.raw-stream" in lines
        assert b"Connection: Upgrade" in lines and b"Upgrade: tcp" in lines
        assert _frames(body) == {1: b"out\n", 2: b"err\n"}
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_system_df_counts_containers_and_volumes(engine: Engine, busybox: str) -> None:
    vol = _name("dfvol")
    cid = _run(engine, "-d", "-v", f"{vol}:/data", busybox, "sleep", "100").stdout.strip()
    try:
        df = json.loads(engine.docker("system", "df", "-v", "--format", "{{json .}}").stdout)
        assert any(c["ID"].startswith(cid[:12]) for c in df["Containers"])
        vols = {v["Name"]: v for v in df["Volumes"]}
        assert vols[vol]["Links"] in (1, "1")
    finally:
        engine.docker("rm", "-f", cid, check=False)
        engine.docker("volume", "rm", vol, check=False)


def test_create_missing_image_is_404(engine: Engine) -> None:
    body = json.dumps({"Image": "127.0.0.1:1/never/pulled:1", "Cmd": ["true"]}).encode()
    sock = engine.raw(
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 404 ")
    assert b"No such image: 127.0.0.1:1/never/pulled:1" in reply


def test_update_restart_policy(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sleep", "100").stdout.strip()
    try:
        engine.docker("update", "--restart", "on-failure:2", cid)
        policy = json.loads(engine.docker("inspect", cid).stdout)[0]["HostConfig"]["RestartPolicy"]
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_stdin_bytes_like_detach_keys_pass_without_tty(engine: Engine, busybox: str) -> None:
    data = "a\x10\x11b\n"
    result = _run(engine, "--rm", "-i", busybox, "cat", input=data)
    assert result.stdout == data


def test_portside_update_of_limits_is_refused_clearly(
    portside: PortsideFixture, busybox: str
) -> None:
    eng = Engine("portside", portside.host, portside.env, docker_cli())
    eng.docker("pull", "-q", busybox)
    cid = _run(eng, "-d", busybox, "sleep", "100").stdout.strip()
    try:
        result = eng.docker("update", "--memory", "64m", cid, check=False)
        assert result.returncode != 0
        assert "portside cannot change Memory of an existing container" in result.stderr
    finally:
        eng.docker("rm", "-f", cid, check=False)


def test_portside_serve_log_has_no_tracebacks(portside: PortsideFixture, busybox: str) -> None:
    """Hijacked sessions hand their socket back cleanly: nothing unexpected was logged."""
    eng = Engine("portside", portside.host, portside.env, docker_cli())
    eng.docker("pull", "-q", busybox)
    assert _run(eng, "--rm", "-i", busybox, "cat", input="x\n").stdout == "x\n"
    log = portside.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Error handling request" not in log, log[-3000:]


def test_docker_py_attach_logs_stats_prune(engine: Engine, busybox: str) -> None:
    client = docker.DockerClient(base_url=engine.host, version="1.41", timeout=120)
    label = f"prune-{secrets.token_hex(4)}"
    try:
        done = client.containers.run(
            busybox,
            ["sh", "-c", "echo hello; echo oops >&2"],
            detach=True,
            network_mode="none",
            labels={"portside-test": "", label: ""},
        )
        assert done.wait(timeout=60)["StatusCode"] == 0
        sock = engine.raw(
            f"POST /v1.41/containers/{done.id}/attach?logs=1&stream=0&stdout=1&stderr=1 "
            "HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        assert _frames(body) == {1: b"hello\n", 2: b"oops\n"}
        assert done.logs(stdout=True, stderr=False) == b"hello\n"
        running = client.containers.run(
            busybox, ["sleep", "100"], detach=True, network_mode="none", labels={label: ""}
        )
        samples = running.stats(stream=True, decode=True)
        first, second = next(samples), next(samples)
        samples.close()
        assert first["id"] == running.id and second["id"] == running.id
        assert second["cpu_stats"]["cpu_usage"]["total_usage"] >= 0
        exit_code, output = running.exec_run(["sh", "-c", "tty; exit 0"], tty=True)
        assert exit_code == 0 and b"/dev/pts/" in output
        pruned = client.containers.prune(filters={"label": label})
        assert pruned["ContainersDeleted"] == [done.id]  # not the running one
        running.remove(force=True)
        anon = _run(engine, "-d", "-v", "/anon", busybox, "true").stdout.strip()
        engine.docker("wait", anon)
        mounts = json.loads(engine.docker("inspect", anon).stdout)[0]["Mounts"]
        engine.docker("rm", anon)
        pruned_vols = engine.docker("volume", "prune", "-f").stdout
        assert mounts[0]["Name"] in pruned_vols  # anonymous and unused: pruned
    finally:
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        client.close()


def test_run_it_detach_keys_through_pty(engine: Engine, busybox: str) -> None:
    name = _name("it")
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(engine.env)
        argv = [engine.cli, "run", "-it", "--name", name, *NONE, "--label", "portside-test"]
        os.execv(engine.cli, [*argv, busybox, "sh"])
    out = b""

    def expect(marker: bytes) -> None:
        nonlocal out
        deadline = time.monotonic() + 60
        while marker not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 1.0)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in out, out

    try:
        os.write(fd, b"echo ready-$((3+4))\r")
        expect(b"ready-7")
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q: the CLI detaches, the shell goes on
        deadline = time.monotonic() + 60
        status = None
        while status is None and time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif select.select([fd], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):
                    out += os.read(fd, 4096)
        assert status is not None, out
        assert os.waitstatus_to_exitcode(status) == 0
        state = json.loads(engine.docker("inspect", name).stdout)[0]["State"]
        assert state["Running"] is True
    finally:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        os.close(fd)
        engine.docker("rm", "-f", name, check=False)


def test_logs_follow_of_a_quiet_container_sends_headers(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sh", "-c", "sleep 100").stdout.strip()
    try:
        sock = engine.raw(
            f"GET /v1.41/containers/{cid}/logs?follow=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\n\r\n".encode()
        )
        head = _read_until(sock, b"\r\n\r\n")  # nothing logged yet: the headers come anyway
        assert head.startswith(b"HTTP/1.1 200 ")
        engine.docker("exec", cid, "sh", "-c", "echo late > /proc/1/fd/1")
        assert b"late\n" in _read_until(sock, b"late\n")
        sock.close()
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_exec_it_through_pty(engine: Engine, busybox: str) -> None:
    cid = _run(engine, "-d", busybox, "sleep", "100").stdout.strip()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(engine.env)
        os.execv(engine.cli, [engine.cli, "exec", "-it", cid, "sh"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    out = b""
    try:
        os.write(fd, b"tty; sleep 0.3; stty size; exit 6\r")
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):
                    out += os.read(fd, 4096)
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
        assert status is not None, out
        assert os.waitstatus_to_exitcode(status) == 6
        with contextlib.suppress(OSError):
            while select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                out += chunk
        assert b"/dev/pts/" in out and b"33 111" in out, out
    finally:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        os.close(fd)
        engine.docker("rm", "-f", cid, check=False)
