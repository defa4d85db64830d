"""Fixed engine answers for snapshot tests and README screenshots.

They are shaped exactly like ``/version``, ``/containers/json``, ``/images/json``,
``/images/{id}/history`` and pull-stream objects (they were taken from a dockerd 20.10 and
trimmed), and go through the same parsing as live answers; only time is frozen (``NOW``)
so that "5 minutes ago" renders the same on every run.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tui.messages import (
    ContainersUpdated,
    DocumentLoaded,
    EngineConnected,
    EngineUnreachable,
    ImagesUpdated,
    PullEvent,
)
from tui.model import ContainerRow, EngineInfo, EngineProblem, image_rows
from tui.screens.history import HistoryScreen
from tui.screens.inspect import InspectScreen
from tui.screens.pull import PullScreen

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MINUTE = 60
HOUR = 3600
DAY = 86400

BUSYBOX_ID = "sha256:3f04ec9ccdff7d6ac4a5d0dfd4b31e5bba4d3c5ef9a9e4d1c9c5e3b1a2f4d6e8"
APP_ID = "sha256:9b1f0e2d3c4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344"
PG_ID = "sha256:5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
OLD_ID = "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"

VERSION: dict[str, Any] = {
    "Platform": {"Name": ""},
    "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}],
    "Version": "20.10.24+dfsg1",
    "ApiVersion": "1.41",
    "Os": "linux",
    "Arch": "amd64",
}


def _container(
    cid: str,
    name: str,
    image: str,
    image_id: str,
    state: str,
    status: str,
    command: str,
    age: float,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "Id": cid * 4,
        "Names": [f"/{name}"],
        "Image": image,
        "ImageID": image_id,
        "Command": command,
        "Created": int(NOW - age),
        "Ports": ports or [],
        "State": state,
        "Status": status,
    }


CONTAINERS_JSON: list[dict[str, Any]] = [
    _container(
        "a1b2c3d4e5f60718",
        "web",
        "registry.local:5000/shop/web:2.4",
        APP_ID,
        "running",
        "Up 2 hours",
        "/app/server --port 8080",
        3 * HOUR,
        [
            {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 8080, "PublicPort": 8080, "Type": "tcp"},
        ],
    ),
    _container(
        "b2c3d4e5f6071829",
        "worker-1",
        "registry.local:5000/shop/web:2.4",
        APP_ID,
        "running",
        "Up 2 hours",
        "/app/worker --queue orders",
        3 * HOUR,
    ),
    _container(
        "c3d4e5f607182930",
        "db",
        "postgres:16",
        PG_ID,
        "running",
        "Up 3 days (healthy)",
        "docker-entrypoint.sh postgres",
        4 * DAY,
        [{"PrivatePort": 5432, "Type": "tcp"}],
    ),
    _container(
        "d4e5f60718293041",
        "cache",
        "busybox:1.36",
        BUSYBOX_ID,
        "paused",
        "Up 40 minutes (Paused)",
        "/bin/sleep 86400",
        41 * MINUTE,
    ),
    _container(
        "e5f6071829304152",
        "migrate",
        "registry.local:5000/shop/web:2.4",
        APP_ID,
        "exited",
        "Exited (0) 2 hours ago",
        "/app/migrate up",
        3 * HOUR,
    ),
    _container(
        "f607182930415263",
        "smoke-test",
        "busybox:1.36",
        BUSYBOX_ID,
        "exited",
        "Exited (1) 12 minutes ago",
        "sh -c 'wget -qO- http://web:8080/health'",
        13 * MINUTE,
    ),
    _container(
        "0718293041526374",
        "scratchpad",
        "busybox:1.36",
        BUSYBOX_ID,
        "created",
        "Created",
        "/bin/sh",
        5 * MINUTE,
    ),
]

IMAGES_JSON: list[dict[str, Any]] = [
    {
        "Id": APP_ID,
        "RepoTags": ["registry.local:5000/shop/web:2.4", "registry.local:5000/shop/web:latest"],
        "RepoDigests": [],
        "Created": int(NOW - 2 * DAY),
        "Size": 87_342_112,
    },
    {
        "Id": PG_ID,
        "RepoTags": ["postgres:16"],
        "RepoDigests": [],
        "Created": int(NOW - 20 * DAY),
        "Size": 431_998_203,
    },
    {
        "Id": BUSYBOX_ID,
        "RepoTags": ["busybox:1.36"],
        "RepoDigests": [],
        "Created": int(NOW - 400 * DAY),
        "Size": 4_261_550,
    },
    {
        "Id": OLD_ID,
        "RepoTags": None,
        "RepoDigests": [],
        "Created": int(NOW - 9 * DAY),
        "Size": 86_901_342,
    },
]

HISTORY_JSON: list[dict[str, Any]] = [
    {
        "Id": APP_ID,
        "Created": int(NOW - 2 * DAY),
        "CreatedBy": '/bin/sh -c #(nop)  CMD ["/app/server" "--port" "8080"]',
        "Size": 0,
        "Comment": "",
    },
    {
        "Id": "<missing>",
        "Created": int(NOW - 2 * DAY),
        "CreatedBy": "/bin/sh -c #(nop) COPY dir:5f1e2a in /app ",
        "Size": 41_230_112,
        "Comment": "",
    },
    {
        "Id": "<missing>",
        "Created": int(NOW - 2 * DAY),
        "CreatedBy": "/bin/sh -c apk add --no-cache ca-certificates tzdata",
        "Size": 3_112_000,
        "Comment": "",
    },
    {
        "Id": "<missing>",
        "Created": int(NOW - 30 * DAY),
        "CreatedBy": "/bin/sh -c #(nop) ADD file:ab12cd in / ",
        "Size": 43_000_000,
        "Comment": "base layer",
    },
]

PULL_EVENTS: list[dict[str, Any]] = [
    {"status": "Pulling from shop/web", "id": "2.4"},
    {"status": "Already exists", "progressDetail": {}, "id": "4abcf2066143"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "8c1f7a0b23de"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "d2e4f6a8b0c1"},
    {"status": "Waiting", "progressDetail": {}, "id": "e3f5a7b9c1d2"},
    {
        "status": "Downloading",
        "progressDetail": {"current": 3_112_000, "total": 3_112_000},
        "id": "8c1f7a0b23de",
    },
    {"status": "Download complete", "progressDetail": {}, "id": "8c1f7a0b23de"},
    {
        "status": "Extracting",
        "progressDetail": {"current": 1_638_400, "total": 3_112_000},
        "id": "8c1f7a0b23de",
    },
    {
        "status": "Downloading",
        "progressDetail": {"current": 17_301_504, "total": 41_230_112},
        "id": "d2e4f6a8b0c1",
    },
]

UNREACHABLE = EngineProblem(
    "no engine socket at /var/run/docker.sock",
    "start the engine (systemctl start docker, or portside serve), "
    "or choose another one with --host or DOCKER_HOST",
)


def engine_info() -> EngineInfo:
    return EngineInfo.from_version("dockerd", "unix:///var/run/docker.sock", VERSION)


def container_rows() -> list[ContainerRow]:
    return [ContainerRow.from_api(entry) for entry in CONTAINERS_JSON]


def image_rows_all() -> list[Any]:
    rows = []
    for entry in IMAGES_JSON:
        rows.extend(image_rows(entry))
    return rows


async def load(pilot: Pilot[Any]) -> None:
    """Post what the engine worker would post after connecting, then let the app settle."""
    app = pilot.app
    app.post_message(EngineConnected(engine_info()))
    app.post_message(ContainersUpdated(container_rows(), complete=True))
    app.post_message(ImagesUpdated(image_rows_all()))
    await settle(pilot)


async def settle(pilot: Pilot[Any]) -> None:
    """Let posted messages, layout and idle-time column sizing all finish."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def unreachable(pilot: Pilot[Any]) -> None:
    pilot.app.post_message(EngineUnreachable(UNREACHABLE, attempt=3, retry_in=4.0))
    await settle(pilot)


