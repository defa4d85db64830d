"""Word and variable expansion for Dockerfile arguments, as BuildKit's shell lexer does it.

``Lexer.word`` expands one word (``COPY`` sources, ``WORKDIR``, ``ENV`` values...),
``Lexer.words`` expands and splits on unquoted whitespace (``EXPOSE``, ``VOLUME``, heredoc
names). Supported: ``$V``, ``${V}``, ``${V:-x}``, ``${V-x}``, ``${V:+x}``, ``${V+x}``,
``${V:?msg}``, ``${V?msg}``, ``${V#p}``, ``${V##p}``, ``${V%p}``, ``${V%%p}``, ``${V/p/r}``,
``${V//p/r}``; single quotes keep everything literal (no escapes inside), double quotes keep
everything but ``$`` and the escapes of ``"``, ``$`` and the escape character; the escape
character (``\\`` or ``\\``` with ``# escape=```) quotes the next character elsewhere.
Unset variables expand to the empty string. Errors raise ``ExpansionError`` (one line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.errors import InvalidArgument

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ExpansionError(InvalidArgument):
    """A word could not be expanded (unbalanced quotes, bad substitution...)."""


class _Words:
    """Collects the words of an expansion: unquoted whitespace separates words."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.word:
            return [*self.words, self.word]
        return list(self.words)


class _Scan:
    """A cursor over the source text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class Lexer:
    """Expands words with an environment, using ``escape`` as the escape character."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape character {escape!r}: use \\ or `")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = False
        self.skip_unset = False

    # -- public -------------------------------------------------------------------------
    def word(self, text: str, env: Mapping[str, str]) -> str:
        """``text`` expanded as one word (whitespace kept, quotes removed)."""
        return _Run(self, text, env).process()[0]

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """``text`` expanded and split into words on unquoted whitespace."""
        return _Run(self, text, env).process()[1]

    def word_matches(self, text: str, env: Mapping[str, str]) -> tuple[str, set[str]]:
        """``text`` expanded as one word, and the names of the variables it used."""
        run = _Run(self, text, env)
        return run.process()[0], run.used


class _Run:
    """One expansion of one source text."""

    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.esc = lexer.escape
        self.scan = _Scan(text)
        self.env = env
        self.used: set[str] = set()
        self.source = text

    def _fail(self, problem: str) -> ExpansionError:
        shown = self.source if len(self.source) <= 80 else self.source[:77] + "..."
        return ExpansionError(f"cannot expand {shown!r}: {problem}")

    def process(self) -> tuple[str, list[str]]:
        return self._stop_on("", self.lx.raw_escapes)

    def _get(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.used.add(name)
            return self.env[name], True
        return "", False

    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        scan = self.scan
        while scan.peek():
            ch = scan.peek()
            if stop and ch == stop:
                scan.next()
                return "".join(result), words.result()
            if ch == "$":
                value = self._dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "'":
                value = self._single()
                result.append(value)
                words.add_raw_string(value)
            elif ch == '"':
                value = self._double()
                result.append(value)
                words.add_raw_string(value)
            else:
                ch = scan.next()
                if ch == self.esc:
                    if raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = scan.next()
                    if not ch:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise self._fail(f"missing {stop!r}")
        return "".join(result), words.result()

    def _single(self) -> str:
        quote = self.scan.next()
        out = [quote] if self.lx.raw_quotes else []
        while True:
            ch = self.scan.next()
            if not ch:
                raise self._fail("unmatched single quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        quote = self.scan.next()
        out = [quote] if self.lx.raw_quotes else []
        while True:
            ch = self.scan.peek()
            if not ch:
                raise self._fail("unmatched double quote")
            if ch == '"':
                self.scan.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self.scan.next()
            if ch == self.esc:
                if self.lx.raw_escapes:
                    out.append(ch)
                nxt = self.scan.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.esc):
                    ch = self.scan.next()
                elif not self.lx.raw_escapes:
                    out.append(ch)
                    continue
                else:
                    continue
            out.append(ch)

    def _name(self) -> str:
        scan = self.scan
        name: list[str] = []
        while scan.peek():
            ch = scan.peek()
            if not name and ch.isdigit():
                while scan.peek() and scan.peek().isdigit():
                    name.append(scan.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return scan.next()
            if not (ch.isalnum() or ch == "_"):
                break
            name.append(scan.next())
        return "".join(name)

    def _dollar(self) -> str:
        scan = self.scan
        scan.next()  # the $
        if scan.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._get(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value
        scan.next()  # the {
        first = scan.peek()
        if not first:
            raise self._fail("missing '}'")
        if first in "{}:":
            raise self._fail("bad substitution")
        name = self._name()
        ch = scan.next()
        if ch == "}":
            value, found = self._get(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value
        if not ch:
            raise self._fail("missing '}'")
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = scan.next()
            modifier += ch
        if ch and ch in "+-?#%":
            word, _ = self._stop_on("}", ch in "#%")
            value, found = self._get(name)
            if self.lx.skip_unset and not found:
                return "${" + name + modifier + word + "}"
            empty = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if empty else value
            if ch == "+":
                return "" if empty else word
            if ch == "?":
                if not found:
                    raise self._fail(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise self._fail(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = bool(word) and word[0] == ch
            if greedy:
                word = word[1:]
            return _trim(value, word, suffix=ch == "%", greedy=greedy)
        if ch == "/" and not null_is_unset:
            replace_all = scan.peek() == "/"
            if replace_all:
                scan.next()
            pattern, _ = self._stop_on("/", True)
            replacement, _ = self._stop_on("}", True)
            value, found = self._get(name)
            if self.lx.skip_unset and not found:
                sep = "//" if replace_all else "/"
                return "${" + name + sep + pattern + "/" + replacement + "}"
            return _replace(value, pattern, replacement, replace_all)
        raise self._fail(f"unsupported modifier {modifier!r} in substitution")


def _glob(pattern: str) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, ``[...]``, ``\\`` escapes) as a regex."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1 if i < n and pattern[i] in "!^" else i)
            if end < 0:
                out.append("\\[")
                continue
            body = pattern[i:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    try:
        return re.compile("".join(out), re.S)
    except re.error:
        return re.compile(re.escape(pattern), re.S)


def _trim(value: str, pattern: str, *, suffix: bool, greedy: bool) -> str:
    rx = _glob(pattern)
    sizes = range(len(value) + 1)
    order = sorted(sizes, reverse=greedy)
    for n in order:
        part = value[len(value) - n :] if suffix else value[:n]
        if rx.fullmatch(part):
            return value[: len(value) - n] if suffix else value[n:]
    return value


def _replace(value: str, pattern: str, replacement: str, replace_all: bool) -> str:
    if not pattern:
        return value
    rx = _glob(pattern)
    out: list[str] = []
    i = 0
    while i <= len(value):
        match = None
        for end in range(len(value), i, -1):  # longest match at this position
            if rx.fullmatch(value, i, end):
                match = end
                break
        if match is None:
            if i < len(value):
                out.append(value[i])
            i += 1
            continue
        out.append(replacement)
        i = match
        if not replace_all:
            out.append(value[i:])
            return "".join(out)
    return "".join(out)
