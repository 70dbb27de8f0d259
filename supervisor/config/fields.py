"""Constants and the field-path-aware reader every parser step uses."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .model import folders_overlap

ENV_CONFIG = "FUNCTION_CONFIG"
ENV_CONFIG_PATH = "FUNCTION_CONFIG_PATH"
DEFAULT_CONFIG_PATH = Path("/var/task/function_config.yaml")
_DEFAULT_TASK_ROOT = "/var/task"

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BATCH_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                       1096, 1827, 2192, 2557, 2922, 3288, 3653)
_LAMBDA_ENV_LIMIT = 4096  # bytes, all keys and values of the Lambda function's environment
_SIBLINGS = frozenset({"storage_providers", "batch", "iam", "cloudwatch", "idempotency", "handoff",
                       "history"})



def yaml_loader() -> Any:
    """PyYAML's safe loader, the C one when there is one (imported on first use: a
    configuration written as JSON, as deploy writes it, never needs PyYAML)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_dumper() -> Any:
    """PyYAML's safe dumper, the C one when there is one."""
    import yaml

    return getattr(yaml, "CSafeDumper", yaml.SafeDumper)




def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: object, redact: bool = False) -> str:
    """A short one-line rendering of a value for an error message."""
    if redact or isinstance(value, (Mapping, list, tuple)) or value is None:
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (what YAML can write)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


_overlaps = folders_overlap


def _merge(base: dict[Any, Any], over: Mapping[Any, Any]) -> dict[Any, Any]:
    """``base`` with ``over`` merged in, mapping by mapping (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = (_merge(old, value) if isinstance(old, dict) and isinstance(value, Mapping)
                    else value)
    return out


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _Section:
    """One mapping of the configuration, the field path leading to it, and the problem list.

    Readers return the default after recording a problem, so parsing goes on
    and every problem is reported at once.
    """

    def __init__(self, data: Mapping[Any, Any], where: Callable[[str], str],
                 problems: list[str], redact: bool = False) -> None:
        self.data = data
        self._where = where
        self.problems = problems
        self.redact = redact  # never show values (credentials)

    @classmethod
    def at(cls, data: Mapping[Any, Any], prefix: str, problems: list[str],
           redact: bool = False) -> "_Section":
        """A section whose fields are ``<prefix>.<key>``."""
        return cls(data, lambda key: _join(prefix, key), problems, redact)

    def path(self, key: str) -> str:
        """The field path of ``key`` in this section."""
        return self._where(key)

    def problem(self, key: str, wrong: str, allowed: str = "") -> None:
        """Record one problem about ``key``."""
        where = self.path(key)
        self.problems.append(f"{where}: {wrong}; {allowed}" if allowed else f"{where}: {wrong}")

    def show(self, value: object) -> str:
        """``value`` as an error message may show it."""
        return _show(value, self.redact)

    def get(self, key: str) -> Any:
        """The value of ``key``; ``None`` when absent or null."""
        return self.data.get(key)

    def section(self, key: str, what: str = "settings") -> "_Section":
        """The sub-mapping ``key`` (empty when absent)."""
        value = self.get(key)
        if value is None:
            value = {}
        elif not isinstance(value, Mapping):
            self.problem(key, f"{self.show(value)} is not a mapping", f"must be a mapping of {what}")
            value = {}
        return _Section.at(value, self.path(key), self.problems, self.redact)

    def opt_text(self, key: str, allowed: str = "must be a string") -> Optional[str]:
        """A string, or ``None`` when absent or blank (SCAR writes unset values as "")."""
        value = self.get(key)
        if value is None or isinstance(value, str):
            return value if value and value.strip() else None
        self.problem(key, f"{self.show(value)} is not a string", allowed)
        return None

    def text(self, key: str, default: str, allowed: str = "must be a string") -> str:
        """A string, ``default`` when absent."""
        value = self.opt_text(key, allowed)
        return default if value is None else value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices``."""
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value in choices:
            return value
        self.problem(key, f"{self.show(value)} is not one of {', '.join(choices)}")
        return default

    def opt_integer(self, key: str, lo: Optional[int] = None, hi: Optional[int] = None,
                    unit: str = "") -> Optional[int]:
        """An integer in ``[lo, hi]`` or ``None``."""
        value = self.get(key)
        if value is None:
            return None
        if lo is not None and hi is not None:
            allowed = f"must be an integer from {lo} to {hi}"
        elif lo is not None:
            allowed = f"must be an integer >= {lo}"
        else:
            allowed = "must be an integer"
        if unit:
            allowed += f" ({unit})"
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"{self.show(value)} is not an integer", allowed)
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.problem(key, f"{value} is out of range", allowed)
            return None
        return value

    def integer(self, key: str, default: int, lo: Optional[int] = None,
                hi: Optional[int] = None, unit: str = "") -> int:
        """An integer in ``[lo, hi]``, ``default`` when absent."""
        value = self.opt_integer(key, lo, hi, unit)
        return default if value is None else value

    def flag(self, key: str, default: bool) -> bool:
        """A real boolean (YAML ``true``/``false``)."""
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(key, f"{self.show(value)} is not a boolean", "must be true or false")
        return default

    def entries(self, key: str, what: str) -> list[tuple[str, Any]]:
        """The items of the list ``key`` with their field paths."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.problem(key, f"{self.show(value)} is not a list", f"must be a list of {what}")
            return []
        base = self.path(key)
        return [(f"{base}[{i}]", item) for i, item in enumerate(value)]

    def texts(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of non-empty strings, ``default`` when absent."""
        if self.get(key) is None:
            return default
        out: list[str] = []
        for where, item in self.entries(key, "non-empty strings"):
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            else:
                self.problems.append(
                    f"{where}: {self.show(item)} is not a non-empty string; "
                    "must be a list of non-empty strings")
        return tuple(out)

    def variables(self, key: str) -> dict[str, str]:
        """``<key>.Variables``: scalar values as strings (YAML numbers and booleans too)."""
        env = self.section(key, "settings (Variables: {NAME: value})")
        values = env.get("Variables")
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            env.problem("Variables", f"{env.show(values)} is not a mapping",
                        "must map variable names to values")
            return {}
        out: dict[str, str] = {}
        base = env.path("Variables")
        for name, value in values.items():
            where = _join(base, name)
            if not isinstance(name, str) or not name:
                self.problems.append(f"{where}: {_show(name)} is not a variable name; "
                                     "names must be non-empty strings")
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                out[name] = str(value)
            else:
                self.problems.append(f"{where}: {_kind(value)} is not a string, number or "
                                     "boolean; environment values must be scalars")
        return out


def table_name(section: _Section, key: str) -> Optional[str]:
    """A DynamoDB table name (``idempotency.table``, ``history.table``), or ``None``."""
    table = section.opt_text(key)
    if table is not None and not _TABLE_NAME.fullmatch(table):
        section.problem(key, f"{section.show(table)} is not a DynamoDB table name",
                        "must be 3-255 letters, digits, '_', '-' or '.'")
    return table
