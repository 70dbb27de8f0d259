"""Will this record fit in the budget it has? History in, decision and reason out. Pure.

The rule, for an input in size band *k* and a budget of *B* seconds:

- A run says **no** (it did not fit *B*) when it completed or failed in a duration bucket
  above *B*'s, or timed out after about *B* or more (a bucket at most one below *B*'s: a
  timed-out run counts as at least the budget it had, and budgets differ a little from
  one invocation to the next). A run says **yes** when it completed or failed in *B*'s
  bucket or below. A run that timed out with a budget well below *B* says nothing about
  *B*.
- When band *k* has runs that say either, they decide: the record goes to Batch when at
  least one says no and the noes are at least twice the yeses (in doubt, it runs here).
- When band *k* has none, the nearest smaller band that has some decides the same way
  (a bigger input is assumed to take at least as long), unless the nearest bigger band
  with some says yes more often than no (then a bigger input fitted: this one runs here).
- A record that would go to Batch still runs here when ``draw < explore_fraction``, so
  a script that got faster is noticed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .bands import about_bytes, about_seconds, band_size, bucket_floor, duration_bucket, size_band
from .model import BandRuns, History

__all__ = ["Decision", "Verdict", "predict", "verdict"]

_NO_OVER_YES = 2  # the noes must be at least twice the yeses
_TIMEOUT_SLACK = 1  # buckets: a run that timed out just below the budget still says no


@dataclass(frozen=True)
class Verdict:
    """What one band's runs say about a budget: runs that did not fit, runs that did, and
    the least seconds any of the first took (at least)."""

    band: int
    no: int
    yes: int
    least_no: float

    @property
    def says_anything(self) -> bool:
        """Whether any run says either way."""
        return self.no + self.yes > 0

    @property
    def will_not_fit(self) -> bool:
        """Whether the runs say the record will not fit."""
        return self.no >= 1 and self.no >= _NO_OVER_YES * self.yes


@dataclass(frozen=True)
class Decision:
    """Where history would run a record: ``reason`` is why it goes to Batch (None: here).

    ``explored`` is True when history would have sent it to Batch, and it runs here
    anyway (``would`` is the reason it would have gone).
    """

    reason: Optional[str] = None
    explored: bool = False
    would: Optional[str] = None

    @property
    def delegate(self) -> bool:
        """Whether the record goes to Batch at once."""
        return self.reason is not None


def verdict(runs: BandRuns, budget: float) -> Verdict:
    """What ``runs`` say about a budget of ``budget`` seconds."""
    limit = duration_bucket(budget)
    no = yes = 0
    least = float("inf")
    for (code, bucket), count in runs.counts.items():
        if code == "t":
            if bucket >= limit - _TIMEOUT_SLACK:
                no += count
                least = min(least, bucket_floor(bucket))
        elif bucket > limit:
            no += count
            least = min(least, bucket_floor(bucket))
        else:
            yes += count
    return Verdict(runs.band, no, yes, least)


def _nearest(history: History, band: int, budget: float, step: int) -> Optional[Verdict]:
    """The verdict of the nearest band past ``band`` (``step`` -1: smaller, 1: bigger)
    whose runs say anything."""
    bands = sorted(history.bands, reverse=step < 0)
    for other in bands:
        if (other - band) * step <= 0:
            continue
        found = verdict(history.bands[other], budget)
        if found.says_anything:
            return found
    return None


def _reason(found: Verdict, budget: float, *, smaller: bool) -> str:
    inputs = f"inputs of ~{about_bytes(band_size(found.band))}"
    if smaller:
        inputs += ", smaller than this one,"
    runs = f"{found.no} run{'' if found.no == 1 else 's'}"
    return (f"history: {inputs} took ≥ {about_seconds(found.least_no)} here ({runs}), "
            f"budget {about_seconds(budget)}")


def _would(history: History, size: int, budget: float) -> Optional[str]:
    band = size_band(size)
    own = history.bands.get(band)
    found = verdict(own, budget) if own is not None else None
    if found is not None and found.says_anything:
        return _reason(found, budget, smaller=False) if found.will_not_fit else None
    below = _nearest(history, band, budget, -1)
    if below is None or not below.will_not_fit:
        return None
    above = _nearest(history, band, budget, 1)
    if above is not None and above.yes > above.no:
        return None
    return _reason(below, budget, smaller=True)


def predict(history: History, *, size: int, budget: float, explore_fraction: float = 0.0,
            draw: float = 1.0) -> Decision:
    """Where a record with an input of ``size`` bytes and ``budget`` seconds left runs.

    ``draw`` is a number in [0, 1) that picks the records explored (one fixed per record,
    so a retried record is decided the same way).
    """
    would = _would(history, size, budget)
    if would is None:
        return Decision()
    if draw < explore_fraction:
        return Decision(explored=True, would=would)
    return Decision(reason=would)
