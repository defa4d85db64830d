"""Fixed engine answers for the logs, stats, volumes and networks views (snapshots and README
screenshots). They are shaped like dockerd 20.10's ``/volumes``, ``/networks``, log lines
with ``timestamps=1`` and ``/containers/{id}/stats?stream=0``, and go through the same
parsing as live answers."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual.pilot import Pilot

from tests.tui import sample_data
from tui.messages import ContainersUpdated, NetworksUpdated, RowStatsSampled, VolumesUpdated
from tui.model import NetworkRow, VolumeRow
from tui.screens.logs import LogLines, LogsScreen
from tui.screens.stats import StatsSampled, StatsScreen

VOLUMES_JSON: list[dict[str, Any]] = [
    {
        "Name": "shop_pgdata",
        "Driver": "local",
        "Mountpoint": "/var/lib/docker/volumes/shop_pgdata/_data",
        "CreatedAt": "2025-12-28T09:12:44Z",
        "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.volume": "pgdata"},
        "Scope": "local",
    },
    {
        "Name": "shop_uploads",
        "Driver": "local",
        "Mountpoint": "/var/lib/docker/volumes/shop_uploads/_data",
        "CreatedAt": "2025-12-28T09:12:44Z",
        "Labels": {"com.docker.compose.project": "shop"},
        "Scope": "local",
    },
    {
        "Name": "3f9a1c0d7e5b42a8b6c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3",
        "Driver": "local",
        "Mountpoint": "/var/lib/docker/volumes/3f9a1c0d7e5b42a8b6c1d2e3f4a5b6c7d8e9f0a1b2c3"
        "d4e5f6a7b8c9d0e1f2a3/_data",
        "CreatedAt": "2025-12-30T17:03:10Z",
        "Labels": None,
        "Scope": "local",
    },
]

NETWORKS_JSON: list[dict[str, Any]] = [
    {
        "Name": "bridge",
        "Id": "8f2c4e6a0b1d3f5e7a9c2b4d6f8e0a1c3e5f7a9b2d4f6e8a0c1e3f5a7b9d2f4e",
        "Created": "2025-12-20T08:00:00Z",
        "Scope": "local",
        "Driver": "bridge",
        "Internal": False,
        "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
    },
    {
        "Name": "host",
        "Id": "1a3c5e7f9b2d4f6a8c0e1b3d5f7a9c2e4f6b8d0a1c3e5f7b9d2f4a6c8e0b1d3f",
        "Created": "2025-12-20T08:00:00Z",
        "Scope": "local",
        "Driver": "host",
        "Internal": False,
        "IPAM": {"Config": []},
    },
    {
        "Name": "none",
        "Id": "6e8a0c2e4f6a8b0d2f4e6a8c0e2a4c6e8f0b2d4f6a8c0e2f4a6c8e0b2d4f6a8c",
        "Created": "2025-12-20T08:00:00Z",
        "Scope": "local",
        "Driver": "null",
        "Internal": False,
        "IPAM": {"Config": []},
    },
    {
        "Name": "shop_default",
        "Id": "c0ffee12345678900abcdef1234567890abcdef1234567890abcdef123456789",
        "Created": "2025-12-28T09:12:43Z",
        "Scope": "local",
        "Driver": "bridge",
        "Internal": False,
        "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
    },
    {
        "Name": "shop_backend",
        "Id": "facade0987654321fedcba0987654321fedcba0987654321fedcba0987654321",
        "Created": "2025-12-28T09:12:43Z",
        "Scope": "local",
        "Driver": "bridge",
        "Internal": True,
        "IPAM": {"Config": [{"Subnet": "172.19.0.0/16", "Gateway": "172.19.0.1"}]},
    },
]

PROJECTS = {"web": "shop", "worker-1": "shop", "db": "shop"}


def _stamp(second: float) -> str:
    whole = int(second)
    return f"2025-12-31T23:{whole // 60:02d}:{whole % 60:02d}.{int(second * 1000) % 1000:03d}Z"


WEB_LOG = [
    f"{_stamp(600 + i * 0.7)} "
    + (
        f'172.18.0.1 - - "GET /api/orders/{1000 + i} HTTP/1.1" 200 {512 + i * 37}'
        if i % 5
        else f"ERROR order {1000 + i}: payment provider timed out after 30s, retrying"
    )
    for i in range(40)
]
WORKER_LOG = [
    f"{_stamp(600.3 + i * 1.3)} processed order {1000 + i} in {12 + (i * 7) % 40} ms"
    for i in range(24)
]


def stats_answer(round_: int, cpu: float, memory: int, net: int, block: int) -> dict[str, Any]:
    """A ``stream=0`` answer whose CPU percent is ``cpu`` on a 2-CPU host."""
    system = 10_000_000_000
    return {
        "read": f"2026-01-01T00:00:{round_ * 2:02d}.000000000Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": int(round_ * 1e9 + cpu / 200 * system)},
            "system_cpu_usage": system * (round_ + 1),
            "online_cpus": 2,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": int(round_ * 1e9)},
            "system_cpu_usage": system * round_,
        },
        "memory_stats": {"usage": memory, "limit": 2 * 1024**3, "stats": {"inactive_file": 0}},
        "networks": {"eth0": {"rx_bytes": net, "tx_bytes": net // 3}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"op": "Read", "value": block},
                {"op": "Write", "value": block // 2},
            ]
        },
    }


def _wave(i: int, base: float, swing: float) -> float:
    return base + swing * ((i * 7) % 11) / 10


def volume_rows() -> list[VolumeRow]:
    return [VolumeRow.from_api(entry) for entry in VOLUMES_JSON]


def network_rows() -> list[NetworkRow]:
    return [NetworkRow.from_api(entry) for entry in NETWORKS_JSON]


async def load(pilot: Pilot[Any]) -> None:
    """``sample_data.load`` plus volumes, networks, compose projects and row stats."""
    await sample_data.load(pilot)
    app = pilot.app
    rows = [
        dataclasses.replace(row, project=PROJECTS.get(row.name, ""))
        for row in sample_data.container_rows()
    ]
    app.post_message(ContainersUpdated(rows, complete=True))
    app.post_message(VolumesUpdated(volume_rows()))
    app.post_message(NetworksUpdated(network_rows()))
    figures = {
        row.id: (_wave(index, 1.5, 30.0), 48_000_000 + index * 91_000_000)
        for index, row in enumerate(rows)
        if row.state == "running"
    }
    app.post_message(RowStatsSampled(figures))
    await sample_data.settle(pilot)


async def open_logs(pilot: Pilot[Any]) -> None:
    """Merged logs of web and worker-1, timestamps shown, "error" searched."""
    rows = {row.name: row for row in sample_data.container_rows()}
    screen = LogsScreen(
        [(rows["web"].id, "web"), (rows["worker-1"].id, "worker-1")], autoload=False
    )
    await pilot.app.push_screen(screen)
    await sample_data.settle(pilot)
    merged: list[tuple[str, int, str]] = [(line[:24], 0, line) for line in WEB_LOG]
    merged += [(line[:24], 1, line) for line in WORKER_LOG]
    for _, source, line in sorted(merged):
        screen.post_message(LogLines(source, [line]))
    await sample_data.settle(pilot)
    await pilot.press("t", "slash", *"error", "enter")
    await sample_data.settle(pilot)


async def open_stats(pilot: Pilot[Any]) -> None:
    """Graphs of the three running containers after twenty rounds of samples."""
    running = [row for row in sample_data.container_rows() if row.state == "running"]
    screen = StatsScreen([(row.id, row.name) for row in running], autoload=False)
    await pilot.app.push_screen(screen)
    await sample_data.settle(pilot)
    for round_ in range(20):
        answers = []
        for index in range(len(running)):
            answers.append(
                (
                    index,
                    stats_answer(
                        round_,
                        _wave(round_ + index * 3, 2.0 + index * 10, 25.0),
                        int(_wave(round_ + index, 60e6 * (index + 1), 20e6)),
                        int(sum(_wave(r + index, 20_000, 90_000) for r in range(round_ + 1))),
                        int(sum(_wave(r * 3 + index, 0, 400_000) for r in range(round_ + 1))),
                    ),
                    "",
                )
            )
        screen.post_message(StatsSampled(answers))
    await sample_data.settle(pilot)


async def inspect_search(pilot: Pilot[Any]) -> None:
    """The inspect tree of "web" with "8080" searched."""
    await sample_data.open_inspect(pilot)
    await pilot.press("slash", *"8080", "enter")
    await sample_data.settle(pilot)
