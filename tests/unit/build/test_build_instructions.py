"""Typed instructions: every instruction's forms, flags and validation errors."""

from __future__ import annotations

import re

import pytest

from engine.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_dockerfile,
    parse_duration,
    parse_mount,
    parse_ports,
    validate_signal,
)
from engine.build.parser import DockerfileError, Heredoc
from engine.errors import InvalidArgument


def one(line: str) -> object:
    """The single instruction of a stage made of ``line``."""
    dockerfile = parse_dockerfile(f"FROM base\n{line}\n")
    (instruction,) = dockerfile.stages[0].instructions
    return instruction


def fails(line: str, problem: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(f"FROM base\n{line}\n")
    message = str(info.value)
    assert message.startswith("Dockerfile:2: "), message
    assert problem in message, message
    assert "\n" not in message


# -- FROM and ARG --------------------------------------------------------------------------
def test_from_forms() -> None:
    df = parse_dockerfile(
        "ARG V=1\nFROM --platform=linux/arm64 busybox:$V AS Build\nFROM scratch\nFROM build\n"
    )
    first, second, third = (s.source for s in df.stages)
    assert (first.base, first.stage_name, first.platform) == ("busybox:$V", "build", "linux/arm64")
    assert second.is_scratch and second.stage_name is None
    assert third.base == "build"
    assert [a.pairs for a in df.meta_args] == [[("V", "1")]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM a AS 1bad\n", "invalid stage name"),
        ("FROM a AS b c\n", "use FROM"),
        ("FROM a b\n", "use FROM"),
        ("FROM\n", "use FROM"),
        ("FROM --platfrom=x a\n", "unknown flag: --platfrom"),
        ("FROM --platform a\n", "missing a value on flag: --platform"),
        ("FROM a AS x\nFROM b AS X\n", "duplicate stage name 'x'"),
        ("RUN x\nFROM a\n", "only ARG may come first"),
        ("ARG x\n", "no FROM instruction"),
        ("", "no FROM instruction"),
        ("FROM a\nFOO bar\n", "unknown instruction: FOO"),
    ],
)
def test_from_errors(text: str, problem: str) -> None:
    with pytest.raises(DockerfileError, match=problem):
        parse_dockerfile(text)


def test_arg_forms() -> None:
    arg = one('ARG A B=2 C="x y" D=')
    assert isinstance(arg, Arg)
    assert arg.pairs == [("A", None), ("B", "2"), ("C", '"x y"'), ("D", "")]
    fails("ARG", "requires at least one argument")
    fails("ARG =x", "name is empty")


# -- RUN -----------------------------------------------------------------------------------
def test_run_forms() -> None:
    shell = one("RUN echo hi")
    assert isinstance(shell, Run) and shell.command == "echo hi" and not shell.json
    exec_form = one('RUN ["echo", "hi"]')
    assert isinstance(exec_form, Run) and exec_form.command == ["echo", "hi"] and exec_form.json
    net = one("RUN --network=none --security=insecure true")
    assert isinstance(net, Run) and (net.network, net.security) == ("none", "insecure")
    fails("RUN --network=bridge true", "invalid --network 'bridge'")
    fails("RUN", "requires a command")
    fails("RUN --mount true", "missing a value on flag: --mount")
    fails("RUN --network=none --network=host true", "duplicate flag")


def test_run_heredoc_kept() -> None:
    run = one("RUN <<EOF\necho hi\nEOF")
    assert isinstance(run, Run)
    assert run.heredocs == [Heredoc("EOF", "echo hi\n")]


