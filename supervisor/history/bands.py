"""Size bands and duration buckets: how sizes and seconds are grouped for history. Pure.

An input's size falls in a band an eighth of an octave wide (each band's sizes are within
9 % of each other), and a run's duration in a bucket as wide, counted from one
millisecond. History keeps counts per (band, outcome, bucket), so a busy
function's item stays the same size however many runs it has.
"""
from __future__ import annotations

import math

__all__ = ["size_band", "band_size", "duration_bucket", "bucket_floor", "about_bytes",
           "about_seconds"]

BANDS_PER_OCTAVE = 8
BUCKETS_PER_OCTAVE = 8
_BUCKET_ORIGIN_S = 0.001


def size_band(size: int) -> int:
    """The band of an input of ``size`` bytes (0 for 0 and 1 byte)."""
    if size <= 1:
        return 0
    return int(math.floor(BANDS_PER_OCTAVE * math.log2(size)))


def band_size(band: int) -> float:
    """The middle of a band, in bytes (geometric)."""
    return float(2 ** ((band + 0.5) / BANDS_PER_OCTAVE))


def duration_bucket(seconds: float) -> int:
    """The bucket of a duration (0 for a millisecond or less)."""
    if seconds <= _BUCKET_ORIGIN_S:
        return 0
    return int(math.floor(BUCKETS_PER_OCTAVE * math.log2(seconds / _BUCKET_ORIGIN_S)))


def bucket_floor(bucket: int) -> float:
    """The shortest duration of a bucket, in seconds."""
    return float(_BUCKET_ORIGIN_S * 2 ** (bucket / BUCKETS_PER_OCTAVE))


def _two_digits(value: float) -> float:
    return float(f"{value:.2g}")


def _number(value: float) -> str:
    return str(int(value)) if value >= 10 else f"{value:g}"


def about_bytes(size: float) -> str:
    """A size to two significant digits: ``8.4 MB``, ``120 KB``, ``3 B`` (powers of 1000)."""
    units = ("B", "KB", "MB", "GB", "TB")
    for unit in units:
        rounded = _two_digits(size)
        if rounded < 1000 or unit == units[-1]:
            return f"{_number(rounded)} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def about_seconds(seconds: float) -> str:
    """A duration to two significant digits: ``40 s``, ``2.9 s``, ``0.45 s``."""
    return f"{_number(_two_digits(seconds))} s"
