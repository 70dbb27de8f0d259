"""Deadline arithmetic and killing a whole process group.

A Lambda invocation that runs out of time is frozen with no signal the
Python runtime can see, so the supervisor keeps its own :class:`Deadline`
(the invocation's remaining time minus a safety threshold) and stops the
script itself with :func:`kill_group`: SIGTERM to the whole process group,
a grace period, then SIGKILL.

Deadlines are expressed in ``time.monotonic()`` terms; every function that
reads the time takes a ``clock`` argument so tests can pass a fake one.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Optional

from .errors import ScriptError

__all__ = ["Clock", "Deadline", "kill_group", "group_alive", "children", "become_subreaper",
           "kill_strays"]

_PR_SET_CHILD_SUBREAPER = 36
_TASKS = "/proc/self/task"
_STRAY_ROUNDS = 8

Clock = Callable[[], float]
"""A source of monotonic seconds, ``time.monotonic`` unless a test passes another."""

_PROC = Path("/proc")


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


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to group ``pgid``; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ScriptError(f"not allowed to signal process group {pgid}: {exc}") from exc
    return True


def _proc_table() -> Optional[list[tuple[int, str, int, int]]]:
    """``(pid, state, ppid, pgrp)`` of every process ``/proc`` shows; None without ``/proc``."""
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return None
    table = []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:  # the process went away while we looked
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parens.
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        table.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return table


def _live_members_in_proc(pgid: int) -> Optional[bool]:
    """Whether ``/proc`` shows a non-zombie process in group ``pgid``.

    ``None`` when ``/proc`` cannot be read (not Linux): the caller then
    trusts ``killpg(pgid, 0)`` alone.
    """
    table = _proc_table()
    if table is None:
        return None
    return any(pgrp == pgid and state not in ("Z", "X") for _, state, _, pgrp in table)


def children() -> set[int]:
    """The pids of this process's children (empty where ``/proc`` cannot be read).

    Read from each thread's ``/proc/self/task/<tid>/children`` (a few files),
    else from the whole process table.
    """
    try:
        kids: set[int] = set()
        for tid in os.listdir(_TASKS):
            with open(f"{_TASKS}/{tid}/children", encoding="ascii") as listing:
                kids.update(int(pid) for pid in listing.read().split())
        return kids
    except FileNotFoundError:  # a thread ended while we looked: ask again, the long way
        pass
    except OSError:  # no per-thread children lists (old kernel, restricted /proc)
        pass
    me = os.getpid()
    return {pid for pid, _, ppid, _ in _proc_table() or () if ppid == me}


@functools.lru_cache(maxsize=1)
def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A script's process that leaves its process group (``setsid``) and outlives
    its parent is then handed to the supervisor instead of to init, where
    :func:`kill_strays` finds it. Returns whether it took effect.
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


_PR_SET_DUMPABLE = 4


def hide_environment() -> bool:
    """Make this process unreadable to processes of the same user (``PR_SET_DUMPABLE`` 0).

    A script runs as the supervisor's user: without this it could read the supervisor's
    ``/proc/<pid>/environ`` (AWS credentials, ``FUNCTION_CONFIG``) and memory. The
    setting is not inherited across ``execve``, so the script and PRoot are unaffected;
    root (``CAP_SYS_PTRACE``) can still read. Returns whether it took effect.
    """
    return _prctl(_PR_SET_DUMPABLE, 0)


@functools.lru_cache(maxsize=None)
def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``, once per process: both settings here are the process's own
    and stay until it exits."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux, or no prctl
        return False


def kill_strays(before: Collection[int]) -> list[int]:
    """SIGKILL and reap every child of this process not in ``before``; returns their pids.

    For a subreaper these are what a script left behind outside its process
    group. Their own children come to this process as they die, so this goes
    on until none is left (a few rounds at most).
    """
    killed: list[int] = []
    for _ in range(_STRAY_ROUNDS):
        strays = children() - set(before)
        if not strays:
            break
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            killed.append(pid)
    return killed


def group_alive(pgid: int) -> bool:
    """True while group ``pgid`` has a member that is not a zombie.

    ``killpg(pgid, 0)`` also succeeds for zombies (an unreaped leader, or
    orphans whose new parent does not reap), which can no longer do
    anything; on Linux ``/proc`` tells them apart.
    """
    if not _signal_group(pgid, 0):
        return False
    live = _live_members_in_proc(pgid)
    return True if live is None else live


def kill_group(
    pgid: int,
    grace: float = 2.0,
    poll: float = 0.05,
    leader: "Optional[subprocess.Popen[Any]]" = None,
) -> None:
    """Stop every process in group ``pgid``: SIGTERM, up to ``grace`` s, SIGKILL.

    ``leader`` is the :class:`subprocess.Popen` of the group leader, if the
    caller has one: it is polled while waiting and reaped before this
    returns, so its ``returncode`` is set and it does not linger as a zombie. Returns at once when the group is
    already gone; never raises for a group that vanished. A group the
    supervisor may not signal is a :class:`~supervisor.errors.ScriptError`.
    """
    _terminate(pgid, grace, poll, leader)
    if leader is not None:
        _reap(leader, max(1.0, grace))


def _terminate(
    pgid: int, grace: float, poll: float, leader: "Optional[subprocess.Popen[Any]]"
) -> None:
    """SIGTERM, wait for the group to empty (at most ``grace`` s), SIGKILL."""
    if leader is not None:
        leader.poll()
    if not _signal_group(pgid, signal.SIGTERM):
        return
    end = time.monotonic() + max(0.0, grace)
    while True:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid):
            return
        if time.monotonic() >= end:
            break
        time.sleep(poll)
    _signal_group(pgid, signal.SIGKILL)


def _reap(leader: "subprocess.Popen[Any]", timeout: float) -> None:
    """Collect the leader's exit status once it is dead (or at worst a zombie)."""
    try:
        leader.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - only a SIGKILL-proof process
        pass