def test_run_mounts() -> None:
    run = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1"
        " --mount=type=bind,from=build,source=/out,target=/in,rw"
        " --mount=type=tmpfs,target=/tmp,size=64m"
        " --mount=type=secret,id=token --mount=type=ssh make"
    )
    assert isinstance(run, Run)
    cache, bind, tmpfs, secret, ssh = run.mounts
    assert (cache.type, cache.id, cache.sharing, cache.mode, cache.uid, cache.readonly) == (
        "cache",
        "pip",
        "locked",
        0o755,
        1,
        False,
    )
    assert (bind.from_, bind.source, bind.target, bind.readonly) == ("build", "/out", "/in", False)
    assert (tmpfs.size, tmpfs.readonly) == (64 << 20, False)
    assert (secret.id, secret.target, secret.readonly) == ("token", "/run/secrets/token", True)
    assert (ssh.id, ssh.target) == ("default", "/run/buildkit/ssh_agent.0")
    assert len(run.mount_specs) == 5


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("type=cache,target=/c,id=../../etc", "must not be absolute or contain '..'"),
        ("type=cache,target=/c,id=/abs", "must not be absolute"),
        ("type=cache,target=/c,id=a/../../b", "'..'"),
        ("type=cache,target=/c,sharing=wide", "invalid --mount sharing 'wide'"),
        ("type=cache,target=/c,mode=rwx", "invalid --mount mode"),
        ("type=cache,target=/c,mode=0999", "invalid --mount mode"),
        ("type=cache,target=/c,uid=-1", "invalid --mount uid"),
        ("type=cache,target=/c,gid=x", "invalid --mount gid"),
        ("type=cache,target=relative", "must be an absolute path"),
        ("type=cache,target=/", "root directory"),
        ("type=cache", "needs a target"),
        ("type=bind,target=/x,bind-propagation=rshared", "bind-propagation='rshared' is not"),
        ("type=bind,target=/x,bind-propagation=shared", "is not allowed"),
        ("type=bind,target=/x,source=../../etc", "'..' is not allowed"),
        ("type=volume,target=/x", "unsupported --mount type 'volume'"),
        ("type=bind,target=/x,foo=bar", "unexpected --mount option 'foo'"),
        ("type=bind,target=/x,target=/y", "given twice"),
        ("type=bind,target=/x,ro=maybe", "use true or false"),
        ("type=bind,target=/x,sharing=locked", "only valid for type=cache"),
        ("type=tmpfs,target=/x,from=img", "from= is not valid"),
        ("type=bind,target=/x,size=1", "only valid for type=tmpfs"),
        ("type=secret,id=a,rw", "always read-only"),
        ("type=secret", "needs an id or a target"),
        ("target", "use key=value"),
        ('type=bind,target="/x', "unmatched double quote"),
    ],
)
def test_mount_validation(spec: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(problem)):
        parse_mount(spec, {})
    if '"' not in spec:  # an unmatched quote in a flag swallows the rest of the line
        fails(f"RUN --mount={spec} true", problem)


def test_mount_allowed_propagation_and_defaults() -> None:
    bind = parse_mount("target=/x,bind-propagation=rprivate", {})
    assert (bind.type, bind.readonly, bind.propagation) == ("bind", True, "rprivate")
    cache = parse_mount("type=cache,dst=/var/cache/apt", {})
    assert (cache.id, cache.sharing, cache.readonly) == ("/var/cache/apt", "shared", False)
    quoted = parse_mount('type=bind,"target=/a,b",readonly=false', {})
    assert (quoted.target, quoted.readonly) == ("/a,b", False)


def test_mount_expansion_deferred_then_checked() -> None:
    run = one("RUN --mount=type=cache,target=$DIR,id=$ID,uid=$U true")
    assert isinstance(run, Run)
    assert run.mounts[0].target == "$DIR"
    good = parse_mount(run.mount_specs[0], {"DIR": "/c", "ID": "x", "U": "5"})
    assert (good.target, good.id, good.uid) == ("/c", "x", 5)
    with pytest.raises(InvalidArgument, match=re.escape("'..'")):
        parse_mount(run.mount_specs[0], {"DIR": "/c", "ID": "../x", "U": "5"})
    with pytest.raises(InvalidArgument, match="uid"):
        parse_mount(run.mount_specs[0], {"DIR": "/c", "ID": "x", "U": "no"})


