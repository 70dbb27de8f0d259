"""Deadline arithmetic (fake clock)."""
from __future__ import annotations

import dataclasses

import pytest

from supervisor.watchdog import Deadline


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- Deadline -----------------------------------------------------------------


def test_from_remaining_ms_subtracts_the_threshold() -> None:
    clock = FakeClock(1000.0)
    deadline = Deadline.from_remaining_ms(5000, 1.5, clock=clock)
    assert deadline.at == pytest.approx(1003.5)
    assert deadline.remaining(clock) == pytest.approx(3.5)
    clock.now = 1002.0
    assert deadline.remaining(clock) == pytest.approx(1.5)
    assert not deadline.expired(clock)
    clock.now = 1003.5
    assert deadline.expired(clock)


def test_remaining_is_never_negative() -> None:
    clock = FakeClock(50.0)
    deadline = Deadline.after(2.0, clock=clock)
    clock.now = 500.0
    assert deadline.remaining(clock) == 0.0
    assert deadline.expired(clock)


def test_budget_below_threshold_is_already_expired() -> None:
    clock = FakeClock(10.0)
    deadline = Deadline.from_remaining_ms(800, 1.0, clock=clock)
    assert deadline.expired(clock)
    assert deadline.remaining(clock) == 0.0


def test_after_counts_from_now() -> None:
    clock = FakeClock(7.0)
    deadline = Deadline.after(3.0, clock=clock)
    assert deadline.at == pytest.approx(10.0)
    clock.now = 9.999
    assert not deadline.expired(clock)
    assert deadline.remaining(clock) == pytest.approx(0.001)


def test_none_never_expires_and_has_no_remaining_time() -> None:
    clock = FakeClock(0.0)
    deadline = Deadline.none()
    assert deadline.at is None
    clock.now = 1e12
    assert deadline.remaining(clock) is None
    assert not deadline.expired(clock)


def test_deadline_is_frozen() -> None:
    deadline = Deadline.after(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        deadline.at = 0.0  # type: ignore[misc]


def test_default_clock_is_monotonic() -> None:
    deadline = Deadline.after(60.0)
    remaining = deadline.remaining()
    assert remaining is not None and 59.0 < remaining <= 60.0
    assert not deadline.expired()
    assert Deadline.after(-1.0).expired()
