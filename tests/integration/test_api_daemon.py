"""``portside serve`` as a process: socket permissions, signals, refusals, TLS, embedding.

Each test starts its own real daemon (``python -m engine.daemon``) in a temporary directory.
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import pytest

from engine.config import EngineConfig
from engine.embedded import embedded_engine, running_engine_socket, sweep_private_dirs
from tests.fixtures.pki import TestCA
from tests.fixtures.portside import (
    REPO_ROOT,
    client_env,
    docker_cli,
    serve_argv,
    start_portside,
    unix_request,
    wait_ready,
)
from tests.fixtures.procs import free_port, short_tempdir, spawn, stop

REFUSAL_TIMEOUT = 60


@pytest.fixture
def base() -> Iterator[Path]:
    path = short_tempdir("ps-api-")
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PORTSIDE_ROOT"}
    env["PORTSIDE_CONFIG"] = str(base / "no-config.toml")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def _run_serve(base: Path, root: Path, sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``portside serve`` that is expected to refuse to start."""
    return subprocess.run(
        serve_argv(root, sock, *args),
        env=_env(base),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        check=False,
    )


def _docker_gid() -> int | None:
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return None


def test_socket_permissions_and_parent_directory(base: Path) -> None:
    sock = base / "run" / "portside" / "engine.sock"
    log = base / "serve.log"
    proc = spawn(serve_argv(base / "root", sock), log, env=_env(base), cwd=REPO_ROOT)
    try:
        wait_ready(sock, proc, log)
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        gid = _docker_gid()
        if gid is not None:
            assert stat.S_IMODE(st.st_mode) == 0o660
            assert st.st_gid == gid
        else:
            assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o711
        assert (base / "root" / "portside.pid").read_text().strip() == str(proc.pid)
    finally:
        stop(proc)


def _open_events_stream(sock_path: Path) -> tuple[socket.socket, bytes]:
    """A raw ``GET /events`` whose 200 headers have arrived, and the bytes after them."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(60)
    conn.connect(str(sock_path))
    conn.sendall(b"GET /v1.44/events HTTP/1.1\r\nHost: portside\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        assert chunk, "the engine closed the events stream before answering"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return conn, head.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_and_ends_streams(base: Path, sig: signal.Signals) -> None:
    with start_portside(base) as engine:
        conn, rest = _open_events_stream(engine.socket_path)
        engine.proc.send_signal(sig)
        assert engine.proc.wait(timeout=60) == 0, engine.log_text()
        while chunk := conn.recv(4096):
            rest += chunk
        conn.close()
        # The open stream was ended properly (last chunk), not cut off.
        assert rest.endswith(b"0\r\n\r\n"), rest
        assert not engine.socket_path.exists()
        assert not (engine.root / "portside.pid").exists()
        log = engine.log_text()
        assert "shutting down" in log
        assert "engine stopped" in log
        assert "Traceback" not in log


def test_sigterm_interrupts_a_pull_in_flight(base: Path) -> None:
    """A pull stuck on a registry that never answers does not hold the shutdown."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tarpit:
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(16)
        tarpit.settimeout(60)
        registry = f"127.0.0.1:{tarpit.getsockname()[1]}"
        with start_portside(base, "--insecure-registry", registry) as engine:
            answers: list[tuple[int, bytes]] = []

            def pull() -> None:
                status, _, body = unix_request(
                    engine.socket_path,
                    "POST",
                    "/images/create",
                    query={"fromImage": f"{registry}/never/answers", "tag": "1"},
                )
                answers.append((status, body))

            puller = threading.Thread(target=pull, daemon=True)
            puller.start()
            stalled, _ = tarpit.accept()  # the engine is now waiting on the registry
            try:
                engine.proc.send_signal(signal.SIGTERM)
                assert engine.proc.wait(timeout=60) == 0, engine.log_text()
                puller.join(timeout=60)
            finally:
                stalled.close()
        assert answers, "the pull request got no answer"
        status, body = answers[0]
        assert status == 500
        assert "shutting down" in json.loads(body)["message"]
        assert "Traceback" not in engine.log_text()


def test_second_serve_on_the_same_socket_is_refused(base: Path) -> None:
    with start_portside(base) as engine:
        result = _run_serve(base, base / "other-root", engine.socket_path)
        assert result.returncode == 1
        assert "another engine is already listening on" in result.stderr
        assert "Traceback" not in result.stderr
        # The first engine still owns and serves its socket.
        assert engine.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip()


def test_second_serve_on_the_same_root_is_refused(base: Path) -> None:
    with start_portside(base) as engine:
        result = _run_serve(base, engine.root, base / "second.sock")
        assert result.returncode == 1
        assert f"is using root {engine.root}" in result.stderr
        assert str(engine.proc.pid) in result.stderr
        assert not (base / "second.sock").exists()
        assert (engine.root / "portside.pid").read_text().strip() == str(engine.proc.pid)


def test_stale_socket_is_replaced(base: Path) -> None:
    stale = base / "engine.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening, then closed: a stale socket file
    assert stat.S_ISSOCK(os.lstat(stale).st_mode)
    with start_portside(base) as engine:
        out = engine.docker("version", "--format", "{{.Server.Os}}").stdout
        assert out.strip() == "linux"


