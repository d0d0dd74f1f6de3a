"""Every ``aws`` command a Markdown page gives, as the shell would see it, with where it is written.

Sources: fenced code blocks (``sh``/``bash``/``shell``/``console`` or no language) and inline code spans that
start with ``aws ``, including table cells. A logical line joins backslash continuations and lines inside an
open quote (a multi-line jq filter). ``$(...)`` substitutions are parsed recursively, so the ``aws`` commands
inside ``VAR=$(aws ...)`` or ``"$(aws ...)"`` are found too; their place in the word is kept as a marker.
``<...>`` placeholders become markers as well, to be filled with representative values later.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGS = {"", "sh", "bash", "shell", "console", "zsh"}
FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)")
INLINE_AWS = re.compile(r"`(aws [^`]+)`")
PLACEHOLDER = re.compile(r"<(?![<\s])[^<>\n]*[^<>\s]>")
SUBST = "\x00"  # marker around the index of a $(...) body
HOLE = "\x01"  # marker around the index of a <placeholder>
SEPARATORS = ("&&", "||", ";", "|", "&", "\n")
KEYWORDS = {"do", "then", "else", "elif", "!", "{", "time", "if", "while", "until"}


@dataclass
class Command:
    """One simple command (``aws rds ...``) of a page."""

    source: str
    line: int
    words: list[str]  # shell words, quotes removed; may hold SUBST/HOLE markers and $VAR references
    substitutions: list[str]  # bodies of the $(...) markers, by index
    placeholders: list[str]  # texts of the <...> markers, by index
    in_loop: bool
    block: int  # index of the fenced block in the page; -1 for inline code
    text: str  # as written (one logical line or the substitution body)
    function: str | None = None  # the shell function whose body holds it

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def is_aws(self) -> bool:
        return bool(self.words) and self.words[0] == "aws"


@dataclass
class Assignment:
    name: str
    value: str  # as written after '=' (markers resolved back to text)
    line: int
    exported: bool


@dataclass
class Page:
    source: str
    commands: list[Command] = field(default_factory=list)  # every simple command, in page order
    assignments: list[Assignment] = field(default_factory=list)
    functions: dict[str, list[Command]] = field(default_factory=dict)  # shell functions the page defines

    def aws_commands(self) -> list[Command]:
        return [c for c in self.commands if c.is_aws]

    def polls(self, function: str) -> bool:
        """True when the page defines ``function`` with an ``aws`` call inside a loop (a bounded poll)."""
        return any(c.is_aws and c.in_loop for c in self.functions.get(function, []))


# ------------------------------------------------------------------------------------------ Markdown → lines
def _code_lines(text: str) -> Iterator[tuple[int, int, str]]:
    """(line number, block index or -1, shell text): fenced shell blocks line by line, inline aws spans."""
    fence: str | None = None
    shell = False
    block = -1
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, shell = match.group(2), match.group(3).lower() in SHELL_LANGS
            block += 1
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            elif shell:
                yield number, block, line
            continue
        for span in INLINE_AWS.finditer(line):
            yield number, -1, span.group(1)


def _open_quote(text: str) -> bool:
    """True while a quote or $( is open at the end of ``text``."""
    try:
        _scan(text, 0, top=True)
    except _Unbalanced:
        return True
    return False


def logical_lines(text: str) -> Iterator[tuple[int, int, str]]:
    pending: tuple[int, int, str] | None = None
    glue = "\n"
    for number, block, line in _code_lines(text):
        if pending is not None and pending[1] == block and block >= 0:
            pending = (pending[0], block, pending[2] + glue + line)
        else:
            if pending is not None:
                yield pending
            pending = (number, block, line)
        body = pending[2]
        glue = "\n"
        if body.rstrip().endswith("\\"):
            pending = (pending[0], block, body.rstrip()[:-1])
            glue = " "  # a continuation: the shell reads one line
            continue
        if block >= 0 and (_open_quote(body) or body.rstrip().endswith("|")):
            continue
        yield pending
        pending = None
    if pending is not None:
        yield pending


# ------------------------------------------------------------------------------------------ shell scanning
class _Unbalanced(ValueError):
    pass


def _scan(text: str, start: int, *, top: bool) -> tuple[str, list[str], int]:
    """Walk ``text`` from ``start``: return (text with $(...) replaced by markers, bodies, end index).

    At top level, a comment (``#`` at a word start, outside quotes) ends the text. Inside a substitution the
    walk stops at its closing parenthesis.
    """
    out: list[str] = []
    bodies: list[str] = []
    quote = ""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if quote == "'":
            out.append(char)
            if char == "'":
                quote = ""
        elif char == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 1
        elif char == "$" and text.startswith("$(", i) and not text.startswith("$((", i):
            _inner, _inner_bodies, end = _scan(text, i + 2, top=False)
            bodies.append(text[i + 2 : end])
            out.append(f"{SUBST}{len(bodies) - 1}{SUBST}")
            i = end + 1
            continue
        elif quote == '"':
            out.append(char)
            if char == '"':
                quote = ""
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "#" and top and (i == start or text[i - 1] in " \t\n;"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif char == "(" and not top:
            depth += 1
            out.append(char)
        elif char == ")" and not top:
            if depth == 0:
                return "".join(out), bodies, i
            depth -= 1
            out.append(char)
        else:
            out.append(char)
        i += 1
    if quote or not top:
        raise _Unbalanced(text[start:])
    return "".join(out), bodies, i


def _split_top(text: str) -> list[str]:
    """Split at ; && || | & and newlines outside quotes (markers never contain these)."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(text):
                current.append(text[i : i + 2])
                i += 2
                continue
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        elif any(text.startswith(sep, i) for sep in SEPARATORS) and not text.startswith("<<<", i - 2):
            sep = next(sep for sep in SEPARATORS if text.startswith(sep, i))
            parts.append("".join(current))
            current = []
            i += len(sep)
            continue
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _holes(text: str, placeholders: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        placeholders.append(match.group(0))
        return f"{HOLE}{len(placeholders) - 1}{HOLE}"

    return PLACEHOLDER.sub(replace, text)


def unmark(word: str, bodies: list[str], placeholders: list[str]) -> str:
    word = re.sub(f"{SUBST}(\\d+){SUBST}", lambda m: f"$({bodies[int(m.group(1))]})", word)
    return re.sub(f"{HOLE}(\\d+){HOLE}", lambda m: placeholders[int(m.group(1))], word)


class _Walker:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.loop_depth = 0
        self.function: str | None = None

    def line(self, number: int, block: int, text: str) -> None:
        placeholders: list[str] = []
        marked, bodies, _end = _scan(_holes(text, placeholders), 0, top=True)
        for part in _split_top(marked):
            self.simple(number, block, part, bodies, placeholders, text)

    def simple(self, number: int, block: int, part: str, bodies: list[str], placeholders: list[str], text: str) -> None:
        try:
            words = shlex.split(part, posix=True)
        except ValueError:
            words = part.split()
        while words and words[0] in KEYWORDS | {"for"}:
            keyword = words.pop(0)
            if keyword == "do":
                self.loop_depth += 1
            if keyword == "for":
                words = []
        if words and words[0] == "done":
            self.loop_depth = max(0, self.loop_depth - 1)
            return
        if words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\(\)", words[0]):
            self.function = words[0][:-2]
            self.page.functions[self.function] = []
            return
        if words == ["}"]:
            self.function = None
            return
        exported = bool(words) and words[0] == "export"
        if exported:
            words = words[1:]
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            name, value = words.pop(0).split("=", 1)
            self.page.assignments.append(Assignment(name, unmark(value, bodies, placeholders), number, exported))
        if words and words[0] == "read":
            for name in words[1:]:
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    self.page.assignments.append(Assignment(name, "$(read)", number, False))
        words = [w for w in words if not re.match(r"^(\d?>|<|\d?>>|<<<)", w)]
        if words:
            command = Command(
                self.page.source, number, words, bodies, placeholders, self.loop_depth > 0, block, text, self.function
            )
            self.page.commands.append(command)
            if self.function is not None:
                self.page.functions[self.function].append(command)
        # the commands inside this part's substitutions (nested ones too), in order
        for index in sorted({int(m) for m in re.findall(f"{SUBST}(\\d+){SUBST}", part)}):
            self.line(number, block, bodies[index])


def parse_page(source: str, text: str) -> Page:
    page = Page(source)
    walker = _Walker(page)
    for number, block, line in logical_lines(text):
        walker.line(number, block, line)
    return page


def markdown_files(root: Path) -> list[Path]:
    skip = {".git", ".venv", "build", "tmp", "node_modules", "dist", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    return sorted(
        path
        for path in root.rglob("*.md")
        if not any(part in skip or part.startswith(".") for part in path.relative_to(root).parts[:-1])
    )
