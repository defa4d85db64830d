"""``docker save`` / ``docker load`` through real clients, against ``portside serve`` AND the
reference dockerd: the docker CLI, docker-py and aiodocker; archives crossing between the
two engines (image ids must stay equal); OCI archives written and read by skopeo.

dockerd 20.10 writes only the legacy layout and cannot read an OCI-only archive, so the
OCI-layout checks run against portside only; every other assertion holds for both engines.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import docker
import pytest

from tests.fixtures.images import BuiltImage
from tests.fixtures.portside import (
    PortsideFixture,
    client_env,
    docker_cli,
    private_portside,
)
from tests.fixtures.procs import ServiceError
from tests.fixtures.registry import RegistryFixture

BUSYBOX = "test/busybox:1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Engine:
    name: str
    host: str
    env: dict[str, str]
    cli: str

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and result.returncode != 0:
            raise ServiceError(f"[{self.name}] docker {' '.join(args)}: {result.stderr.strip()}")
        return result

    def image_id(self, name: str) -> str:
        return self.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()

    def image_ids(self) -> set[str]:
        return set(self.docker("images", "-aq", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def portside(registry: RegistryFixture) -> Iterator[PortsideFixture]:
    with private_portside("ps-save-", "--insecure-registry", registry.host) as engine:
        yield engine


def _engine(host: str, name: str, tmp: Path) -> Engine:
    return Engine(name, host, client_env(host, tmp / f"cli-{name}"), docker_cli())


@pytest.fixture(scope="module")
def portside_engine(portside: PortsideFixture, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return _engine(portside.host, "portside", tmp_path_factory.mktemp("save"))


@pytest.fixture(scope="module")
def dockerd_engine(dockerd: object, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return _engine(dockerd.host, "dockerd", tmp_path_factory.mktemp("save"))  # type: ignore[attr-defined]


@pytest.fixture(
    scope="module", params=["portside", pytest.param("dockerd", marks=pytest.mark.dockerd)]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture(scope="module")
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images[BUSYBOX]


@pytest.fixture(scope="module")
def busybox_id(test_images: dict[str, BuiltImage]) -> str:
    image_id = test_images[BUSYBOX].config_digest
    assert image_id is not None
    return image_id


def _tagged(engine: Engine, busybox: str) -> str:
    """Pull busybox and give it a unique local tag."""
    engine.docker("pull", "-q", busybox)
    tag = f"saved/bb-{secrets.token_hex(4)}:v1"
    engine.docker("tag", busybox, tag)
    return tag


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name.rstrip("/"): (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def _rewrite(src: Path, dst: Path, edit: dict[str, bytes]) -> None:
    """Copy the tar ``src`` to ``dst`` with the files named in ``edit`` replaced."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name in edit:
                data = edit[member.name]
                member.size = len(data)
            tout.addfile(member, io.BytesIO(data) if data is not None else None)


# -- the docker CLI ---------------------------------------------------------------------------


def test_save_and_load_with_cli(
    engine: Engine, busybox: str, busybox_id: str, tmp_path: Path
) -> None:
    tag = _tagged(engine, busybox)
    archive = tmp_path / "bb.tar"
    engine.docker("save", "-o", str(archive), tag)
    files = _members(archive)
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 1
    assert manifest[0]["RepoTags"] == [tag]
    config = files[manifest[0]["Config"]]
    assert "sha256:" + hashlib.sha256(config).hexdigest() == busybox_id
    assert len(manifest[0]["Layers"]) == len(json.loads(config)["rootfs"]["diff_ids"])
    assert all(layer in files for layer in manifest[0]["Layers"])
    if engine.name == "portside":  # docker 25's dual layout; dockerd 20.10 predates it
        assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(files["index.json"])
        (entry,) = index["manifests"]
        assert entry["annotations"]["io.containerd.image.name"] == f"docker.io/{tag}"
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == "v1"
        assert f"blobs/sha256/{entry['digest'].split(':')[1]}" in files
    engine.docker("rmi", tag)
    out = engine.docker("load", "-i", str(archive)).stdout
    assert f"Loaded image: {tag}" in out
    assert engine.image_id(tag) == busybox_id


