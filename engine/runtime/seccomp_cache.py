"""Compiled seccomp filters, kept and handed back to crun.

crun compiles a container's seccomp profile with libseccomp on every ``create``: about 40 ms
here for Docker's default profile, half of a container start. crun writes the program it
loaded to ``seccomp.bpf`` in the container's state directory, and it accepts a ready
program in the annotation ``run.oci.seccomp_bpf_data`` (base64), which then replaces the
profile (podman's seccomp cache does the same). The first container with a given profile
teaches the cache; later ones skip the compile.

The key covers the whole ``linux.seccomp`` section, the runtime's path and version and the
machine, so a different profile, capability set (Docker's profile depends on it) or crun
build never reuses another's program. Files live in a 0700 directory of the engine root,
are written atomically and are at most ``MAX_ENTRIES``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

ANNOTATION = "run.oci.seccomp_bpf_data"
MAX_ENTRIES = 64
MAX_PROGRAM = 1 << 20  # a BPF program is at most 4096 instructions of 8 bytes


class SeccompCache:
    """Compiled programs for one engine root, for runtimes of kind ``crun``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(seccomp: dict[str, Any], runtime_path: str, runtime_version: str) -> str:
        text = json.dumps(
            [seccomp, runtime_path, runtime_version, platform.machine()],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.bpf"

    def annotate(self, oci: dict[str, Any], runtime_path: str, runtime_version: str) -> str | None:
        """Put a cached program in ``oci``'s annotations; return the key the program of this
        profile is (or will be) cached under, None when the spec has no seccomp profile.
        Blocking file I/O: call it from a thread."""
        seccomp = (oci.get("linux") or {}).get("seccomp")
        if not seccomp:
            return None
        key = self.key(seccomp, runtime_path, runtime_version)
        try:
            with open(self._path(key), "rb") as fh:
                program = fh.read(MAX_PROGRAM + 1)
        except OSError:
            return key
        if program and len(program) <= MAX_PROGRAM and len(program) % 8 == 0:
            oci.setdefault("annotations", {})[ANNOTATION] = base64.b64encode(program).decode()
        return key

    def learn(self, key: str, state_dir: Path) -> bool:
        """Keep the program crun compiled for a container (its ``seccomp.bpf``); True when a
        new entry was stored. Blocking file I/O: call it from a thread."""
        target = self._path(key)
        if target.exists():
            return False
        try:
            with open(state_dir / "seccomp.bpf", "rb") as fh:
                program = fh.read(MAX_PROGRAM + 1)
        except OSError:
            return False
        if not program or len(program) > MAX_PROGRAM or len(program) % 8:
            return False
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(program)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        self._trim()
        return True

    def _trim(self) -> None:
        entries = []
        for path in self.directory.glob("*.bpf"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime, path))
        for _mtime, old in sorted(entries)[:-MAX_ENTRIES]:
            with contextlib.suppress(OSError):
                old.unlink()
