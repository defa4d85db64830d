"""Dockerfile parser corpus: directives, comments, continuations, heredocs, JSON vs shell."""

from __future__ import annotations

import pytest

from engine.build.parser import DockerfileError, json_array, parse, split_words


def cmds(text: str) -> list[tuple[str, str]]:
    return [(n.cmd, n.rest) for n in parse(text).nodes]


# -- directives ----------------------------------------------------------------------------
def test_directives_at_the_top() -> None:
    parsed = parse("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM x\n")
    assert parsed.directives == {
        "syntax": "docker/dockerfile:1",
        "escape": "`",
        "check": "skip=all",
    }
    assert parsed.escape == "`"


@pytest.mark.parametrize(
    "text",
    [
        "#escape=`\nFROM x\n",
        "# ESCAPE = `\nFROM x\n",
        "#\tescape=\t`\nFROM x\n",
        "# Escape=`  \nFROM x\n",
    ],
)
def test_directive_spellings(text: str) -> None:
    assert parse(text).escape == "`"


@pytest.mark.parametrize(
    "text",
    [
        "FROM x\n# escape=`\n",
        "\n# escape=`\nFROM x\n",
        "# a comment\n# escape=`\nFROM x\n",
        "# unknowndirective=value\n# escape=`\nFROM x\n",
        "# direc \\\n# escape=`\nFROM x\n",
    ],
)
def test_directive_not_at_top_is_a_comment(text: str) -> None:
    assert parse(text).escape == "\\"


def test_duplicate_directive() -> None:
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: only one 'escape'"):
        parse("# escape=`\n# escape=\\\nFROM x\n")


def test_invalid_escape() -> None:
    with pytest.raises(DockerfileError, match=r"Dockerfile:1: invalid escape"):
        parse("# escape=x\nFROM x\n")


# -- comments and continuations ------------------------------------------------------------
def test_comments_and_blank_lines() -> None:
    text = "# top\n\nFROM busybox\n   # indented comment\nRUN echo hi # not a comment\n"
    assert cmds(text) == [("from", "busybox"), ("run", "echo hi # not a comment")]


def test_continuation_with_comments_and_empty_lines() -> None:
    text = (
        "FROM x\n"
        "RUN apt-get update && \\\n"
        "# a comment inside\n"
        "    # an indented comment\n"
        "\n"
        "    apt-get install -y curl \\  \n"
        "    && echo done\n"
        "CMD x\n"
    )
    parsed = parse(text)
    run = parsed.nodes[1]
    assert run.rest == "apt-get update &&     apt-get install -y curl     && echo done"
    assert (run.line, run.end_line) == (2, 7)
    assert parsed.nodes[2].line == 8
    assert parsed.warnings == ["Dockerfile:2: empty continuation line(s) found"]


def test_backtick_escape_keeps_backslashes() -> None:
    text = "# escape=`\nFROM windows\nCOPY testfile.txt c:\\\nRUN dir c:\\\nRUN a `\n  b\n"
    assert cmds(text)[1:] == [
        ("copy", "testfile.txt c:\\"),
        ("run", "dir c:\\"),
        ("run", "a   b"),
    ]


def test_continuation_at_end_of_file() -> None:
    assert cmds("FROM x\nRUN a \\\n") == [("from", "x"), ("run", "a")]


def test_line_that_is_only_a_continuation() -> None:
    assert cmds("FROM x\n\\\nRUN a\n") == [("from", "x"), ("run", "a")]


def test_crlf_and_bom() -> None:
    text = "\ufeffFROM x\r\nRUN a \\\r\n  b\r\n"
    assert cmds(text) == [("from", "x"), ("run", "a   b")]


def test_case_insensitive_instructions() -> None:
    assert [c for c, _ in cmds("from x\nRuN a\ncoPY a b\n")] == ["from", "run", "copy"]


def test_flags_are_split_off() -> None:
    node = parse('FROM x\nCOPY --from=a --chown="a b" --link src dst\n').nodes[1]
    assert node.flags == ["--from=a", '--chown="a b"', "--link"]
    assert node.rest == "src dst"


def test_double_dash_ends_flags() -> None:
    node = parse("FROM x\nRUN -- --not-a-flag\n").nodes[1]
    assert node.flags == []
    assert node.rest == "--not-a-flag"


# -- heredocs ------------------------------------------------------------------------------
def test_run_heredoc() -> None:
    text = "FROM x\nRUN <<EOF\necho hello\n  echo $HOME\nEOF\nCMD done\n"
    parsed = parse(text)
    run = parsed.nodes[1]
    assert run.rest == "<<EOF"
    assert len(run.heredocs) == 1
    doc = run.heredocs[0]
    assert (doc.name, doc.content, doc.expand, doc.chomp) == (
        "EOF",
        "echo hello\n  echo $HOME\n",
        True,
        False,
    )
    assert (run.line, run.end_line) == (2, 5)
    assert parsed.nodes[2].cmd == "cmd"


def test_heredoc_tab_stripping() -> None:
    text = "FROM x\nRUN <<-EOT\n\techo a\n\t\techo b\n  keep spaces\n\tEOT\n"
    doc = parse(text).nodes[1].heredocs[0]
    assert doc.chomp
    assert doc.content == "echo a\necho b\n  keep spaces\n"


@pytest.mark.parametrize(("opener", "name"), [('<<"EOF"', "EOF"), ("<<'EOF'", "EOF")])
def test_quoted_heredoc_disables_expansion(opener: str, name: str) -> None:
    doc = parse(f"FROM x\nRUN {opener}\necho $X\nEOF\n").nodes[1].heredocs[0]
    assert doc.name == name
    assert not doc.expand


