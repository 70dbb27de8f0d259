"""SCAR's own defaults file, ``~/.scar/scar.cfg``, read under a function definition.

SCAR keeps account values (the Lambda role, Batch subnets and security groups, the
region) in ``$SCAR_CONFIG_FOLDER/scar.cfg`` (default ``~/.scar/scar.cfg``), JSON as SCAR
writes it (YAML is read too), and merges every FDL function over it. So does ``supervisor
deploy``/``local``: the keys of ``aws.iam``, ``aws.lambda``, ``aws.batch`` and
``aws.cloudwatch`` that mean something here are defaults under each function, the FDL
winning key by key. SCAR's own plumbing in the file (its runtime, layers, udocker
variables, supervisor version, payload limits, invocation settings) is not taken: it
describes SCAR's deployment, not this one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import ConfigError

__all__ = ["ENV_FOLDER", "Defaults", "default_path", "read_defaults", "merge_defaults",
           "TAKEN_KEYS"]

ENV_FOLDER = "SCAR_CONFIG_FOLDER"
TAKEN_KEYS: Mapping[str, Optional[frozenset[str]]] = {
    "iam": frozenset({"role", "boto_profile"}),
    "lambda": frozenset({"region", "boto_profile", "memory", "timeout", "execution_mode",
                         "log_level", "container", "description"}),
    "batch": None,  # all of it: vcpus, memory, compute_resources, service_role, ...
    "cloudwatch": frozenset({"log_retention_policy_in_days", "boto_profile", "region"}),
}
"""Which keys of each ``aws.<section>`` are defaults here (None: every key)."""


@dataclass(frozen=True)
class Defaults:
    """The defaults one file gives: ``{section: {key: value}}`` and where they came from."""

    source: str = ""
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.sections.values())


def default_path(environ: Mapping[str, str], home: Optional[Path] = None) -> Path:
    """``$SCAR_CONFIG_FOLDER/scar.cfg``, else ``~/.scar/scar.cfg``."""
    folder = environ.get(ENV_FOLDER)
    if folder:
        return Path(folder) / "scar.cfg"
    return (home or Path(environ.get("HOME") or Path.home())) / ".scar" / "scar.cfg"


def read_defaults(path: Path, *, required: bool = False) -> Defaults:
    """The defaults in ``path``; an absent file gives none unless ``required``.

    Raises ``ConfigError`` (one line, naming the file) when it cannot be read or parsed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError([f"--config {path}: no such file"]) from None
        return Defaults()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read SCAR's defaults file ({exc})"]) from None
    from .sources import _load_document  # JSON, else YAML; one-line errors

    data = _load_document(text, str(path))
    aws = data.get("aws")
    if not isinstance(aws, Mapping):
        raise ConfigError([f"{path}: not a SCAR defaults file (expected {{\"aws\": {{\"iam\": "
                           "..., \"lambda\": ..., \"batch\": ...}}})"])
    sections: dict[str, dict[str, Any]] = {}
    for name, keys in TAKEN_KEYS.items():
        section = aws.get(name)
        if isinstance(section, Mapping):
            taken = {k: v for k, v in section.items()
                     if (keys is None or k in keys) and v not in (None, "", [], {})}
            if taken:
                sections[name] = taken
    return Defaults(source=str(path), sections=sections)


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any], where: str,
                taken: list[str]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value, f"{where}.{key}", taken)
        else:
            merged[key] = value
    for key, value in base.items():
        if key not in over:
            if isinstance(value, Mapping):
                taken.extend(_leaves(value, f"{where}.{key}"))
            else:
                taken.append(f"{where}.{key}")
    return merged


def _leaves(mapping: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.extend(_leaves(value, f"{where}.{key}"))
        else:
            out.append(f"{where}.{key}")
    return out


def merge_defaults(entry: Mapping[str, Any], defaults: Defaults, *,
                   flat: bool) -> tuple[dict[str, Any], list[str]]:
    """``entry`` over ``defaults``, and the keys the defaults supplied. Pure.

    An FDL list entry (``{lambda: …, iam: …, batch: …}``) gets each section merged; a
    ``flat`` entry (the older form) gets the ``lambda`` keys at its top.
    """
    taken: list[str] = []
    merged = dict(entry)
    for name, section in defaults.sections.items():
        if name == "lambda" and flat:
            merged = _deep_merge(section, merged, "lambda", taken)
            continue
        current = merged.get(name)
        if current is None:
            merged[name] = dict(section)
            taken.extend(_leaves(section, name))
        elif isinstance(current, Mapping):
            merged[name] = _deep_merge(section, current, name, taken)
    if flat:  # top-level keys of the flat form that were the entry's own are not "taken"
        taken = [t for t in taken if not t.startswith("lambda.") or
                 t.split(".", 2)[1] not in entry]
    return merged, sorted(set(taken))
