"""The test infrastructure itself: registries in three auth modes, images, dockerd, trees.

These tests prove the fixtures do what other tests rely on: pushed images arrive byte for
byte, auth is really enforced, the token server follows the distribution token spec, the
expected trees of the test images match what dockerd unpacks, and the tree helpers agree
between a directory and a tar of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import ssl
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from tests.fixtures import layers as L
from tests.fixtures.images import BuiltImage, host_arch
from tests.fixtures.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.fixtures.registry import RegistryFixture
from tests.fixtures.trees import (
    CHAR,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    diff_trees,
    tree_of_dir,
    tree_of_tar,
    without_docker_additions,
    without_xattrs,
)

ACCEPT = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _basic(user: str | None, password: str | None) -> dict[str, str]:
    raw = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _ssl(reg: RegistryFixture) -> ssl.SSLContext | bool:
    ctx = reg.ssl_context()
    return ctx if ctx is not None else False


async def _get(
    reg: RegistryFixture,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    ssl_ctx: ssl.SSLContext | bool | None = None,
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{reg.url}{path}",
            headers={"Accept": ACCEPT, **(headers or {})},
            ssl=_ssl(reg) if ssl_ctx is None else ssl_ctx,
        ) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def _token(
    reg: RegistryFixture, scope: str, auth: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{reg.token_server_url}/token",
            params={"service": reg.token_service or "", "scope": scope},
            headers=auth,
            ssl=_ssl(reg),
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = {}
    for part in rest.split(","):
        key, _, value = part.strip().partition("=")
        params[key] = value.strip('"')
    return scheme, params


# -- images ---------------------------------------------------------------------------


def test_layered_expected_tree_has_the_corner_cases(test_images: dict[str, BuiltImage]) -> None:
    tree = test_images["test/layered:1"].expected
    assert tree is not None
    # whiteouts of a file and of a directory with its children
    assert "data/remove-me.txt" not in tree
    assert not any(p.startswith("data/remove-dir") for p in tree)
    # opaque dir: lower children hidden, new ones present
    assert "opq/old1" not in tree and "opq/sub/old2" not in tree
    assert tree["opq/new1"].type == FILE and tree["opq/sub/new2"].type == FILE
    assert tree["opq/sub"].mode == 0o750
    # type changes
    assert tree["typechange/file-to-dir"].type == DIR
    assert tree["typechange/dir-to-symlink"] == tree["typechange/dir-to-symlink"].__class__(
        SYMLINK, 0o777, target="../data"
    )
    assert not any(p.startswith("typechange/dir-to-symlink/") for p in tree)
    assert tree["typechange/symlink-to-file"].type == FILE
    assert tree["typechange/dir-to-file"].type == FILE
    # modes, owners, special files
    assert tree["opt/bin/suid-tool"].mode == 0o4755
    assert tree["opt/bin/sgid-tool"].mode == 0o2755 and tree["opt/bin/sgid-tool"].gid == 50
    assert tree["tmp"].mode == 0o1777
    assert (tree["data/private"].mode, tree["data/private"].uid) == (0o750, 1000)
    assert tree["data/null"].type == CHAR and tree["data/null"].rdev == (1, 3)
    assert tree["data/fifo"].type == FIFO
    assert tree["data/xattr.txt"].xattrs == (("user.foo", b"bar"),)
    assert tree["data/multi-xattr.txt"].xattrs == (("user.a", b"one"), ("user.b", b"2"))
    assert tree["data/abs-link"].target == "/data/keep.txt"
    assert tree["data/rel-link"].target == "../data/keep.txt"
    assert tree["data/keep.txt"].sha256 == hashlib.sha256(b"keep v3\n").hexdigest()
    assert "etc/motd" not in tree
    # hardlinks: one name of a pair whited out; same-layer pair; across layers
    assert tree["data/hard-a.txt"].link_group is None and "data/hard-b.txt" not in tree
    assert tree["data/zstd-a"].link_group == tree["data/zstd-b"].link_group == "data/zstd-a"
    assert tree["data/lower-link.txt"].link_group == "data/lower-link.txt"
    assert tree["data/lower-target.txt"].link_group == "data/lower-link.txt"
    # the docker-compatible variant is the same image minus layer 5
    docker_tree = test_images["test/layered-docker:1"].expected
    assert docker_tree is not None and "data/lower-link.txt" not in docker_tree
    assert (
        test_images["test/layered-docker:1"].config["rootfs"]["diff_ids"]
        == (  # type: ignore[index]
            test_images["test/layered:1"].config["rootfs"]["diff_ids"][:4]  # type: ignore[index]
        )
    )


def test_layered_layers_use_every_media_type(test_images: dict[str, BuiltImage]) -> None:
    image = test_images["test/layered:1"]
    types = [layer.descriptor.media_type for layer in image.layers]
    assert types == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ]
    for layer in image.layers:
        blob = (image.layout / "blobs" / "sha256" / layer.descriptor.digest[7:]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == layer.descriptor.digest[7:]
    # the layer tars carry whiteouts and the opaque marker under their spec names
    second = L.layer_tar(image.layer_items[1])
    with tarfile.open(fileobj=io.BytesIO(second)) as tar:
        names = tar.getnames()
    assert "data/.wh.remove-me.txt" in names and "opq/.wh..wh..opq" in names


def test_busybox_image_is_for_this_host(test_images: dict[str, BuiltImage]) -> None:
    image = test_images["test/busybox:1"]
    assert image.config is not None and image.config["architecture"] == host_arch()
    assert image.config["config"]["Cmd"] == ["sh"]
    tree = image.expected
    assert tree is not None
    assert (
        tree["bin/busybox"].sha256 == hashlib.sha256(Path("/bin/busybox").read_bytes()).hexdigest()
    )
    for applet in ("sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "env", "mkdir"):
        assert tree[f"bin/{applet}"].target == "busybox"
    assert tree["tmp"].mode == 0o1777
    assert len(test_images["test/busybox2:1"].layers) == 2
    assert test_images["test/busybox2:1"].expected == tree


# -- tree helpers -----------------------------------------------------------------------


def test_tree_of_dir_and_tree_of_tar_agree(
    tmp_path: Path, test_images: dict[str, BuiltImage]
) -> None:
    """Extract the layered base layer with GNU tar and snapshot both sides."""
    tar_bytes = L.layer_tar(test_images["test/layered:1"].layer_items[0])
    dest = tmp_path / "root"
    dest.mkdir()
    subprocess.run(
        [
            "tar",
            "--xattrs",
            "--xattrs-include=user.*",
            "--same-owner",
            "-xpf",
            "-",
            "-C",
            str(dest),
        ],
        input=tar_bytes,
        check=True,
        capture_output=True,
    )
    from_dir = tree_of_dir(dest)
    from_tar = tree_of_tar(io.BytesIO(tar_bytes))
    assert diff_trees(from_tar, from_dir) == []
    assert from_dir["data/hard-b.txt"].link_group == "data/hard-a.txt"
    assert from_dir["data/null"].rdev == (1, 3)
    assert from_dir["data/xattr.txt"].xattrs == (("user.foo", b"bar"),)
    # and the reference flattener agrees with both for a single layer
    assert diff_trees(L.flatten([test_images["test/layered:1"].layer_items[0]]), from_dir) == []


def test_diff_trees_reports_differences(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    before = tree_of_dir(tmp_path)
    os.chmod(tmp_path / "a", 0o600)
    (tmp_path / "b").unlink()
    os.link(tmp_path / "a", tmp_path / "c")
    lines = diff_trees(before, tree_of_dir(tmp_path))
    assert any(line.startswith("differs  a:") for line in lines)
    assert any(line.startswith("missing  b:") for line in lines)
    assert any(line.startswith("extra    c:") and "linked with a" in line for line in lines)


# -- registries -------------------------------------------------------------------------


async def test_plain_registry_serves_pushed_images_byte_for_byte(
    registry: RegistryFixture, pushed_images: dict[str, str], test_images: dict[str, BuiltImage]
) -> None:
    for name, ref in pushed_images.items():
        assert ref == f"{registry.host}/{name}"
        repo, tag = name.rsplit(":", 1)
        status, headers, body = await _get(registry, f"/v2/{repo}/manifests/{tag}")
        assert status == 200, (name, body)
        image = test_images[name]
        assert headers["Docker-Content-Digest"] == image.digest
        assert "sha256:" + hashlib.sha256(body).hexdigest() == image.digest
        assert headers["Content-Type"] == image.media_type
    assert "GET /v2/test/busybox/manifests/1" in registry.log_text()


async def test_multiplatform_index_arrives_intact(
    registry: RegistryFixture, pushed_images: dict[str, str], test_images: dict[str, BuiltImage]
) -> None:
    image = test_images["test/multi:1"]
    status, _, body = await _get(registry, "/v2/test/multi/manifests/1")
    assert status == 200
    index = json.loads(body)
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")]
    attestation = index["manifests"][2]
    assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert attestation["annotations"]["vnd.docker.reference.digest"] == (
        image.platforms["linux/amd64"].digest
    )
    for desc in index["manifests"]:
        status, headers, child = await _get(registry, f"/v2/test/multi/manifests/{desc['digest']}")
        assert status == 200 and headers["Docker-Content-Digest"] == desc["digest"]
        for layer in json.loads(child)["layers"]:
            status, _, blob = await _get(registry, f"/v2/test/multi/blobs/{layer['digest']}")
            assert status == 200 and "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]


async def test_plain_registry_allows_delete(
    registry: RegistryFixture, test_images: dict[str, BuiltImage]
) -> None:
    ref = registry.push(test_images["test/busybox:1"].skopeo_source, "test/deleteme:1")
    assert ref.endswith("/test/deleteme:1")
    digest = test_images["test/busybox:1"].digest
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{registry.url}/v2/test/deleteme/manifests/{digest}") as resp,
    ):
        assert resp.status == 202
    status, _, _ = await _get(registry, f"/v2/test/deleteme/manifests/{digest}")
    assert status == 404


async def test_tls_registry_enforces_certificate_and_password(
    registry_tls: RegistryFixture, pushed_images_tls: dict[str, str]
) -> None:
    reg = registry_tls
    assert reg.scheme == "https" and reg.ca_file is not None and reg.certs_dir is not None
    assert (reg.certs_dir / reg.host / "ca.crt").read_bytes() == reg.ca_file.read_bytes()
    # an unknown CA is refused
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(reg, "/v2/", ssl_ctx=ssl.create_default_context())
    status, headers, _ = await _get(reg, "/v2/test/busybox/manifests/1")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    wrong = _basic(reg.username or "", "wrong-password")
    status, _, _ = await _get(reg, "/v2/test/busybox/manifests/1", headers=wrong)
    assert status == 401
    good = _basic(reg.username or "", reg.password or "")
    status, _, _ = await _get(reg, "/v2/test/busybox/manifests/1", headers=good)
    assert status == 200
    # "localhost" is in the certificate too
    ctx = reg.ssl_context()
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://localhost:{reg.host.rsplit(':', 1)[1]}/v2/", ssl=ctx, headers=good
        ) as resp,
    ):
        assert resp.status == 200
    assert set(pushed_images_tls) >= {"test/busybox:1", "test/layered:1", "test/multi:1"}


async def test_token_registry_follows_the_token_spec(
    registry_token: RegistryFixture, pushed_images_token: dict[str, str]
) -> None:
    reg = registry_token
    assert reg.token_server_url and reg.token_service
    status, headers, _ = await _get(reg, "/v2/")
    assert status == 401
    scheme, params = _parse_challenge(headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params["realm"] == f"{reg.token_server_url}/token"
    assert params["service"] == reg.token_service

    # anonymous: pull on public/ only
    before = len(reg.token_requests)
    status, body = await _token(reg, "repository:public/busybox:pull,push")
    assert status == 200 and body["token"] == body["access_token"] and body["expires_in"] == 300
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": "public/busybox", "actions": ["pull"]}
    ]
    assert claims["aud"] == reg.token_service
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1
    bearer = {"Authorization": f"Bearer {body['token']}"}
    status, _, _ = await _get(reg, "/v2/public/busybox/manifests/1", headers=bearer)
    assert status == 200
    path, query, user = reg.token_requests[before]
    assert (path, query["scope"], user) == ("/token", ["repository:public/busybox:pull,push"], None)

    status, body = await _token(reg, "repository:test/busybox:pull")
    assert status == 200
    assert (
        jwt.decode(body["token"], options={"verify_signature": False})["access"][0]["actions"] == []
    )
    status, headers, _ = await _get(
        reg, "/v2/test/busybox/manifests/1", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert status == 401 and 'error="insufficient_scope"' in headers["WWW-Authenticate"]

    # a wrong password is refused by the token server
    rejected = len(reg.token_rejections)
    status, _ = await _token(reg, "repository:test/busybox:pull", _basic("alice", "nope"))
    assert status == 401 and len(reg.token_rejections) == rejected + 1

    # alice may pull private repositories
    status, body = await _token(
        reg,
        "repository:test/busybox:pull",
        _basic(reg.username or "", reg.password or ""),
    )
    assert status == 200 and reg.token_requests[-1].user == "alice"
    status, _, _ = await _get(
        reg, "/v2/test/busybox/manifests/1", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert status == 200
    # a token signed by a key the registry does not trust is refused
    forged = jwt.encode(
        jwt.decode(body["token"], options={"verify_signature": False}),
        _throwaway_ec_key(),
        algorithm="ES256",
        headers={"x5c": jwt.get_unverified_header(body["token"])["x5c"]},
    )
    status, _, _ = await _get(
        reg, "/v2/test/busybox/manifests/1", headers={"Authorization": f"Bearer {forged}"}
    )
    assert status == 401


def _throwaway_ec_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


# -- dockerd ----------------------------------------------------------------------------


def test_dockerd_pulls_from_all_three_registries(
    dockerd: Any,
    registry: RegistryFixture,
    registry_tls: RegistryFixture,
    registry_token: RegistryFixture,
    pushed_images: dict[str, str],
    pushed_images_tls: dict[str, str],
    pushed_images_token: dict[str, str],
    test_images: dict[str, BuiltImage],
) -> None:
    assert dockerd.host.startswith("unix://") and dockerd.env["DOCKER_HOST"] == dockerd.host
    info = json.loads(dockerd.docker("info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == dockerd.storage_driver
    # anonymous pull from the token registry works for public/ only
    dockerd.trust(registry_token)
    dockerd.docker("logout", registry_token.host)  # the daemon is shared by the session
    assert (Path("/etc/docker/certs.d") / registry_token.host / "ca.crt").exists()
    dockerd.docker("pull", pushed_images_token["public/busybox:1"])
    denied = dockerd.docker("pull", pushed_images_token["test/busybox:1"], check=False)
    assert denied.returncode != 0
    for reg in (registry, registry_tls, registry_token):
        dockerd.login(reg)
    auths = json.loads((dockerd.config_dir / "config.json").read_text())["auths"]
    assert {registry_tls.host, registry_token.host} <= set(auths)
    busybox = test_images["test/busybox:1"]
    for refs in (pushed_images, pushed_images_tls, pushed_images_token):
        ref = refs["test/busybox:1"]
        dockerd.docker("pull", ref)
        digests = dockerd.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
        assert f"@{busybox.digest}" in digests.stdout
    pulls = [r for r in registry_token.token_requests if r.user == "alice"]
    assert any("repository:test/busybox:pull" in r.scopes for r in pulls)
    out = dockerd.docker(
        "run", "--rm", pushed_images["test/busybox:1"], "sh", "-c", "echo hi; id -u"
    )
    assert out.stdout.split() == ["hi", "0"]


def test_dockerd_picks_the_host_platform_from_the_index(
    dockerd: Any, pushed_images: dict[str, str]
) -> None:
    out = dockerd.docker("run", "--rm", pushed_images["test/multi:1"])
    assert out.stdout == f"linux/{host_arch()}\n"
    out = dockerd.docker("run", "--rm", pushed_images["test/docker-mt:1"])
    assert out.stdout == "docker media types\n"


def test_docker_export_matches_the_expected_layered_tree(
    dockerd: Any, pushed_images: dict[str, str], test_images: dict[str, BuiltImage]
) -> None:
    image = test_images["test/layered-docker:1"]
    ref = pushed_images["test/layered-docker:1"]
    dockerd.docker("pull", ref)
    cid = dockerd.docker("create", ref).stdout.strip()
    try:
        exported = subprocess.run(
            [dockerd.cli, "export", cid],
            env=dockerd.env,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    finally:
        dockerd.docker("rm", "-f", cid)
    got = without_docker_additions(tree_of_tar(io.BytesIO(exported)))
    assert image.expected is not None
    want = without_xattrs(without_docker_additions(image.expected))
    assert diff_trees(want, got) == []
    assert ".dockerenv" in tree_of_tar(io.BytesIO(exported))  # the ignore list is needed
    # docker export drops user.* xattrs; the unpacked layer on disk has them
    found = [
        os.getxattr(p, "user.foo")
        for p in (dockerd.data_root / dockerd.storage_driver).glob("*/diff/data/xattr.txt")
    ]
    if dockerd.storage_driver == "overlay2":
        assert found == [b"bar"]
