"""Digest validation and ChainID computation."""

import hashlib

import pytest

from engine.digest import Digest, chain_ids, is_digest
from engine.errors import InvalidArgument


def test_parse_and_hash():
    d = Digest.of_bytes(b"hello")
    assert str(d) == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert Digest.parse(str(d)) == d
    assert d.short == d.hex[:12]


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:abc",
        "sha256:" + "g" * 64,
        "sha256/" + "a" * 64,
        "sha1:" + "a" * 40,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256:" + "a" * 64 + "/..",
        None,
    ],
)
def test_rejects(bad):
    with pytest.raises(InvalidArgument):
        Digest.parse(bad)
    assert not is_digest(bad)


def test_chain_ids_follow_image_spec():
    a, b, c = (Digest.of_bytes(x) for x in (b"a", b"b", b"c"))
    chains = chain_ids([a, b, c])
    assert chains[0] == a
    ab = hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chains[1].hex == ab
    abc = hashlib.sha256(f"sha256:{ab} {c}".encode()).hexdigest()
    assert chains[2].hex == abc
