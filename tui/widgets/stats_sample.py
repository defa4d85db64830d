"""Figures from one-shot ``GET /containers/{id}/stats?stream=0`` answers, and their history.

No Textual and no I/O: ``Sample.from_api`` reads CPU percent (docker's formula, from
``cpu_stats`` against ``precpu_stats``), memory used (page cache excluded, as docker does)
and the cumulative network and block I/O byte counters; ``History`` turns successive
samples into bounded series of values and per-second rates for sparklines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HISTORY = 60


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def read_time(stamp: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 ``read`` stamp (nanoseconds allowed)."""
    text = str(stamp or "")
    try:
        base = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    fraction = text[19:].rstrip("Z").split("+")[0]
    seconds = float(f"0{fraction}") if fraction.startswith(".") else 0.0
    return base.timestamp() + seconds


@dataclass(frozen=True, slots=True)
class Sample:
    """One container's figures at ``when`` (seconds, the caller's clock)."""

    when: float
    cpu_percent: float
    memory: float
    memory_limit: float
    net_rx: float
    net_tx: float
    block_read: float
    block_write: float

    @classmethod
    def from_api(cls, stats: Mapping[str, Any], when: float) -> Sample:
        """``when`` is used only if the answer's ``read`` stamp is missing or unreadable."""
        stamped = read_time(stats.get("read"))
        when = stamped if stamped is not None and stamped > 0 else when
        cpu = stats.get("cpu_stats") or {}
        pre = stats.get("precpu_stats") or {}
        cpu_delta = _num((cpu.get("cpu_usage") or {}).get("total_usage")) - _num(
            (pre.get("cpu_usage") or {}).get("total_usage")
        )
        system_delta = _num(cpu.get("system_cpu_usage")) - _num(pre.get("system_cpu_usage"))
        online = _num(cpu.get("online_cpus")) or float(
            len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
        )
        percent = cpu_delta / system_delta * online * 100.0 if system_delta > 0 else 0.0
        memory = stats.get("memory_stats") or {}
        details = memory.get("stats") or {}
        cache = _num(details.get("inactive_file") or details.get("total_inactive_file"))
        if not cache:
            cache = _num(details.get("cache"))
        used = max(0.0, _num(memory.get("usage")) - cache)
        rx = tx = 0.0
        for net in (stats.get("networks") or {}).values():
            rx += _num(net.get("rx_bytes"))
            tx += _num(net.get("tx_bytes"))
        read = write = 0.0
        for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = str(entry.get("op") or "").lower()
            if op == "read":
                read += _num(entry.get("value"))
            elif op == "write":
                write += _num(entry.get("value"))
        return cls(
            when=when,
            cpu_percent=max(0.0, percent),
            memory=used,
            memory_limit=_num(memory.get("limit")),
            net_rx=rx,
            net_tx=tx,
            block_read=read,
            block_write=write,
        )


class History:
    """The last ``size`` samples of one container as sparkline series."""

    def __init__(self, size: int = HISTORY) -> None:
        self.cpu: deque[float] = deque(maxlen=size)
        self.memory: deque[float] = deque(maxlen=size)
        self.net: deque[float] = deque(maxlen=size)  # bytes per second, in and out
        self.block: deque[float] = deque(maxlen=size)  # bytes per second, read and written
        self.last: Sample | None = None

    def add(self, sample: Sample) -> None:
        previous, self.last = self.last, sample
        self.cpu.append(sample.cpu_percent)
        self.memory.append(sample.memory)
        if previous is None or sample.when <= previous.when:
            self.net.append(0.0)
            self.block.append(0.0)
            return
        elapsed = sample.when - previous.when
        net = (sample.net_rx + sample.net_tx) - (previous.net_rx + previous.net_tx)
        block = (sample.block_read + sample.block_write) - (
            previous.block_read + previous.block_write
        )
        self.net.append(max(0.0, net) / elapsed)
        self.block.append(max(0.0, block) / elapsed)
