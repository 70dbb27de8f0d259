"""Process control with real /bin/sh processes: groups, trees, waits, one run's strays."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import process_gone

from supervisor.process import (
    Strays,
    group_alive,
    kill_group,
    kill_group_now,
    kill_groups,
    kill_tree,
    wait_exit,
)


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


# --- kill_groups, kill_group_now ------------------------------------------------


def test_kill_groups_gives_every_group_the_same_grace(tmp_path: Path) -> None:
    procs = [start_group(tmp_path, "trap '' TERM; sleep 60 & wait") for _ in range(3)]
    time.sleep(0.1)
    start = time.monotonic()
    kill_groups(procs, grace=0.5)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 1.4  # one grace for all three, not one after the other
    assert [proc.returncode for proc in procs] == [-9, -9, -9]
    assert not any(group_alive(proc.pid) for proc in procs)


def test_kill_groups_without_groups_does_nothing() -> None:
    kill_groups([], grace=5.0)


def test_kill_group_now_sigkills_without_a_grace(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "sleep 60")
    time.sleep(0.05)
    kill_group_now(proc.pid)
    assert proc.wait(timeout=2) == -9
    kill_group_now(proc.pid)  # gone: no error


# --- kill_tree ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid(1)")
def test_kill_tree_reaches_a_descendant_in_another_session(tmp_path: Path) -> None:
    proc = start_group(tmp_path, 'setsid sleep 60 & echo $! > away.pid; sleep 60')
    away = wait_for_pid_file(tmp_path / "away.pid")
    try:
        kill_tree(proc.pid)
        assert proc.wait(timeout=2) == -9
        assert process_gone(away)
    finally:
        kill_group_now(away)


# --- wait_exit ------------------------------------------------------------------


def test_wait_exit_returns_as_the_process_exits(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "sleep 0.2")
    start = time.monotonic()
    assert wait_exit(proc, 10.0)
    assert time.monotonic() - start < 2.0
    assert proc.returncode == 0


def test_wait_exit_gives_up_at_the_timeout(tmp_path: Path) -> None:
    proc = start_group(tmp_path, "sleep 60")
    try:
        start = time.monotonic()
        assert not wait_exit(proc, 0.2)
        assert 0.2 <= time.monotonic() - start < 2.0
        assert proc.returncode is None
    finally:
        kill_group(proc.pid, grace=0.5, leader=proc)


# --- Strays ---------------------------------------------------------------------


def test_strays_are_children_started_after_the_run_began(tmp_path: Path) -> None:
    earlier = start_group(tmp_path, "exec sleep 60")
    time.sleep(0.05)  # start times count in clock ticks (10 ms)
    strays = Strays()
    later = start_group(tmp_path, "exec sleep 60")
    try:
        assert strays.end() == [later.pid]
        assert process_gone(later.pid) and not process_gone(earlier.pid, wait=0)
    finally:
        kill_group(earlier.pid, grace=0.5, leader=earlier)
        later.poll()


def test_strays_spare_another_live_runs_process(tmp_path: Path) -> None:
    first = Strays()
    second = Strays()
    theirs = start_group(tmp_path, "exec sleep 60")
    second.lead(theirs.pid)
    try:
        assert first.end() == []  # started while the other run was live, and leads it
        assert not process_gone(theirs.pid, wait=0)
    finally:
        swept = second.end()
        theirs.poll()
    assert swept == [theirs.pid]


def test_a_run_that_ends_without_a_sweep_kills_nothing(tmp_path: Path) -> None:
    strays = Strays()
    child = start_group(tmp_path, "exec sleep 60")
    try:
        assert strays.end(kill=False) == []
        assert not process_gone(child.pid, wait=0)
    finally:
        kill_group(child.pid, grace=0.5, leader=child)