def test_save_several_names_and_load_compressed(
    engine: Engine, busybox: str, busybox_id: str, tmp_path: Path
) -> None:
    first = _tagged(engine, busybox)
    second = first.replace(":v1", ":v2")
    engine.docker("tag", first, second)
    archive = tmp_path / "two.tar"
    engine.docker("save", "-o", str(archive), first, second)
    (entry,) = json.loads(_members(archive)["manifest.json"])
    assert sorted(entry["RepoTags"]) == sorted([first, second])
    compressed = tmp_path / "two.tar.gz"
    compressed.write_bytes(gzip.compress(archive.read_bytes(), compresslevel=1))
    engine.docker("rmi", first, second)
    out = engine.docker("load", "-i", str(compressed)).stdout
    assert f"Loaded image: {first}" in out and f"Loaded image: {second}" in out
    assert engine.image_id(first) == engine.image_id(second) == busybox_id


def _lone_image(engine: Engine, tmp_path: Path) -> tuple[str, str]:
    """A one-layer image of its own (docker import), which no other image builds on, so it
    can be removed whatever other tests did with the shared engines; (tag, id)."""
    rootfs = tmp_path / "lone-rootfs.tar"
    marker = secrets.token_hex(8).encode()
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("marker")
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    tag = f"saved/lone-{secrets.token_hex(4)}:v1"
    engine.docker("import", str(rootfs), tag)
    return tag, engine.image_id(tag)


