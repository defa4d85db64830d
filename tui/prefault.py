"""Taking a forked process's copy-on-write faults ahead of time.

A worker forked from the warm command server shares the server's memory until it writes to
it; Python writes almost everywhere it reads (reference counts), so a fresh fork spends
several milliseconds of its first command faulting pages in one by one. The server keeps a
spare worker forked ahead of the next command, and the spare calls ``Prefault.run`` while it
waits: every page the server had resident in a private writable mapping is copied at once
with ``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14+). Pages the server never touched stay
unallocated (``mincore`` tells which are resident), and the work stops as soon as a client
is waiting, so a command that arrives early is never held up for long.

The cost is memory: a spare holds its own copy of the server's resident pages.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

MADV_POPULATE_WRITE = 23
_CHUNK = 256  # pages per madvise call between checks for a waiting client


class Prefault:
    """``madvise``/``mincore`` from libc, or nothing where they are missing."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._madvise = libc.madvise
        self._madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self._madvise.restype = ctypes.c_int
        self._mincore = libc.mincore
        self._mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self._mincore.restype = ctypes.c_int
        self._page = os.sysconf("SC_PAGE_SIZE")

    @classmethod
    def load(cls) -> Prefault | None:
        try:
            return cls(ctypes.CDLL(None, use_errno=True))
        except (OSError, AttributeError):
            return None

    def regions(self) -> list[tuple[int, int]]:
        """(start, end) of each private writable mapping of this process."""
        found = []
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) < 2 or fields[1] != b"rw-p":
                    continue
                start, _, end = fields[0].partition(b"-")
                found.append((int(start, 16), int(end, 16)))
        return found

    def resident_runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """(address, pages) of each run of resident pages in [start, end)."""
        pages = (end - start) // self._page
        vector = (ctypes.c_ubyte * pages)()
        if self._mincore(start, end - start, vector) != 0:
            return []
        flags = bytes(vector)
        runs = []
        i = 0
        while i < pages:
            if not flags[i] & 1:
                i += 1
                continue
            j = i + 1
            while j < pages and flags[j] & 1:
                j += 1
            runs.append((start + i * self._page, j - i))
            i = j
        return runs

    def run(self, client_waiting: Callable[[], bool]) -> int:
        """Copy this process's resident private pages now; stop early when a client waits.
        The number of pages copied."""
        copied = 0
        for start, end in self.regions():
            for address, pages in self.resident_runs(start, end):
                for offset in range(0, pages, _CHUNK):
                    if client_waiting():
                        return copied
                    count = min(_CHUNK, pages - offset)
                    at = address + offset * self._page
                    if self._madvise(at, count * self._page, MADV_POPULATE_WRITE) != 0:
                        return copied  # an older kernel: nothing more to gain
                    copied += count
        return copied
