"""Docker API sessions against the fixture dockerd: exec and attach with a TTY, resize
through the API, exit codes, detach keys, and clear errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodocker
import pytest

from tui.terminal.docker_session import DockerAttachSession, DockerExecSession, detach_sequence
from tui.terminal.errors import TerminalError
from tui.terminal.terminal import Terminal


async def wait_until(
    predicate: Callable[[], object],
    what: str,
    shown: Callable[[], str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Bounded wait (a guard against hangs, not a timing assertion); `shown` adds what the
    screen held to the failure."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = f"; the screen:\n{shown()}" if shown is not None else ""
            raise AssertionError(f"gave up waiting for {what}{detail}")
        await asyncio.sleep(0.05)


def screen_text(terminal: Terminal) -> str:
    return "\n".join(terminal.core.text())


@pytest.fixture
async def docker(dockerd: Any) -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker(url=dockerd.host)
    yield client
    await client.close()


@pytest.fixture
def shell_container(dockerd: Any, busybox: str, scratch: str) -> str:
    """A running container whose main process is an interactive sh on a TTY."""
    name = f"{scratch}-sh"
    dockerd.docker("run", "-d", "-it", "--name", name, busybox, "sh")
    return name


async def test_exec_shell_echo_resize_and_exit_code(docker, shell_container):
    terminal = Terminal(DockerExecSession(docker, shell_container, ["sh"]), 70, 20)
    ended = asyncio.Event()
    terminal.on_exit.append(lambda _t: ended.set())
    await terminal.start()
    terminal.write(b"echo $((6 * 7))\r")
    await wait_until(lambda: "42" in screen_text(terminal), "the exec shell to answer")
    await terminal.resize(100, 30)
    terminal.write(b"stty size\r")
    await wait_until(
        lambda: "30 100" in screen_text(terminal),
        "stty to see the new size",
        lambda: screen_text(terminal),
    )
    terminal.write(b"printf '\\033[1;32mgreen\\033[0m\\n'\r")
    await wait_until(lambda: "green" in screen_text(terminal).replace("1;32m", ""), "colour")
    row = next(
        r for r in terminal.screen.buffer if "green" in r.text(100) and "printf" not in r.text(100)
    )
    assert any(cell.fg == "green" and cell.bold for cell in row.cells(100))
    terminal.write(b"exit 3\r")
    await asyncio.wait_for(ended.wait(), 30)
    assert terminal.session.returncode == 3
    assert not terminal.session.detached


async def test_attach_resize_and_detach_keys(docker, dockerd, shell_container):
    session = DockerAttachSession(docker, shell_container)
    terminal = Terminal(session, 80, 24)
    ended = asyncio.Event()
    terminal.on_exit.append(lambda _t: ended.set())
    await terminal.start()
    terminal.write(b"echo attached-$((1 + 1))\r")
    await wait_until(lambda: "attached-2" in screen_text(terminal), "the attached shell")
    await terminal.resize(90, 28)
    terminal.write(b"stty size\r")
    await wait_until(lambda: "28 90" in screen_text(terminal), "the container to be resized")
    terminal.write(detach_sequence("ctrl-p,ctrl-q"))
    await asyncio.wait_for(ended.wait(), 30)
    assert session.detached and session.returncode is None
    state = dockerd.docker("inspect", "-f", "{{.State.Running}}", shell_container).stdout
    assert state.strip() == "true"


async def test_attach_sees_the_container_exit(docker, shell_container):
    session = DockerAttachSession(docker, shell_container)
    terminal = Terminal(session, 80, 24)
    ended = asyncio.Event()
    terminal.on_exit.append(lambda _t: ended.set())
    await terminal.start()
    terminal.write(b"exit 5\r")
    await asyncio.wait_for(ended.wait(), 30)
    assert session.returncode == 5 and not session.detached


async def test_errors_are_one_line(docker, dockerd, busybox, scratch):
    with pytest.raises(TerminalError, match="cannot exec sh in") as error:
        await Terminal(DockerExecSession(docker, f"{scratch}-missing", ["sh"])).start()
    assert "\n" not in str(error.value)
    name = f"{scratch}-notty"
    dockerd.docker("run", "-d", "--name", name, busybox, "sleep", "300")
    with pytest.raises(TerminalError, match="has no terminal"):
        await Terminal(DockerAttachSession(docker, name)).start()
    dockerd.docker("kill", name)
    with pytest.raises(TerminalError, match="not running"):
        await Terminal(DockerAttachSession(docker, name)).start()


def test_detach_key_notation():
    assert detach_sequence("ctrl-p,ctrl-q") == b"\x10\x11"
    assert detach_sequence("a,ctrl-@,ctrl-]") == b"a\x00\x1d"
    with pytest.raises(TerminalError, match="invalid detach key"):
        detach_sequence("ctrl-pq")
