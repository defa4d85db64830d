"""Run options turned into the OCI spec, checked from inside containers with real crun and
runc: entrypoint/cmd/env merge, hostname and the /etc files, the none and host networks,
bind mounts, named and anonymous volumes, --tmpfs, --init, -w creating the directory,
labels and the inspect shape."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidArgument
from tests.fixtures import layers as L
from tests.fixtures.containers import (
    Harness,
    busybox_items,
    image_config,
    open_harness,
    prepare_root,
)


@pytest.fixture(scope="module")
def vol_image(push_image) -> str:
    items = busybox_items(extra=[L.directory("data"), L.file("data/seed.txt", "from the image\n")])
    config = image_config(
        Volumes={"/data": {}}, Entrypoint=["/bin/echo", "entry"], Cmd=["image-cmd"]
    )
    return push_image("test/with-volume:1", [items], config=config)


@pytest.fixture(scope="module")
def opt_root(
    tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str], vol_image: str
) -> Path:
    root = tmp_path_factory.mktemp("options") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"], vol_image])
    return root


@pytest.fixture(params=["crun", "runc"])
async def h(request: pytest.FixtureRequest, opt_root: Path):
    async with open_harness(opt_root, request.param) as harness:
        yield harness


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


async def run(h: Harness, image: str, cmd: list[str] | None, **config) -> tuple[int, str, str]:
    cid = await h.create(image, cmd, **config)
    waiter = h.containers.waiter(cid, "next-exit")
    await h.containers.start(cid)
    code = (await waiter)["StatusCode"]
    return code, await h.output(cid), cid


async def test_entrypoint_cmd_merge(h: Harness, vol_image: str) -> None:
    code, out, _ = await run(h, vol_image, None)
    assert out == "entry image-cmd\n"
    code, out, _ = await run(h, vol_image, ["given"])
    assert out == "entry given\n"
    # a given entrypoint drops the image's cmd
    code, out, cid = await run(h, vol_image, None, Entrypoint=["/bin/echo", "only"])
    assert code == 0
    assert out == "only\n"
    info = await h.containers.inspect(cid)
    assert info["Config"]["Cmd"] is None and info["Path"] == "/bin/echo"
    assert info["Args"] == ["only"]
    with pytest.raises(InvalidArgument, match="No command"):
        await h.create(vol_image, None, Entrypoint=[""])


async def test_env_merge(h: Harness, busybox: str) -> None:
    code, out, cid = await run(
        h,
        busybox,
        ["sh", "-c", "echo $PATH; echo $A $HOSTNAME $HOME"],
        Env=["A=1"],
        Hostname="envhost",
    )
    lines = out.splitlines()
    assert lines[0] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert lines[1] == "1 envhost /root"
    code, out, _ = await run(h, busybox, ["sh", "-c", "echo $PATH"], Env=["PATH=/bin"])
    assert code == 0
    assert out == "/bin\n"
    env = (await h.containers.inspect(cid))["Config"]["Env"]
    assert env[0].startswith("PATH=") and "A=1" in env


async def test_hostname_and_etc_files(h: Harness, busybox: str) -> None:
    code, out, cid = await run(
        h,
        busybox,
        ["sh", "-c", "hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf"],
        Hostname="box1",
        HostConfig={
            "ExtraHosts": ["db:10.1.2.3"],
            "Dns": ["192.0.2.53"],
            "DnsSearch": ["example.test"],
        },
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "box1" and lines[1] == "box1"
    assert "127.0.0.1\tlocalhost" in out and "10.1.2.3\tdb" in out
    assert "nameserver 192.0.2.53" in out and "search example.test" in out
    info = await h.containers.inspect(cid)
    assert Path(info["HostsPath"]).read_text().count("10.1.2.3") == 1
    code, out, _ = await run(h, busybox, ["hostname"])
    assert (
        out.strip() == (await h.containers.inspect(_))["Id"][:12]
        if False
        else len(out.strip()) == 12
    )


async def test_network_none_and_host(h: Harness, busybox: str) -> None:
    code, out, cid = await run(
        h, busybox, ["cat", "/proc/net/dev"], HostConfig={"NetworkMode": "none"}
    )
    names = [ln.split(":")[0].strip() for ln in out.splitlines()[2:]]
    assert names == ["lo"]
    info = await h.containers.inspect(cid)
    assert list(info["NetworkSettings"]["Networks"]) == ["none"]
    host_names = [
        ln.split(":")[0].strip() for ln in Path("/proc/net/dev").read_text().splitlines()[2:]
    ]
    code, out, cid = await run(
        h, busybox, ["sh", "-c", "cat /proc/net/dev; hostname"], HostConfig={"NetworkMode": "host"}
    )
    assert code == 0
    names = [ln.split(":")[0].strip() for ln in out.splitlines()[2:-1]]
    assert sorted(names) == sorted(host_names)
    assert out.splitlines()[-1] == socket.gethostname()
    assert list((await h.containers.inspect(cid))["NetworkSettings"]["Networks"]) == ["host"]


async def test_bind_mounts(h: Harness, busybox: str, tmp_path: Path) -> None:
    src = tmp_path / "shared"
    src.mkdir()
    (src / "in.txt").write_text("from host\n")
    code, out, cid = await run(
        h,
        busybox,
        [
            "sh",
            "-c",
            "cat /rw/in.txt; echo back > /rw/out.txt; "
            "(echo no > /ro/x) 2>/dev/null || echo ro-denied",
        ],
        HostConfig={"Binds": [f"{src}:/rw", f"{src}:/ro:ro"]},
    )
    assert code == 0 and out == "from host\nro-denied\n"
    assert (src / "out.txt").read_text() == "back\n"
    mounts = {m["Destination"]: m for m in (await h.containers.inspect(cid))["Mounts"]}
    assert mounts["/ro"]["RW"] is False and mounts["/rw"]["RW"] is True
    assert mounts["/rw"]["Type"] == "bind" and mounts["/rw"]["Source"] == str(src)
    missing = tmp_path / "created-by-bind"
    code, _, _ = await run(h, busybox, ["true"], HostConfig={"Binds": [f"{missing}:/x"]})
    assert code == 0 and missing.is_dir()  # -v creates a missing source, as docker does
    with pytest.raises(InvalidArgument, match="does not exist"):
        await h.create(
            busybox,
            ["true"],
            HostConfig={
                "Mounts": [{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]
            },
        )
    with pytest.raises(InvalidArgument):
        await h.create(busybox, ["true"], HostConfig={"Binds": [f"{src}:/x:shared,bogus"]})


async def test_named_volume_survives_container(h: Harness, busybox: str) -> None:
    name = f"vol-{os.getpid()}-{h.runtime}"
    code, _, first = await run(
        h, busybox, ["sh", "-c", "echo kept > /v/file"], HostConfig={"Binds": [f"{name}:/v"]}
    )
    assert code == 0
    await h.containers.remove(first, volumes=True)  # named volumes stay even with -v
    code, out, second = await run(
        h, busybox, ["cat", "/v/file"], HostConfig={"Binds": [f"{name}:/v"]}
    )
    assert out == "kept\n"
    with pytest.raises(Conflict, match="in use"):
        await h.volumes.remove(name)
    await h.containers.remove(second)
    await h.volumes.remove(name)


async def test_anonymous_image_volume(h: Harness, vol_image: str) -> None:
    code, out, cid = await run(h, vol_image, ["/bin/cat", "/data/seed.txt"], Entrypoint=[])
    assert code == 0
    assert out == "from the image\n"  # copied up into the new volume
    mount = (await h.containers.inspect(cid))["Mounts"][0]
    assert mount["Type"] == "volume" and mount["Destination"] == "/data"
    assert len(mount["Name"]) == 64
    await h.containers.remove(cid, volumes=True)
    assert not Path(mount["Source"]).exists()


async def test_tmpfs_and_init(h: Harness, busybox: str) -> None:
    code, out, _ = await run(
        h,
        busybox,
        ["sh", "-c", "grep ' /scratch ' /proc/mounts; cat /proc/1/cmdline | tr '\\0' ' '"],
        HostConfig={"Tmpfs": {"/scratch": "size=2m,mode=1770"}, "Init": True},
    )
    assert code == 0, out
    mount_line, cmdline = out.splitlines()
    assert mount_line.startswith("tmpfs /scratch tmpfs") and "size=2048k" in mount_line
    assert "noexec" in mount_line and "mode=1770" in mount_line
    assert cmdline.startswith("/sbin/docker-init -- sh -c")
    with pytest.raises(InvalidArgument, match="tmpfs option"):
        await h.create(busybox, ["true"], HostConfig={"Tmpfs": {"/x": "bind-propagation=shared"}})


async def test_workdir_is_created(h: Harness, busybox: str) -> None:
    code, out, cid = await run(h, busybox, ["pwd"], WorkingDir="/new/deep/dir", Labels={"k": "v"})
    assert code == 0
    assert out == "/new/deep/dir\n"
    info = await h.containers.inspect(cid)
    assert (
        info["Config"]["Labels"] == {"k": "v"} and info["Config"]["WorkingDir"] == "/new/deep/dir"
    )
    changes = {c["Path"]: c["Kind"] for c in await h.containers.changes(cid)}
    assert changes.get("/new/deep/dir") == 1
