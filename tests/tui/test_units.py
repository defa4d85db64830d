"""Pure pieces of the dashboard: docker-style wording, API rows, pull folding, failures."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import aiodocker
import pytest

from tests.tui import sample_data
from tui.humanize import ellipsize, human_age, human_duration, human_size, short_id
from tui.model import ContainerRow, EngineInfo, format_ports, image_rows
from tui.pull_progress import PullProgress
from tui.screens.history import created_by
from tui.screens.pull import check_reference
from tui.sync import describe_failure


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (4_261_550, "4.26MB"),
        (999_700, "1MB"),
        (431_998_203, "432MB"),
        (1_500_000_000, "1.5GB"),
        (None, "-"),
    ],
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (300, "5 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (7200, "2 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_small_helpers() -> None:
    assert human_age(0, 100) == "-"
    assert human_age(40, 100) == "About a minute ago"
    assert short_id("sha256:0123456789abcdef0123") == "0123456789ab"
    assert ellipsize("abcdef", 4) == "abc…" and ellipsize("abc", 4) == "abc"


def test_ports_column() -> None:
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert format_ports(ports) == "53/udp, 0.0.0.0:8080->80/tcp"


def test_rows_from_api_entries() -> None:
    row = ContainerRow.from_api(sample_data.CONTAINERS_JSON[0])
    assert (row.name, row.state, row.status) == ("web", "running", "Up 2 hours")
    assert "web" in row.search_text and "8080" in row.search_text
    tagged = image_rows(sample_data.IMAGES_JSON[0])
    assert [r.repo_tag for r in tagged] == [
        "registry.local:5000/shop/web:2.4",
        "registry.local:5000/shop/web:latest",
    ]
    (dangling,) = image_rows(sample_data.IMAGES_JSON[3])
    assert dangling.dangling and dangling.reference == short_id(sample_data.OLD_ID)
    (by_digest,) = image_rows(
        {"Id": "sha256:ab", "RepoTags": [], "RepoDigests": ["reg/app@sha256:cd"], "Size": 1}
    )
    assert (by_digest.repository, by_digest.tag, by_digest.dangling) == ("reg/app", "<none>", False)
    (port_only,) = image_rows({"Id": "sha256:ef", "RepoTags": ["host:5000/app"], "Size": 1})
    assert (port_only.repository, port_only.tag) == ("host:5000/app", "<none>")
    info = EngineInfo.from_version("e", "unix:///s", sample_data.VERSION)
    assert (info.product, info.version, info.api_version) == (
        "Docker Engine",
        "20.10.24+dfsg1",
        "1.41",
    )
    podman = EngineInfo.from_version(
        "p",
        "u",
        {
            "Version": "4.3.1",
            "ApiVersion": "1.41",
            "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}],
        },
    )
    assert podman.product == "Podman Engine"
    mine = EngineInfo.from_version(  # portside serve's own /version
        "embedded",
        "u",
        {
            "Version": "0.1.0",
            "ApiVersion": "1.44",
            "Platform": {"Name": "portside"},
            "Components": [
                {"Name": "Engine", "Version": "0.1.0"},
                {"Name": "crun", "Version": "1.8.1"},
                {"Name": "runc", "Version": "1.1.5"},
            ],
        },
    )
    assert mine.product == "portside"  # not its runtime


def test_pull_progress_folds_layers_and_errors() -> None:
    progress = PullProgress("x")
    for event in sample_data.PULL_EVENTS:
        progress.feed(event)
    layers = progress.layers
    assert list(layers) == ["4abcf2066143", "8c1f7a0b23de", "d2e4f6a8b0c1", "e3f5a7b9c1d2"]
    assert layers["4abcf2066143"].done and layers["4abcf2066143"].fraction == 1.0
    extracting = layers["8c1f7a0b23de"]
    assert extracting.phase == "extract" and extracting.size == 3_112_000
    assert 0.5 < extracting.fraction < 1.0
    assert 0 < layers["d2e4f6a8b0c1"].fraction < 0.5
    assert layers["e3f5a7b9c1d2"].fraction == 0.0
    assert progress.lines == ["2.4: Pulling from shop/web"]
    progress.feed(
        {
            "errorDetail": {"message": "unauthorized:\n authentication required"},
            "error": "unauthorized",
        }
    )
    assert progress.error == "unauthorized"


def test_history_wording_and_reference_checks() -> None:
    assert created_by('/bin/sh -c #(nop)  CMD ["sh"]') == 'CMD ["sh"]'
    assert created_by("/bin/sh -c apk add curl") == "RUN apk add curl"
    assert created_by("") == "-"
    assert check_reference("") is not None
    assert check_reference("a b") == "an image reference has no spaces"
    assert check_reference("repo:") is not None
    assert check_reference("127.0.0.1:5000/test/busybox:1") is None


async def test_failures_are_explained_from_real_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    async with aiodocker.Docker(url=f"unix://{missing}") as docker:
        with pytest.raises(aiodocker.DockerError) as caught:
            await docker.version()
    problem = describe_failure(caught.value, f"unix://{missing}")
    assert problem.reason == f"no engine socket at {missing}"

    refused = tmp_path / "refused.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(refused))
        async with aiodocker.Docker(url=f"unix://{refused}") as docker:
            with pytest.raises(aiodocker.DockerError) as caught:
                await docker.version()
    problem = describe_failure(caught.value, f"unix://{refused}")
    assert problem.reason == f"nothing is listening at {refused}"

    with pytest.raises(ValueError) as bad:
        aiodocker.Docker(url="nope://x")
    assert describe_failure(bad.value, "nope://x").reason.startswith("bad engine address")
    denied = describe_failure(PermissionError(errno.EACCES, "Permission denied"), "unix:///s")
    assert denied.reason == "permission denied on /s" and "docker group" in denied.hint
    assert "did not answer" in describe_failure(TimeoutError(), "tcp://h:1").reason
    http = describe_failure(aiodocker.DockerError(404, "page not found"), "tcp://h:1")
    assert http.reason == "the engine at tcp://h:1 answered HTTP 404: page not found"