# -- COPY and ADD --------------------------------------------------------------------------
def test_copy_forms() -> None:
    copy = one(
        "COPY --from=build --chown=1:2 --chmod=0644 --link --parents --exclude=*.tmp"
        " --exclude=x a b /dst/"
    )
    assert isinstance(copy, Copy) and not isinstance(copy, Add)
    assert copy.sources == ["a", "b"] and copy.dest == "/dst/"
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == (
        "build",
        "1:2",
        "0644",
        True,
        True,
    )
    assert copy.exclude == ["*.tmp", "x"]
    json_form = one('COPY ["a b", "/c d/"]')
    assert isinstance(json_form, Copy) and json_form.sources == ["a b"] and json_form.json
    no_link = one("COPY --link=false a b")
    assert isinstance(no_link, Copy) and not no_link.link


def test_copy_heredoc_source() -> None:
    copy = one("COPY <<EOF <<-'END' /dest/\nhello\nEOF\n\tworld\n\tEND")
    assert isinstance(copy, Copy)
    first, second = copy.sources
    assert isinstance(first, Heredoc) and first.content == "hello\n" and first.expand
    assert isinstance(second, Heredoc) and second.content == "world\n" and not second.expand


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("COPY a", "requires at least two arguments"),
        ("COPY", "requires at least two arguments"),
        ("COPY --chmod=999 a b", "invalid --chmod '999'"),
        ("COPY --checksum=sha256:00 a b", "unknown flag: --checksum"),
        ("COPY --link=yes a b", "expecting boolean value"),
        ("COPY --link --link a b", "duplicate flag"),
        ("COPY --from= a b", "--from needs"),
        ("ADD --from=x a b", "unknown flag: --from"),
        ("ADD --parents a b", "unknown flag: --parents"),
        ("ADD --checksum=sha256:abc http://h/f /f", "invalid --checksum"),
        ("ADD --checksum=sha256:" + "a" * 64 + " local.tar /f", "only valid for HTTP(S)"),
    ],
)
def test_copy_errors(line: str, problem: str) -> None:
    fails(line, problem)


def test_add_forms() -> None:
    digest = "sha256:" + "a" * 64
    add = one(f"ADD --checksum={digest} --unpack=true --keep-git-dir https://h/f.tar /f")
    assert isinstance(add, Add)
    assert (add.checksum, add.unpack, add.keep_git_dir) == (digest, True, True)
    plain = one("ADD a.tar /")
    assert isinstance(plain, Add) and plain.unpack is None and plain.checksum is None


# -- ENV, LABEL ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ("ENV A b", [("A", "b")]),
        ("ENV A b c  d", [("A", "b c  d")]),
        ("ENV A=1 B=2", [("A", "1"), ("B", "2")]),
        ('ENV A="x y" B=z\\ w', [("A", '"x y"'), ("B", "z\\ w")]),
        ("ENV A=", [("A", "")]),
    ],
)
def test_env(line: str, pairs: list[tuple[str, str]]) -> None:
    env = one(line)
    assert isinstance(env, Env) and env.pairs == pairs


def test_env_and_label_errors() -> None:
    fails("ENV A", "must have two arguments")
    fails("ENV", "requires at least one argument")
    fails("ENV A=1 B", "can't find = in 'B'")
    fails("ENV =1", "names can not be blank")
    fails("LABEL", "requires at least one argument")


def test_label() -> None:
    label = one('LABEL "com.example.x"="a b" version=1')
    assert isinstance(label, Label)
    assert label.pairs == [('"com.example.x"', '"a b"'), ("version", "1")]
    old = one("LABEL maintainer someone here")
    assert isinstance(old, Label) and old.pairs == [("maintainer", "someone here")]


