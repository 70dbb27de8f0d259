"""A container's launch command, recorded once per sandbox and reused by every run.

``udocker run`` is a Python start and a pass over the container's metadata
(about 100 ms) before the engine starts. The engine command it builds is the
same for every run of one container in one execution mode but for three
things: the command, the working directory and the script's variables. So it
is recorded once (:func:`parse_recording`, from what the recording wrappers
of :mod:`supervisor.container.udocker` wrote) and each run fills those three
in (:meth:`LaunchTemplate.command`), which costs no process at all.

PRoot (``P`` modes): ``proot … -w CWD … SHELL SCRIPT`` with the variables in
its environment. Fakechroot (``F`` modes): ``env -i NAME=VALUE… [LOADER]
SHELL SCRIPT`` with the process's cwd as the working directory.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

__all__ = ["LaunchTemplate", "parse_recording", "RecordingError"]

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class RecordingError(ValueError):
    """What the engine was given does not have the expected shape."""


@dataclass(frozen=True)
class LaunchTemplate:
    """The engine command without its command; see the module docstring."""

    engine: str  # "proot" or "fakechroot"
    argv: tuple[str, ...]
    shell: str  # how the engine names the image's /bin/sh
    workdir: str  # the working directory it was recorded with
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, script: str, *, cwd: str,
                variables: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) that run ``SHELL script`` in ``cwd`` with ``variables``. Pure."""
        argv = list(self.argv)
        env = dict(self.env)
        if self.engine == "proot":
            at = argv.index("-w") + 1
            argv[at] = cwd
            env.update(variables)
        else:
            at = _after_assignments(argv)
            argv[at:at] = [f"{name}={value}" for name, value in variables.items()]
        return argv + [self.shell, script], env

    def with_files(self, kept: Mapping[str, str]) -> "LaunchTemplate":
        """The template with every mention of a file in ``kept`` (in an argument or a
        variable) replaced by its kept copy: udocker's per-run ``/etc/passwd`` and
        ``/etc/group`` are temporary files it deletes when it exits. Pure."""
        def swap(text: str) -> str:
            for old, new in kept.items():
                text = text.replace(old, new)
            return text

        if not kept:
            return self
        return replace(self, argv=tuple(swap(a) for a in self.argv),
                       env={k: swap(v) for k, v in self.env.items()})

    def to_json(self) -> str:
        """The template as JSON (kept in the container's marker file)."""
        return json.dumps({"engine": self.engine, "argv": list(self.argv), "shell": self.shell,
                           "workdir": self.workdir, "env": dict(self.env)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LaunchTemplate":
        """Read :meth:`to_json`'s output back; ``ValueError`` when it is not that."""
        data: Any = json.loads(text)
        try:
            template = cls(engine=str(data["engine"]), argv=tuple(map(str, data["argv"])),
                           shell=str(data["shell"]), workdir=str(data["workdir"]),
                           env={str(k): str(v) for k, v in data["env"].items()})
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a launch template: {exc}") from None
        _check(template)
        return template


def _after_assignments(argv: Sequence[str]) -> int:
    """The index just past ``env -i NAME=VALUE…``: where more variables go."""
    at = list(argv).index("-i") + 1
    while at < len(argv) and _ASSIGNMENT.match(argv[at]):
        at += 1
    return at


def _check(template: LaunchTemplate) -> None:
    argv = template.argv
    if template.engine == "proot":
        if "-w" not in argv[:-1] or argv[argv.index("-w") + 1] != template.workdir:
            raise RecordingError("the PRoot command has no -w with the working directory")
    elif template.engine == "fakechroot":
        if "-i" not in argv:
            raise RecordingError("the Fakechroot command does not start with env -i")
    else:
        raise RecordingError(f"unknown engine {template.engine!r}")


def parse_recording(engine: str, argv_bytes: bytes, env_bytes: bytes, *, sentinel: str,
                    workdir: str) -> LaunchTemplate:
    """The template from a recording: NUL-separated argv and environment. Pure.

    The recorded command must end with ``SHELL SENTINEL``; both are cut off.
    Raises :class:`RecordingError` when the shape is not the expected one.
    """
    argv = [a.decode("utf-8", "surrogateescape") for a in argv_bytes.split(b"\0")[:-1]]
    if len(argv) < 3 or argv[-1] != sentinel or not argv[-2].endswith("/bin/sh"):
        raise RecordingError(f"the engine command does not end with /bin/sh and the "
                             f"recording marker: {argv[-3:]!r}")
    env: dict[str, str] = {}
    for item in env_bytes.split(b"\0"):
        name, sep, value = item.decode("utf-8", "surrogateescape").partition("=")
        if sep and name:
            env[name] = value
    template = LaunchTemplate(engine=engine, argv=tuple(argv[:-2]), shell=argv[-2],
                              workdir=workdir, env=env)
    _check(template)
    return template
