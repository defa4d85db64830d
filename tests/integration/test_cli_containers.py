"""The portside container and volume verbs end to end, as a user types them.

``python -m tui.main --root ROOT VERB ...`` runs as a real subprocess on the embedded engine
(its own temporary root, the fixture registry for images); ``run -it`` is driven through a
real pseudo-terminal with the ``pty`` module: raw mode, ctrl-c to the container, detach keys
and the exit code.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.procs import free_port, short_tempdir
from tests.fixtures.registry import RegistryFixture
from tests.fixtures.terminal import Terminal

BUSYBOX = "test/busybox:1"
REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


@dataclass
class Cli:
    root: Path
    registry: str
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tui.main",
            "--root",
            str(self.root),
            "--insecure-registry",
            self.registry,
            *args,
        ]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"portside {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result


@pytest.fixture(scope="module")
def cli(registry: RegistryFixture, pushed_images: dict[str, str]) -> Iterator[Cli]:
    base = short_tempdir("ps-clic-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "DOCKER_"))}
    env["PORTSIDE_CONFIG"] = str(base / "no-config.toml")
    env["DOCKER_CONFIG"] = str(base / "docker-config")
    env["PYTHONPATH"] = str(REPO_ROOT)
    tool = Cli(base / "root", registry.host, env)
    try:
        yield tool
    finally:
        ids = tool("ps", "-aq", check=False).stdout.split()
        if ids:
            tool("rm", "-f", *ids, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_run_pulls_on_demand_and_returns_exit_codes(cli: Cli, busybox: str) -> None:
    first = cli("run", "--rm", "--network", "none", busybox, "echo", "hello", check=False)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "hello\n"
    if "Unable to find image" not in first.stderr:  # pulled by an earlier test of this module
        assert cli("images", "-q").stdout.strip()
    assert cli("run", "--rm", busybox, "sh", "-c", "exit 3", check=False).returncode == 3
    missing = cli("run", "--rm", busybox, "no-such-command", check=False)
    assert missing.returncode == 127
    assert "no-such-command" in missing.stderr
    bad = cli("run", "--rm", "--network", "bridge-x", busybox, "true", check=False)
    assert bad.returncode == 125
    assert cli("ps", "-aq").stdout.strip() == ""  # --rm removed all of them


def test_run_flags_reach_the_container(cli: Cli, busybox: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    out = cli(
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "--env-file",
        str(env_file),
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "--hostname",
        "box",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--label",
        "a=b",
        busybox,
        "sh",
        "-c",
        'echo "$GREETING $FROM_FILE $(id -u) $(pwd) $(hostname)"; touch /scratch/x && echo ok;'
        " touch /root/x 2>/dev/null || echo ro",
    ).stdout
    assert out == "hi yes 1000 /tmp box\nok\nro\n"


def test_run_interactive_half_close(cli: Cli, busybox: str) -> None:
    text = "".join(f"line {i}\n" for i in range(3000))
    result = cli(
        "run", "--rm", "-i", busybox, "sh", "-c", "cat; sleep 0.3; echo after-eof", input=text
    )
    assert result.stdout == text + "after-eof\n"


def test_detached_container_verbs(cli: Cli, busybox: str, tmp_path: Path) -> None:
    name = _name("web")
    cid = cli("run", "-d", "--name", name, busybox, "sh", "-c", "echo up; sleep 100").stdout
    cid = cid.strip()
    assert len(cid) == 64
    try:
        ps = cli("ps").stdout
        assert cid[:12] in ps and name in ps and "Up" in ps
        assert cli("ps", "-a", "-q", "--no-trunc", "--filter", f"name={name}").stdout.split() == [
            cid
        ]
        assert cli("exec", name, "echo", "hi").stdout == "hi\n"
        piped = cli("exec", "-i", name, "tr", "a-z", "A-Z", input="shout\n")
        assert piped.stdout == "SHOUT\n"
        assert cli("exec", name, "sh", "-c", "exit 9", check=False).returncode == 9
        deadline = time.monotonic() + 30
        while "up" not in cli("logs", name).stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cli("logs", name).stdout == "up\n"
        assert "sleep 100" in cli("top", name).stdout
        assert name in cli("stats", "--no-stream", name).stdout
        cli("pause", name)
        assert "Paused" in cli("ps", "--filter", f"name={name}").stdout
        cli("unpause", name)
        new = _name("renamed")
        cli("rename", name, new)
        assert new in cli("ps").stdout
        cli("exec", new, "sh", "-c", "echo data > /made")
        tag = f"committed/{_name('img')}:1"
        image_id = cli(
            "commit", "--change", "ENV COMMITTED=1", "--change", "WORKDIR /tmp", new, tag
        ).stdout.strip()
        assert image_id.startswith("sha256:")
        shown = cli("run", "--rm", tag, "sh", "-c", 'cat /made; echo "$COMMITTED $(pwd)"').stdout
        assert shown == "data\n1 /tmp\n"
        archive = tmp_path / "fs.tar"
        cli("export", "-o", str(archive), new)
        with tarfile.open(archive) as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert "made" in names and "bin/busybox" in names
        cli("stop", "-t", "1", new)
        assert cli("wait", new).stdout.strip() == "137"
        cli("start", new)
        cli("kill", new)
        assert cli("wait", new).stdout.strip() == "137"
        cli("rm", new)
        assert cli("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""
    finally:
        cli("rm", "-f", cid, check=False)


def test_logs_follow_and_rm_needs_force(cli: Cli, busybox: str) -> None:
    cid = cli("run", "-d", busybox, "sh", "-c", "echo one; echo two >&2; sleep 1; echo three")
    cid_text = cid.stdout.strip()
    try:
        followed = cli("logs", "-f", cid_text)
        assert followed.stdout == "one\nthree\n"
        assert followed.stderr == "two\n"
        assert cli("logs", "--tail", "1", cid_text).stdout == "three\n"
        running = cli("run", "-d", busybox, "sleep", "100").stdout.strip()
        refused = cli("rm", running, check=False)
        assert refused.returncode == 1
        assert "Stop the container before attempting removal" in refused.stderr
        cli("rm", "-f", running)
    finally:
        cli("rm", "-f", cid_text, check=False)


def test_volume_verbs(cli: Cli, busybox: str) -> None:
    vol = _name("vol")
    assert cli("volume", "create", "--label", "k=v", vol).stdout.strip() == vol
    assert vol in cli("volume", "ls", "-q", "--filter", "label=k").stdout.split()
    assert json.loads(cli("volume", "inspect", vol).stdout)[0]["Name"] == vol
    cli("run", "--rm", "-v", f"{vol}:/data", busybox, "sh", "-c", "echo kept > /data/f")
    assert cli("run", "--rm", "-v", f"{vol}:/data", busybox, "cat", "/data/f").stdout == "kept\n"
    cli("volume", "rm", vol)
    assert cli("volume", "inspect", vol, check=False).returncode == 1
    assert "Total reclaimed space" in cli("volume", "prune").stdout


def test_run_publishes_ports_and_sets_name_resolution(cli: Cli, busybox: str) -> None:
    """-p on the default bridge network, reached from the host's loopback; --add-host and
    --dns end up in the container's /etc/hosts and /etc/resolv.conf."""
    port = free_port()
    name = _name("web")
    serve = "mkdir /www && echo served-$((40+2)) > /www/index.html && exec httpd -f -p 80 -h /www"
    cli(
        *("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80"),
        *("--add-host", "db.lan:10.1.2.3", "--dns", "10.9.9.9", busybox, "sh", "-c", serve),
    )
    try:
        body = ""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and "served-42" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "served-42" in body
        hosts = cli("exec", name, "cat", "/etc/hosts").stdout
        assert any(line.split() == ["10.1.2.3", "db.lan"] for line in hosts.splitlines())
        assert "nameserver 10.9.9.9" in cli("exec", name, "cat", "/etc/resolv.conf").stdout
        bad = cli("run", "--rm", "-p", "80/icmp", busybox, "true", check=False)
        assert bad.returncode == 125 and "use tcp, udp or sctp" in bad.stderr
    finally:
        cli("rm", "-f", name, check=False)


