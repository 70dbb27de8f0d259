"""The ``supervisor …`` commands the documentation shows, harvested so tests can run them.

From the Markdown files (README.md, examples/README.md, examples/*/README.md, docs/*.md):
every line of a fenced code block that starts with ``supervisor `` (or ``$ supervisor ``)
and every inline code span that does; from ``--help``: every epilog line that does.
A command's ``argv`` drops the word ``supervisor`` and a trailing ``# comment``; an
optional part written ``[...]`` gives two variants, without it and with it (its first
alternative of ``a | b``; nothing when it holds ``…``, a placeholder for more of the same).
"""
from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
_SPAN = re.compile(r"`(\$ )?(supervisor [^`]+)`")
_OPTIONAL = re.compile(r"\s*\[([^\]]*)\]")


@dataclass(frozen=True)
class DocCommand:
    """One example command: where it is written, as written, and the arguments to parse."""

    where: str
    text: str
    argv: tuple[str, ...]

    @property
    def mention(self) -> bool:
        """Only the command's name (``supervisor deploy``), said in a sentence."""
        return len(self.argv) == 1


def documents() -> list[Path]:
    """The Markdown files whose examples are checked."""
    return [ROOT / "README.md", ROOT / "examples" / "README.md",
            *sorted((ROOT / "examples").glob("*/README.md")),
            *sorted((ROOT / "docs").glob("*.md"))]


def _kept(part: str) -> str:
    """An optional part as given: its first alternative (``a | b``), nothing for ``…``."""
    return "" if "…" in part else " " + part.split(" | ")[0]


def _variants(text: str) -> list[str]:
    without = _OPTIONAL.sub("", text)
    kept = _OPTIONAL.sub(lambda m: _kept(m.group(1)), text)
    return list(dict.fromkeys([without, kept]))


def commands_in(where: str, text: str) -> Iterator[DocCommand]:
    text = " ".join(text.split())
    for variant in _variants(text):
        words = shlex.split(variant, comments=True)
        if words[:1] == ["supervisor"]:
            yield DocCommand(where, text, tuple(words[1:]))


def _joined(lines: list[str]) -> Iterator[tuple[int, str]]:
    """``(index of the first line, text)`` with ``\\``-continued lines joined."""
    start, parts = 0, []
    for index, line in enumerate(lines):
        if not parts:
            start = index
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        yield start, " ".join([*parts, line])
        parts = []
    if parts:
        yield start, " ".join(parts)


def from_markdown(path: Path) -> list[DocCommand]:
    """The commands of one Markdown file, with ``file:line`` of each."""
    name = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    prose: list[str] = []
    found: list[DocCommand] = []
    fence: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            if fenced:
                for index, text in _joined([t for _, t in fence]):
                    command = text.strip().removeprefix("$ ")
                    if command.startswith("supervisor "):
                        found.extend(commands_in(f"{name}:{fence[index][0]}", command))
                fence = []
            fenced = not fenced
            prose.append("")
        elif fenced:
            fence.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    text = "\n".join(prose)
    for match in _SPAN.finditer(text):
        number = text.count("\n", 0, match.start()) + 1
        found.extend(commands_in(f"{name}:{number}", match.group(2)))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list them
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def from_help(parser: argparse.ArgumentParser) -> list[DocCommand]:
    """The commands of the epilogs of ``supervisor --help`` and each ``COMMAND --help``."""
    found: list[DocCommand] = []
    helps = [("supervisor --help", parser),
             *((f"supervisor {name} --help", sub) for name, sub in _subparsers(parser).items())]
    for where, each in helps:
        for _, line in _joined((each.epilog or "").splitlines()):
            if line.strip().startswith("supervisor "):
                found.extend(commands_in(where, line.strip()))
    return found


def commands(parser: argparse.ArgumentParser) -> list[DocCommand]:
    """Every documented command: the Markdown files' and the epilogs'."""
    return [c for path in documents() for c in from_markdown(path)] + from_help(parser)


def command_names(parser: argparse.ArgumentParser) -> set[str]:
    """The commands the parser knows."""
    return set(_subparsers(parser))