# -- single-value instructions -------------------------------------------------------------
def test_workdir_user_maintainer_stopsignal() -> None:
    workdir = one("WORKDIR /a b")
    assert isinstance(workdir, Workdir) and workdir.path == "/a b"
    user = one("USER 1000:1000")
    assert isinstance(user, User) and user.user == "1000:1000"
    maint = one("MAINTAINER Jane <j@example.com>")
    assert isinstance(maint, Maintainer) and maint.maintainer == "Jane <j@example.com>"
    sig = one("STOPSIGNAL SIGKILL")
    assert isinstance(sig, StopSignal) and sig.signal == "SIGKILL"
    assert isinstance(one("STOPSIGNAL $SIG"), StopSignal)
    fails("WORKDIR", "requires exactly one argument")
    fails("USER", "requires exactly one argument")
    fails("STOPSIGNAL SIGNOPE", "invalid signal 'SIGNOPE'")
    fails("STOPSIGNAL 9 15", "exactly one argument")
    fails("WORKDIR --x /a", "unknown flag: --x")


@pytest.mark.parametrize("good", ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "SIGUSR1"])
def test_signals(good: str) -> None:
    assert validate_signal(good) == good


@pytest.mark.parametrize("bad", ["0", "65", "SIGFOO", "SIGRTMIN+40", "", "SIG_DFL"])
def test_bad_signals(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_signal(bad)


# -- EXPOSE, VOLUME ------------------------------------------------------------------------
def test_expose() -> None:
    expose = one("EXPOSE 80 443/tcp 53/UDP 8000-8010/sctp $PORT")
    assert isinstance(expose, Expose)
    assert expose.ports == ["80", "443/tcp", "53/UDP", "8000-8010/sctp", "$PORT"]
    fails("EXPOSE", "requires at least one port")
    fails("EXPOSE 80/icmp", "invalid protocol 'icmp'")
    fails("EXPOSE 70000", "ports are 1 to 65535")
    fails("EXPOSE 90-80", "end is below the start")
    fails("EXPOSE http", "use PORT")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("80", (80, 80, "tcp")),
        ("53/udp", (53, 53, "udp")),
        ("1-65535/TCP", (1, 65535, "tcp")),
    ],
)
def test_parse_ports(word: str, expected: tuple[int, int, str]) -> None:
    assert parse_ports(word) == expected


def test_volume() -> None:
    vol = one("VOLUME /a /b")
    assert isinstance(vol, Volume) and vol.paths == ["/a", "/b"] and not vol.json
    vol_json = one('VOLUME ["/c d"]')
    assert isinstance(vol_json, Volume) and vol_json.paths == ["/c d"] and vol_json.json
    fails("VOLUME", "requires at least one path")
    fails('VOLUME [""]', "can not be an empty string")


# -- CMD, ENTRYPOINT, SHELL ----------------------------------------------------------------
def test_cmd_entrypoint_shell() -> None:
    cmd = one("CMD [\"a\", 'b']")
    assert isinstance(cmd, Cmd) and cmd.command == "[\"a\", 'b']" and not cmd.json
    cmd_json = one('CMD ["a", "b"]')
    assert isinstance(cmd_json, Cmd) and cmd_json.command == ["a", "b"]
    entry = one("ENTRYPOINT exec top -b")
    assert isinstance(entry, Entrypoint) and entry.command == "exec top -b"
    empty = one("ENTRYPOINT []")
    assert isinstance(empty, Entrypoint) and empty.command == [] and empty.json
    shell = one('SHELL ["powershell", "-command"]')
    assert isinstance(shell, Shell) and shell.shell == ["powershell", "-command"]
    fails("SHELL /bin/sh -c", "requires the arguments in JSON form")
    fails("SHELL []", "requires at least one argument")