# -- run -it through a real terminal ------------------------------------------------------------


def test_run_it_in_a_real_terminal(cli: Cli, busybox: str) -> None:
    term = Terminal(cli.argv("run", "-it", "--rm", busybox, "sh"), cli.env, REPO_ROOT)
    term.send(b"stty size; echo tty-$((6*7))\r")
    term.expect(b"tty-42")
    term.send(b"sleep 30\r")
    time.sleep(0.5)
    term.send(b"\x03")  # ctrl-c goes to the container's shell, not to the CLI
    term.send(b"echo still-$((1+1))\r")
    term.expect(b"still-2")
    term.send(b"exit 4\r")
    assert term.exit_code() == 4
    assert b"30 100" in term.out  # the terminal's size reached the container's PTY


def test_run_it_detach_keys(cli: Cli, busybox: str) -> None:
    name = _name("it")
    term = Terminal(cli.argv("run", "-it", "--name", name, busybox, "sh"), cli.env, REPO_ROOT)
    try:
        term.send(b"echo ready-$((2+2))\r")
        term.expect(b"ready-4")
        term.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert term.exit_code() == 0
        assert name in cli("ps").stdout  # still running
    finally:
        cli("rm", "-f", name, check=False)


def test_exec_it_start_attach_and_signal_proxy(cli: Cli, busybox: str) -> None:
    name = _name("ex")
    cli("run", "-d", "--name", name, busybox, "sleep", "100")
    try:
        term = Terminal(cli.argv("exec", "-it", name, "sh"), cli.env, REPO_ROOT)
        term.send(b"tty; echo in-$((3*3))\r")
        term.expect(b"in-9")
        assert b"/dev/pts/" in term.out
        term.send(b"exit 6\r")
        assert term.exit_code() == 6
    finally:
        cli("rm", "-f", name, check=False)
    created = cli("create", busybox, "sh", "-c", "echo from-start; exit 2").stdout.strip()
    try:
        started = cli("start", "-a", created, check=False)
        assert started.returncode == 2
        assert started.stdout == "from-start\n"
    finally:
        cli("rm", "-f", created, check=False)
    script = 'trap "echo got-int; exit 7" INT; echo ready; sleep 30 & wait'
    proc = subprocess.Popen(
        cli.argv("run", "--rm", busybox, "sh", "-c", script),
        env=cli.env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)  # docker's --sig-proxy: forwarded to the container
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert out == b"got-int\n"
        assert proc.returncode == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_attach_to_a_running_tty_container(cli: Cli, busybox: str) -> None:
    name = _name("att")
    cli("run", "-dit", "--name", name, busybox, "sh")
    try:
        term = Terminal(cli.argv("attach", name), cli.env, REPO_ROOT)
        term.send(b"echo attached-$((5+5))\r")
        term.expect(b"attached-10")
        term.send(b"\x10\x11")  # detach: the shell goes on
        assert term.exit_code() == 0
        assert name in cli("ps").stdout
        again = Terminal(cli.argv("attach", name), cli.env, REPO_ROOT)
        again.send(b"exit 3\r")
        assert again.exit_code() == 3
        assert cli("wait", name).stdout.strip() == "3"
    finally:
        cli("rm", "-f", name, check=False)
