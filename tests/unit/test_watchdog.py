"""Deadline arithmetic (fake clock) and process-group killing (real /bin/sh)."""
from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import pytest
from conftest import process_gone

from supervisor.watchdog import Deadline, group_alive, kill_group


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def start_group(tmp_path: Path, script: str) -> "subprocess.Popen[bytes]":
    """Start ``/bin/sh -c script`` as the leader of a new process group."""
    return subprocess.Popen(
        ["/bin/sh", "-c", script], cwd=tmp_path, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_pid_file(path: Path, wait: float = 5.0) -> int:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        text = path.read_text().strip() if path.exists() else ""
        if text.endswith("\n") or text.isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


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


# --- kill_group -----------------------------------------------------------------


def test_kill_group_on_a_gone_group_does_not_raise(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "exit 0")
    proc.wait()
    start = time.monotonic()
    kill_group(proc.pid, grace=5.0)
    assert time.monotonic() - start < 1.0
    assert not group_alive(proc.pid)


def test_kill_group_terminates_leader_and_grandchildren(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "sleep 60 & echo $! > gc.pid; sleep 60")
    grandchild = wait_for_pid_file(tmp_path / "gc.pid")
    assert group_alive(proc.pid)
    start = time.monotonic()
    kill_group(proc.pid, grace=5.0, leader=proc)
    assert time.monotonic() - start < 3.0  # SIGTERM was enough: no wait for the grace
    assert proc.returncode == -15
    assert process_gone(grandchild)
    assert not group_alive(proc.pid)


def test_kill_group_sigkills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "trap '' TERM; sleep 60 & echo $! > gc.pid; wait")
    grandchild = wait_for_pid_file(tmp_path / "gc.pid")
    start = time.monotonic()
    kill_group(proc.pid, grace=0.5, leader=proc)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 3.0
    assert proc.returncode == -9
    assert process_gone(grandchild)


def test_kill_group_without_leader_is_not_fooled_by_the_zombie_leader(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "sleep 60")
    time.sleep(0.1)
    start = time.monotonic()
    kill_group(proc.pid, grace=5.0)  # nobody reaps the leader while it waits
    assert time.monotonic() - start < 2.0
    assert proc.wait(timeout=2) == -15