def test_several_heredocs_and_fd() -> None:
    text = "FROM x\nRUN <<A cat /dev/stdin 3<<B\nfirst\nA\nsecond\nB\n"
    docs = parse(text).nodes[1].heredocs
    assert [(d.name, d.content, d.fd) for d in docs] == [("A", "first\n", 0), ("B", "second\n", 3)]


def test_copy_heredoc() -> None:
    node = parse("FROM x\nCOPY <<EOF /dest\nline\nEOF\n").nodes[1]
    assert node.heredocs[0].content == "line\n"


def test_heredoc_not_parsed_in_json_form_or_other_commands() -> None:
    parsed = parse('FROM x\nRUN ["echo", "<<EOF"]\nENV A=<<EOF\nCMD x\n')
    assert [n.heredocs for n in parsed.nodes] == [[], [], [], []]
    assert [n.cmd for n in parsed.nodes] == ["from", "run", "env", "cmd"]


def test_heredoc_with_empty_lines_and_comments_kept() -> None:
    doc = parse("FROM x\nRUN <<EOF\n\n# kept\nEOF\n").nodes[1].heredocs[0]
    assert doc.content == "\n# kept\n"


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unterminated heredoc 'EOF'$"):
        parse("FROM x\nRUN <<EOF\necho\n")


def test_shift_operator_is_not_a_heredoc() -> None:
    node = parse("FROM x\nRUN echo $((1 << 2))\n").nodes[1]
    assert node.heredocs == []


# -- JSON vs shell form --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ('["a", "b"]', ["a", "b"]),
        ('[ "a" ]', ["a"]),
        ("[]", []),
        ('  ["a b"]  ', ["a b"]),
        ("[\"a\", 'b']", None),
        ('["a", 1]', None),
        ("[bad", None),
        ('["a"] trailing', None),
        ('"a"', None),
        ('{"a": 1}', None),
        ('["\\u00e9"]', ["é"]),
    ],
)
def test_json_array(rest: str, expected: list[str] | None) -> None:
    assert json_array(rest) == expected


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("a b", ["a", "b"]),
        ('a="b c" d', ['a="b c"', "d"]),
        ("a='b c' d", ["a='b c'", "d"]),
        ("a=b\\ c d", ["a=b\\ c", "d"]),
        ('""', ['""']),
        ('a="x\\"y"', ['a="x\\"y"']),
        ("a \\", ["a"]),
    ],
)
def test_split_words(rest: str, expected: list[str]) -> None:
    assert split_words(rest) == expected


# -- errors --------------------------------------------------------------------------------
def test_binary_and_nul_refused() -> None:
    with pytest.raises(DockerfileError, match="NUL"):
        parse("FROM x\x00\n")
    with pytest.raises(DockerfileError, match="UTF-8"):
        parse(b"FROM \xff\n")


def test_filename_in_errors() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM x\nRUN <<EOF\n", filename="build/Dockerfile.dev")
    assert str(info.value).startswith("build/Dockerfile.dev:2: ")
    assert info.value.status == 400


# -- more corpus cases ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\t  FROM\tx\n", [("from", "x")]),
        ("FROM x\nRUN a \\\n  # c1\n  b \\\n  # c2\n", [("from", "x"), ("run", "a   b")]),
        # like BuildKit: the last escape character still continues the line
        ("FROM x\nRUN a\\\\\nRUN b\n", [("from", "x"), ("run", "a\\RUN b")]),
        ("FROM x\nENV A=1 \\\n    B=2\n", [("from", "x"), ("env", "A=1     B=2")]),
        ("FROM x\nLABEL a=b # trailing\n", [("from", "x"), ("label", "a=b # trailing")]),
        ("FROM x\nONBUILD RUN a \\\n b\n", [("from", "x"), ("onbuild", "RUN a  b")]),
        ("FROM x\n   \n\t\nCMD y\n", [("from", "x"), ("cmd", "y")]),
        ("# escape=`\nFROM x\nRUN a `\n  b\n", [("from", "x"), ("run", "a   b")]),
        ("# escape=`\nFROM x\nRUN a \\\nRUN b\n", [("from", "x"), ("run", "a \\"), ("run", "b")]),
    ],
)
def test_corpus(text: str, expected: list[tuple[str, str]]) -> None:
    assert cmds(text) == expected


@pytest.mark.parametrize("quoted", ['"<<EOF"', "'<<EOF'", "\\<<EOF"])
def test_quoted_heredoc_marker_is_text(quoted: str) -> None:
    parsed = parse(f"FROM x\nRUN echo {quoted}\nCMD y\n")
    assert parsed.nodes[1].heredocs == []
    assert [n.cmd for n in parsed.nodes] == ["from", "run", "cmd"]


def test_heredoc_after_continuation() -> None:
    text = "FROM x\nRUN --network=none \\\n  cat <<EOF > /f\nbody $X\nEOF\nCMD y\n"
    parsed = parse(text)
    run = parsed.nodes[1]
    assert run.flags == ["--network=none"]
    assert run.rest == "cat <<EOF > /f"
    assert run.heredocs[0].content == "body $X\n"
    assert (run.line, run.end_line) == (2, 5)
    assert parsed.nodes[2].line == 6


def test_heredoc_terminator_must_match_exactly() -> None:
    doc = parse("FROM x\nRUN <<EOF\n EOF\nEOF \nEOF\n").nodes[1].heredocs[0]
    assert doc.content == " EOF\nEOF \n"


def test_heredoc_crlf() -> None:
    doc = parse("FROM x\r\nRUN <<EOF\r\nline\r\nEOF\r\n").nodes[1].heredocs[0]
    assert doc.content == "line\n"