INSPECT_JSON: dict[str, Any] = {
    "Id": CONTAINERS_JSON[0]["Id"],
    "Created": "2025-12-31T21:00:00.000000000Z",
    "Path": "/app/server",
    "Args": ["--port", "8080"],
    "State": {
        "Status": "running",
        "Running": True,
        "Paused": False,
        "Pid": 4242,
        "ExitCode": 0,
        "StartedAt": "2025-12-31T21:00:01.000000000Z",
    },
    "Image": APP_ID,
    "Name": "/web",
    "RestartCount": 0,
    "Config": {
        "Hostname": "a1b2c3d4e5f6",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/app/server", "--port", "8080"],
        "Image": "registry.local:5000/shop/web:2.4",
        "Labels": {"com.docker.compose.project": "shop"},
    },
    "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
}


async def open_pull(pilot: Pilot[Any]) -> None:
    """The pull dialog part-way through ``PULL_EVENTS``."""
    screen = PullScreen("registry.local:5000/shop/web:2.4")
    await pilot.app.push_screen(screen)
    screen.begin("registry.local:5000/shop/web:2.4")
    for event in PULL_EVENTS:
        screen.post_message(PullEvent(event))
    await settle(pilot)


async def open_inspect(pilot: Pilot[Any]) -> None:
    screen = InspectScreen("container", INSPECT_JSON["Id"], "web", autoload=False)
    await pilot.app.push_screen(screen)
    screen.post_message(DocumentLoaded(INSPECT_JSON))
    await settle(pilot)


async def open_history(pilot: Pilot[Any]) -> None:
    screen = HistoryScreen(APP_ID, "registry.local:5000/shop/web:2.4", autoload=False)
    await pilot.app.push_screen(screen)
    screen.post_message(DocumentLoaded(HISTORY_JSON))
    await settle(pilot)