def test_load_refuses_a_tampered_archive_and_keeps_nothing(engine: Engine, tmp_path: Path) -> None:
    tag, image_id = _lone_image(engine, tmp_path)
    archive = tmp_path / "bb.tar"
    engine.docker("save", "-o", str(archive), tag)
    files = _members(archive)
    (entry,) = json.loads(files["manifest.json"])
    config = json.loads(files[entry["Config"]])
    config["config"]["Env"] = ["EVIL=1"]  # the config no longer matches the image id
    forged = json.dumps(config).encode()
    entry["RepoTags"] = [tag.replace(":v1", ":forged")]
    bad = tmp_path / "bad.tar"
    _rewrite(archive, bad, {entry["Config"]: forged, "manifest.json": json.dumps([entry]).encode()})
    # a layer that does not hash to its DiffID
    layer = files[entry["Layers"][0]]
    bad_layer = tmp_path / "bad-layer.tar"
    tampered = bytearray(layer)
    tampered[len(tampered) // 2] ^= 0xFF
    _rewrite(archive, bad_layer, {entry["Layers"][0]: bytes(tampered)})
    # Drop the image (all its names) so its layers are gone: both engines must unpack them.
    engine.docker("rmi", "-f", image_id)
    before = engine.image_ids()
    for path in (bad_layer, tmp_path / "junk.tar"):
        if path.name == "junk.tar":
            path.write_bytes(secrets.token_bytes(4096))
        result = engine.docker("load", "-i", str(path), check=False)
        assert result.returncode != 0, result.stdout
        assert result.stderr.strip()
        assert engine.image_ids() == before
        assert tag not in engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    # A forged config is loaded as what it is: a different image, never under the old id.
    engine.docker("load", "-i", str(bad), check=False)
    forged_id = "sha256:" + hashlib.sha256(forged).hexdigest()
    assert engine.image_ids() <= before | {forged_id}


# -- docker-py and aiodocker ------------------------------------------------------------------


def test_save_and_load_with_docker_py(engine: Engine, busybox: str, busybox_id: str) -> None:
    tag = _tagged(engine, busybox)
    client = docker.DockerClient(base_url=engine.host, version="auto", timeout=300)
    try:
        data = b"".join(client.api.get_image(tag))
        client.images.remove(tag)
        loaded = client.images.load(data)
        assert [image.id for image in loaded] == [busybox_id]
        assert tag in loaded[0].tags
    finally:
        client.close()


async def test_save_and_load_with_aiodocker(engine: Engine, busybox: str, busybox_id: str) -> None:
    tag = _tagged(engine, busybox)
    async with aiodocker.Docker(url=engine.host) as client:
        async with client.images.export_image(tag) as stream:
            data = await stream.read()
        await client.images.delete(tag)
        result = await client.images.import_image(data)
        lines = [r.get("stream", "") for r in result]
        assert f"Loaded image: {tag}\n" in lines
        assert (await client.images.inspect(tag))["Id"] == busybox_id


# -- across engines and tools -----------------------------------------------------------------


def test_archives_cross_between_dockerd_and_portside(
    portside_engine: Engine,
    dockerd_engine: Engine,
    busybox: str,
    busybox_id: str,
    tmp_path: Path,
) -> None:
    tag = _tagged(dockerd_engine, busybox)
    from_dockerd = tmp_path / "from-dockerd.tar"
    dockerd_engine.docker("save", "-o", str(from_dockerd), tag)
    dockerd_engine.docker("rmi", tag)
    out = portside_engine.docker("load", "-i", str(from_dockerd)).stdout
    assert f"Loaded image: {tag}" in out
    assert portside_engine.image_id(tag) == busybox_id
    portside_engine.docker("run", "--rm", "--network", "none", tag, "true")
    back = tmp_path / "from-portside.tar"
    portside_engine.docker("save", "-o", str(back), tag)
    out = dockerd_engine.docker("load", "-i", str(back)).stdout
    assert f"Loaded image: {tag}" in out
    assert dockerd_engine.image_id(tag) == busybox_id
    dockerd_engine.docker("run", "--rm", "--network", "none", tag, "true")


def test_oci_archives_round_trip_through_skopeo(
    portside_engine: Engine,
    registry: RegistryFixture,
    busybox: str,
    busybox_id: str,
    tmp_path: Path,
) -> None:
    name = f"skopeo/bb-{secrets.token_hex(4)}"
    from_skopeo = tmp_path / "skopeo.tar"
    subprocess.run(
        [
            "skopeo",
            "copy",
            *registry.skopeo_flags("src"),
            f"docker://{busybox}",
            f"oci-archive:{from_skopeo}:{name}:1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert "manifest.json" not in _members(from_skopeo)  # an OCI-only archive
    out = portside_engine.docker("load", "-i", str(from_skopeo)).stdout
    assert f"Loaded image: {name}:1" in out
    assert portside_engine.image_id(f"{name}:1") == busybox_id
    # portside's archive is a valid OCI layout for skopeo, which re-writes it as OCI-only
    saved = tmp_path / "saved.tar"
    portside_engine.docker("save", "-o", str(saved), f"{name}:1")
    again = tmp_path / "again.tar"
    subprocess.run(
        ["skopeo", "copy", f"oci-archive:{saved}", f"oci-archive:{again}:{name}:2"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = portside_engine.docker("load", "-i", str(again)).stdout
    assert f"Loaded image: {name}:2" in out
    assert portside_engine.image_id(f"{name}:2") == busybox_id


def test_save_errors_are_plain(engine: Engine, tmp_path: Path) -> None:
    result = engine.docker("save", "-o", str(tmp_path / "x.tar"), "no/such-image:1", check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("Error response from daemon: ")
    if engine.name == "portside":
        assert "No such image: no/such-image:1" in result.stderr
    assert not (tmp_path / "x.tar").exists() or (tmp_path / "x.tar").stat().st_size == 0


def test_save_an_image_whose_layer_blob_came_with_another_image(
    portside_engine: Engine,
    pushed_images: dict[str, str],
    test_images: dict[str, BuiltImage],
    tmp_path: Path,
) -> None:
    """test/layered (zstd layer 3) then test/layered-docker (the same layer, gzip): the
    second pull reuses the snapshot and never fetches its own blob, so the archive carries
    the blob the engine has, under a rebuilt manifest."""
    portside_engine.docker("pull", "-q", pushed_images["test/layered:1"])
    ref = pushed_images["test/layered-docker:1"]
    portside_engine.docker("pull", "-q", ref)
    archive = tmp_path / "layered.tar"
    portside_engine.docker("save", "-o", str(archive), ref)
    files = _members(archive)
    (entry,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(files[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    expected = test_images["test/layered-docker:1"]
    assert entry["digest"] != expected.descriptor.digest  # rebuilt
    assert manifest["layers"][2]["mediaType"].endswith("+zstd")
    portside_engine.docker("rmi", ref)
    portside_engine.docker("load", "-i", str(archive))
    assert portside_engine.image_id(ref) == expected.config_digest


# -- portside's own verbs ---------------------------------------------------------------------


def portside_verb(
    host: str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``portside --host HOST VERB ...`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tui.main", "--host", host, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def test_portside_save_and_load_verbs(
    portside_engine: Engine, busybox: str, busybox_id: str, tmp_path: Path
) -> None:
    tag = _tagged(portside_engine, busybox)
    host = portside_engine.host
    archive = tmp_path / "verbs.tar"
    saved = portside_verb(host, "save", "-o", str(archive), tag)
    assert saved.returncode == 0, saved.stderr
    assert json.loads(_members(archive)["manifest.json"])[0]["RepoTags"] == [tag]
    portside_engine.docker("rmi", tag)
    loaded = portside_verb(host, "load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.decode() == f"Loaded image: {tag}\n"
    assert portside_engine.image_id(tag) == busybox_id
    portside_engine.docker("rmi", tag)
    piped = portside_verb(host, "load", stdin=archive.read_bytes())
    assert piped.stdout.decode() == f"Loaded image: {tag}\n"
    missing = tmp_path / "missing.tar"
    failed = portside_verb(host, "save", "-o", str(missing), "no/such:1")
    assert failed.returncode == 1
    assert failed.stderr.decode().strip() == "Error response from daemon: No such image: no/such:1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verbs.tar"]  # no partial file
    junk = portside_verb(host, "load", stdin=b"not a tarball" * 100)
    assert junk.returncode == 1
    assert len(junk.stderr.decode().strip().splitlines()) == 1


def test_dockerd_archive_of_images_sharing_a_layer_loads_into_portside(
    portside_engine: Engine,
    dockerd_engine: Engine,
    pushed_images: dict[str, str],
    test_images: dict[str, BuiltImage],
    tmp_path: Path,
) -> None:
    """dockerd 20.10 stores a layer shared by two images once and links the second copy."""
    names = [pushed_images["test/busybox:1"], pushed_images["test/docker-mt:1"]]
    for name in names:
        dockerd_engine.docker("pull", "-q", name)
    archive = tmp_path / "two.tar"
    dockerd_engine.docker("save", "-o", str(archive), *names)
    with tarfile.open(archive) as tar:
        links = [m.name for m in tar.getmembers() if m.issym()]
    portside_engine.docker("rmi", "-f", *names, check=False)
    out = portside_engine.docker("load", "-i", str(archive)).stdout
    for name, key in zip(names, ("test/busybox:1", "test/docker-mt:1"), strict=True):
        assert f"Loaded image: {name}" in out
        assert portside_engine.image_id(name) == test_images[key].config_digest
    hello = portside_engine.docker("run", "--rm", "--network", "none", names[1])
    assert hello.stdout == "docker media types\n"
    assert links  # the shared layer came as a symlink (what this test is about)


def test_save_by_id_loads_untagged(
    engine: Engine, busybox: str, busybox_id: str, tmp_path: Path
) -> None:
    engine.docker("pull", "-q", busybox)
    archive = tmp_path / "by-id.tar"
    engine.docker("save", "-o", str(archive), busybox_id[7:19])
    (entry,) = json.loads(_members(archive)["manifest.json"])
    assert not entry["RepoTags"]
    out = engine.docker("load", "-i", str(archive)).stdout
    assert out.strip() == f"Loaded image ID: {busybox_id}"
