"""Rendering results: readable tables (the default) and JSON (``--json``). Pure functions.

A table is a list of rows (mappings) and the columns to show, each a key and
a header; a cell shows ``-`` for a missing value, lists joined with ``, ``,
and never a line break. A table wider than the terminal is made to fit: ids
(UUIDs) are shortened to their first 8 characters, then the widest cells are
cut (``…``); ``--json`` always has the whole values. Times are shown in UTC,
``2024-05-01 12:00:03``.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .terminal import terminal_width

__all__ = ["Column", "table", "cell", "to_json", "when", "size", "seconds", "shorten",
           "short_id", "SHORT_ID"]

#: A table column: the row key and the header shown.
Column = tuple[str, str]

_GAP = "  "
SHORT_ID = 8  # characters of an id shown when a table is too wide (and accepted back)
_UUID = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def shorten(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` characters, ending (or, ``keep_end``, starting) in ``…``."""
    if len(text) <= width:
        return text
    if keep_end:
        return "…" + text[len(text) - max(width - 1, 0):] if width > 1 else "…"[:width]
    return text[: max(width - 1, 0)] + "…"[:width]


def short_id(text: str) -> str:
    """``text`` with every UUID shortened to its first 8 characters."""
    return _UUID.sub(r"\1", text)


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


def _widths(grid: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(_GAP) * (len(widths) - 1)


_FLOORS = (16, 10)  # cells are cut to each in turn (never below the header) before blocks


def _fit(widths: list[int], floor: Sequence[int], limit: int) -> list[int]:
    """Narrow the widest columns, one character at a time, down to ``floor`` at most."""
    while _total(widths) > limit:
        wide = [i for i, w in enumerate(widths) if w > floor[i]]
        if not wide:
            break
        widths[max(wide, key=lambda i: widths[i])] -= 1
    return widths


def _cut(text: str, width: int) -> str:
    """A cell cut to ``width``: a path or URI keeps its end, other text its start."""
    path = "/" in text and not any(c.isspace() for c in text)
    return shorten(text, width, keep_end=path)


def _lines(grid: Sequence[Sequence[str]], widths: Sequence[int]) -> str:
    lines = []
    for line in grid:
        padded = [_cut(text, w).ljust(w) for text, w in zip(line[:-1], widths[:-1])]
        lines.append(_GAP.join([*padded, _cut(line[-1], widths[-1])]).rstrip())
    return "\n".join(lines)


def _blocks(grid: Sequence[Sequence[str]], limit: int) -> str:
    """One block of ``HEADER  value`` lines per row, for a table no width can hold."""
    label = max(len(h) for h in grid[0])
    room = max(limit - label - len(_GAP), 1)
    blocks = []
    for line in grid[1:]:
        blocks.append("\n".join(
            f"{h.ljust(label)}{_GAP}{_cut(v if len(v) <= room else short_id(v), room)}"
            for h, v in zip(grid[0], line)))
    return "\n\n".join(blocks)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *,
          width: Optional[int] = None) -> str:
    """A plain-text table with a header line; the last column is not padded.

    ``width`` is the most characters a line may take (None: the terminal's,
    :func:`~supervisor.cli.terminal.terminal_width`; 0 or no terminal: no
    limit). A wider table first shows ids short, then cuts its widest cells
    (to 16, then 10 characters, never below the header); when even that is
    too wide, each row becomes a block of ``HEADER  value`` lines.
    """
    grid = [[header.upper() for _, header in columns]]
    grid.extend([cell(row.get(key)) for key, _ in columns] for row in rows)
    limit = terminal_width() if width is None else width
    if not limit or _total(_widths(grid)) <= limit:
        return _lines(grid, _widths(grid))
    short = [grid[0], *([short_id(text) for text in line] for line in grid[1:])]
    widths = _widths(short)
    for least in _FLOORS:
        floor = [min(w, max(len(h), least)) for w, h in zip(_widths(short), grid[0])]
        widths = _fit(widths, floor, limit)
        if _total(widths) <= limit:
            return _lines(short, widths)
    return _blocks(grid, limit) if len(grid) > 1 else _lines(short, widths)


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
