"""crun's compiled seccomp programs, cached per profile: the first container with a profile
teaches the cache, later ones hand crun the program (run.oci.seccomp_bpf_data) and still run
under exactly their own profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime.seccomp_cache import ANNOTATION, MAX_ENTRIES, SeccompCache
from tests.fixtures.containers import Harness, open_harness, prepare_root

PROBE = "grep Seccomp: /proc/self/status; unshare -m true && echo unshare-ok || echo unshare-no"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("seccomp") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def _probe(h: Harness, image: str, **host: object) -> tuple[str, dict]:
    cid = await h.create(image, ["sh", "-c", PROBE], HostConfig=dict(host))
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    assert (await waiter)["StatusCode"] == 0
    config = json.loads((h.engine.config.root / "containers" / cid / "config.json").read_text())
    return await h.output(cid), config


async def test_programs_are_learnt_once_and_reused_per_profile(
    cache_root: Path, busybox: str
) -> None:
    async with open_harness(cache_root, "crun") as h:
        cache_dir = h.engine.config.root / "seccomp"
        out, config = await _probe(h, busybox)
        assert "Seccomp:\t2" in out and "unshare-no" in out
        assert ANNOTATION not in config.get("annotations", {})  # compiled by crun, learnt
        (learnt,) = cache_dir.glob("*.bpf")
        assert learnt.stat().st_size % 8 == 0 and learnt.stat().st_mode & 0o777 == 0o600

        out, config = await _probe(h, busybox)  # same profile: precompiled
        assert "Seccomp:\t2" in out and "unshare-no" in out
        assert config["annotations"][ANNOTATION]
        assert len(list(cache_dir.glob("*.bpf"))) == 1

        # Docker's profile differs with CAP_SYS_ADMIN (it then allows unshare): its own entry,
        # and the reused program really is that profile's, not the default one's
        for round_ in range(2):
            out, config = await _probe(h, busybox, CapAdd=["SYS_ADMIN"])
            assert "Seccomp:\t2" in out and "unshare-ok" in out, out
            assert (ANNOTATION in config.get("annotations", {})) == (round_ == 1)
        assert len(list(cache_dir.glob("*.bpf"))) == 2

        out, config = await _probe(h, busybox, SecurityOpt=["seccomp=unconfined"])
        assert "Seccomp:\t0" in out and ANNOTATION not in config.get("annotations", {})


async def test_runc_containers_are_left_alone(cache_root: Path, busybox: str) -> None:
    async with open_harness(cache_root, "runc") as h:
        out, config = await _probe(h, busybox)
        assert "Seccomp:\t2" in out
        assert ANNOTATION not in config.get("annotations", {})


def test_the_key_names_profile_runtime_and_version() -> None:
    base = SeccompCache.key({"defaultAction": "SCMP_ACT_ERRNO"}, "/usr/bin/crun", "1.8.1")
    assert base != SeccompCache.key({"defaultAction": "SCMP_ACT_KILL"}, "/usr/bin/crun", "1.8.1")
    assert base != SeccompCache.key({"defaultAction": "SCMP_ACT_ERRNO"}, "/opt/crun", "1.8.1")
    assert base != SeccompCache.key({"defaultAction": "SCMP_ACT_ERRNO"}, "/usr/bin/crun", "1.9")


def test_bad_or_missing_programs_are_never_used(tmp_path: Path) -> None:
    cache = SeccompCache(tmp_path / "cache")
    state = tmp_path / "state"
    state.mkdir()
    spec = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}}
    key = cache.annotate(spec, "/usr/bin/crun", "1.8.1")
    assert key and "annotations" not in spec
    assert not cache.learn(key, state)  # crun wrote nothing
    (state / "seccomp.bpf").write_bytes(b"\x00" * 13)  # not whole instructions
    assert not cache.learn(key, state)
    (state / "seccomp.bpf").write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    assert cache.learn(key, state) and not cache.learn(key, state)
    assert cache.annotate(spec, "/usr/bin/crun", "1.8.1") == key
    assert spec["annotations"][ANNOTATION] == "BgAAAAAA/38="
    for n in range(MAX_ENTRIES + 3):
        assert cache.learn(f"{n:064x}", state)
    assert len(list((tmp_path / "cache").glob("*.bpf"))) == MAX_ENTRIES
