"""Content store: atomic verified commits, resume after a crash, concurrent writers."""

import asyncio
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from engine.digest import Digest
from engine.errors import VerificationError
from engine.store.content import ContentStore

DATA = os.urandom(3 * 1024 * 1024 + 17)
DIGEST = Digest.of_bytes(DATA)


async def test_commit_is_verified_and_read_only(tmp_path):
    store = ContentStore(tmp_path)
    async with store.writer(DIGEST, len(DATA)) as w:
        assert w is not None and w.offset == 0
        for i in range(0, len(DATA), 1 << 20):
            await w.write(DATA[i : i + (1 << 20)])
        path = await w.commit()
    assert path == store.path(DIGEST) and path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.verify(DIGEST)
    assert list(store.ingest.iterdir()) == [store.ingest / f"sha256-{DIGEST.hex}.lock"]
    async with store.writer(DIGEST, len(DATA)) as again:
        assert again is None  # already committed: nothing to write


async def test_wrong_content_is_not_committed(tmp_path):
    store = ContentStore(tmp_path)
    bad = bytearray(DATA)
    bad[100] ^= 1
    async with store.writer(DIGEST, len(DATA)) as w:
        await w.write(bytes(bad))
        with pytest.raises(VerificationError, match="failed verification"):
            await w.commit()
    assert not store.has(DIGEST)
    assert not (store.ingest / f"sha256-{DIGEST.hex}" / "data").exists()


async def test_short_and_long_blobs_rejected(tmp_path):
    store = ContentStore(tmp_path)
    async with store.writer(DIGEST, len(DATA)) as w:
        await w.write(DATA[:-1])
        with pytest.raises(VerificationError, match="expected"):
            await w.commit()
    async with store.writer(DIGEST, len(DATA)) as w:
        with pytest.raises(VerificationError, match="larger than its descriptor"):
            await w.write(DATA + b"x")
    assert not store.has(DIGEST)


async def test_resume_after_sigkill(tmp_path):
    """A writer killed mid-ingest leaves partial data; the next writer resumes from it."""
    blob = tmp_path / "blob"
    blob.write_bytes(DATA)
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from engine.digest import Digest
        from engine.store.content import ContentStore
        async def main():
            store = ContentStore(Path({str(tmp_path / "store")!r}))
            data = Path({str(blob)!r}).read_bytes()
            async with store.writer(Digest.parse({str(DIGEST)!r}), len(data)) as w:
                await w.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    store = ContentStore(tmp_path / "store")
    assert not store.has(DIGEST)
    async with store.writer(DIGEST, len(DATA)) as w:
        assert w.offset == len(DATA) // 2
        await w.write(DATA[w.offset :])
        await w.commit()
    assert store.verify(DIGEST)


async def test_corrupt_partial_data_is_caught_at_commit(tmp_path):
    """Resume trusts nothing: a tampered partial file fails verification, not silently."""
    store = ContentStore(tmp_path)
    async with store.writer(DIGEST, len(DATA)) as w:
        await w.write(DATA[:1000])
    partial = store.ingest / f"sha256-{DIGEST.hex}" / "data"
    partial.write_bytes(b"\0" * 1000)
    async with store.writer(DIGEST, len(DATA)) as w:
        assert w.offset == 1000
        await w.write(DATA[1000:])
        with pytest.raises(VerificationError):
            await w.commit()
    async with store.writer(DIGEST, len(DATA)) as w:
        assert w.offset == 0  # the bad partial data is gone; a fresh download follows


async def test_concurrent_writers_one_blob(tmp_path):
    store = ContentStore(tmp_path)
    writes = 0

    async def put() -> None:
        nonlocal writes
        async with store.writer(DIGEST, len(DATA)) as w:
            if w is None:
                return
            writes += 1
            await w.write(DATA)
            await w.commit()

    await asyncio.gather(*(put() for _ in range(5)))
    assert writes == 1 and store.verify(DIGEST)


def test_two_processes_one_blob(tmp_path):
    """Separate processes ingesting the same digest serialise on the ingest lock."""
    blob = tmp_path / "blob"
    blob.write_bytes(DATA)
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from engine.digest import Digest
        from engine.store.content import ContentStore
        async def main():
            store = ContentStore(Path({str(tmp_path / "store")!r}))
            data = Path({str(blob)!r}).read_bytes()
            async with store.writer(Digest.parse({str(DIGEST)!r}), len(data)) as w:
                if w is None:
                    print("skip")
                    return
                for i in range(0, len(data), 65536):
                    await w.write(data[i : i + 65536])
                await w.commit()
                print("wrote")
        asyncio.run(main())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = sorted(p.communicate()[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outputs == ["skip", "skip", "wrote"]
    assert ContentStore(tmp_path / "store").verify(DIGEST)
