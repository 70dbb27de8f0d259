"""Process control: stopping process groups and process trees, and the strays of one run.

Every process the supervisor starts (the script, udocker, a local Lambda worker, a local
Batch job) leads a session of its own; this module is the one place that stops them:

- :func:`kill_group` and :func:`kill_groups`: SIGTERM to whole process groups, a grace
  period, SIGKILL to what is left; the leaders are reaped.
- :func:`kill_group_now`: SIGKILL to a group at once (a Lambda sandbox going away).
- :func:`kill_tree`: a process and every descendant, whatever their session, stopped
  (SIGSTOP, so nothing forks away meanwhile) and SIGKILLed (a Lambda timeout).
- :class:`Strays`: what one run left outside its process group, adopted by this process as
  a subreaper (:func:`become_subreaper`), killed at the run's end, never another run's.
- :func:`wait_exit`: woken the moment a child exits (a pidfd on Linux).

On Linux ``/proc`` tells a live process from a zombie and gives each process's parent,
group, session and start time; without it the group functions trust ``killpg`` alone,
:func:`kill_tree` reaches only the root's group and :class:`Strays` finds nothing.
"""
from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .errors import ScriptError

__all__ = [
    "Strays",
    "become_subreaper",
    "group_alive",
    "hide_environment",
    "kill_group",
    "kill_group_now",
    "kill_groups",
    "kill_tree",
    "wait_exit",
]

_TASKS = "/proc/self/task"
_STRAY_ROUNDS = 8  # a killed stray's children come to this process: sweep again
_STOP_ROUNDS = 20  # rounds of SIGSTOP over a tree until no new member appears
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_GONE = ("Z", "X")  # a zombie or a dead process: it can do nothing any more


@dataclass(frozen=True)
class _Proc:
    """One line of ``/proc/<pid>/stat``, the fields used here."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    sid: int
    start: int  # clock ticks after boot


def _stat(pid: int) -> Optional[_Proc]:
    """``pid``'s :class:`_Proc`; None once it is gone (or ``/proc`` cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:  # the process went away while we looked
        return None
    # "pid (comm) state ppid pgrp session ... starttime ..."; comm may hold spaces and parens.
    fields = text.rpartition(")")[2].split()
    try:
        return _Proc(pid=pid, state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]),
                     sid=int(fields[3]), start=int(fields[19]))
    except (IndexError, ValueError):
        return None


def _proc_table() -> Optional[list[_Proc]]:
    """Every process ``/proc`` shows; None without ``/proc``."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    found = (_stat(int(name)) for name in names if name.isdigit())
    return [proc for proc in found if proc is not None]


def _boot_ticks() -> int:
    """Now, in the clock ticks after boot that ``/proc/<pid>/stat`` gives start times in."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime_ns(clock) // (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


# --- process groups ----------------------------------------------------------------------


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to group ``pgid``; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ScriptError(f"not allowed to signal process group {pgid}: {exc}") from exc
    return True


def group_alive(pgid: int) -> bool:
    """True while group ``pgid`` has a member that is not a zombie.

    ``killpg(pgid, 0)`` also succeeds for zombies (an unreaped leader, or
    orphans whose new parent does not reap), which can no longer do
    anything; on Linux ``/proc`` tells them apart.
    """
    if not _signal_group(pgid, 0):
        return False
    table = _proc_table()
    if table is None:
        return True
    return any(proc.pgrp == pgid and proc.state not in _GONE for proc in table)


def kill_group(
    pgid: int,
    grace: float = 2.0,
    poll: float = 0.05,
    leader: "Optional[subprocess.Popen[Any]]" = None,
) -> None:
    """Stop every process in group ``pgid``: SIGTERM, up to ``grace`` s, SIGKILL.

    ``leader`` is the :class:`subprocess.Popen` of the group leader, if the
    caller has one: it is polled while waiting and reaped before this
    returns, so its ``returncode`` is set and it does not linger as a zombie.
    Returns at once when the group is already gone; never raises for a group
    that vanished. A group the supervisor may not signal is a
    :class:`~supervisor.errors.ScriptError`.
    """
    _stop({pgid: leader}, grace, poll)


