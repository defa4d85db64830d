"""``docker cp`` against hostile containers and hostile archives (the CVE-2018-15664 class).

A container controls its own file system: symlinks to ``/`` or ``../../..`` used as copy
source or destination, a symlink swapped while copies run, a symlink planted at a mount's
destination. An uploaded tar is hostile too: ``../`` names, absolute and escaping links,
device nodes, oversized headers. Every test checks the host side: nothing written, read or
mounted outside the container's root.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures import layers as L
from tests.fixtures.portside import PortsideFixture, UnixHTTPConnection, start_portside
from tests.fixtures.procs import short_tempdir
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
RACE_ROUNDS = 15


@pytest.fixture(scope="module")
def serve(registry: RegistryFixture, pushed_images: dict[str, str]) -> Iterator[PortsideFixture]:
    base = short_tempdir("ps-cphost-")
    try:
        with start_portside(base, "--insecure-registry", registry.host) as engine:
            engine.docker("pull", pushed_images[BUSYBOX])
            yield engine
            ids = engine.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host with a secret, at a path the container does not have."""
    path = short_tempdir("cp-host-")
    (path / "secret").write_text("host secret\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _request(
    serve: PortsideFixture, method: str, name: str, path: str, body: bytes = b""
) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(str(serve.socket_path))
    try:
        conn.request(
            method,
            f"/containers/{name}/archive?path={quote(path)}",
            body=body if method == "PUT" else None,
            headers={"Content-Type": "application/x-tar"},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _message(body: bytes) -> str:
    return str(json.loads(body)["message"])


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def _reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]


def _run(serve: PortsideFixture, pushed_images: dict[str, str], *args: str) -> str:
    name = f"cph-{secrets.token_hex(4)}"
    serve.docker("run", "-d", "--network", "none", "--name", name, *args, pushed_images[BUSYBOX],
                 "sleep", "600")  # fmt: skip
    return name


def test_symlinks_to_root_stay_in_the_container(
    serve: PortsideFixture, pushed_images: dict[str, str], host_dir: Path
) -> None:
    name = _run(serve, pushed_images)
    serve.docker("exec", name, "ln", "-s", "/", "/tmp/to-root")
    serve.docker("exec", name, "ln", "-s", "../../../../../..", "/tmp/up")
    serve.docker("exec", name, "ln", "-s", str(host_dir), "/tmp/to-host")
    marker = f"cp-marker-{secrets.token_hex(4)}"
    # as destinations: the files land at the container's root, never the host's
    for link in ("/tmp/to-root", "/tmp/up", "/tmp/up/"):
        status, _ = _request(serve, "PUT", name, link, _tar(_reg(marker, b"in")))
        assert status == 200
        assert not Path("/", marker).exists()
    assert serve.docker("exec", name, "cat", f"/{marker}").stdout == "in"
    status, body = _request(serve, "PUT", name, "/tmp/to-host", _tar(_reg("planted")))
    assert status == 404
    assert _message(body) == f"Could not find the file /tmp/to-host in container {name}"
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]
    # as sources: the container's files, never the host's
    status, body = _request(serve, "GET", name, "/tmp/up/etc/passwd")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        passwd = tar.extractfile("passwd").read()  # type: ignore[union-attr]
    assert b"app:x:1000" in passwd
    assert passwd != Path("/etc/passwd").read_bytes()
    status, body = _request(serve, "GET", name, "/tmp/to-root/")
    assert status == 200
    top = {n.split("/")[1] for n in _names(body) if n.count("/") >= 1 and n.split("/")[1]}
    assert marker in top
    assert "work" not in top  # the host's /work is not the container's
    status, _ = _request(serve, "GET", name, "/tmp/to-host/secret")
    assert status == 404


def test_symlink_swapped_during_copies(
    serve: PortsideFixture, pushed_images: dict[str, str], host_dir: Path
) -> None:
    name = _run(serve, pushed_images)
    serve.docker(
        "exec", "-d", name, "sh", "-c",
        f"while :; do rm -rf /tmp/swap; mkdir /tmp/swap; rm -rf /tmp/swap; "
        f"ln -s {host_dir} /tmp/swap; done",
    )  # fmt: skip
    leaked = []
    for i in range(RACE_ROUNDS):
        status, body = _request(serve, "PUT", name, "/tmp/swap", _tar(_reg(f"race-{i}")))
        assert status in (200, 400, 404, 500), body
        status, body = _request(serve, "GET", name, "/tmp/swap/")
        if status == 200 and b"host secret" in body:
            leaked.append(i)
        status, body = _request(serve, "GET", name, "/tmp/swap/secret")
        if status == 200:
            leaked.append(i)
    assert leaked == []
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]


