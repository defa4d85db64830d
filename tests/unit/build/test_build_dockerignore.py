"""``.dockerignore`` tables, following docker's documented examples and patternmatcher."""

from __future__ import annotations

import pytest

from engine.build.dockerignore import (
    PatternMatcher,
    clean_pattern,
    for_build,
    go_glob,
    read_patterns,
)
from engine.errors import InvalidArgument


@pytest.mark.parametrize(
    ("line", "cleaned"),
    [
        ("# comment", None),
        ("", None),
        ("   ", None),
        ("  # not a comment", "# not a comment"),
        ("/foo", "foo"),
        ("//foo//bar/", "foo/bar"),
        ("./foo/../bar", "bar"),
        ("foo/.", "foo"),
        ("!foo/", "!foo"),
        ("! /foo", "!foo"),
        ("/", "/"),
        ("  *.md  ", "*.md"),
    ],
)
def test_clean_pattern(line: str, cleaned: str | None) -> None:
    assert clean_pattern(line) == cleaned


def test_read_patterns() -> None:
    text = "\ufeff# comment\n*/temp*\n\n*/*/temp*\ntemp?\r\n!keep\n"
    assert read_patterns(text) == ["*/temp*", "*/*/temp*", "temp?", "!keep"]


# (patterns, path, excluded)
TABLE = [
    # docker docs: the example .dockerignore
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "somedir/temp/inner.txt", True),
    (["*/temp*"], "temporary.txt", False),
    (["*/temp*"], "a/b/temp", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["*/*/temp*"], "somedir/temporary.txt", False),
    (["temp?"], "tempa", True),
    (["temp?"], "tempab", False),
    (["temp?"], "temp", False),
    (["temp?"], "x/tempa", False),
    # ** matches any number of directories, including none
    (["**/*.go"], "a.go", True),
    (["**/*.go"], "a/b/c.go", True),
    (["**/*.go"], "a/b/c.gox", False),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/bc", False),
    (["**"], "anything/at/all", True),
    (["foo/**"], "foo/x", True),
    (["foo/**"], "foo/x/y", True),
    (["**/foo"], "foo", True),
    (["**/foo"], "x/foo", True),
    (["**/foo"], "xfoo", False),
    (["**/foo"], "foo/inner", True),
    # exceptions: last match wins
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["!README.md", "*.md"], "README.md", True),
    # a parent directory match excludes its contents, unless an exception re-includes
    (["docs"], "docs", True),
    (["docs"], "docs/a/b.txt", True),
    (["docs"], "docsx/a", False),
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["docs/*", "!docs/sub"], "docs/sub/x", False),
    (["docs", "!docs/sub", "docs/sub/secret"], "docs/sub/secret/x", True),
    # exact names, character classes, escapes
    (["a.txt"], "a.txt", True),
    (["a.txt"], "aXtxt", False),
    (["[ab].txt"], "b.txt", True),
    (["[ab].txt"], "c.txt", False),
    (["[a-c]?"], "bz", True),
    (["\\*"], "*", True),
    (["\\*"], "x", False),
    (["a+b(c)"], "a+b(c)", True),
    (["$x"], "$x", True),
    (["/"], "anything", False),
    (["*"], "top", True),
    (["*"], "dir/inner", True),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), TABLE)
def test_matcher(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).excluded(path) is excluded


def test_may_descend() -> None:
    matcher = PatternMatcher(["docs", "!docs/keep.txt", "build"])
    assert matcher.may_descend("docs")
    assert not matcher.may_descend("build")
    assert not PatternMatcher(["docs"]).may_descend("docs")
    # like the docker CLI: an exception written for any depth does not open a skipped dir
    assert not PatternMatcher(["docs", "!**/keep"]).may_descend("docs")


def test_empty_exclusion_refused() -> None:
    with pytest.raises(InvalidArgument, match="illegal exclusion pattern"):
        PatternMatcher(["!"])


def test_bad_pattern_is_one_line_error() -> None:
    with pytest.raises(InvalidArgument, match=r"invalid \.dockerignore pattern '\[z-a\]'"):
        PatternMatcher(["[z-a]"])


def test_build_files_always_sent() -> None:
    matcher = for_build(["*", "!src"], "Dockerfile")
    assert not matcher.excluded("Dockerfile")
    assert not matcher.excluded(".dockerignore")
    assert not matcher.excluded("src/main.c")
    assert matcher.excluded("secret.key")
    nested = for_build(["build"], "build/Dockerfile.dev")
    assert not nested.excluded("build/Dockerfile.dev")
    assert nested.excluded("build/output.bin")
    assert nested.may_descend("build")
    untouched = for_build(["*.log"], "Dockerfile")
    assert untouched.excluded("x.log")
    assert [p.text for p in untouched.patterns] == ["*.log"]


@pytest.mark.parametrize(
    ("pattern", "name", "hit"),
    [
        ("file[!a].txt", "filea.txt", True),  # Go: ! is a plain character in a class
        ("file[!a].txt", "file!.txt", True),
        ("file[!a].txt", "fileb.txt", False),
        ("file[^a].txt", "fileb.txt", True),  # Go negates with ^
        ("file[^a].txt", "filea.txt", False),
        ("[a-c]?.md", "b1.md", True),
        ("[]a]", "]", True),
        ("*.conf", "sub/a.conf", False),  # * and ? stop at /
        ("sub/?.conf", "sub/a.conf", True),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a.b", "axb", False),
        ("(x)+", "(x)+", True),
    ],
)
def test_go_glob(pattern: str, name: str, hit: bool) -> None:
    assert bool(go_glob(pattern).match(name)) is hit


def test_go_glob_bad_pattern() -> None:
    with pytest.raises(InvalidArgument, match=r"syntax error in pattern 'file\[ab'"):
        go_glob("file[ab")
