"""Pure helpers of the builder's newer features: the secrets header, URL and git source
detection, the ``--parents`` prefix, and RUN history text / heredoc commands."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from engine.build.executor import Executor, Options, StageState, _parents_prefix
from engine.build.instructions import Run, parse_dockerfile
from engine.build.remote import is_git, is_url, url_filename
from engine.build.secrets import MAX_SECRET, decode_header, encode_header
from engine.errors import InvalidArgument


def test_secrets_header_round_trip_and_errors() -> None:
    secrets = {"a": b"\x00bin\xff", "token": b"t"}
    assert decode_header(encode_header(secrets)) == secrets
    for bad in ("%%%", base64.urlsafe_b64encode(b"[1]").decode(), "e30"[:-1] + "x"):
        with pytest.raises(InvalidArgument, match="X-Portside-Build-Secrets"):
            decode_header(bad)
    not_b64 = base64.urlsafe_b64encode(json.dumps({"a": "***"}).encode()).decode()
    with pytest.raises(InvalidArgument, match="secret 'a'"):
        decode_header(not_b64)
    with pytest.raises(InvalidArgument, match="larger than"):
        decode_header(encode_header({"big": b"x" * (MAX_SECRET + 1)}))


@pytest.mark.parametrize(
    ("src", "git"),
    [
        ("https://example.com/repo.git", True),
        ("https://example.com/repo.git#main:dir", True),
        ("git@github.com:moby/moby.git", True),
        ("git://host/repo", True),
        ("https://example.com/file.tar.gz", False),
        ("local.git", False),
    ],
)
def test_git_sources(src: str, git: bool) -> None:
    assert is_git(src) is git


def test_url_names() -> None:
    assert is_url("http://h/x") and is_url("https://h/x") and not is_url("ftp://h/x")
    assert url_filename("http://h/dir/tool%20x.sh?v=1") == "tool x.sh"
    assert url_filename("http://h/") == ""


def test_parents_prefix() -> None:
    assert _parents_prefix("x/a.txt") == ""
    assert _parents_prefix("./x/a.txt") == ""
    assert _parents_prefix("y/./deep/b.txt") == "y"
    assert _parents_prefix("/a/b/./c") == "a/b"


class _Exec(Executor):
    """Just enough of an executor for its pure helpers."""

    def __init__(self, build_args: dict[str, str]) -> None:
        from engine.build.expand import Lexer

        self.opts = Options(build_args=build_args)
        self.lexer = Lexer("\\")
        self.filename = "Dockerfile"


def _state(args: dict[str, str], env: list[str] | None = None) -> StageState:
    config: dict[str, Any] = {"Env": env or []}
    return StageState("sha256:" + "0" * 64, config, dict(args))


def test_run_history_prefix() -> None:
    cmd = ["/bin/sh", "-c", "echo hi"]
    assert _Exec({})._run_history(_state({}), cmd) == "/bin/sh -c echo hi"
    ex = _Exec({"B": "2", "HTTP_PROXY": "http://p"})
    state = _state({"B": "2", "A": "1"})
    assert ex._run_history(state, cmd) == "|2 A=1 B=2 /bin/sh -c echo hi"
    # ENV hides an ARG of the same name; an undeclared proxy arg still forces the prefix
    assert ex._run_history(_state({"A": "1"}, ["A=env"]), cmd) == "|0 /bin/sh -c echo hi"


def _run(text: str) -> Run:
    inst = parse_dockerfile(f"FROM busybox\n{text}").stages[0].instructions[0]
    assert isinstance(inst, Run)
    return inst


def test_heredoc_commands() -> None:
    ex = _Exec({})
    state = _state({})
    cmd, scripts = ex._run_command(state, _run("RUN <<EOF\necho a\nEOF\n"))
    assert (cmd, scripts) == (["/bin/sh", "-c", "echo a\n"], [])
    cmd, scripts = ex._run_command(state, _run("RUN <<EOF\n#!/bin/sh\necho b\nEOF\n"))
    assert cmd == ["/bin/sh", "-c", "/dev/pipes/EOF"]
    assert scripts == [("EOF", "#!/bin/sh\necho b\n")]
    cmd, _ = ex._run_command(state, _run("RUN cat <<A <<B\na\nA\nb\nB\n"))
    assert cmd == ["/bin/sh", "-c", "cat <<A <<B\na\nA\nb\nB"]
    cmd, _ = ex._run_command(state, _run('RUN ["echo", "<<EOF"]'))
    assert cmd == ["echo", "<<EOF"]
