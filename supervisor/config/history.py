"""The ``history`` section: where run history is kept and how it is used."""
from __future__ import annotations

from .fields import _Section, table_name
from .model import HistoryConfig

__all__ = ["parse_history"]

_DEFAULTS = HistoryConfig()
MIN_EXPIRES_AFTER_S = 60


def parse_history(top: _Section) -> HistoryConfig:
    """``history.table``, ``.expires_after_seconds`` and ``.explore_fraction``, checked;
    problems go to ``top``'s list."""
    section = top.section("history")
    table = table_name(section, "table")
    expires = section.integer("expires_after_seconds", _DEFAULTS.expires_after_seconds,
                              lo=MIN_EXPIRES_AFTER_S, unit="seconds")
    explore = section.get("explore_fraction")
    if explore is None:
        explore = _DEFAULTS.explore_fraction
    elif isinstance(explore, bool) or not isinstance(explore, (int, float)) \
            or not 0 <= explore <= 1:
        section.problem("explore_fraction", f"{section.show(explore)} is not a fraction",
                        "must be a number from 0 to 1 (0: never run in Lambda what history "
                        "sends to Batch)")
        explore = _DEFAULTS.explore_fraction
    return HistoryConfig(table=table, expires_after_seconds=expires,
                         explore_fraction=float(explore))
