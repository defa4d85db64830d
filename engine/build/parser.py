"""Dockerfile lexical structure: directives, comments, continuations, flags and heredocs.

``parse(text, filename)`` turns a Dockerfile into ``Node`` objects, one per instruction,
following BuildKit's parser: parser directives (``syntax``, ``escape``, ``check``) only at
the very top, whole-line comments dropped (also inside continuations), the escape
character at a line end joining lines, empty continuation lines skipped with a warning,
leading ``--flag`` words split off, and heredoc bodies (``<<EOF``, ``<<-EOF``, quoted
names) read for RUN, COPY and ADD in shell form. Interpreting a node's arguments is
``engine.build.instructions``' job; the helpers ``json_array``, ``split_words`` and
``split_whitespace`` are shared with it. Errors are ``DockerfileError``: "file:line: problem".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.build.expand import ExpansionError, Lexer
from engine.errors import InvalidArgument

DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_COMMANDS = frozenset(("run", "copy", "add"))
MAX_DOCKERFILE = 16 << 20  # bytes; a Dockerfile larger than this is refused

_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be parsed; the message names the file and line."""

    def __init__(self, filename: str, line: int, problem: str) -> None:
        where = f"{filename}:{line}" if line else filename
        super().__init__(f"{where}: {problem}")
        self.filename = filename
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Heredoc:
    """One heredoc body: ``name`` is its delimiter, ``expand`` false when it was quoted."""

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0


@dataclass
class Node:
    """One instruction as written: lower-case command, leading flags and the rest."""

    cmd: str
    rest: str
    original: str
    line: int
    end_line: int
    flags: list[str] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass
class ParsedFile:
    """A parsed Dockerfile: its nodes, directives, escape character and warnings."""

    filename: str
    nodes: list[Node]
    directives: dict[str, str]
    escape: str = "\\"
    warnings: list[str] = field(default_factory=list)


def _trim_newline(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


class _Directives:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.values: dict[str, str] = {}
        self.done = False
        self.escape = "\\"

    def feed(self, line: str, lineno: int) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line)
        if not match:
            self.done = True
            return
        key, value = match.group(1).lower(), match.group(2)
        if key not in DIRECTIVES:
            self.done = True  # an ordinary comment that happens to look like one
            return
        if key in self.values:
            raise DockerfileError(
                self.filename, lineno, f"only one '{key}' parser directive can be used"
            )
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(
                    self.filename, lineno, f"invalid escape character {value!r}: use \\ or `"
                )
            self.escape = value
        self.values[key] = value


def parse(text: str | bytes, filename: str = "Dockerfile") -> ParsedFile:
    """Parse a whole Dockerfile (see the module docstring)."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCKERFILE:
            raise DockerfileError(filename, 0, f"file too large (limit {MAX_DOCKERFILE} bytes)")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DockerfileError(filename, 0, f"not valid UTF-8 (byte {err.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise DockerfileError(filename, 0, "contains a NUL byte: not a text file")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    directives = _Directives(filename)
    nodes: list[Node] = []
    warnings: list[str] = []
    i = 0
    total = len(lines)
    while i < total:
        raw = _trim_newline(lines[i])
        i += 1
        start = i
        directives.feed(raw, i)
        escape = directives.escape
        cont = re.compile(re.escape(escape) + r"[ \t]*$")
        line = raw.lstrip(" \t")
        if line.startswith("#"):
            continue
        line, done = _trim_continuation(line, cont)
        if done and not line.strip():
            continue
        empty_cont = False
        while not done and i < total:
            raw = _trim_newline(lines[i])
            i += 1
            if _is_comment(raw):
                continue
            if not raw.strip():
                empty_cont = True
                continue
            piece, done = _trim_continuation(raw, cont)
            line += piece
        directives.done = True
        if not line.strip():
            continue
        if empty_cont:
            warnings.append(f"{filename}:{start}: empty continuation line(s) found")
        node = _node(line, filename, start, escape)
        if node.cmd in HEREDOC_COMMANDS and "<<" in node.rest and json_array(node.rest) is None:
            for doc in _heredoc_names(line, escape, filename, start):
                content: list[str] = []
                while True:
                    if i >= total:
                        raise DockerfileError(filename, start, f"unterminated heredoc {doc.name!r}")
                    body = _trim_newline(lines[i])
                    i += 1
                    probe = body.lstrip("\t") if doc.chomp else body
                    if probe == doc.name:
                        break
                    content.append(probe + "\n")
                node.heredocs.append(
                    Heredoc(doc.name, "".join(content), doc.expand, doc.chomp, doc.fd)
                )
        node.end_line = i
        nodes.append(node)
    return ParsedFile(filename, nodes, dict(directives.values), directives.escape, warnings)


def _trim_continuation(line: str, cont: re.Pattern[str]) -> tuple[str, bool]:
    match = cont.search(line)
    if match:
        return line[: match.start()], False
    return line, True


def _node(line: str, filename: str, lineno: int, escape: str) -> Node:
    stripped = line.strip()
    parts = stripped.split(None, 1)
    cmd = parts[0].lower()
    rest = parts[1] if len(parts) > 1 else ""
    flags, rest = extract_flags(rest)
    return Node(cmd, rest, stripped, lineno, lineno, flags=flags)


def extract_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--name[=value]`` words (quotes respected) and the text after them."""
    flags: list[str] = []
    pos = 0
    n = len(rest)
    while True:
        while pos < n and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return flags, rest[pos:]
        start = pos
        quote = ""
        while pos < n:
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch.isspace():
                break
            pos += 1
        word = rest[start:pos]
        if word == "--":
            return flags, rest[pos:].lstrip()
        flags.append(word)


class _Doc:
    def __init__(self, name: str, expand: bool, chomp: bool, fd: int) -> None:
        self.name, self.expand, self.chomp, self.fd = name, expand, chomp, fd


def _heredoc_names(line: str, escape: str, filename: str, lineno: int) -> list[_Doc]:
    raw_lexer = Lexer(escape, raw_quotes=True)
    raw_lexer.raw_escapes = True
    try:
        words = raw_lexer.words(line, {})
    except ExpansionError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word, escape, filename, lineno)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc(word: str, escape: str, filename: str, lineno: int) -> _Doc | None:
    """The heredoc a word such as ``<<-"EOF"`` opens, or None when it opens none."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    fd = int(match.group(1)) if match.group(1) else 0
    chomp = match.group(2) == "-"
    rest = match.group(3)
    try:
        words = Lexer(escape).words(rest, {})
        raw_words = Lexer(escape, raw_quotes=True).words(rest, {})
    except ExpansionError as err:
        raise DockerfileError(filename, lineno, f"bad heredoc name {rest!r}: {err}") from None
    if len(words) != 1 or len(raw_words) != 1:
        return None
    name, raw = words[0], raw_words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw.count("'") + raw.count('"')
    return _Doc(name, quotes == raw_quotes, chomp, fd)


def json_array(rest: str) -> list[str] | None:
    """``rest`` as a JSON array of strings (exec form), or None when it is shell form."""
    text = rest.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def split_whitespace(rest: str) -> list[str]:
    """``rest`` split on whitespace, quotes not considered."""
    return rest.split()


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """``rest`` split on whitespace outside quotes; quotes and escapes are kept in words."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    in_word = False
    quote = ""
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if (in_word or quote) and (blank_ok or word):
        words.append("".join(word))
    return words
