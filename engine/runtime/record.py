"""A container's persistent record: ``<root>/containers/<id>/container.json``.

Holds what ``docker inspect`` shows (docker's ``Config`` after the image merge, the
``HostConfig`` as given, the ``State``) plus the engine's own bookkeeping: the image's
top ChainID, the runtime used, the monitor's pid and start time, the validated mounts.
Saved atomically (write to a temporary file, fsync, rename) after every state change.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
FILE = "container.json"


@dataclass
class State:
    Status: str = "created"  # created running paused restarting removing exited dead
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME

    def set_running(self, pid: int, started_at: str) -> None:
        self.Status, self.Running, self.Paused, self.Restarting = "running", True, False, False
        self.Pid, self.ExitCode, self.Error, self.OOMKilled = pid, 0, "", False
        self.StartedAt, self.FinishedAt = started_at, ZERO_TIME

    def set_exited(
        self, code: int, finished_at: str, *, oom: bool = False, error: str = ""
    ) -> None:
        self.Status, self.Running, self.Paused, self.Restarting = "exited", False, False, False
        self.Pid, self.ExitCode, self.OOMKilled, self.Error = 0, code, oom, error
        self.FinishedAt = finished_at


@dataclass
class Record:
    Id: str
    Name: str  # with the leading "/"
    Created: str
    Image: str  # image id
    ImageName: str  # as given at create
    Config: dict[str, Any]
    HostConfig: dict[str, Any]
    State: State = field(default_factory=State)
    RestartCount: int = 0
    Driver: str = ""
    Chain: str | None = None  # top ChainID of the image
    Runtime: str = ""  # name of the runtime that runs it
    Network: str = "none"  # NetworkMode: none, host, container:<id> or a network's name
    Networks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"Aliases"}
    Attached: dict[str, dict[str, Any]] = field(default_factory=dict)  # live endpoints
    Netns: str = ""  # path of the container's own network namespace while it runs
    Mounts: list[dict[str, Any]] = field(default_factory=list)  # validated MountSpec dicts
    InitPaths: list[str] = field(default_factory=list)
    MonitorPid: int = 0
    MonitorStart: int = 0
    Cgroup: dict[str, Any] = field(default_factory=dict)
    ManuallyStopped: bool = False
    HasBeenStarted: bool = False
    ExecIDs: list[str] = field(default_factory=list)
    Warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        data = dict(data)
        data["State"] = State(**data.get("State", {}))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def short_name(self) -> str:
        return self.Name.lstrip("/")


def save(cdir: Path, record: Record, durable: bool = True) -> None:
    """Write the record atomically (blocking: run it in a thread); ``durable`` fsyncs."""
    # a unique temporary name: two saves of one record may overlap (the last one wins)
    tmp = cdir / f".{FILE}.{secrets.token_hex(4)}.tmp"
    data = json.dumps(record.to_json(), separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, cdir / FILE)


def load(cdir: Path) -> Record | None:
    try:
        return Record.from_json(json.loads((cdir / FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return dict(json.load(fh))
