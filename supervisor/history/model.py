"""What history holds: runs counted per size band, outcome and duration bucket. Pure.

One DynamoDB item per function, script and image (see :func:`history_id`). Its counters
are top-level number attributes, added to atomically, so concurrent invocations never
lose each other's runs:

==================  ===========================================================
attribute           what it counts
==================  ===========================================================
``s92c117``         runs of inputs in size band 92 that completed in duration
                    bucket 117 (``f``: the script failed; ``t``: timed out at
                    the budget, the bucket being the seconds it had run)
``runs``            runs recorded
``lambda_s``        Lambda seconds they took
``wasted_s``        the part of those of runs that timed out and went on to Batch
==================  ===========================================================

plus ``function``, ``script``, ``image``, ``memory`` (what the item is of), ``updated``
(epoch seconds) and ``expiration`` (the TTL attribute, epoch seconds).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional, Union

from .bands import duration_bucket, size_band

__all__ = ["Outcome", "Observation", "BandRuns", "History", "HistoryKey", "history_id",
           "ID_PREFIX", "counter_increments"]

Outcome = Literal["completed", "failed", "timed_out"]
_CODES: dict[str, str] = {"completed": "c", "failed": "f", "timed_out": "t"}
_COUNTER = re.compile(r"s(\d+)([cft])(\d+)")
ID_PREFIX = "history"

Value = Union[int, float, str]


@dataclass(frozen=True)
class HistoryKey:
    """What a history is of: a changed script, image or memory size starts a new one."""

    function: str
    script: str
    image: str = ""
    memory: int = 0  # MB: a function with more memory gets more CPU

    @property
    def digest(self) -> str:
        """A short hash of the script, the image and the memory size."""
        text = "\0".join((self.script, self.image, str(self.memory)))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def history_id(key: HistoryKey) -> str:
    """The item's partition key: ``history:FUNCTION:DIGEST``."""
    return f"{ID_PREFIX}:{key.function}:{key.digest}"


@dataclass(frozen=True)
class Observation:
    """One run in Lambda: the input's size, the seconds it took, how it ended."""

    size: int
    seconds: float
    outcome: Outcome


def counter_increments(observations: "list[Observation]") -> dict[str, float]:
    """What the observations add to each counter attribute of the item."""
    out: dict[str, float] = {}

    def add(name: str, amount: float) -> None:
        out[name] = out.get(name, 0) + amount

    for seen in observations:
        add(f"s{size_band(seen.size)}{_CODES[seen.outcome]}{duration_bucket(seen.seconds)}", 1)
        add("runs", 1)
        add("lambda_s", seen.seconds)
        if seen.outcome == "timed_out":
            add("wasted_s", seen.seconds)
    return {name: round(amount, 3) for name, amount in out.items()}


@dataclass(frozen=True)
class BandRuns:
    """The runs of one size band: ``counts[(code, bucket)]`` with code ``c``, ``f``, ``t``."""

    band: int
    counts: Mapping[tuple[str, int], int] = field(default_factory=dict)

    def total(self, code: Optional[str] = None) -> int:
        """Runs with that outcome code (every run when None)."""
        return sum(n for (c, _), n in self.counts.items() if code is None or c == code)

    def median_bucket(self, codes: str) -> Optional[int]:
        """The median duration bucket of the runs with these outcome codes (None: none)."""
        buckets = sorted(b for (c, b), n in self.counts.items() if c in codes for _ in range(n))
        return buckets[len(buckets) // 2] if buckets else None

    def least_bucket(self, codes: str) -> Optional[int]:
        """The shortest duration bucket of the runs with these outcome codes (None: none)."""
        return min((b for (c, b) in self.counts if c in codes), default=None)


@dataclass(frozen=True)
class History:
    """One history item, read: the bands with runs, and the totals."""

    bands: Mapping[int, BandRuns] = field(default_factory=dict)
    runs: int = 0
    lambda_seconds: float = 0.0
    wasted_seconds: float = 0.0
    attributes: Mapping[str, Value] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Value]) -> "History":
        """The history in an item's attributes (plain values; unknown names are ignored)."""
        counts: dict[int, dict[tuple[str, int], int]] = {}
        for name, value in attributes.items():
            match = _COUNTER.fullmatch(name)
            if match is None or not isinstance(value, (int, float)) or value <= 0:
                continue
            band, code, bucket = int(match[1]), match[2], int(match[3])
            counts.setdefault(band, {})[(code, bucket)] = int(value)
        return cls(bands={band: BandRuns(band, runs) for band, runs in sorted(counts.items())},
                   runs=int(_number(attributes, "runs") or 0),
                   lambda_seconds=_number(attributes, "lambda_s") or 0.0,
                   wasted_seconds=_number(attributes, "wasted_s") or 0.0,
                   attributes=dict(attributes))

    def plus(self, observations: "list[Observation]") -> "History":
        """This history with more runs counted (what a write of them would make of it)."""
        attributes: dict[str, Value] = dict(self.attributes)
        for name, amount in counter_increments(observations).items():
            old = attributes.get(name, 0)
            attributes[name] = (old if isinstance(old, (int, float)) else 0) + amount
        return History.from_attributes(attributes)

    def text(self, name: str) -> str:
        """A text attribute ('' when absent)."""
        value = self.attributes.get(name)
        return value if isinstance(value, str) else ""

    def number(self, name: str) -> Optional[float]:
        """A number attribute (None when absent)."""
        return _number(self.attributes, name)


def _number(attributes: Mapping[str, Value], name: str) -> Optional[float]:
    value = attributes.get(name)
    return float(value) if isinstance(value, (int, float)) else None