def kill_groups(
    leaders: Sequence["subprocess.Popen[Any]"], grace: float = 2.0, poll: float = 0.05
) -> None:
    """Stop the groups ``leaders`` lead, together: SIGTERM to all, one grace, SIGKILL.

    As :func:`kill_group` for each, but every group has its SIGTERM at once and
    the grace period runs for all of them at the same time. A group the
    supervisor may not signal is a :class:`~supervisor.errors.ScriptError`,
    raised once the others are stopped.
    """
    _stop({leader.pid: leader for leader in leaders}, grace, poll)


def _stop(
    groups: "Mapping[int, Optional[subprocess.Popen[Any]]]", grace: float, poll: float
) -> None:
    """SIGTERM, wait for the groups to empty (at most ``grace`` s), SIGKILL, reap."""
    denied: dict[int, str] = {}
    waiting: dict[int, Optional[subprocess.Popen[Any]]] = {}
    for pgid, leader in groups.items():
        if leader is not None:
            leader.poll()
        try:
            if _signal_group(pgid, signal.SIGTERM):
                waiting[pgid] = leader
        except ScriptError as exc:
            denied[pgid] = str(exc)
    end = time.monotonic() + max(0.0, grace)
    while waiting:
        for pgid, leader in list(waiting.items()):
            if leader is not None:
                leader.poll()
            if not group_alive(pgid):
                del waiting[pgid]
        if not waiting or time.monotonic() >= end:
            break
        time.sleep(poll)
    for pgid in waiting:
        try:
            _signal_group(pgid, signal.SIGKILL)
        except ScriptError as exc:
            denied[pgid] = str(exc)
    for pgid, leader in groups.items():
        if leader is not None and pgid not in denied:
            _reap(leader, max(1.0, grace))
    if denied:
        raise ScriptError("; ".join(denied.values()))


def _reap(leader: "subprocess.Popen[Any]", timeout: float) -> None:
    """Collect the leader's exit status once it is dead (or at worst a zombie)."""
    try:
        leader.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - only a SIGKILL-proof process
        pass


def _signal(pid: int, sig: int) -> None:
    """``kill(pid, sig)``, quietly: a process that is gone or not ours is let be."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group_now(pgid: int) -> None:
    """SIGKILL every process in group ``pgid`` at once; never raises (a group that is gone
    or may not be signalled is let be)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- process trees -----------------------------------------------------------------------


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants, from ``/proc`` (only ``root`` without it)."""
    table = _proc_table()
    if table is None:
        return [root]
    children: dict[int, list[int]] = {}
    for proc in table:
        if proc.state not in _GONE:
            children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and every process descended from it, whatever their session.

    A process that starts a session of its own leaves its parent's group, so
    killing ``root``'s group would not reach it. The tree is walked through
    ``/proc`` and every member stopped (SIGSTOP) until no new one appears, so
    nothing can fork away meanwhile; then all are killed, with ``root``'s
    process group. Without ``/proc``, only ``root``'s group.
    """
    stopped: list[int] = []
    for _ in range(_STOP_ROUNDS):
        new = [pid for pid in _tree(root) if pid not in stopped]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped.extend(new)
    for pid in stopped:
        _signal(pid, signal.SIGKILL)
    kill_group_now(root)


# --- waiting -------------------------------------------------------------------------------


def wait_exit(proc: "subprocess.Popen[Any]", timeout: Optional[float]) -> bool:
    """Wait up to ``timeout`` seconds (None: for ever) for ``proc``; True once it exited.

    Woken by the kernel the moment the process exits (a pidfd on Linux),
    instead of ``Popen.wait``'s sleep-and-poll loop, which adds up to 50 ms
    to every short child.
    """
    if timeout is None:
        proc.wait()
        return True
    if proc.poll() is not None:
        return True
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(proc.pid)
        except OSError:  # no pidfd support here (old kernel, seccomp): poll instead
            pass
        else:
            try:
                select.select([fd], [], [], max(timeout, 0.0))
            finally:
                os.close(fd)
            return proc.poll() is not None
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


