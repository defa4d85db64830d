"""Pulling from a real registry (Debian's docker-registry) into a temporary engine root."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.errors import NotFound, PortsideError
from engine.progress import ProgressEvent
from tests.fixtures.engine import engine_config, portside


def _store_is_consistent(root: Path) -> None:
    """Every committed blob verifies; every image's blobs and snapshots exist."""
    from engine.store.content import ContentStore
    from engine.store.metadata import Metadata
    from engine.store.snapshots import open_snapshotter

    content = ContentStore(root / "content")
    for digest in content.iter_blobs():
        assert content.verify(digest), f"corrupt blob {digest}"
    md = Metadata(root / "metadata.db")
    snaps = open_snapshotter(root)
    try:
        for image in md.list_images():
            for blob in md.image_refs(image.id, "blob"):
                assert content.has(Digest.parse(blob)), f"{image.id} misses blob {blob}"
            for chain in md.image_refs(image.id, "chain"):
                assert snaps.exists(Digest.parse(chain)), f"{image.id} misses snapshot {chain}"
    finally:
        md.close()


async def test_pull_busybox_service_level(engine: Engine, pushed_images: dict[str, str]):
    ref = pushed_images["test/busybox:1"]
    events: list[ProgressEvent] = []
    image_id = await engine.images.pull(ref, progress=events.append)
    statuses = [e.status for e in events]
    assert statuses[0].startswith("Pulling from test/busybox")
    assert "Pull complete" in statuses and "Download complete" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {ref}"
    assert any(s.startswith("Digest: sha256:") for s in statuses)

    listed = await engine.images.list_images()
    assert [i["Id"] for i in listed] == [image_id]
    assert listed[0]["RepoTags"] == [ref]
    assert listed[0]["RepoDigests"][0].startswith(ref.rsplit(":", 1)[0] + "@sha256:")
    assert listed[0]["Size"] > 1_000_000  # busybox-static is ~2 MB

    info = await engine.images.inspect(ref)
    assert info["Id"] == image_id and info["Os"] == "linux"
    assert info["RootFS"]["Type"] == "layers" and info["RootFS"]["Layers"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert (await engine.images.inspect(image_id[7:19]))["Id"] == image_id

    diff_ids = [Digest.parse(d) for d in info["RootFS"]["Layers"]]
    top = chain_ids(diff_ids)[-1]
    lowers = engine.snapshots.lowers(top)
    assert any((lower / "bin" / "busybox").is_file() for lower in lowers)

    again: list[ProgressEvent] = []
    assert await engine.images.pull(ref, progress=again.append) == image_id
    assert again[-1].status == f"Status: Image is up to date for {ref}"
    _store_is_consistent(engine.config.root)


async def test_history_tag_and_remove_with_gc(engine: Engine, pushed_images: dict[str, str]):
    ref = pushed_images["test/layered:1"]
    image_id = await engine.images.pull(ref)
    history = await engine.images.history(ref)
    assert history[0]["Id"] == image_id and history[0]["Tags"] == [ref]
    assert all(h["Id"] == "<missing>" for h in history[1:])
    assert sum(h["Size"] for h in history) == (await engine.images.inspect(ref))["Size"]

    await engine.images.tag(ref, "example.test/copy", "v2")
    assert sorted((await engine.images.inspect(image_id))["RepoTags"]) == sorted(
        [ref, "example.test/copy:v2"]
    )
    # Removing one of two tags only untags.
    assert await engine.images.remove("example.test/copy:v2") == [
        {"Untagged": "example.test/copy:v2"}
    ]
    blobs_before = list(engine.content.iter_blobs())
    assert blobs_before and engine.snapshots.list()
    removed = await engine.images.remove(ref)
    assert removed[0] == {"Untagged": ref}
    assert {"Deleted": image_id} in removed
    with pytest.raises(NotFound, match="No such image"):
        await engine.images.inspect(ref)
    # Garbage collection took every blob and snapshot nothing references any more.
    assert list(engine.content.iter_blobs()) == []
    assert engine.snapshots.list() == []


async def test_platform_selection_skips_attestations(engine: Engine, pushed_images):
    ref = pushed_images["test/multi:1"]
    image_id = await engine.images.pull(ref)
    info = await engine.images.inspect(image_id)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    arm_id = await engine.images.pull(ref, platform="linux/arm64")
    assert arm_id != image_id
    assert (await engine.images.inspect(arm_id))["Architecture"] == "arm64"


async def test_missing_image_and_registry_errors(engine: Engine, registry):
    with pytest.raises(PortsideError) as info:
        await engine.images.pull(f"{registry.host}/no/such:image")
    assert "not found" in str(info.value).lower()
    with pytest.raises(PortsideError) as info:
        await engine.images.pull("127.0.0.1:9/nothing:here")
    assert "127.0.0.1:9" in str(info.value)
    assert await engine.images.list_images() == []


async def test_concurrent_pulls_share_work(engine: Engine, pushed_images):
    ref = pushed_images["test/layered:1"]
    ids = await asyncio.gather(*(engine.images.pull(ref) for _ in range(3)))
    assert len(set(ids)) == 1
    assert len(await engine.images.list_images()) == 1
    _store_is_consistent(engine.config.root)


def test_cli_pull_images_inspect_rmi(tmp_path, pushed_images):
    ref = pushed_images["test/busybox:1"]
    root = str(tmp_path / "root")
    env = {"DOCKER_CONFIG": str(tmp_path / "dc"), "PORTSIDE_CONFIG": str(tmp_path / "none")}
    pulled = portside("pull", "--root", root, ref, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pull complete" in pulled.stdout and pulled.stdout.strip().endswith(ref)
    listed = portside("images", "--root", root, env=env)
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()[:2]
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert line.split()[:2] == ref.rsplit(":", 1)
    inspected = portside("inspect", "--root", root, ref, env=env)
    data = json.loads(inspected.stdout)
    assert data[0]["RepoTags"] == [ref]
    fmt = portside("inspect", "--root", root, "-f", "{{.Config.Cmd}}", ref, env=env)
    assert fmt.stdout.strip() == '["sh"]'
    quiet = portside("pull", "--root", root, "-q", ref, env=env)
    assert quiet.returncode == 0 and quiet.stdout.strip() == ref
    bad = portside("pull", "--root", root, "Bad Name", env=env)
    assert bad.returncode != 0 and "invalid reference" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = portside("rmi", "--root", root, "nope:1", env=env)
    assert missing.returncode == 1 and "No such image: nope:1" in missing.stderr
    rmi = portside("rmi", "--root", root, ref, env=env)
    assert rmi.returncode == 0 and f"Untagged: {ref}" in rmi.stdout
    assert portside("images", "-q", "--root", root, env=env).stdout.strip() == ""


def test_sigkilled_pull_leaves_store_consistent(tmp_path, big_image):
    """SIGKILL a pull mid-download: no partial image; the next pull completes it."""
    root = tmp_path / "root"
    # The killed engine cannot remove its private socket dir: keep it inside tmp_path.
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir(mode=0o700)
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "dc"), "XDG_RUNTIME_DIR": str(runtime_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.main", "pull", "--root", str(root), big_image],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Downloading" in line or "Extracting" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _store_is_consistent(root)
    listed = portside("images", "-q", "--root", str(root), env=env)
    # Either the kill came after the image was recorded, or there is no image at all.
    done = portside("pull", "--root", str(root), big_image, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    _store_is_consistent(root)
    final = portside("images", "-q", "--root", str(root), env=env)
    assert len(final.stdout.split()) == 1
    assert len(listed.stdout.split()) <= 1


def test_two_processes_pull_same_image(tmp_path, pushed_images):
    ref = pushed_images["test/layered:1"]
    root = str(tmp_path / "root")
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "dc")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tui.main", "pull", "-q", "--root", root, ref],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _store_is_consistent(Path(root))
    assert len(portside("images", "-q", "--root", root, env=env).stdout.split()) == 1


async def test_tls_and_basic_auth(tmp_path, registry_tls, pushed_images_tls):
    """htpasswd over TLS: CA from portside's certs.d, credentials from Docker's config."""
    config = engine_config(tmp_path / "root")
    config.insecure_registries = []
    certs = config.root / "certs.d" / registry_tls.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(registry_tls.ca_file.read_bytes())
    import base64

    auth = base64.b64encode(f"{registry_tls.username}:{registry_tls.password}".encode()).decode()
    (config.docker_config / "config.json").write_text(
        json.dumps({"auths": {registry_tls.host: {"auth": auth}}})
    )
    eng = await Engine.open(config)
    try:
        image_id = await eng.images.pull(pushed_images_tls["test/busybox:1"])
        assert image_id.startswith("sha256:")
    finally:
        await eng.close()


async def test_tls_without_trust_fails_clearly(tmp_path, registry_tls, pushed_images_tls):
    config = engine_config(tmp_path / "root")
    config.insecure_registries = []
    eng = await Engine.open(config)
    try:
        with pytest.raises(PortsideError) as info:
            await eng.images.pull(pushed_images_tls["test/busybox:1"])
        assert "certificate" in str(info.value).lower()
        assert await eng.images.list_images() == []
    finally:
        await eng.close()


async def test_token_auth_anonymous_and_user(tmp_path, registry_token, pushed_images_token):
    config = engine_config(tmp_path / "root")
    certs = config.root / "certs.d" / registry_token.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(registry_token.ca_file.read_bytes())
    eng = await Engine.open(config)
    try:
        # Anonymous pulls work for public/*, and need credentials elsewhere.
        await eng.images.pull(pushed_images_token["public/busybox:1"])
        with pytest.raises(PortsideError) as info:
            await eng.images.pull(pushed_images_token["test/busybox:1"])
        assert "auth" in str(info.value).lower() or "login" in str(info.value).lower()
        from engine.registry.credentials import AuthConfig

        auth = AuthConfig(username=registry_token.username, password=registry_token.password)
        await eng.images.pull(pushed_images_token["test/busybox:1"], auth=auth)
        assert len(await eng.images.list_images()) == 1  # same content, one image
    finally:
        await eng.close()


def test_cli_registry_mirror_resolves_docker_hub_names(tmp_path, registry, test_images):
    """``busybox:1`` means docker.io/library/busybox:1, fetched through the mirror."""
    registry.push(test_images["test/busybox:1"].skopeo_source, "library/busybox:mirrored")
    env = {
        "DOCKER_CONFIG": str(tmp_path / "dc"),
        "PORTSIDE_CONFIG": str(tmp_path / "none"),
        "PORTSIDE_ROOT": str(tmp_path / "root"),  # the root comes from the environment
    }
    pulled = portside("pull", "--registry-mirror", registry.url, "busybox:mirrored", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip().endswith("docker.io/library/busybox:mirrored")
    listed = portside("images", "--root", str(tmp_path / "root"), env=env)
    assert "busybox" in listed.stdout.splitlines()[1].split()[0]
    assert (tmp_path / "root" / "metadata.db").is_file()


async def test_names_win_over_id_prefixes(engine: Engine, pushed_images):
    """A tag that looks like hex resolves as the tag, as in docker; ids still resolve."""
    busybox = await engine.images.pull(pushed_images["test/busybox:1"])
    layered = await engine.images.pull(pushed_images["test/layered:1"])
    prefix = layered[7:11]  # a hex word that is also a valid repository name
    await engine.images.tag(busybox, prefix, None)
    assert await engine.images.resolve(prefix) == busybox  # docker.io/library/<prefix>:latest
    assert await engine.images.resolve(layered[7:20]) == layered
    assert await engine.images.resolve(layered) == layered
    with pytest.raises(NotFound):
        await engine.images.resolve("sha256:" + "0" * 64)