# -- HEALTHCHECK ---------------------------------------------------------------------------
def test_healthcheck_forms() -> None:
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test is None
    shell = one("HEALTHCHECK CMD curl -f http://localhost/ || exit 1")
    assert isinstance(shell, Healthcheck)
    assert shell.test == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert shell.effective == (30 * 10**9, 30 * 10**9, 0, 5 * 10**9, 3)
    full = one(
        "HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms"
        ' --retries=5 CMD ["/bin/check", "-q"]'
    )
    assert isinstance(full, Healthcheck)
    assert full.test == ["CMD", "/bin/check", "-q"]
    assert (full.interval, full.timeout, full.start_period, full.start_interval, full.retries) == (
        300 * 10**9,
        3 * 10**9,
        90 * 10**9,
        500 * 10**6,
        5,
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("HEALTHCHECK", "requires NONE or CMD"),
        ("HEALTHCHECK NONE x", "takes no arguments"),
        ("HEALTHCHECK --interval=1s NONE", "takes no arguments"),
        ("HEALTHCHECK RUN x", "unknown type 'RUN'"),
        ("HEALTHCHECK CMD", "CMD needs a command"),
        ("HEALTHCHECK CMD []", "CMD needs a command"),
        ("HEALTHCHECK --interval=5 CMD x", "invalid duration '5'"),
        ("HEALTHCHECK --timeout=10us CMD x", "cannot be less than 1ms"),
        ("HEALTHCHECK --retries=-1 CMD x", "invalid --retries"),
        # docker 20.10 refuses these two as well (checked against dockerd)
        ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
        ("HEALTHCHECK --interval=0s CMD x", "cannot be less than 1ms"),
        ("HEALTHCHECK --every=1s CMD x", "unknown flag: --every"),
    ],
)
def test_healthcheck_errors(line: str, problem: str) -> None:
    fails(line, problem)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("30s", 30 * 10**9),
        ("1h2m3s", 3723 * 10**9),
        ("1.5s", 1_500_000_000),
        ("250ms", 250_000_000),
        ("10us", 10_000),
        ("7ns", 7),
        (".5m", 30 * 10**9),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1d", "s", "1s2", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


# -- ONBUILD -------------------------------------------------------------------------------
def test_onbuild() -> None:
    onbuild = one("ONBUILD COPY --chown=1 . /app")
    assert isinstance(onbuild, Onbuild)
    assert isinstance(onbuild.trigger, Copy) and onbuild.trigger.chown == "1"
    assert onbuild.expression == "COPY --chown=1 . /app"
    run = one("onbuild run make")
    assert isinstance(run, Onbuild) and isinstance(run.trigger, Run)
    fails("ONBUILD ONBUILD RUN x", "ONBUILD isn't allowed as an ONBUILD trigger")
    fails("ONBUILD FROM x", "FROM isn't allowed")
    fails("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed")
    fails("ONBUILD", "requires an instruction")
    fails("ONBUILD NOPE x", "unknown instruction: NOPE")


# -- whole files ---------------------------------------------------------------------------
def test_stages_and_lines() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG A\nFROM a AS one\nRUN x\n\nFROM one\nCMD y\n",
        filename="ctx/Dockerfile",
    )
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert [(s.index, s.name, [i.line for i in s.instructions]) for s in df.stages] == [
        (0, "one", [4]),
        (1, None, [7]),
    ]
    assert isinstance(df.stages[1].source, From)
    assert df.stages[1].instructions[0].name == "CMD"


def test_backtick_dockerfile() -> None:
    df = parse_dockerfile(
        "# escape=`\nFROM mcr\nCOPY a c:\\dir\\\nRUN echo a `\n    && echo b\nENV P=c:\\x\\y\n"
    )
    copy, run, env = df.stages[0].instructions
    assert isinstance(copy, Copy) and copy.dest == "c:\\dir\\"
    assert isinstance(run, Run) and run.command == "echo a     && echo b"
    assert isinstance(env, Env) and env.pairs == [("P", "c:\\x\\y")]
