"""``GET /containers/{id}/attach/ws`` with aiohttp's websocket client, against
``portside serve`` AND the reference dockerd (API 1.41, dockerd 20.10's own version).

Frames carry raw bytes with or without a TTY (never the 8-byte multiplexing headers),
binary frames from API 1.28 on and text frames before; client frames feed stdin.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
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
_WAIT = 60.0  # seconds a websocket may stay silent before the test gives up


@dataclass
class Engine:
    name: str
    host: str
    env: dict[str, str]
    cli: str

    def docker(self, *args: str) -> str:
        result = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise ServiceError(f"[{self.name}] docker {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    with private_portside("ps-ws-", "--insecure-registry", registry.host) as engine:
        yield engine


@pytest.fixture(
    scope="module", params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)]
)
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pushed_images: dict[str, str],
) -> Iterator[Engine]:
    host = request.getfixturevalue(request.param).host
    config = tmp_path_factory.mktemp(f"ws-{request.param}")
    eng = Engine(request.param, host, client_env(host, config), docker_cli())
    eng.docker("pull", "-q", pushed_images[BUSYBOX])
    created: list[str] = []
    eng.created = created  # type: ignore[attr-defined]
    yield eng
    if created:
        eng.docker("rm", "-f", *created)


def _container(engine: Engine, *args: str) -> str:
    cid = engine.docker("create", "--network", "none", *args)
    engine.created.append(cid)  # type: ignore[attr-defined]
    return cid


@asynccontextmanager
async def _ws(engine: Engine, path: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    connector = aiohttp.UnixConnector(path=engine.host.removeprefix("unix://"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://localhost{path}", origin="http://localhost") as ws,
    ):
        yield ws


async def _read_until(ws: aiohttp.ClientWebSocketResponse, want: bytes) -> tuple[bytes, set]:
    """Collect frames until ``want`` has arrived (or the socket closed); returns the bytes
    and the set of frame types seen."""
    data = b""
    kinds: set[aiohttp.WSMsgType] = set()
    while want not in data:
        msg = await asyncio.wait_for(ws.receive(), _WAIT)
        if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            kinds.add(msg.type)
            data += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
        else:
            break
    return data, kinds


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


async def test_ws_stdin_and_stdout_without_tty(engine: Engine, busybox: str) -> None:
    cid = _container(engine, "-i", busybox, "cat")
    engine.docker("start", cid)
    query = "stream=1&stdin=1&stdout=1&stderr=1"
    async with _ws(engine, f"/v1.41/containers/{cid}/attach/ws?{query}") as ws:
        await ws.send_bytes(b"hello over a websocket\n")
        data, kinds = await _read_until(ws, b"hello over a websocket\n")
    assert data == b"hello over a websocket\n"  # raw: no multiplexing header
    assert kinds == {aiohttp.WSMsgType.BINARY}


async def test_ws_with_tty_echoes_raw_bytes(engine: Engine, busybox: str) -> None:
    cid = _container(engine, "-it", busybox, "cat")
    engine.docker("start", cid)
    async with _ws(engine, f"/v1.41/containers/{cid}/attach/ws?stream=1&stdin=1") as ws:
        await ws.send_str("typed\n")
        data, _ = await _read_until(ws, b"typed\r\ntyped\r\n")
    assert data.count(b"typed\r\n") == 2  # the terminal's echo, then cat's output


async def test_ws_logs_of_an_exited_container(engine: Engine, busybox: str) -> None:
    cid = _container(engine, busybox, "sh", "-c", "echo to-out; echo to-err >&2")
    engine.docker("start", "-a", cid)
    async with _ws(engine, f"/v1.41/containers/{cid}/attach/ws?logs=1&stdout=1&stderr=1") as ws:
        data, kinds = await _read_until(ws, b"\0never\0")
    assert sorted(data.splitlines()) == [b"to-err", b"to-out"]
    assert kinds == {aiohttp.WSMsgType.BINARY}


async def test_ws_old_api_versions_get_text_frames(engine: Engine, busybox: str) -> None:
    cid = _container(engine, busybox, "echo", "plain text")
    engine.docker("start", "-a", cid)
    async with _ws(engine, f"/v1.27/containers/{cid}/attach/ws?logs=1") as ws:
        data, kinds = await _read_until(ws, b"\0never\0")
    assert data == b"plain text\n"
    assert kinds == {aiohttp.WSMsgType.TEXT}


async def test_ws_unknown_container_is_a_404(engine: Engine) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with _ws(engine, "/v1.41/containers/no-such-container/attach/ws?stream=1"):
            pass
    assert info.value.status == 404
