"""Typed Dockerfile instructions: each parser node becomes one object with validated flags.

``parse_dockerfile(text, filename)`` returns a ``Dockerfile``: the global ``ARG``s before the
first ``FROM`` and the stages, each a ``From`` plus its instructions. ``build_instruction``
turns one ``engine.build.parser.Node`` into an ``Instruction`` subclass. Flags are checked
the way BuildKit's ``BFlags`` does (unknown, duplicate, missing values, booleans), and
values that cannot hold variables are validated now (ports, durations, signals, modes,
``--mount`` options). Values holding ``$`` are validated again when the executor expands
them (``parse_mount(spec, env)``, ``parse_ports``, ``validate_signal``...). Errors are
``DockerfileError`` naming file and line.
"""

from __future__ import annotations

import posixpath
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from engine.build.expand import ExpansionError, Lexer
from engine.build.parser import (
    DockerfileError,
    Heredoc,
    Node,
    ParsedFile,
    extract_flags,
    json_array,
    parse,
    parse_heredoc,
    split_words,
)
from engine.digest import is_digest
from engine.errors import InvalidArgument

HEALTH_DEFAULT_INTERVAL = 30_000_000_000
HEALTH_DEFAULT_TIMEOUT = 30_000_000_000
HEALTH_DEFAULT_START_PERIOD = 0
HEALTH_DEFAULT_START_INTERVAL = 5_000_000_000
HEALTH_DEFAULT_RETRIES = 3
MIN_HEALTH_DURATION = 1_000_000  # 1 ms, like docker

NETWORK_MODES = ("default", "none", "host")
MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
CACHE_SHARING = ("shared", "private", "locked")
BIND_PROPAGATION = ("private", "rprivate")  # whitelist: nothing that propagates to the host
PROTOCOLS = ("tcp", "udp", "sctp")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_SIZE = re.compile(r"^(\d+)([kmgt]?)i?b?$", re.I)
_ID_CHARS = re.compile(r"^[^\x00-\x1f]+$")


# -- instruction classes -----------------------------------------------------------------
@dataclass
class Instruction:
    """Common part: the line it came from and its original text."""

    line: int
    original: str

    @property
    def name(self) -> str:
        return type(self).__name__.upper()


@dataclass
class From(Instruction):
    base: str = ""
    stage_name: str | None = None
    platform: str | None = None

    @property
    def is_scratch(self) -> bool:
        return self.base.lower() == "scratch"


@dataclass
class Mount:
    """One ``RUN --mount``; ``target`` may hold ``$`` when not expanded yet."""

    type: str = "bind"
    target: str = ""
    source: str | None = None
    from_: str | None = None
    readonly: bool = True
    id: str | None = None
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    required: bool = False
    env: str | None = None
    propagation: str | None = None


@dataclass
class Run(Instruction):
    command: list[str] | str = ""
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"
    mount_specs: list[str] = field(default_factory=list)  # as written, for expansion later


@dataclass
class Copy(Instruction):
    sources: list[str | Heredoc] = field(default_factory=list)
    dest: str = ""
    json: bool = False
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: list[str] = field(default_factory=list)


