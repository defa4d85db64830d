"""tui.prefault: a forked process takes its copy-on-write faults at once, ahead of use.

Each check runs in a real forked child (as the command server's spare worker does) and
reports back through a pipe: page faults counted by the kernel (``ru_minflt``) and resident
memory from /proc, never timings.
"""

from __future__ import annotations

import json
import mmap
import os
import resource
from collections.abc import Callable

from tui.prefault import Prefault

PAGE = os.sysconf("SC_PAGE_SIZE")


def _in_child(check: Callable[[], dict[str, int]]) -> dict[str, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.write(write_end, json.dumps(check()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def _write_every_page(buffer: bytearray) -> int:
    before = _faults()
    for offset in range(0, len(buffer), PAGE):
        buffer[offset] = (buffer[offset] + 1) & 0xFF
    return _faults() - before


def test_after_prefault_writing_the_parent_memory_takes_no_faults() -> None:
    prefault = Prefault.load()
    assert prefault is not None
    pages = 2048
    shared = bytearray(b"\1" * (pages * PAGE))  # resident in the parent

    def plain() -> dict[str, int]:
        return {"faults": _write_every_page(shared)}

    def prefaulted() -> dict[str, int]:
        copied = prefault.run(lambda: False)
        return {"copied": copied, "faults": _write_every_page(shared)}

    without = _in_child(plain)
    with_it = _in_child(prefaulted)
    assert without["faults"] >= pages  # a copy-on-write fault per page
    assert with_it["copied"] >= pages
    assert with_it["faults"] < pages // 20


def test_memory_the_parent_never_touched_stays_unallocated() -> None:
    prefault = Prefault.load()
    assert prefault is not None
    reserved = mmap.mmap(-1, 256 << 20)  # 256 MiB mapped, not one page touched
    try:

        def grow() -> dict[str, int]:
            before = _rss_anon_kb()
            prefault.run(lambda: False)
            return {"grew_kb": _rss_anon_kb() - before}

        parent_kb = _rss_anon_kb()
        grew = _in_child(grow)["grew_kb"]
        assert grew <= parent_kb + 8 * 1024  # at most a copy of what the parent holds
        assert grew < 128 * 1024
    finally:
        reserved.close()


def test_a_waiting_client_stops_it_at_once() -> None:
    prefault = Prefault.load()
    assert prefault is not None

    def interrupted() -> dict[str, int]:
        return {"copied": prefault.run(lambda: True)}

    assert _in_child(interrupted)["copied"] == 0
