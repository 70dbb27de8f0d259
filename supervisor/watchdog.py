"""Deadline arithmetic.

A Lambda invocation that runs out of time is frozen with no signal the
Python runtime can see, so the supervisor keeps its own :class:`Deadline`
(the invocation's remaining time minus a safety threshold) and stops the
script itself with :func:`~supervisor.process.kill_group` (SIGTERM to the
whole process group, a grace period, then SIGKILL), which lives with the
rest of process control in :mod:`supervisor.process`.

Deadlines are expressed in ``time.monotonic()`` terms; every function that
reads the time takes a ``clock`` argument so tests can pass a fake one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["Clock", "Deadline"]

Clock = Callable[[], float]
"""A source of monotonic seconds, ``time.monotonic`` unless a test passes another."""


@dataclass(frozen=True)
class Deadline:
    """A point in time (``time.monotonic()`` seconds) by which work must stop.

    ``at`` is ``None`` for "no deadline" (Batch, the CLI); such a deadline
    never expires and has no remaining time to report.
    """

    at: Optional[float]

    @classmethod
    def from_remaining_ms(
        cls, remaining_ms: int, threshold_s: float, clock: Clock = time.monotonic
    ) -> "Deadline":
        """The deadline for a Lambda invocation with ``remaining_ms`` left.

        The budget is ``remaining_ms / 1000 - threshold_s`` seconds from now;
        it may be zero or negative, in which case the deadline has already
        expired (the caller should delegate or fail without starting work).
        """
        return cls(at=clock() + remaining_ms / 1000.0 - threshold_s)

    @classmethod
    def none(cls) -> "Deadline":
        """A deadline that never expires."""
        return cls(at=None)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> "Deadline":
        """The deadline ``seconds`` from now."""
        return cls(at=clock() + seconds)

    def remaining(self, clock: Clock = time.monotonic) -> Optional[float]:
        """Seconds left (never negative), or ``None`` when there is no deadline."""
        if self.at is None:
            return None
        return max(0.0, self.at - clock())

    def expired(self, clock: Clock = time.monotonic) -> bool:
        """True once the deadline has passed; never for :meth:`none`."""
        return self.at is not None and clock() >= self.at
