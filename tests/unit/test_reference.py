"""Reference parsing: docker normalisation and strict rejection of malformed names."""

import pytest

from engine.errors import InvalidArgument
from engine.reference import Reference

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "familiar"),
    [
        ("debian", "docker.io", "library/debian", "latest", "debian:latest"),
        ("debian:12", "docker.io", "library/debian", "12", "debian:12"),
        ("user/app:v1.2", "docker.io", "user/app", "v1.2", "user/app:v1.2"),
        ("docker.io/library/debian", "docker.io", "library/debian", "latest", "debian:latest"),
        ("index.docker.io/debian:1", "docker.io", "library/debian", "1", "debian:1"),
        ("127.0.0.1:5000/debian:1", "127.0.0.1:5000", "debian", "1", "127.0.0.1:5000/debian:1"),
        ("localhost/a/b", "localhost", "a/b", "latest", "localhost/a/b:latest"),
        ("ghcr.io/o/r/sub:x_1", "ghcr.io", "o/r/sub", "x_1", "ghcr.io/o/r/sub:x_1"),
        ("[::1]:5000/img:2", "[::1]:5000", "img", "2", "[::1]:5000/img:2"),
        ("user/a.b-c__d", "docker.io", "user/a.b-c__d", "latest", "user/a.b-c__d:latest"),
        ("a.b/c", "a.b", "c", "latest", "a.b/c:latest"),
    ],
)
def test_normalises_like_docker(text, registry, repo, tag, familiar):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repo, tag)
    assert ref.familiar() == familiar


def test_digest_pins():
    ref = Reference.parse(f"debian@sha256:{HEX}")
    assert ref.tag is None and str(ref.digest) == f"sha256:{HEX}"
    assert str(ref) == f"docker.io/library/debian@sha256:{HEX}"
    both = Reference.parse(f"host:5000/x:1@sha256:{HEX}")
    assert both.tag == "1" and both.digest is not None
    sha512 = Reference.parse("x@sha512:" + "b" * 128)
    assert sha512.digest is not None and sha512.digest.algorithm == "sha512"


def test_docker_hub_api_host():
    assert Reference.parse("debian").api_host == "registry-1.docker.io"
    assert Reference.parse("127.0.0.1:5000/x").api_host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER",
        "x@sha256:" + "a" * 63,
        "x@sha256:" + "A" * 64,
        "x@sha256:../../etc/passwd",
        "x@md5:" + "a" * 32,
        "x:",
        "x:-bad",
        "x:" + "a" * 129,
        "a//b",
        "a/../b",
        "-a",
        "a b",
        "a\x00b",
        "host:99999/x",
        "/x",
        "x/",
        "a" * 256,
        "a..b",
    ],
)
def test_rejects_malformed(text):
    with pytest.raises(InvalidArgument) as info:
        Reference.parse(text)
    message = str(info.value)
    assert "\n" not in message and "invalid reference" in message


def test_with_tag_and_digest():
    ref = Reference.parse("127.0.0.1:5000/app:1")
    assert ref.with_tag("2").tag == "2"
    from engine.digest import Digest

    pinned = ref.with_digest(Digest.parse(f"sha256:{HEX}"))
    assert pinned.tag is None and pinned.tagged_str() == "127.0.0.1:5000/app:latest"
