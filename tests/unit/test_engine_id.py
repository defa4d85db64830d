"""The engine id of a root is created once, even by processes opening it together."""

import concurrent.futures
import tempfile
from pathlib import Path

from engine.engine import _engine_id


def test_concurrent_processes_agree_on_one_engine_id():
    root = Path(tempfile.mkdtemp())
    with concurrent.futures.ProcessPoolExecutor(8) as pool:
        ids = set(pool.map(_engine_id, [root] * 32))
    assert len(ids) == 1
    assert [p.name for p in root.iterdir()] == ["engine-id"]  # no temp files left