@dataclass
class Add(Copy):
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass
class Env(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Label(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Arg(Instruction):
    pairs: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class Workdir(Instruction):
    path: str = ""


@dataclass
class User(Instruction):
    user: str = ""


@dataclass
class Expose(Instruction):
    ports: list[str] = field(default_factory=list)


@dataclass
class Volume(Instruction):
    paths: list[str] = field(default_factory=list)
    json: bool = False


@dataclass
class Cmd(Instruction):
    command: list[str] | str = ""
    json: bool = False


@dataclass
class Entrypoint(Instruction):
    command: list[str] | str = ""
    json: bool = False


@dataclass
class Shell(Instruction):
    shell: list[str] = field(default_factory=list)


@dataclass
class Healthcheck(Instruction):
    test: list[str] | None = None  # None for HEALTHCHECK NONE
    interval: int | None = None  # nanoseconds; None means docker's default
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None

    @property
    def effective(self) -> tuple[int, int, int, int, int]:
        """interval, timeout, start period, start interval (ns) and retries with defaults."""
        return (
            self.interval or HEALTH_DEFAULT_INTERVAL,
            self.timeout or HEALTH_DEFAULT_TIMEOUT,
            self.start_period or HEALTH_DEFAULT_START_PERIOD,
            self.start_interval or HEALTH_DEFAULT_START_INTERVAL,
            self.retries or HEALTH_DEFAULT_RETRIES,
        )


@dataclass
class StopSignal(Instruction):
    signal: str = ""


@dataclass
class Onbuild(Instruction):
    expression: str = ""
    trigger: Instruction | None = None


@dataclass
class Maintainer(Instruction):
    maintainer: str = ""


@dataclass
class Stage:
    """One build stage: its ``FROM``, its position and its instructions."""

    index: int
    source: From
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.source.stage_name


@dataclass
class Dockerfile:
    """A whole parsed Dockerfile."""

    filename: str
    directives: dict[str, str]
    escape: str
    meta_args: list[Arg]
    stages: list[Stage]
    warnings: list[str] = field(default_factory=list)


# -- flags -------------------------------------------------------------------------------
_BOOL, _STRING, _LIST = "bool", "string", "list"


class _Flags:
    """BuildKit-style flag parsing: ``--name=value``, ``--bool[=true|false]``."""

    def __init__(self, node: Node, spec: dict[str, str], fail: Callable[[str], Exception]):
        self.values: dict[str, object] = {}
        for word in node.flags:
            name, eq, value = word[2:].partition("=")
            kind = spec.get(name)
            if kind is None:
                raise fail(f"unknown flag: --{name}")
            if kind == _BOOL:
                if eq and value.lower() not in ("true", "false"):
                    raise fail(f"expecting boolean value for flag --{name}, not {value!r}")
                if name in self.values:
                    raise fail(f"duplicate flag specified: --{name}")
                self.values[name] = not eq or value.lower() == "true"
                continue
            if not eq:
                raise fail(f"missing a value on flag: --{name}")
            if kind == _LIST:
                self.values.setdefault(name, [])
                self.values[name].append(value)  # type: ignore[union-attr]
                continue
            if name in self.values:
                raise fail(f"duplicate flag specified: --{name}")
            self.values[name] = value

    def string(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def bool(self, name: str) -> bool | None:
        value = self.values.get(name)
        return value if isinstance(value, bool) else None

    def list(self, name: str) -> list[str]:
        value = self.values.get(name)
        return list(value) if isinstance(value, list) else []


# -- validators shared with the executor -------------------------------------------------
def parse_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``1.5s``, ``300ms``, ``0``) in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    if not text:
        raise InvalidArgument("empty duration: use a number with a unit such as 30s")
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise InvalidArgument(
                f"invalid duration {text!r}: use numbers with units ns, us, ms, s, m, h"
            )
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return int(total)


def parse_ports(word: str) -> tuple[int, int, str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` as (first, last, protocol)."""
    spec, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in port {word!r}: use tcp, udp or sctp")
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        last_text = first_text
    if not (first_text.isdigit() and last_text.isdigit()):
        raise InvalidArgument(f"invalid port {word!r}: use PORT[-PORT][/PROTOCOL]")
    first, last = int(first_text), int(last_text)
    if not (0 < first <= 65535 and 0 < last <= 65535):
        raise InvalidArgument(f"invalid port {word!r}: ports are 1 to 65535")
    if last < first:
        raise InvalidArgument(f"invalid port range {word!r}: the end is below the start")
    return first, last, proto


def validate_signal(text: str) -> str:
    """A signal name (``SIGTERM``, ``TERM``, ``SIGRTMIN+3``) or number; returns it."""
    if text.isdigit():
        if 0 < int(text) <= 64:
            return text
        raise InvalidArgument(f"invalid signal {text!r}: numbers are 1 to 64")
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    match = re.fullmatch(r"SIGRT(MIN|MAX)([+-]\d+)?", name)
    if match:
        offset = int(match.group(2) or 0)
        if (match.group(1) == "MIN" and 0 <= offset <= 30) or (
            match.group(1) == "MAX" and -30 <= offset <= 0
        ):
            return text
    elif name in signal.Signals.__members__ and not name.startswith("SIG_"):
        return text
    raise InvalidArgument(f"invalid signal {text!r}: use a name such as SIGTERM or a number")


def validate_chmod(text: str) -> int:
    """An octal ``--chmod`` value (``755``, ``0644``) as an int."""
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise InvalidArgument(f"invalid --chmod {text!r}: use an octal mode such as 0755")
    return int(text, 8)


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise InvalidArgument(f"invalid size {text!r}: use bytes or a k/m/g/t suffix")
    power = " kmgt".index(match.group(2).lower() or " ")
    return int(match.group(1)) * 1024**power


def _clean_relative(path: str, what: str) -> str:
    if "\x00" in path:
        raise InvalidArgument(f"invalid {what} {path!r}: contains a NUL byte")
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if ".." in path.split("/"):
        raise InvalidArgument(f"invalid {what} {path!r}: '..' is not allowed")
    return clean


def parse_mount(spec: str, env: Mapping[str, str] | None = None, escape: str = "\\") -> Mount:
    """One ``--mount`` value. With ``env`` every value is expanded and validated; without,
    values holding ``$`` are kept as written and checked at expansion time."""
    mount = Mount()
    fields = _csv_fields(spec)
    seen: set[str] = set()
    lexer = Lexer(escape)
    pending: list[tuple[str, str]] = []
    readonly: bool | None = None
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if env is not None and eq:
            try:
                value = lexer.word(value, env)
            except ExpansionError as err:
                raise InvalidArgument(f"--mount {key}: {err}") from None
        if key in seen:
            raise InvalidArgument(f"--mount option {key!r} given twice in {spec!r}")
        seen.add(key)
        if key in ("readonly", "ro", "readwrite", "rw", "required"):
            flag = True
            if eq:
                if value.lower() not in ("true", "false"):
                    raise InvalidArgument(f"invalid --mount {key}={value!r}: use true or false")
                flag = value.lower() == "true"
            if key == "required":
                mount.required = flag
            else:
                readonly = flag if key in ("readonly", "ro") else not flag
            continue
        if not eq:
            raise InvalidArgument(f"invalid --mount option {item!r}: use key=value")
        if key == "type":
            if value not in MOUNT_TYPES:
                raise InvalidArgument(
                    f"unsupported --mount type {value!r}: use {', '.join(MOUNT_TYPES)}"
                )
            mount.type = value
        else:
            pending.append((key, value))
    deferred = env is None
    for key, value in pending:
        literal = not (deferred and "$" in value)
        if key in ("target", "dst", "destination"):
            mount.target = value
        elif key in ("source", "src"):
            mount.source = _clean_relative(value, "--mount source") if literal else value
        elif key == "from":
            if not value:
                raise InvalidArgument("--mount from= needs a stage or image name")
            mount.from_ = value
        elif key == "id":
            if literal:
                _check_id(value, mount.type)
            mount.id = value
        elif key == "sharing":
            if literal and value not in CACHE_SHARING:
                raise InvalidArgument(
                    f"invalid --mount sharing {value!r}: use {', '.join(CACHE_SHARING)}"
                )
            mount.sharing = value
        elif key in ("mode", "uid", "gid"):
            if literal:
                base = 8 if key == "mode" else 10
                if not value.isdigit() or (base == 8 and not re.fullmatch(r"[0-7]+", value)):
                    kind = "an octal mode" if key == "mode" else "a number"
                    raise InvalidArgument(f"invalid --mount {key} {value!r}: use {kind}")
                number = int(value, base)
                if (key == "mode" and number > 0o7777) or number >= 1 << 32:
                    raise InvalidArgument(f"invalid --mount {key} {value!r}: out of range")
                setattr(mount, key, number)
        elif key == "size":
            if mount.type != "tmpfs":
                raise InvalidArgument("--mount size is only valid for type=tmpfs")
            if literal:
                mount.size = _size(value)
        elif key == "env":
            if mount.type != "secret":
                raise InvalidArgument("--mount env is only valid for type=secret")
            mount.env = value
        elif key == "bind-propagation":
            if mount.type != "bind":
                raise InvalidArgument("--mount bind-propagation is only valid for type=bind")
            if value not in BIND_PROPAGATION:
                raise InvalidArgument(
                    f"--mount bind-propagation={value!r} is not allowed: "
                    f"use {' or '.join(BIND_PROPAGATION)}"
                )
            mount.propagation = value
        else:
            raise InvalidArgument(f"unexpected --mount option {key!r} in {spec!r}")
    _finish_mount(mount, readonly, deferred)
    return mount


def _check_id(value: str, kind: str) -> None:
    if not value or not _ID_CHARS.match(value) or len(value) > 255:
        raise InvalidArgument(f"invalid --mount id {value!r}: use 1 to 255 printable characters")
    if kind == "cache" and (value.startswith("/") or ".." in value.split("/")):
        raise InvalidArgument(
            f"invalid cache --mount id {value!r}: it must not be absolute or contain '..'"
        )


def _finish_mount(mount: Mount, readonly: bool | None, deferred: bool) -> None:
    kind = mount.type
    if kind in ("tmpfs", "ssh", "secret") and mount.from_ is not None:
        raise InvalidArgument(f"--mount from= is not valid for type={kind}")
    if kind != "cache" and mount.sharing != "shared":
        raise InvalidArgument(f"--mount sharing= is only valid for type=cache, not {kind}")
    if kind in ("secret", "ssh") and not mount.target:
        if kind == "secret":
            if mount.id is None and mount.env is None:
                raise InvalidArgument("--mount type=secret needs an id or a target")
            if mount.env is None:
                mount.target = "/run/secrets/" + posixpath.basename((mount.id or "").rstrip("/"))
        else:
            mount.target = "/run/buildkit/ssh_agent.0"
    if kind == "ssh" and mount.id is None:
        mount.id = "default"
    if kind == "secret" and mount.id is None and mount.target:
        mount.id = posixpath.basename(mount.target)
    if not mount.target and not (kind == "secret" and mount.env is not None):
        raise InvalidArgument(f"--mount type={kind} needs a target= path")
    if mount.target and not (deferred and "$" in mount.target):
        if "\x00" in mount.target:
            raise InvalidArgument("--mount target contains a NUL byte")
        if not mount.target.startswith("/"):
            raise InvalidArgument(f"--mount target {mount.target!r} must be an absolute path")
        if posixpath.normpath(mount.target) == "/":
            raise InvalidArgument("--mount target cannot be the root directory '/'")
    if kind == "cache" and mount.id is None:
        mount.id = mount.target
    if readonly is not None:
        if kind in ("secret", "ssh") and not readonly:
            raise InvalidArgument(f"--mount type={kind} is always read-only")
        mount.readonly = readonly
    else:
        mount.readonly = kind in ("bind", "secret", "ssh")


def _csv_fields(spec: str) -> list[str]:
    fields: list[str] = []
    cur: list[str] = []
    quote = False
    i = 0
    while i < len(spec):
        ch = spec[i]
        if ch == '"':
            if quote and i + 1 < len(spec) and spec[i + 1] == '"':
                cur.append('"')
                i += 2
                continue
            quote = not quote
        elif ch == "," and not quote:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if quote:
        raise InvalidArgument(f"invalid --mount {spec!r}: unmatched double quote")
    fields.append("".join(cur))
    return [f for f in fields if f.strip()]


# -- building instructions from nodes ----------------------------------------------------
class _Ctx:
    def __init__(self, node: Node, filename: str, escape: str) -> None:
        self.node = node
        self.filename = filename
        self.escape = escape

    def fail(self, problem: str) -> DockerfileError:
        return DockerfileError(self.filename, self.node.line, f"{self.node.cmd.upper()}: {problem}")

    def flags(self, spec: dict[str, str]) -> _Flags:
        return _Flags(self.node, spec, self.fail)

    def checked(self, value: str, check: Callable[[str], object]) -> None:
        if "$" in value:
            return
        try:
            check(value)
        except InvalidArgument as err:
            raise self.fail(str(err)) from None


def _no_flags(ctx: _Ctx) -> None:
    ctx.flags({})


def _pairs(ctx: _Ctx, rest: str, old_form: bool) -> list[tuple[str, str]]:
    words = split_words(rest, ctx.escape)
    if not words:
        raise ctx.fail("requires at least one argument")
    if "=" not in words[0]:
        if not old_form:
            raise ctx.fail(f"can't find = in {words[0]!r}: use name=value")
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise ctx.fail("must have two arguments (name value) or be name=value")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise ctx.fail(f"can't find = in {word!r}: use name=value")
        if not name:
            raise ctx.fail("names can not be blank")
        pairs.append((name, value))
    return pairs


def _command(ctx: _Ctx, rest: str) -> tuple[list[str] | str, bool]:
    array = json_array(rest)
    if array is not None:
        return array, True
    return rest, False


def _from(ctx: _Ctx, base: Instruction) -> Instruction:
    flags = ctx.flags({"platform": _STRING})
    words = ctx.node.rest.split()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise ctx.fail(
                f"invalid stage name {words[2]!r}: start with a letter, then letters, "
                "digits, '-', '_' or '.'"
            )
    elif len(words) == 1:
        name = None
    else:
        raise ctx.fail("use FROM [--platform=PLATFORM] IMAGE [AS NAME]")
    return From(base.line, base.original, words[0], name, flags.string("platform"))


def _run(ctx: _Ctx, base: Instruction) -> Instruction:
    flags = ctx.flags({"mount": _LIST, "network": _STRING, "security": _STRING})
    command, is_json = _command(ctx, ctx.node.rest)
    if not is_json and not str(command).strip():
        raise ctx.fail("requires a command to run")
    network = flags.string("network") or "default"
    if "$" not in network and network not in NETWORK_MODES:
        raise ctx.fail(f"invalid --network {network!r}: use {', '.join(NETWORK_MODES)}")
    security = flags.string("security") or "sandbox"
    if security not in ("sandbox", "insecure"):
        raise ctx.fail(f"invalid --security {security!r}: use sandbox or insecure")
    mounts = []
    for spec in flags.list("mount"):
        try:
            mounts.append(parse_mount(spec, None, ctx.escape))
        except InvalidArgument as err:
            raise ctx.fail(str(err)) from None
    return Run(
        base.line,
        base.original,
        command,
        is_json,
        list(ctx.node.heredocs),
        mounts,
        network,
        security,
        flags.list("mount"),
    )


_COPY_FLAGS = {
    "from": _STRING,
    "chown": _STRING,
    "chmod": _STRING,
    "link": _BOOL,
    "parents": _BOOL,
    "exclude": _LIST,
}
_ADD_FLAGS = {
    "chown": _STRING,
    "chmod": _STRING,
    "link": _BOOL,
    "exclude": _LIST,
    "checksum": _STRING,
    "keep-git-dir": _BOOL,
    "unpack": _BOOL,
}


def _copy(ctx: _Ctx, base: Instruction) -> Instruction:
    is_add = ctx.node.cmd == "add"
    flags = ctx.flags(_ADD_FLAGS if is_add else _COPY_FLAGS)
    array = json_array(ctx.node.rest)
    words = array if array is not None else ctx.node.rest.split()
    if len(words) < 2:
        raise ctx.fail("requires at least two arguments: a source and a destination")
    sources: list[str | Heredoc] = []
    docs = {doc.name: doc for doc in ctx.node.heredocs}
    for word in words[:-1]:
        doc = None
        if array is None and word.startswith(("<<", *"0123456789")):
            found = parse_heredoc(word, ctx.escape, ctx.filename, ctx.node.line)
            doc = docs.get(found.name) if found else None
        sources.append(doc if doc is not None else word)
    chmod = flags.string("chmod")
    if chmod is not None:
        ctx.checked(chmod, validate_chmod)
    for pattern in flags.list("exclude"):
        if not pattern:
            raise ctx.fail("--exclude needs a pattern")
    common = {
        "sources": sources,
        "dest": words[-1],
        "json": array is not None,
        "chown": flags.string("chown"),
        "chmod": chmod,
        "link": bool(flags.bool("link")),
        "exclude": flags.list("exclude"),
    }
    if not is_add:
        from_ = flags.string("from")
        if from_ is not None and not from_:
            raise ctx.fail("--from needs a stage name, index or image")
        return Copy(
            base.line, base.original, from_=from_, parents=bool(flags.bool("parents")), **common
        )
    checksum = flags.string("checksum")
    if checksum is not None:
        if "$" not in checksum and not is_digest(checksum):
            raise ctx.fail(f"invalid --checksum {checksum!r}: use sha256:<64 hex digits>")
        for src in sources:
            if isinstance(src, Heredoc) or not _is_remote(src):
                raise ctx.fail("--checksum is only valid for HTTP(S) and git sources")
    keep_git = bool(flags.bool("keep-git-dir"))
    return Add(
        base.line,
        base.original,
        checksum=checksum,
        keep_git_dir=keep_git,
        unpack=flags.bool("unpack"),
        **common,
    )


def _is_remote(src: str) -> bool:
    return src.startswith(("http://", "https://", "git@", "git://")) or src.endswith(".git")


def _env(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    return Env(base.line, base.original, _pairs(ctx, ctx.node.rest, old_form=True))


def _label(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    return Label(base.line, base.original, _pairs(ctx, ctx.node.rest, old_form=True))


def _arg(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    words = split_words(ctx.node.rest, ctx.escape)
    if not words:
        raise ctx.fail("requires at least one argument: ARG NAME[=DEFAULT]")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, eq, value = word.partition("=")
        if not name:
            raise ctx.fail(f"invalid argument {word!r}: the name is empty")
        if not re.fullmatch(r"[^\s\"'$=]+", name):
            raise ctx.fail(f"invalid argument name {name!r}")
        pairs.append((name, value if eq else None))
    return Arg(base.line, base.original, pairs)


def _single(cls: type, what: str) -> Callable[[_Ctx, Instruction], Instruction]:
    def build(ctx: _Ctx, base: Instruction) -> Instruction:
        _no_flags(ctx)
        rest = ctx.node.rest.strip()
        if not rest:
            raise ctx.fail(f"requires exactly one argument: the {what}")
        return cls(base.line, base.original, rest)

    return build


def _stopsignal(ctx: _Ctx, base: Instruction) -> Instruction:
    built = _single(StopSignal, "signal")(ctx, base)
    assert isinstance(built, StopSignal)
    if len(built.signal.split()) != 1:
        raise ctx.fail("requires exactly one argument: the signal")
    ctx.checked(built.signal, validate_signal)
    return built


def _expose(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    ports = ctx.node.rest.split()
    if not ports:
        raise ctx.fail("requires at least one port")
    for word in ports:
        ctx.checked(word, parse_ports)
    return Expose(base.line, base.original, ports)


def _volume(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    array = json_array(ctx.node.rest)
    paths = array if array is not None else ctx.node.rest.split()
    if not paths:
        raise ctx.fail("requires at least one path")
    if any(not p.strip() for p in paths):
        raise ctx.fail("a volume path can not be an empty string")
    return Volume(base.line, base.original, paths, array is not None)


def _cmd_like(cls: type) -> Callable[[_Ctx, Instruction], Instruction]:
    def build(ctx: _Ctx, base: Instruction) -> Instruction:
        _no_flags(ctx)
        command, is_json = _command(ctx, ctx.node.rest)
        return cls(base.line, base.original, command, is_json)

    return build


def _shell(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    array = json_array(ctx.node.rest)
    if array is None:
        raise ctx.fail('requires the arguments in JSON form, e.g. SHELL ["/bin/sh", "-c"]')
    if not array:
        raise ctx.fail("requires at least one argument")
    return Shell(base.line, base.original, array)


def _healthcheck(ctx: _Ctx, base: Instruction) -> Instruction:
    flags = ctx.flags(
        {
            "interval": _STRING,
            "timeout": _STRING,
            "start-period": _STRING,
            "start-interval": _STRING,
            "retries": _STRING,
        }
    )
    parts = ctx.node.rest.strip().split(None, 1)
    if not parts:
        raise ctx.fail("requires NONE or CMD followed by a command")
    kind = parts[0].upper()
    if kind == "NONE":
        if len(parts) > 1 or ctx.node.flags:
            raise ctx.fail("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(base.line, base.original, None)
    if kind != "CMD":
        raise ctx.fail(f"unknown type {parts[0]!r}: use CMD or NONE")
    if len(parts) < 2 or not parts[1].strip():
        raise ctx.fail("CMD needs a command")
    command, is_json = _command(ctx, parts[1])
    if is_json:
        if not command:
            raise ctx.fail("CMD needs a command")
        test = ["CMD", *command]
    else:
        test = ["CMD-SHELL", str(command)]
    durations: dict[str, int | None] = {}
    for name in ("interval", "timeout", "start-period", "start-interval"):
        text = flags.string(name)
        if text is None:
            durations[name] = None
            continue
        try:
            value = parse_duration(text)
        except InvalidArgument as err:
            raise ctx.fail(f"--{name}: {err}") from None
        if value < 0:
            raise ctx.fail(f"--{name} cannot be negative")
        if value < MIN_HEALTH_DURATION:  # docker 20.10 refuses a 0 given explicitly too
            raise ctx.fail(f"--{name} {text!r} cannot be less than 1ms")
        durations[name] = value
    retries_text = flags.string("retries")
    retries = None
    if retries_text is not None:
        if not retries_text.isdigit():
            raise ctx.fail(f"invalid --retries {retries_text!r}: use a whole number")
        retries = int(retries_text)
        if retries < 1:
            raise ctx.fail(f"--retries must be at least 1 (not {retries})")
    return Healthcheck(
        base.line,
        base.original,
        test,
        durations["interval"],
        durations["timeout"],
        durations["start-period"],
        durations["start-interval"],
        retries,
    )


def _onbuild(ctx: _Ctx, base: Instruction) -> Instruction:
    _no_flags(ctx)
    expression = ctx.node.rest.strip()
    if not expression:
        raise ctx.fail("requires an instruction to run later")
    parts = expression.split(None, 1)
    cmd = parts[0].lower()
    if cmd in ("onbuild", "from", "maintainer"):
        raise ctx.fail(f"{cmd.upper()} isn't allowed as an ONBUILD trigger")
    flags, rest = extract_flags(parts[1] if len(parts) > 1 else "")
    sub = Node(cmd, rest, expression, ctx.node.line, ctx.node.end_line, flags=flags)
    trigger = build_instruction(sub, ctx.filename, ctx.escape)
    return Onbuild(base.line, base.original, expression, trigger)


_BUILDERS: dict[str, Callable[[_Ctx, Instruction], Instruction]] = {
    "from": _from,
    "run": _run,
    "copy": _copy,
    "add": _copy,
    "env": _env,
    "label": _label,
    "arg": _arg,
    "workdir": _single(Workdir, "directory"),
    "user": _single(User, "user"),
    "expose": _expose,
    "volume": _volume,
    "cmd": _cmd_like(Cmd),
    "entrypoint": _cmd_like(Entrypoint),
    "shell": _shell,
    "healthcheck": _healthcheck,
    "stopsignal": _stopsignal,
    "onbuild": _onbuild,
    "maintainer": _single(Maintainer, "maintainer name"),
}


def build_instruction(node: Node, filename: str = "Dockerfile", escape: str = "\\") -> Instruction:
    """The typed instruction for one parsed node (flags validated)."""
    ctx = _Ctx(node, filename, escape)
    builder = _BUILDERS.get(node.cmd)
    if builder is None:
        shown = node.cmd if len(node.cmd) <= 40 else node.cmd[:37] + "..."
        raise DockerfileError(filename, node.line, f"unknown instruction: {shown.upper()}")
    return builder(ctx, Instruction(node.line, node.original))


def parse_dockerfile(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and type a whole Dockerfile into global ARGs and stages."""
    parsed: ParsedFile = parse(text, filename)
    meta_args: list[Arg] = []
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for node in parsed.nodes:
        instruction = build_instruction(node, filename, parsed.escape)
        if isinstance(instruction, From):
            if instruction.stage_name is not None:
                if instruction.stage_name in names:
                    raise DockerfileError(
                        filename,
                        node.line,
                        f"duplicate stage name {instruction.stage_name!r} "
                        f"(first on stage {names[instruction.stage_name]})",
                    )
                names[instruction.stage_name] = len(stages)
            stages.append(Stage(len(stages), instruction))
        elif not stages:
            if not isinstance(instruction, Arg):
                raise DockerfileError(
                    filename,
                    node.line,
                    f"{node.cmd.upper()} before the first FROM: only ARG may come first",
                )
            meta_args.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileError(filename, 0, "no FROM instruction: a Dockerfile needs one")
    return Dockerfile(
        filename, parsed.directives, parsed.escape, meta_args, stages, parsed.warnings
    )
