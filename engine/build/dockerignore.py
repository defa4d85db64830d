"""``.dockerignore`` files with docker's semantics (moby/patternmatcher, docker CLI).

``read_patterns(text)`` cleans the lines as docker does: ``#`` comments, blank lines dropped,
``filepath.Clean``, a leading ``/`` removed, ``!`` exceptions. ``PatternMatcher.excluded(path)``
answers like ``MatchesOrParentMatches``: the last matching pattern wins, and a pattern matching
a parent directory matches everything inside it. ``*`` and ``?`` stop at ``/``, ``**`` crosses
directories, ``[...]`` classes and ``\\`` escapes work as in Go's ``filepath.Match``.
``PatternMatcher.may_descend(dir)`` tells a walker whether an excluded directory can still hold
re-included files, as the docker CLI's walker decides. ``for_build`` adds the CLI's rule that
the Dockerfile and ``.dockerignore`` are always sent.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from engine.errors import InvalidArgument

_REGEX_SPECIAL = set(".+()|{}$^")


@dataclass
class Pattern:
    """One cleaned pattern; ``exclusion`` is true for ``!`` exceptions."""

    text: str
    exclusion: bool
    kind: str = "exact"  # exact | prefix | suffix | regexp
    regex: re.Pattern[str] | None = None

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(text: str, exclusion: bool) -> Pattern:
    out = ["^"]
    kind = "exact"
    i, n = 0, len(text)
    index = 0
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        index += 1
    regex = None
    if kind == "regexp":
        out.append("$")
        source = "".join(out)
        try:
            regex = re.compile(source, re.S)
        except re.error as err:
            raise InvalidArgument(
                f"invalid .dockerignore pattern {text!r}: {err.msg} (fix or remove the line)"
            ) from None
    return Pattern(text, exclusion, kind, regex)


def go_glob(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` as a regex (COPY/ADD source globs): ``*`` and ``?`` stop at
    ``/``, ``[^...]`` negates a class (``!`` is a plain character there), ``\\`` escapes."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            parts = ["["]
            if i < n and pattern[i] == "^":
                parts.append("^")
                i += 1
            ranges = 0
            while i < n and (pattern[i] != "]" or ranges == 0):
                c = pattern[i]
                i += 1
                if c == "\\" and i < n:
                    c = pattern[i]
                    i += 1
                elif c == "-" and ranges and i < n and pattern[i] != "]":
                    parts.append("-")
                    continue
                parts.append(re.escape(c))
                ranges += 1
            if i >= n or ranges == 0:
                raise InvalidArgument(f"syntax error in pattern {pattern!r}: unclosed [ class")
            i += 1
            out.append("".join(parts) + "]")
        else:
            out.append(re.escape(ch))
    try:
        return re.compile("".join(out) + r"\Z", re.S)
    except re.error as err:
        raise InvalidArgument(f"syntax error in pattern {pattern!r}: {err.msg}") from None


def clean_pattern(line: str) -> str | None:
    """One ``.dockerignore`` line cleaned the way docker reads it, or None when skipped."""
    if line.startswith("#"):
        return None
    pattern = line.strip()
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip()
    if pattern:
        pattern = posixpath.normpath(pattern)
        if pattern.startswith("//"):
            pattern = "/" + pattern.lstrip("/")
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def read_patterns(text: str | bytes) -> list[str]:
    """The cleaned patterns of a ``.dockerignore`` file's text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    out = []
    for line in text.splitlines():
        pattern = clean_pattern(line)
        if pattern is not None:
            out.append(pattern)
    return out


class PatternMatcher:
    """Decides which context paths (relative, ``/``-separated) are excluded."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            exclusion = raw.startswith("!")
            text = raw[1:] if exclusion else raw
            if not text:
                raise InvalidArgument(
                    "illegal exclusion pattern '!' in .dockerignore: name what to re-include"
                )
            self.patterns.append(_compile(text, exclusion))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """True when ``path`` (or one of its parent directories) is excluded."""
        path = path.strip("/")
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path)
            if not hit:
                for i in range(len(parents)):
                    if pattern.matches("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_descend(self, directory: str) -> bool:
        """Whether an excluded directory may hold files an exception re-includes."""
        if not self.has_exclusions:
            return False
        prefix = directory.strip("/") + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def for_build(patterns: list[str], dockerfile: str | None) -> PatternMatcher:
    """A matcher for a build context: ``.dockerignore`` and the Dockerfile are always sent."""
    patterns = list(patterns)
    if PatternMatcher(patterns).excluded(".dockerignore"):
        patterns.append("!.dockerignore")
    if dockerfile:
        name = dockerfile.replace("\\", "/").strip("/")
        if PatternMatcher(patterns).excluded(name):
            patterns.append("!" + name)
    return PatternMatcher(patterns)