def test_symlink_at_a_mount_destination(
    serve: PortsideFixture, push_image: Any, host_dir: Path, tmp_path: Path
) -> None:
    """An image whose /evil is a symlink to a host path; a bind mount at /evil/mnt."""
    image = push_image(f"test/cp-evil:{secrets.token_hex(4)}", [[L.symlink("evil", str(host_dir))]])
    source = tmp_path / "bind-source"
    source.mkdir()
    name = f"cph-{secrets.token_hex(4)}"
    serve.docker("create", "--network", "none", "--name", name, "-v", f"{source}:/evil/mnt",
                 image, "true")  # fmt: skip
    status, body = _request(serve, "PUT", name, "/evil/mnt", _tar(_reg("through-mount", b"m")))
    assert status == 200, body
    assert (source / "through-mount").read_bytes() == b"m"
    status, body = _request(serve, "GET", name, f"{host_dir}/mnt/through-mount")
    assert status == 200  # the mount sits at the link's target inside the container's root
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]
    assert str(host_dir) not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_reg("../../escape")], '"../../escape" is outside of "/tmp/dest"'),
        ([_reg("a/../../escape")], "is outside of"),
        ([_link("rel", "../../../../etc")], 'invalid symlink "/tmp/dest/rel"'),
        ([_link("hard", "../../etc/passwd", tarfile.LNKTYPE)], "invalid hardlink"),
    ],
    ids=["dotdot", "dotdot-nested", "relative-symlink", "hardlink"],
)
def test_escaping_entries_are_refused(
    serve: PortsideFixture, pushed_images: dict[str, str], members: list, message: str
) -> None:
    name = _run(serve, pushed_images)
    serve.docker("exec", name, "mkdir", "-p", "/tmp/dest")
    status, body = _request(serve, "PUT", name, "/tmp/dest", _tar(*members))
    assert status == 400
    assert message in _message(body)
    listing = serve.docker("exec", name, "ls", "-a", "/tmp", "/", "/tmp/dest").stdout
    assert "escape" not in listing
    assert "rel" not in listing.split()


def test_absolute_names_and_links_resolve_in_the_container(
    serve: PortsideFixture, pushed_images: dict[str, str], host_dir: Path
) -> None:
    name = _run(serve, pushed_images)
    unique = f"from-tar-{secrets.token_hex(4)}"
    body = _tar(
        _reg(f"/{unique}-abs", b"abs"),
        _link("to-etc", "/etc"),
        _reg(f"to-etc/{unique}", b"via link"),
    )
    status, answer = _request(serve, "PUT", name, "/tmp", body)
    assert status == 200, answer
    assert serve.docker("exec", name, "cat", f"/tmp/{unique}-abs").stdout == "abs"
    assert serve.docker("exec", name, "cat", f"/etc/{unique}").stdout == "via link"
    assert not Path("/etc", unique).exists()
    # a link to the host directory's path leads nowhere: the container has no such path
    body = _tar(_link("to-host", str(host_dir)), _reg(f"to-host/{unique}", b"via host path"))
    status, answer = _request(serve, "PUT", name, "/tmp", body)
    assert status == 500
    assert "No such file or directory" in _message(answer)
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]


def test_device_nodes_are_refused(serve: PortsideFixture, pushed_images: dict[str, str]) -> None:
    name = _run(serve, pushed_images)
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info = tarfile.TarInfo("disk")
        info.type, info.devmajor, info.devminor = kind, 8, 0
        status, body = _request(serve, "PUT", name, "/tmp", _tar((info, b"")))
        assert status == 400
        assert "refusing device node 'disk'" in _message(body)
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    status, _ = _request(serve, "PUT", name, "/tmp", _tar((fifo, b"")))
    assert status == 200
    out = serve.docker("exec", name, "ls", "-l", "/tmp").stdout
    assert "disk" not in out
    assert out.count("prw") == 1


def test_huge_headers_are_refused(serve: PortsideFixture, pushed_images: dict[str, str]) -> None:
    name = _run(serve, pushed_images)
    long_name = tarfile.TarInfo("n" * 5000)
    status, body = _request(serve, "PUT", name, "/tmp", _tar((long_name, b"x")))
    assert status == 400
    assert "entry name too long" in _message(body)
    # a PAX header that claims 2 GiB of metadata: refused from its header, nothing buffered
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 2 << 30
    raw = header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * 4096
    status, body = _request(serve, "PUT", name, "/tmp", raw)
    assert status == 400
    assert "Error processing tar file" in _message(body)
    status, _ = _request(serve, "HEAD", name, "/tmp")  # the engine still answers
    assert status == 200
