"""Facts about the host that ``/version`` and ``/info`` report (kernel, OS, CPUs, memory).

They are read once when the API application starts: files in a thread, OCI runtime
versions (``crun --version``) with short asyncio subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

# Go's names for machine architectures (what dockerd reports as "Arch").
_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str  # uname -m, as /info reports it
    go_arch: str  # Go's name, as /version reports it
    ncpu: int
    mem_total: int
    cgroup_version: str
    # name -> (path, version) of the OCI runtimes found on PATH, preferred first.
    runtimes: dict[str, tuple[str, str]] = field(default_factory=dict)


def _os_release() -> dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        out: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip().strip("\"'")
        return out
    return {}


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def read_host_facts() -> HostFacts:
    """Gather the facts (blocking file reads: call it in a thread)."""
    uname = os.uname()
    release = _os_release()
    machine = uname.machine or platform.machine()
    cgroup = "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"
    return HostFacts(
        hostname=socket.gethostname(),
        kernel_version=uname.release,
        operating_system=release.get("PRETTY_NAME", "Linux"),
        os_version=release.get("VERSION_ID", ""),
        architecture=machine,
        go_arch=_GO_ARCH.get(machine, machine),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version=cgroup,
    )


_RUNTIMES = ("crun", "runc")


async def _runtime_version(path: str) -> str:
    """The version a runtime prints first (``crun version 1.8.1`` -> ``1.8.1``), or ""."""
    with contextlib.suppress(OSError, TimeoutError):
        proc = await asyncio.create_subprocess_exec(
            path,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        first = out.decode(errors="replace").splitlines()[:1]
        if first:
            return first[0].split()[-1]
    return ""


async def host_facts() -> HostFacts:
    """Everything above, without blocking the event loop."""
    facts = await asyncio.to_thread(read_host_facts)
    paths = await asyncio.to_thread(lambda: {n: shutil.which(n) for n in _RUNTIMES})
    runtimes: dict[str, tuple[str, str]] = {}
    for name in _RUNTIMES:
        path = paths.get(name)
        if path:
            runtimes[name] = (path, await _runtime_version(path))
    return replace(facts, runtimes=runtimes)
