"""RegistryBrowser against the real registries: catalog and tag lists with small pages,
manifest details of indexes and images, deletion, and a registry that forbids its catalog."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.errors import Forbidden, InvalidArgument, NotFound
from engine.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from engine.reference import Reference
from engine.registry import AuthConfig, RegistryClient
from engine.registry.browse import RegistryBrowser
from tests.fixtures.images import BuiltImage
from tests.fixtures.registry import RegistryFixture

BROWSE_REPOS = [f"browse/r{i}" for i in range(5)]
TAGS = ["1.0", "1.1", "2.0", "edge", "latest"]


@pytest.fixture(scope="module")
def plain_repos(
    registry: RegistryFixture, test_images: dict[str, BuiltImage], pushed_images: dict[str, str]
) -> RegistryFixture:
    busybox = test_images["test/busybox:1"].skopeo_source
    for repo in BROWSE_REPOS:
        registry.push(busybox, f"{repo}:1")
    for tag in TAGS:
        registry.push(busybox, f"browse/tags:{tag}")
    return registry


@pytest.fixture
async def browser(tmp_path: Path, registry_tls: RegistryFixture) -> AsyncIterator[RegistryBrowser]:
    docker = tmp_path / "docker-config"
    docker.mkdir()
    assert registry_tls.certs_dir is not None
    config = EngineConfig(
        root=tmp_path / "root",
        docker_config=docker,
        certs_dirs=[registry_tls.certs_dir],
    )
    client = RegistryClient(config)
    try:
        yield RegistryBrowser(client)
    finally:
        await client.close()


def alice(reg: RegistryFixture) -> AuthConfig:
    return AuthConfig(username=reg.username, password=reg.password)


async def test_catalog_pages_follow_link_headers(
    browser: RegistryBrowser, plain_repos: RegistryFixture
) -> None:
    host = plain_repos.host
    first = await browser.catalog_page(host, page_size=2)
    assert len(first.items) == 2 and first.next is not None
    assert "last=" in first.next and "n=2" in first.next
    collected = list(first.items)
    query = first.next
    pages = 1
    while query is not None:
        page = await browser.catalog_page(host, query=query)
        assert len(page.items) <= 2
        collected.extend(page.items)
        query = page.next
        pages += 1
    everything = await browser.catalog(host, page_size=1000)
    assert collected == everything and set(BROWSE_REPOS) <= set(everything)
    assert pages == -(-len(everything) // 2)
    assert await browser.catalog(host, page_size=2) == everything
    assert await browser.catalog(host, page_size=3, limit=4) == everything[:4]
    followed = [
        line
        for line in plain_repos.log_text().splitlines()
        if re.search(r'"GET /v2/_catalog\?last=[^ ]*n=2 HTTP/1.1" 200', line)
    ]
    assert len(followed) >= pages - 1


async def test_tags_with_small_pages(
    browser: RegistryBrowser, plain_repos: RegistryFixture
) -> None:
    repo = f"{plain_repos.host}/browse/tags"
    assert await browser.tags(repo, page_size=2) == TAGS
    assert await browser.tags(repo, page_size=2, limit=3) == TAGS[:3]
    with pytest.raises(NotFound) as info:
        await browser.tags(f"{plain_repos.host}/browse/nothing-here")
    assert "browse/nothing-here" in str(info.value)
    with pytest.raises(InvalidArgument):
        await browser.tags(f"{plain_repos.host}/browse/tags:1.0")


async def test_inspect_index_lists_platforms(
    browser: RegistryBrowser,
    registry: RegistryFixture,
    pushed_images: dict[str, str],
    test_images: dict[str, BuiltImage],
) -> None:
    image = test_images["test/multi:1"]
    details = await browser.inspect(pushed_images["test/multi:1"])
    assert details.media_type == OCI_INDEX and details.digest == image.digest
    platforms = {p.platform: p for p in details.platforms}
    assert set(platforms) == {"linux/amd64", "linux/arm64", "unknown/unknown"}
    assert platforms["unknown/unknown"].attestation
    assert not platforms["linux/arm64"].attestation
    assert platforms["linux/arm64"].digest == image.platforms["linux/arm64"].digest
    assert details.to_json()["Platforms"][0]["Digest"] == details.platforms[0].digest
    arm = await browser.inspect(f"{registry.host}/test/multi@{platforms['linux/arm64'].digest}")
    assert arm.media_type == OCI_MANIFEST and arm.config is not None
    assert arm.config["Platform"] == "linux/arm64"


async def test_inspect_image_layers_and_config(
    browser: RegistryBrowser, pushed_images: dict[str, str], test_images: dict[str, BuiltImage]
) -> None:
    image = test_images["test/layered:1"]
    details = await browser.inspect(pushed_images["test/layered:1"])
    assert details.digest == image.digest and details.config_digest == image.config_digest
    assert [(layer["Digest"], layer["Size"]) for layer in details.layers] == [
        (layer.descriptor.digest, layer.descriptor.size) for layer in image.layers
    ]
    assert details.config is not None
    assert details.config["Labels"] == {"org.portside.test": "layered"}
    assert details.config["WorkingDir"] == "/data"
    sizes = sum(layer.descriptor.size for layer in image.layers)
    config_size = details.config_size or 0
    assert details.total_size == sizes + config_size
    docker = await browser.inspect(pushed_images["test/docker-mt:1"])
    assert docker.media_type == DOCKER_MANIFEST and docker.config is not None
    assert docker.config["Cmd"] == ["cat", "/hello.txt"]


async def test_delete_tag_and_manifest(
    browser: RegistryBrowser, registry: RegistryFixture, test_images: dict[str, BuiltImage]
) -> None:
    host = registry.host
    busybox = test_images["test/busybox:1"]
    layered = test_images["test/layered:1"]
    registry.push(busybox.skopeo_source, "browse/del:a")
    registry.push(busybox.skopeo_source, "browse/del:b")
    registry.push(layered.skopeo_source, "browse/del:c")
    result = await browser.delete(f"{host}/browse/del:a")
    # distribution 2.8 has no tag deletion: the manifest goes, with both of its tags.
    assert not result.tag_only and result.digest == busybox.digest
    assert "every tag" in result.message
    for tag in ("a", "b"):
        with pytest.raises(NotFound):
            await browser.client.get_manifest(Reference.parse(f"{host}/browse/del:{tag}"))
    await browser.client.get_manifest(Reference.parse(f"{host}/browse/del:c"))

    by_digest = await browser.delete(f"{host}/browse/del@{layered.digest}")
    assert by_digest.digest == layered.digest
    with pytest.raises(NotFound):
        await browser.client.get_manifest(Reference.parse(f"{host}/browse/del:c"))
    with pytest.raises(NotFound) as info:
        await browser.delete(f"{host}/browse/del@{layered.digest}")
    assert "not found" in str(info.value)
    with pytest.raises(InvalidArgument):
        await browser.delete(f"{host}/browse/del")


async def test_token_registry_forbids_anonymous_catalog_but_allows_tags(
    tmp_path: Path, registry_token: RegistryFixture, pushed_images_token: dict[str, str]
) -> None:
    docker = tmp_path / "docker-config"
    docker.mkdir()
    assert registry_token.certs_dir is not None
    config = EngineConfig(
        root=tmp_path / "root", docker_config=docker, certs_dirs=[registry_token.certs_dir]
    )
    async with RegistryClient(config) as client:
        browser = RegistryBrowser(client)
        with pytest.raises(Forbidden) as info:
            await browser.catalog(registry_token.host)
        text = str(info.value)
        assert text.startswith(f"registry {registry_token.host} does not allow listing")
        assert f"portside registry tags {registry_token.host}/REPOSITORY" in text
        assert "\n" not in text
        assert await browser.tags(f"{registry_token.host}/public/busybox") == ["1"]
        details = await browser.inspect(f"{registry_token.host}/public/busybox:1")
        assert details.layers

        repos = await browser.catalog(registry_token.host, auth=alice(registry_token), page_size=2)
        assert {"public/busybox", "test/busybox", "test/layered"} <= set(repos)
        assert any(
            "registry:catalog:*" in r.scopes and r.user == "alice"
            for r in registry_token.token_requests
        )


async def test_tls_registry_with_basic_auth(
    browser: RegistryBrowser, registry_tls: RegistryFixture, pushed_images_tls: dict[str, str]
) -> None:
    repos = await browser.catalog(registry_tls.host, auth=alice(registry_tls))
    assert "test/busybox" in repos
    assert await browser.tags(f"{registry_tls.host}/test/busybox", auth=alice(registry_tls)) == [
        "1"
    ]


def test_pagination_links_must_stay_on_the_list() -> None:
    from engine.errors import RegistryError
    from engine.registry.browse import _next_query

    link = '</v2/_catalog?last=b%2Fc&n=2>; rel="next"'
    assert _next_query(link, "/v2/_catalog", "h") == "last=b%2Fc&n=2"
    absolute = '<https://h:5000/v2/x/tags/list?n=2&last=v1>; rel="next"'
    assert _next_query(absolute, "/v2/x/tags/list", "h") == "n=2&last=v1"
    assert _next_query('</v2/_catalog?n=2>; rel="prev"', "/v2/_catalog", "h") is None
    assert _next_query(None, "/v2/_catalog", "h") is None
    with pytest.raises(RegistryError):
        _next_query('</v2/secret/tags/list?n=2>; rel="next"', "/v2/_catalog", "h")