# --- this process's own settings -----------------------------------------------------------


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A script's process that leaves its process group (``setsid``) and outlives
    its parent is then handed to the supervisor instead of to init, where
    :meth:`Strays.end` finds it. Returns whether it took effect.
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


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


# --- the strays of one run -------------------------------------------------------------------


def _listed_children() -> Optional[list[int]]:
    """This process's children from each thread's ``/proc/self/task/<tid>/children``."""
    try:
        kids: list[int] = []
        for tid in os.listdir(_TASKS):
            with open(f"{_TASKS}/{tid}/children", encoding="ascii") as listing:
                kids.extend(int(pid) for pid in listing.read().split())
        return kids
    except OSError:  # a thread ended while we looked, or no per-thread lists (old kernel)
        return None


def _children() -> list[_Proc]:
    """This process's children, zombies included (none where ``/proc`` cannot be read).

    Read from each thread's children list (a few files), else from the whole
    process table.
    """
    listed = _listed_children()
    if listed is None:
        me = os.getpid()
        return [proc for proc in _proc_table() or () if proc.ppid == me]
    found = (_stat(pid) for pid in listed)
    return [proc for proc in found if proc is not None]


def _sigkill_child(pid: int) -> bool:
    """SIGKILL a child of this process; False if it may not be signalled (waiting for it
    could then last for ever)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # reaped already
        pass
    except PermissionError:
        return False
    return True


_live_lock = threading.Lock()
_live: "set[Strays]" = set()  # the runs of this process that have begun and not ended
_sweep_lock = threading.Lock()  # one sweep at a time: a pid is killed and reaped once


class Strays:
    """What one run leaves running outside its process group, and its end.

    Create it just before the run's process starts (from then on what starts
    may be this run's), :meth:`lead` with that process, which leads a session
    of its own, and :meth:`end` it once the run's group is stopped. Several runs
    may be live in one process at once (threads); a child of this process is
    this run's stray when it started after the run began, belongs to no other
    live run's session or process group, and either is in this run's session
    or group, or started while no other run that is still live had begun (so
    only this run can have started it). What another live run started is
    never killed: a process that left its session (``setsid``) while another
    run overlapped cannot be told apart, and is left to the last of those runs
    to end. Start times count in clock ticks (10 ms), so a child started in
    the tick the run began counts as started after it. A child this process
    starts during the run for something other than a run (a ``udocker``
    command on another thread) cannot be told from the run's own and goes
    with them.
    """

    def __init__(self) -> None:
        self.since = _boot_ticks()
        self.leader: Optional[int] = None
        with _live_lock:
            _live.add(self)

    def lead(self, pid: int) -> None:
        """The run's process: the leader of its session and of its process group."""
        self.leader = pid

    def end(self, kill: bool = True) -> list[int]:
        """End the run: SIGKILL and reap its strays (unless not ``kill``); their pids.

        A killed stray's own children come to this process as it dies, so
        this goes on until none is left (a few rounds at most). ``kill`` is
        false when nothing of the run can be this process's child: it never
        started, or this process is no subreaper.
        """
        if not kill:
            self._forget()
            return []
        killed: list[int] = []
        with _sweep_lock:  # a run that ends meanwhile sweeps after this one, without it
            self._forget()
            for _ in range(_STRAY_ROUNDS):
                with _live_lock:
                    others = list(_live)
                strays = [proc.pid for proc in _children() if self._owns(proc, others)]
                doomed = [pid for pid in strays if _sigkill_child(pid)]
                if not doomed:
                    break
                for pid in doomed:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:  # reaped already
                        pass
                    killed.append(pid)
        return killed

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def _owns(self, proc: _Proc, others: Sequence["Strays"]) -> bool:
        if proc.start < self.since:  # it was there before this run began
            return False
        if any(other.leader in (proc.sid, proc.pgrp) for other in others):
            return False
        if self.leader in (proc.sid, proc.pgrp):
            return True
        return not any(other.since <= proc.start for other in others)
