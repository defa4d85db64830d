"""Isolation of a running container, checked from inside it with real crun and runc:
masked /proc entries, read-only /proc/sys and /sys, docker's capability set (no
CAP_SYS_ADMIN), seccomp filtering (``Seccomp: 2``, mount/unshare refused), no stray file
descriptors in the container or its init, and the options that loosen or tighten this
(``--privileged``, ``--cap-add/--cap-drop``, ``no-new-privileges``, ``--read-only``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.runtime import caps, spec
from tests.fixtures.containers import Harness, open_harness, prepare_root


@pytest.fixture(scope="module")
def iso_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("iso") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, iso_root: Path):
    async with open_harness(iso_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def run_sh(h: Harness, image: str, script: str, **config) -> tuple[int, str]:
    cid = await h.create(image, ["sh", "-c", script], **config)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    code = (await waiter)["StatusCode"]
    return code, await h.output(cid)


def _status(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} missing in {text!r}")


def _mask(names: list[str]) -> int:
    return sum(1 << caps.ALL_CAPS.index(n) for n in names)


def _masked_checks() -> tuple[str, list[str]]:
    """Shell lines printing what each masked path shows inside, and the expected lines."""
    script, expected = "", []
    for path in spec.MASKED_PATHS:
        host = Path(path)
        if host.is_dir():
            script += f"echo {path}=$(ls -A {path} | wc -l);"
        elif host.exists():
            script += f"echo {path}=$(cat {path} | wc -c);"
        else:
            continue
        expected.append(f"{path}=0")
    return script, expected


async def test_default_isolation(h: Harness, busybox: str) -> None:
    masked, expected = _masked_checks()
    assert "/proc/keys=0" in expected  # present on every Linux host
    script = (
        masked + "(echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=rw "
        "|| echo procsys=ro;"
        "touch /sys/portside-test 2>/dev/null && echo sys=writable || echo sys=ro;"
        "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>/dev/null && echo mount=ok "
        "|| echo mount=denied;"
        "unshare -U true 2>/dev/null && echo unshare=ok || echo unshare=denied;"
        "cat /proc/self/status"
    )
    code, out = await run_sh(h, busybox, script)
    assert code == 0, out
    for line in expected:
        assert line in out.splitlines(), (line, out)
    assert "procsys=ro" in out and "sys=ro" in out
    assert "mount=denied" in out and "unshare=denied" in out
    assert _status(out, "Seccomp") == "2"
    cap_eff = int(_status(out, "CapEff"), 16)
    assert cap_eff == _mask(list(caps.DEFAULT_CAPS))
    assert not cap_eff & (1 << caps.ALL_CAPS.index("CAP_SYS_ADMIN"))
    assert int(_status(out, "CapBnd"), 16) == cap_eff
    assert _status(out, "NoNewPrivs") == "0"


async def test_no_stray_file_descriptors(h: Harness, busybox: str) -> None:
    # inside: only stdio (and the fd ls itself opens to read the directory)
    code, out = await run_sh(h, busybox, "ls /proc/self/fd")
    assert code == 0
    assert out.split() == ["0", "1", "2", "3"]
    # the container's init, seen from the host: only 0, 1 and 2
    cid = await h.run(busybox, ["sleep", "1000"])
    pid = (await h.containers.inspect(cid))["State"]["Pid"]
    fds = sorted(int(p.name) for p in Path(f"/proc/{pid}/fd").iterdir())
    assert fds == [0, 1, 2]
    targets = {Path(f"/proc/{pid}/fd/{n}").readlink().as_posix() for n in fds}
    assert all(t.startswith(("pipe:", "/dev/null")) for t in targets), targets


async def test_privileged(h: Harness, busybox: str) -> None:
    code, out = await run_sh(
        h,
        busybox,
        "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted; "
        "echo interrupts=$(cat /proc/interrupts | wc -c); cat /proc/self/status",
        HostConfig={"Privileged": True},
    )
    assert code == 0, out
    assert "mounted" in out
    assert _status(out, "Seccomp") == "0"
    assert int(_status(out, "CapEff"), 16) == _mask(list(caps.available()))
    assert "interrupts=0" not in out  # not masked


async def test_cap_add_and_drop(h: Harness, busybox: str) -> None:
    code, out = await run_sh(
        h,
        busybox,
        "chown 1000 /tmp && echo chowned || echo chown-denied; cat /proc/self/status",
        HostConfig={"CapDrop": ["CHOWN"], "CapAdd": ["NET_ADMIN"]},
    )
    assert code == 0
    assert "chown-denied" in out
    eff = int(_status(out, "CapEff"), 16)
    assert not eff & (1 << caps.ALL_CAPS.index("CAP_CHOWN"))
    assert eff & (1 << caps.ALL_CAPS.index("CAP_NET_ADMIN"))
    code, out = await run_sh(
        h,
        busybox,
        "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted",
        HostConfig={"CapAdd": ["SYS_ADMIN"]},
    )
    assert "mounted" in out, out


async def test_no_new_privileges_and_read_only(h: Harness, busybox: str) -> None:
    code, out = await run_sh(
        h,
        busybox,
        "touch /newfile 2>/dev/null && echo root-writable || echo root-ro;"
        "touch /dev/shm/ok && echo shm-ok; touch /scratch/ok && echo tmpfs-ok;"
        "grep NoNewPrivs /proc/self/status",
        HostConfig={
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": True,
            "Tmpfs": {"/scratch": "size=1m"},
        },
    )
    assert code == 0, out
    assert "root-ro" in out and "shm-ok" in out and "tmpfs-ok" in out
    assert "NoNewPrivs:\t1" in out


async def test_non_root_user_has_no_effective_caps(h: Harness, busybox: str) -> None:
    code, out = await run_sh(h, busybox, "id; cat /proc/self/status", User="app")
    assert code == 0
    assert "uid=1000(app) gid=1000(app)" in out
    assert int(_status(out, "CapEff"), 16) == 0
