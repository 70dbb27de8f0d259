"""Raw samples, as written to ``bench/results/<timestamp>.json`` and read by the report."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

__all__ = ["Results", "median"]


def median(values: list[float]) -> Optional[float]:
    """The median, or None without samples (a row that never produced its outputs)."""
    return statistics.median(values) if values else None


class Results:
    """``rows[row][contender] = {"samples": [...], "rounds": [...], "warmup": [...]}``
    (``rounds[i]`` is the round of ``samples[i]``), and the failed runs:
    ``failures[workload][contender] = [reason, ...]``."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.rows: dict[str, dict[str, dict[str, list[Any]]]] = {}
        self.failures: dict[str, dict[str, list[str]]] = {}

    def _slot(self, row: str, contender: str) -> dict[str, list[Any]]:
        return self.rows.setdefault(row, {}).setdefault(
            contender, {"samples": [], "rounds": [], "warmup": []})

    def add(self, row: str, contender: str, value: float, *, round_: int,
            warmup: bool = False) -> None:
        """One measurement of round ``round_``; warm-up ones are kept apart, never reported."""
        slot = self._slot(row, contender)
        if warmup:
            slot["warmup"].append(value)
        else:
            slot["samples"].append(value)
            slot["rounds"].append(round_)

    def fail(self, workload: str, contender: str, reason: str) -> None:
        """A run that failed or did not produce its outputs: none of its figures is kept."""
        self.failures.setdefault(workload, {}).setdefault(contender, []).append(reason[-2000:])

    def samples(self, row: str, contender: str) -> list[float]:
        """The measured (not warm-up) samples."""
        return list(self.rows.get(row, {}).get(contender, {}).get("samples", []))

    def paired_ratio(self, row: str, contender: str, other: str) -> Optional[float]:
        """The median over rounds of ``contender / other`` within the same round.

        The contenders of one round ran back to back, so this cancels the drift between
        rounds that a ratio of two medians keeps. None without a common round.
        """
        mine = self._by_round(row, contender)
        theirs = self._by_round(row, other)
        ratios = [mine[r] / theirs[r] for r in sorted(set(mine) & set(theirs)) if theirs[r]]
        return median(ratios)

    def paired_difference(self, row: str, contender: str, other: str) -> Optional[float]:
        """The median over rounds of ``contender - other`` within the same round, or None."""
        mine = self._by_round(row, contender)
        theirs = self._by_round(row, other)
        return median([mine[r] - theirs[r] for r in sorted(set(mine) & set(theirs))])

    def _by_round(self, row: str, contender: str) -> dict[int, float]:
        slot = self.rows.get(row, {}).get(contender, {})
        return dict(zip(slot.get("rounds", []), slot.get("samples", [])))

    def value(self, row: str, contender: str) -> Optional[float]:
        """The median of the samples."""
        return median(self.samples(row, contender))

    def to_json(self) -> dict[str, Any]:
        """What is written to disk."""
        return {"meta": self.meta, "rows": self.rows, "failures": self.failures}

    def save(self, path: Path) -> None:
        """Write the raw results."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Results":
        """Read results written by :meth:`save`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        results = cls(data["meta"])
        results.rows = data["rows"]
        results.failures = data.get("failures", {})
        return results