def test_a_file_in_the_way_is_not_removed(base: Path) -> None:
    in_the_way = base / "engine.sock"
    in_the_way.write_text("not a socket")
    result = _run_serve(base, base / "root", in_the_way)
    assert result.returncode == 1
    assert "is not a socket" in result.stderr
    assert in_the_way.read_text() == "not a socket"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-H", "tcp://127.0.0.1:{port}"], "without mutual TLS"),
        (["--tlsverify", "-H", "tcp://127.0.0.1:{port}"], "needs --tlscacert"),
        (["-H", "http://127.0.0.1:{port}"], "use unix:///PATH or tcp://HOST:PORT"),
    ],
    ids=["tcp-without-tls", "tls-without-files", "bad-host"],
)
def test_tcp_without_mutual_tls_is_refused(base: Path, args: list[str], message: str) -> None:
    port = free_port()
    argv = [a.format(port=port) for a in args]
    result = _run_serve(base, base / "root", base / "engine.sock", *argv)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (base / "engine.sock").exists()


def test_tcp_with_mutual_tls(base: Path) -> None:
    ca = TestCA(base / "pki")
    server = ca.issue_loopback_server()
    client = ca.issue("client", common_name="portside test client", server=False)
    port = free_port()
    tls_args = [
        "-H",
        f"tcp://127.0.0.1:{port}",
        "--tlsverify",
        "--tlscacert",
        str(ca.cert_path),
        "--tlscert",
        str(server.cert),
        "--tlskey",
        str(server.key),
    ]
    with start_portside(base, *tls_args):
        env = client_env(f"tcp://127.0.0.1:{port}", base / "tcp-client")
        tls_flags = [
            "--tlsverify",
            "--tlscacert",
            str(ca.cert_path),
            "--tlscert",
            str(client.cert),
            "--tlskey",
            str(client.key),
        ]
        result = subprocess.run(
            [docker_cli(), *tls_flags, "version", "--format", "{{.Server.APIVersion}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "1.44"
        # Without a client certificate the handshake is refused.
        ctx = ssl.create_default_context(cafile=str(ca.cert_path))
        with (
            pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)),
            socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            if not tls.recv(1024):
                raise ConnectionResetError("closed without an answer")


async def test_embedded_engine_serves_a_private_socket(tmp_path: Path) -> None:
    config = EngineConfig(root=tmp_path / "root")
    async with embedded_engine(config) as url:
        assert url.startswith("unix://")
        sock = Path(url.removeprefix("unix://"))
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        docker = aiodocker.Docker(url=url)
        try:
            version = await docker.version()
            assert version["ApiVersion"] == "1.44"
            assert await docker.images.list() == []
            info = await docker.system.info()
            assert info["DockerRootDir"] == str(tmp_path / "root")
        finally:
            await docker.close()
    assert not sock.exists()
    assert not sock.parent.exists()


async def test_embedded_engine_takes_config_overrides(tmp_path: Path) -> None:
    async with embedded_engine(
        root=str(tmp_path / "r2"), insecure_registries=["10.9.8.7:5000"]
    ) as url:
        docker = aiodocker.Docker(url=url)
        try:
            info = await docker.system.info()
        finally:
            await docker.close()
    assert info["DockerRootDir"] == str(tmp_path / "r2")
    assert "10.9.8.7:5000" in info["RegistryConfig"]["IndexConfigs"]


def test_a_killed_embedded_engine_leaves_nothing_behind_for_long(tmp_path: Path) -> None:
    """SIGKILL skips the embedded engine's cleanup; the next one to start removes the dead
    engine's private directory (its lock is free), and only that."""
    runtime_dir = short_tempdir("ps-xdg-")
    try:
        runtime_dir.chmod(0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir), PYTHONPATH=str(REPO_ROOT))
        code = (
            "import asyncio, sys\n"
            "from tests.fixtures.engine import engine_config\n"
            "from engine.embedded import embedded_engine\n"
            "async def main():\n"
            "    async with embedded_engine(engine_config(__import__('pathlib').Path(sys.argv[1])))"
            " as url:\n"
            "        print(url, flush=True)\n"
            "        await asyncio.sleep(600)\n"
            "asyncio.run(main())\n"
        )
        victim = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "victim")],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert victim.stdout is not None
            dead_dir = Path(victim.stdout.readline().strip().removeprefix("unix://")).parent
        finally:
            victim.kill()
            victim.wait()
        assert dead_dir.parent == runtime_dir and dead_dir.exists()
        live_dir = runtime_dir / "portside-live0000"
        live_dir.mkdir(mode=0o700)
        held = os.open(live_dir / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(held, fcntl.LOCK_EX)  # an engine that is still running
        legacy = runtime_dir / "portside-old00000"  # from before the lock: a dead socket
        legacy.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX) as gone:
            gone.bind(str(legacy / "engine.sock"))
        keep = [runtime_dir / "portside-cmd-0", runtime_dir / "portside-data0000"]
        keep[0].mkdir(mode=0o700)
        keep[1].mkdir(mode=0o700)
        (keep[1] / "notes.txt").write_text("not an engine's")
        try:
            removed = sweep_private_dirs(runtime_dir)
        finally:
            os.close(held)
        assert sorted(removed) == sorted([dead_dir, legacy])
        assert not dead_dir.exists() and not legacy.exists()
        assert live_dir.exists() and all(path.exists() for path in keep)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)


def test_running_engine_socket_finds_a_live_serve(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.paths

    sock = base / "engine.sock"
    monkeypatch.setattr(engine.paths, "default_socket", lambda: sock)
    assert running_engine_socket() is None
    with start_portside(base):
        assert running_engine_socket() == f"unix://{sock}"
    assert running_engine_socket() is None


def test_embedded_module_loads_light() -> None:
    """``engine.embedded`` is what tui/ imports: loading it must stay light."""
    code = (
        "import sys, engine.embedded; "
        "heavy = [m for m in ('textual', 'aiohttp', 'engine.engine', 'engine.api') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
