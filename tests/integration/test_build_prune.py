"""The build cache across engine restarts, ``portside builder prune`` and ``POST /build/prune``.

Every ``portside --root`` command is its own engine process, so a rebuild by a second
command is a rebuild after a restart. The API half runs ``portside serve`` on the same root.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.engine import Engine
from tests.fixtures.engine import portside
from tests.fixtures.portside import start_portside, unix_request
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
LAYERED = "test/busybox2:1"
HIT = " ---> Using cache"


class Cli:
    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        self.registry = registry

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return portside(
            "--root", str(self.root), "--insecure-registry", self.registry, *args, input=input
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self(*args, input=input)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def base() -> Iterator[Path]:
    path = short_tempdir("ps-prn-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _context(tmp_path: Path, image: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("alpha\n" * 1000)
    (ctx / "Dockerfile").write_text(
        f"FROM {image}\nRUN head -c 300000 /bin/busybox > /blob\nCOPY a.txt /\n"
        "ENV STAGE=one\nRUN echo done > /done\n"
    )
    return ctx


def _cache_entries(root: Path) -> set[str]:
    d = root / "build-cache"
    return {p.name for p in d.iterdir() if not p.name.startswith(".")} if d.is_dir() else set()


def _deleted(stdout: str) -> list[str]:
    match = re.search(r"Deleted build cache objects:\n(.*?)\n\n", stdout, re.S)
    return match.group(1).split() if match else []


def test_cache_survives_restarts_and_prunes(
    registry: RegistryFixture, pushed_images: dict[str, str], base: Path, tmp_path: Path
) -> None:
    cli = Cli(base / "root", registry.host)
    ctx = _context(tmp_path, pushed_images[BUSYBOX])
    first = cli.ok("build", "-t", "prune-test:1", str(ctx))
    assert HIT not in first
    image_id = cli.ok("build", "-q", str(ctx)).strip()
    again = cli.ok("build", str(ctx))  # a third engine process: every step from the cache
    assert again.count(HIT) == 4, again
    assert image_id.startswith("sha256:") and f"Successfully built {image_id[7:19]}" in again
    entries = _cache_entries(cli.root)
    assert len(entries) == 4

    # unanswered prompt: nothing goes; fresh entries survive until= and keep-storage
    assert "Total reclaimed" not in cli.ok("builder", "prune", input="n\n")
    kept = cli.ok("builder", "prune", "-f", "--filter", "until=1h")
    assert "Total reclaimed space: 0B" in kept and _deleted(kept) == []
    kept = cli.ok("builder", "prune", "-a", "-f", "--keep-storage", "1g")
    assert _deleted(kept) == [] and _cache_entries(cli.root) == entries

    # default prune: the dangling steps go, the tagged result's step stays
    pruned = cli.ok("builder", "prune", "-f")
    gone = _deleted(pruned)
    assert len(gone) == 3 and set(gone) < entries, pruned
    assert re.search(r"Total reclaimed space: \d", pruned)
    assert _cache_entries(cli.root) == entries - set(gone)
    # the freed intermediate images are gone; the tagged image still runs
    run = cli.ok("run", "--rm", "--network", "none", "prune-test:1", "cat", "/done")
    assert run == "done\n"
    rebuilt = cli.ok("build", str(ctx))
    assert HIT not in rebuilt.split("Step 3/")[0], rebuilt  # the RUN ran again

    everything = cli.ok("builder", "prune", "--all", "--force")
    assert len(_deleted(everything)) >= 4 and _cache_entries(cli.root) == set()
    assert cli.ok("run", "--rm", "--network", "none", "prune-test:1", "cat", "/done") == "done\n"
    cold = cli.ok("build", str(ctx))
    assert HIT not in cold

    bad = cli("builder", "prune", "-f", "--filter", "color=red")
    assert bad.returncode != 0 and "Invalid filter 'color'" in bad.stderr
    bad = cli("builder", "prune", "-f", "--keep-storage", "lots")
    assert bad.returncode == 125 and "--keep-storage" in bad.stderr


def test_prune_api_and_disk_usage(
    registry: RegistryFixture, pushed_images: dict[str, str], base: Path, tmp_path: Path
) -> None:
    cli = Cli(base / "root", registry.host)
    ctx = _context(tmp_path, pushed_images[BUSYBOX])
    cli.ok("build", "-q", str(ctx))
    with start_portside(base, "--insecure-registry", registry.host) as engine:
        status, _, raw = unix_request(engine.socket_path, "GET", "/system/df")
        assert status == 200, raw
        df = json.loads(raw)
        records = df["BuildCache"]
        assert len(records) == 4
        assert {r["Type"] for r in records} == {"regular"}
        assert any("COPY" in r["Description"] for r in records)
        assert df["BuilderSize"] == sum(r["Size"] for r in records) > 300_000

        status, _, raw = unix_request(
            engine.socket_path, "POST", "/build/prune", query={"filters": '{"until":["soon"]}'}
        )
        assert status == 400 and "until" in json.loads(raw)["message"]
        status, _, raw = unix_request(
            engine.socket_path, "POST", "/build/prune", query={"keep-storage": "-1"}
        )
        assert status == 400

        status, _, raw = unix_request(engine.socket_path, "POST", "/v1.41/build/prune?all=1")
        assert status == 200, raw
        answer = json.loads(raw)
        assert len(answer["CachesDeleted"]) == 4
        assert answer["SpaceReclaimed"] > 300_000
        status, _, raw = unix_request(engine.socket_path, "POST", "/build/prune")
        assert json.loads(raw) == {"CachesDeleted": None, "SpaceReclaimed": 0}
        status, _, raw = unix_request(engine.socket_path, "GET", "/system/df")
        assert json.loads(raw)["BuildCache"] == []


async def test_put_keeps_or_replaces(engine: Engine, pushed_images: dict[str, str]) -> None:
    first = await engine.images.pull(pushed_images[BUSYBOX])
    second = await engine.images.pull(pushed_images[LAYERED])
    cache = engine.builds.cache
    assert await cache.put("k" * 64, first, replace=False) == first
    assert await cache.put("k" * 64, second, replace=False) == first  # a valid entry stays
    assert await cache.get("k" * 64) == first
    assert await cache.put("k" * 64, second) == second  # docker's way: the latest wins
    assert await cache.get("k" * 64) == second
    await engine.images.remove(second, force=True)
    assert await cache.get("k" * 64) is None  # its image is gone: a miss
    assert await cache.put("k" * 64, first, replace=False) == first  # a stale entry goes
    assert [r["UsageCount"] for r in await cache.records()] == [0]
    assert await cache.get("k" * 64) == first
    assert [r["UsageCount"] for r in await cache.records()] == [1]


async def test_use_notes_reach_the_disk_in_one_batch(
    engine: Engine, pushed_images: dict[str, str]
) -> None:
    """A hit is counted in memory and written a moment later (or at close); an entry the
    cache knows in memory is a miss once it has been pruned."""
    image = await engine.images.pull(pushed_images[BUSYBOX])
    cache = engine.builds.cache
    key = "n" * 64
    await cache.put(key, image)
    entry = cache.dir / key
    assert json.loads(entry.read_text())["used"] == 0
    assert await cache.get(key) == image
    assert await cache.get(key) == image
    assert json.loads(entry.read_text())["used"] == 0  # not yet: off the build's path
    await cache.close()
    assert json.loads(entry.read_text())["used"] == 2
    assert await cache.get(key) == image
    assert [r["UsageCount"] for r in await cache.records() if r["ID"] == key] == [3]
    await cache.prune(everything=True)
    assert not entry.exists()
    assert await cache.get(key) is None
    await cache.close()
    assert not entry.exists()  # a pruned entry is not written back
