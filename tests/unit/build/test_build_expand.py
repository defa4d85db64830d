"""Word and variable expansion tables (BuildKit shell lexer semantics)."""

from __future__ import annotations

import pytest

from engine.build.expand import ExpansionError, Lexer

ENV = {
    "PWD": "/home",
    "SHELL": "bash",
    "KOREAN": "한국어",
    "EMPTY": "",
    "SPACED": "a  b",
    "PATHISH": "/usr/local/bin",
}

WORD_CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he\\'llo", "he'llo"),
    ("abc\\def", "abcdef"),
    ("abc\\\\def", "abc\\def"),
    ('"abc\\\\def"', "abc\\def"),
    ('"abc\\def"', "abc\\def"),
    ("'abc\\\\def'", "abc\\\\def"),
    ('"hel\'lo"', "hel'lo"),
    ("'hel\"lo'", 'hel"lo'),
    ('"a\\"b"', 'a"b'),
    ("hello\\", "hello"),
    ("a b", "a b"),
    ("$PWD", "/home"),
    ("${PWD}", "/home"),
    ("\\$PWD", "$PWD"),
    ("'$PWD'", "$PWD"),
    ('"$PWD"', "/home"),
    ('"\\$PWD"', "$PWD"),
    ("$PWDx", ""),
    ("${PWD}x", "/homex"),
    ("$PWD/x", "/home/x"),
    ("${PWD:-x}", "/home"),
    ("${UNSET:-x}", "x"),
    ("${EMPTY:-x}", "x"),
    ("${EMPTY-x}", ""),
    ("${UNSET-x}", "x"),
    ("${PWD:+x}", "x"),
    ("${EMPTY:+x}", ""),
    ("${EMPTY+x}", "x"),
    ("${UNSET+x}", ""),
    ("${UNSET:+x}", ""),
    ("${UNSET:-${PWD}}", "/home"),
    ("${UNSET:-'a b'}", "a b"),
    ('${UNSET:-"$SHELL"}', "bash"),
    ("${UNSET:-a\\}b}", "a}b"),
    ("$", "$"),
    ("a$", "a$"),
    ("$ x", "$ x"),
    ("$1", ""),
    ("${KOREAN}", "한국어"),
    ("$KOREAN!", "한국어!"),
    ("${PATHISH#/usr}", "/local/bin"),
    ("${PATHISH#*/}", "usr/local/bin"),
    ("${PATHISH##*/}", "bin"),
    ("${PATHISH%/*}", "/usr/local"),
    ("${PATHISH%%/l*}", "/usr"),
    ("${SHELL/a/o}", "bosh"),
    ("${PATHISH//\\//:}", ":usr:local:bin"),
    ("${UNSET:?}x", None),
    ("", ""),
]


@pytest.mark.parametrize(("source", "expected"), WORD_CASES)
def test_word(source: str, expected: str | None) -> None:
    lexer = Lexer()
    if expected is None:
        with pytest.raises(ExpansionError):
            lexer.word(source, ENV)
    else:
        assert lexer.word(source, ENV) == expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("he'llo", "single quote"),
        ('"hello', "double quote"),
        ("he\\\\'llo", "single quote"),
        ("${", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:x}", "bad substitution"),
        ("${PWD", "missing"),
        ("${PWD:-x", "missing"),
        ("${PWD:=x}", "unsupported modifier"),
        ("${PWD^}", "unsupported modifier"),
        ("${UNSET:?must be set}", "UNSET: must be set"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ],
)
def test_word_errors(source: str, problem: str) -> None:
    with pytest.raises(ExpansionError) as info:
        Lexer().word(source, ENV)
    message = str(info.value)
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('"a b" c', ["a b", "c"]),
        ("$SPACED", ["a", "b"]),
        ('"$SPACED"', ["a  b"]),
        ("x$SPACED", ["xa", "b"]),
        ("'' x", ["x"]),
        ("a\\ b c", ["a b", "c"]),
        ("$UNSET", []),
        ("  ", []),
        ("'a'\"b\"c", ["abc"]),
        ("${UNSET:-1 2}", ["1", "2"]),
    ],
)
def test_words(source: str, expected: list[str]) -> None:
    assert Lexer().words(source, ENV) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a`$PWD", "a$PWD"),
        ("c:\\dir\\file", "c:\\dir\\file"),
        ('"a`"b"', 'a"b'),
        ("x``y", "x`y"),
        ("$PWD\\x", "/home\\x"),
    ],
)
def test_backtick_escape(source: str, expected: str) -> None:
    assert Lexer("`").word(source, ENV) == expected


def test_raw_quotes_keep_quotes() -> None:
    assert Lexer(raw_quotes=True).words("'a b' \"c\"", {}) == ["'a b'", '"c"']


def test_used_variables_are_reported() -> None:
    value, used = Lexer().word_matches("${PWD}/$SHELL/$UNSET", ENV)
    assert value == "/home/bash/"
    assert used == {"PWD", "SHELL"}


def test_bad_escape_character() -> None:
    with pytest.raises(Exception, match="escape"):
        Lexer("x")
