"""A fresh ext4 filesystem for benchmarks that create and delete many files.

This VM's long-used root filesystem makes file creation several times slower, and noisy,
after mass deletions (ext4's ``recently_deleted`` check on inode reuse): a bench that
stores every tool's files on a new sparse ext4 image compares the tools, not the history
of the disk.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def fresh_ext4(mountpoint: Path, size: str = "24G") -> Iterator[Path]:
    """A new sparse ext4 image mounted at ``mountpoint``, unmounted and deleted on exit."""
    image = mountpoint.with_suffix(".img")
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    print(f"[bench] stores on a fresh ext4 filesystem at {mountpoint}", file=sys.stderr)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        image.unlink(missing_ok=True)
