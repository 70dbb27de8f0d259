"""The requirement files: every line ``name==version``, a wheel name's spelling of it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError

__all__ = ["Pin", "read_pins", "normalize"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def normalize(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 503 / 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a requirements file."""

    name: str
    version: str
    source: str  # file:line, for messages

    @property
    def key(self) -> str:
        """The normalized name, as in the wheel's file name."""
        return normalize(self.name)


def read_pins(path: Path) -> list[Pin]:
    """The pins of a requirements file: every line ``name==version`` (comments allowed)."""
    pins: list[Pin] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise BuildError(f"{path.name}:{number}: {line!r} is not pinned as name==version; "
                             "every requirement of an artefact is pinned")
        pins.append(Pin(match.group(1), match.group(2), f"{path.name}:{number}"))
    return pins
