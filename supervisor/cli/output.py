"""Rendering results: readable tables (the default) and JSON (``--json``). Pure functions.

A table is a list of rows (mappings) and the columns to show, each a key and
a header; a cell shows ``-`` for a missing value, lists joined with ``, ``,
and never a line break. Times are shown in UTC, ``2024-05-01 12:00:03``.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

__all__ = ["Column", "table", "cell", "to_json", "when", "size", "seconds", "shorten"]

#: A table column: the row key and the header shown.
Column = tuple[str, str]

_GAP = "  "


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cell(value: Any) -> str:
    """One value as table text: one line, ``-`` for nothing."""
    if value is None or value == "" or value == [] or value == ():
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"), default=str)
    return " ".join(str(value).split())


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table with a header line; the last column is not padded."""
    grid = [[header.upper() for _, header in columns]]
    grid.extend([cell(row.get(key)) for key, _ in columns] for row in rows)
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = []
    for line in grid:
        padded = [text.ljust(width) for text, width in zip(line[:-1], widths[:-1])]
        lines.append(_GAP.join([*padded, line[-1]]).rstrip())
    return "\n".join(lines)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def to_json(data: Any) -> str:
    """``data`` as indented JSON (datetimes in ISO 8601, paths as strings)."""
    return json.dumps(data, indent=2, default=_default)


_ISO_UTC = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]00:?00)?$")


def when(value: Union[datetime, float, int, str, None], *, millis: bool = False) -> str:
    """A time in UTC as ``YYYY-MM-DD HH:MM:SS``.

    Numbers are epoch seconds (or ms); text is ISO 8601 in UTC as AWS writes
    it (``2024-05-01T12:00:03.000+0000``), shown as is when it is not.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        match = _ISO_UTC.match(value.strip())
        return f"{match.group(1)} {match.group(2)}" if match else value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        moment = datetime.fromtimestamp(float(value) / (1000 if millis else 1), timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def size(count: Optional[int]) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``2.0 MB``."""
    if count is None:
        return "-"
    amount = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{count} B"  # pragma: no cover


def seconds(value: Optional[float]) -> str:
    """A duration: ``0.42 s``, ``12.3 s``, ``4 min 05 s``; ``-`` for none."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest:02d} s"
