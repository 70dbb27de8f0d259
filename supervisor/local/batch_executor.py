"""The local Batch executor: runs the jobs submitted to the embedded endpoint's queues.

moto records SubmitJob but runs nothing here; this executor finds the jobs
(:mod:`~supervisor.local.batch_source`), resolves each attempt's processes as
Batch would (:mod:`~supervisor.local.batch_resolve`) and runs them on this
machine, keeping its own state in the :class:`~supervisor.local.store.LocalStore`
(moto's job status is ignored)::

    SUBMITTED ─▶ RUNNABLE ─▶ RUNNING ─▶ SUCCEEDED
                    ▲            │
                    └── retry ───┴────▶ FAILED

``jobs[job_id]`` holds ``name``, ``queue``, ``definition`` (ARN), ``created``,
``compute_environment``, ``type``, ``overrides_from`` (``SubmitJob`` when the
request was known, else ``DescribeJobs``), ``status`` and ``history``; while
running ``attempt``, ``started``, ``log`` and ``pids``; once stopped
``exit_code`` (None when nothing ran), ``reason`` (Batch's wording),
``stopped``, ``log`` (the last attempt's log file, the main node's), ``attempts``
(``[{attempt, exit_code, reason, started, stopped, log}]``) and, for a
multi-node job, ``nodes`` (``[{index, exit_code, log}]``). An array job's
children are ``<id>:<index>`` entries of their own; the parent goes
SUBMITTED → PENDING → SUCCEEDED | FAILED with them.

Each attempt is one process (one per node for a multi-node job; the main
node first) in its own session, with a fresh working directory
``<work_root>/<job>/attempt-N/`` (``TMPDIR`` inside it, as a container's
private ``/tmp``) and stdout and stderr in ``<work_root>/<job>/attempt-N.log``
(``attempt-N-node-I.log``). A job's status follows its main node: when the
main node exits, the rest of its process group and the other nodes are
stopped (SIGTERM, then SIGKILL after ``grace`` seconds). A non-zero exit is
retried while ``retryStrategy.attempts`` allow and ``evaluateOnExit`` does not
say ``EXIT``; an attempt killed at ``attemptDurationSeconds`` is not retried
(Batch's rule). At most ``max_jobs`` jobs run at once (a multi-node job, or
one child of an array job, counts as one).
"""
from __future__ import annotations

import logging
import re
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Collection, Mapping, Optional

from ..errors import ScriptError
from ..process import kill_groups
from ..runner import DEFAULT_PATH, shell_exit_code
from ..watchdog import Clock, Deadline
from .batch_resolve import (
    EXIT_REASON,
    TIMEOUT_REASON,
    JobSpec,
    JobSpecError,
    Launch,
    LocalHost,
    launches,
    max_attempts,
    should_retry,
    timeout_seconds,
)
from .batch_source import BatchSource, EndpointError
from .batch_tap import SubmitJobTap
from .store import LocalStore

__all__ = ["LocalBatchExecutor", "SHUTDOWN_REASON", "START_REASON", "FINAL_STATES"]

log = logging.getLogger("supervisor.local.batch")

FINAL_STATES = ("SUCCEEDED", "FAILED")
SHUTDOWN_REASON = "Job terminated: the local Batch executor shut down"
START_REASON = "Task failed to start"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class _Unit:
    """One thing to run: a container or multi-node job, or one child of an array job."""

    spec: JobSpec
    job_id: str
    array_index: Optional[int] = None
    parent: Optional[str] = None


@dataclass
class _Node:
    """A started process of an attempt."""

    launch: Launch
    proc: "subprocess.Popen[bytes]"
    log: Path


@dataclass(frozen=True)
class _Outcome:
    """How one attempt ended."""

    exit_code: Optional[int]
    reason: str
    started: float
    stopped: float
    log: Path
    timed_out: bool = False
    nodes: tuple[dict[str, Any], ...] = ()

    def record(self, attempt: int) -> dict[str, Any]:
        """The attempt as the store keeps it."""
        entry: dict[str, Any] = {"attempt": attempt, "exit_code": self.exit_code,
                                 "reason": self.reason, "started": self.started,
                                 "stopped": self.stopped, "log": str(self.log)}
        if self.nodes:
            entry["nodes"] = list(self.nodes)
        return entry


@dataclass
class _Array:
    """Progress of an array job's children."""

    size: int
    done: int = 0
    failed: int = 0
    children: list[str] = field(default_factory=list)


def _exit_code(returncode: Optional[int]) -> Optional[int]:
    """A container's exit code: ``128 + N`` for a process killed by signal N."""
    return None if returncode is None else shell_exit_code(returncode)


class LocalBatchExecutor:
    """Runs the Batch jobs of the embedded endpoint on this machine.

    ``batch`` is a boto3 Batch client on the endpoint; ``store`` receives the
    job states; ``work_root`` holds each job's attempt directories and logs.
    ``host`` maps host volumes, executables and images to this machine and
    carries the jobs' base environment (see :func:`~supervisor.local.batch_resolve.base_env`).
    ``tap`` supplies the SubmitJob requests moto drops parts of; ``queues``
    limits discovery to those queue names (``track`` works for any job).

    Drive it with :meth:`poll_once` (and :meth:`busy`) or :meth:`start` a
    polling thread; :meth:`shutdown` stops everything still running.
    """

    def __init__(self, batch: Any, store: LocalStore, work_root: Path, *,
                 host: Optional[LocalHost] = None, tap: Optional[SubmitJobTap] = None,
                 queues: Optional[Collection[str]] = None, max_jobs: int = 2,
                 grace: float = 30.0, poll_interval: float = 0.5, tick: float = 0.05,
                 clock: Clock = time.monotonic) -> None:
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        self._source = BatchSource(batch, queues=queues)
        self._store = store
        self._root = work_root
        self._host = host if host is not None else LocalHost()
        self._tap = tap
        self._grace = grace
        self._poll_interval = poll_interval
        self._tick = tick
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="local-batch")
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._known: set[str] = set()  # job ids recorded in the store
        self._wanted: set[str] = set()  # tracked ids the endpoint did not describe yet
        self._requests: dict[str, dict[str, Any]] = {}  # SubmitJob requests given to track()
        self._active: set[str] = set()  # ids not in a final state
        self._arrays: dict[str, _Array] = {}
        self._stopping = threading.Event()  # shutdown: stop every job
        self._polling = threading.Event()
        self._thread: Optional[threading.Thread] = None
        work_root.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- public surface

    def track(self, job_id: str, request: Optional[Mapping[str, Any]] = None) -> bool:
        """Run ``job_id`` even if no watched queue lists it; True once it is recorded.

        ``request`` is the SubmitJob request, when the caller has it (it gives
        what moto drops: ``nodeOverrides``, ``retryStrategy``). A job the
        endpoint does not know yet is tried again on every :meth:`poll_once`.
        """
        with self._lock:
            if request is not None:
                self._requests[job_id] = dict(request)
            if job_id in self._known:
                return True
            self._wanted.add(job_id)
        if self._stopping.is_set():
            return False
        with self._poll_lock:
            try:
                self._admit_ids([job_id], self._source.queues())
            except EndpointError as exc:
                log.warning("cannot describe a tracked Batch job yet",
                            extra={"job_id": job_id, "error": str(exc)})
        with self._lock:
            return job_id in self._known

    def poll_once(self) -> int:
        """Look for new jobs on the queues (and tracked ones); start them; return how many."""
        if self._stopping.is_set():
            return 0
        with self._poll_lock:
            try:
                queues = self._source.queues()
                listed = self._source.listed_ids(queues)
                if self._tap is not None and self._tap.in_flight:
                    listed = []  # a job being submitted now: its request is not filed yet
                with self._lock:
                    ids = [i for i in dict.fromkeys([*sorted(self._wanted), *listed])
                           if i not in self._known]
                return self._admit_ids(ids, queues) if ids else 0
            except EndpointError as exc:
                log.warning("cannot list Batch jobs", extra={"error": str(exc)})
                return 0

    def busy(self) -> bool:
        """True while a job this executor found is waiting or running."""
        with self._lock:
            return bool(self._active)

    def wait_idle(self, timeout: float) -> bool:
        """Poll until no job is waiting or running (True), or ``timeout`` seconds pass."""
        end = self._clock() + timeout
        while True:
            if self._thread is None:
                self.poll_once()
            if not self.busy():
                return True
            if self._clock() >= end:
                return False
            time.sleep(min(self._poll_interval, max(0.0, end - self._clock())))

    def start(self) -> None:
        """Poll on a background thread every ``poll_interval`` seconds until :meth:`stop`."""
        if self._thread is not None:
            return
        self._polling.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="local-batch-poll",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the polling thread (jobs already found keep running)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._polling.set()
            thread.join()

    def shutdown(self) -> None:
        """Stop polling, stop every running job (FAILED), fail the waiting ones, wait."""
        self.stop()
        self._stopping.set()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "LocalBatchExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ----------------------------------------------------------------- discovery

    def _poll_loop(self) -> None:
        while not self._polling.is_set():
            self.poll_once()
            self._polling.wait(self._poll_interval)

    def _admit_ids(self, ids: list[str], queues: Mapping[str, Mapping[str, Any]]) -> int:
        requests: dict[str, Mapping[str, Any]] = {}
        for job_id in ids:
            with self._lock:
                known = self._requests.get(job_id)
            found = known if known is not None else (
                self._tap.request(job_id) if self._tap is not None else None)
            if found is not None:
                requests[job_id] = found
        described = self._source.describe(ids, queues, requests)
        for spec in described.specs:
            self._admit(spec)
        for job_id, (job, reason) in described.unrunnable.items():
            self._reject(job_id, job, reason)
        return len(described.specs) + len(described.unrunnable)

    def _claim(self, job_id: str) -> bool:
        with self._lock:
            if job_id in self._known:
                return False
            self._known.add(job_id)
            self._wanted.discard(job_id)
            return True

    def _admit(self, spec: JobSpec) -> None:
        if not self._claim(spec.job_id):
            return
        fields = {"name": spec.name, "queue": spec.queue, "definition": spec.definition_arn,
                  "created": spec.created if spec.created is not None else self._store.now(),
                  "compute_environment": spec.compute_environment, "type": spec.kind,
                  "overrides_from": spec.overrides_from}
        log.info("Batch job found", extra={"job_id": spec.job_id, "job_name": spec.name,
                                           "job_queue": spec.queue})
        if spec.array_size is None:
            self._store.transition(spec.job_id, "SUBMITTED", **fields)
            self._schedule(_Unit(spec=spec, job_id=spec.job_id))
            return
        children = [f"{spec.job_id}:{i}" for i in range(spec.array_size)]
        self._store.transition(spec.job_id, "SUBMITTED", array_size=spec.array_size,
                               children=children, **fields)
        self._store.transition(spec.job_id, "PENDING")
        with self._lock:
            self._active.add(spec.job_id)
            self._arrays[spec.job_id] = _Array(size=spec.array_size, children=children)
        for index, child in enumerate(children):
            self._store.transition(child, "SUBMITTED", array_index=index,
                                   array_parent=spec.job_id, **fields)
            self._schedule(_Unit(spec=spec, job_id=child, array_index=index,
                                 parent=spec.job_id))

    def _reject(self, job_id: str, job: Mapping[str, Any], reason: str) -> None:
        if not self._claim(job_id):
            return
        self._store.transition(job_id, "SUBMITTED", name=job.get("jobName", ""),
                               queue=str(job.get("jobQueue", "")).rsplit("/", 1)[-1],
                               definition=job.get("jobDefinition", ""))
        self._store.transition(job_id, "FAILED", exit_code=None, reason=reason,
                               stopped=self._store.now())
        log.warning("Batch job cannot run", extra={"job_id": job_id, "reason": reason})

    def _schedule(self, unit: _Unit) -> None:
        with self._lock:
            self._active.add(unit.job_id)
        try:
            self._pool.submit(self._run_unit, unit)
        except RuntimeError:  # the pool is shut down
            self._finish(unit, "FAILED", None, SHUTDOWN_REASON)

    # ----------------------------------------------------------------- running

    def _run_unit(self, unit: _Unit) -> None:
        try:
            self._run_attempts(unit)
        except Exception as exc:  # the job's error boundary: never leave it RUNNING
            log.exception("local Batch executor error", extra={"job_id": unit.job_id})
            self._finish(unit, "FAILED", None,
                         f"local executor error: {type(exc).__name__}: {exc}")

    def _run_attempts(self, unit: _Unit) -> None:
        spec = unit.spec
        total = max_attempts(spec)
        records: list[dict[str, Any]] = []
        outcome: Optional[_Outcome] = None
        for attempt in range(1, total + 1):
            if self._stopping.is_set():
                break
            self._store.transition(unit.job_id, "RUNNABLE", attempt=attempt)
            attempt_dir = self._root / _UNSAFE.sub("_", unit.job_id) / f"attempt-{attempt}"
            try:
                planned = launches(spec, attempt=attempt, host=self._host,
                                   scratch_root=attempt_dir, array_index=unit.array_index)
            except JobSpecError as exc:
                self._finish(unit, "FAILED", None, str(exc), records)
                return
            outcome = self._run_attempt(unit, attempt, planned, attempt_dir)
            records.append(outcome.record(attempt))
            self._store.put("jobs", unit.job_id, {"attempts": records, "log": str(outcome.log)})
            if outcome.exit_code == 0 and not outcome.timed_out:
                self._finish(unit, "SUCCEEDED", 0, outcome.reason, records)
                return
            if outcome.timed_out or self._stopping.is_set():
                break
            if not should_retry(spec.retry_strategy, exit_code=outcome.exit_code,
                                status_reason=outcome.reason):
                break
        if outcome is None:
            self._finish(unit, "FAILED", None, SHUTDOWN_REASON, records)
        else:
            self._finish(unit, "FAILED", outcome.exit_code, outcome.reason, records)

    def _run_attempt(self, unit: _Unit, attempt: int, planned: list[Launch],
                     attempt_dir: Path) -> _Outcome:
        timeout = timeout_seconds(unit.spec)
        started = self._store.now()
        nodes: list[_Node] = []
        try:
            for launch in planned:
                nodes.append(self._spawn(launch, attempt, attempt_dir))
        except (OSError, ValueError) as exc:
            self._stop_nodes(nodes)
            argv0 = planned[len(nodes)].argv[0]
            detail = getattr(exc, "strerror", None) or exc
            reason = f"{START_REASON}: cannot start {argv0}: {detail}"
            log_path = nodes[0].log if nodes else self._log_path(attempt_dir, planned[0])
            with open(log_path, "ab") as handle:
                handle.write(f"{reason}\n".encode())
            return _Outcome(exit_code=None, reason=reason, started=started,
                            stopped=self._store.now(), log=log_path,
                            nodes=self._node_records(nodes))
        deadline = Deadline.none() if timeout is None else Deadline.after(timeout, self._clock)
        self._store.transition(unit.job_id, "RUNNING", attempt=attempt, started=started,
                               log=str(nodes[0].log),
                               pids=[node.proc.pid for node in nodes])
        log.info("Batch job attempt started", extra={
            "job_id": unit.job_id, "attempt": attempt, "argv": list(planned[0].argv)})
        main = nodes[0].proc
        timed_out = False
        while main.poll() is None:
            if deadline.expired(self._clock):
                timed_out = True
                break
            if self._stopping.wait(self._tick):
                break
        stopping = self._stopping.is_set() and main.returncode is None
        self._stop_nodes(nodes)
        reason = (TIMEOUT_REASON if timed_out else SHUTDOWN_REASON if stopping
                  else EXIT_REASON)
        return _Outcome(exit_code=_exit_code(main.returncode), reason=reason,
                        started=started, stopped=self._store.now(), log=nodes[0].log,
                        timed_out=timed_out, nodes=self._node_records(nodes))

    def _executable_shims(self) -> Optional[Path]:
        """A dir of ``NAME`` scripts running ``LocalHost.executables[NAME]``, put first on
        the job's PATH: a job command's shell (``python3 "$1"``) finds them too."""
        if not self._host.executables:
            return None
        shims = self._root / "bin"
        shims.mkdir(parents=True, exist_ok=True)
        for name, program in self._host.executables.items():
            shim = shims / name
            text = f"#!/bin/sh\nexec {shlex.quote(program)} \"$@\"\n"
            if not shim.is_file() or shim.read_text() != text:
                shim.write_text(text)
                shim.chmod(0o755)
        return shims

    def _log_path(self, attempt_dir: Path, launch: Launch) -> Path:
        suffix = "" if launch.node_index is None else f"-node-{launch.node_index}"
        return attempt_dir.parent / f"{attempt_dir.name}{suffix}.log"

    def _spawn(self, launch: Launch, attempt: int, attempt_dir: Path) -> _Node:
        cwd = (attempt_dir if launch.node_index is None
               else attempt_dir / f"node-{launch.node_index}")
        tmp = cwd / "tmp"
        for directory in (cwd, tmp, *launch.scratch):
            directory.mkdir(parents=True, exist_ok=True)
        env = dict(launch.env)
        env.setdefault("TMPDIR", str(tmp))
        shims = self._executable_shims()
        if shims is not None:
            env["PATH"] = f"{shims}:{env.get('PATH') or DEFAULT_PATH}"
        log_path = self._log_path(attempt_dir, launch)
        handle: IO[bytes] = open(log_path, "wb")
        try:
            proc = subprocess.Popen(list(launch.argv), env=env, cwd=str(cwd),
                                    stdin=subprocess.DEVNULL, stdout=handle,
                                    stderr=subprocess.STDOUT, close_fds=True,
                                    start_new_session=True)
        except (OSError, ValueError):
            handle.close()
            raise
        handle.close()  # the child has its own copy
        return _Node(launch=launch, proc=proc, log=log_path)

    def _stop_nodes(self, nodes: list[_Node]) -> None:
        """SIGTERM every node's group at once, SIGKILL what is left after the grace."""
        try:
            kill_groups([node.proc for node in nodes], grace=self._grace)
        except ScriptError as exc:
            log.warning("cannot stop a Batch job process", extra={"error": str(exc)})

    @staticmethod
    def _node_records(nodes: list[_Node]) -> tuple[dict[str, Any], ...]:
        return tuple({"index": n.launch.node_index, "exit_code": _exit_code(n.proc.returncode),
                      "log": str(n.log)} for n in nodes if n.launch.node_index is not None)

    def _finish(self, unit: _Unit, status: str, exit_code: Optional[int], reason: str,
                records: Optional[list[dict[str, Any]]] = None) -> None:
        fields: dict[str, Any] = {"exit_code": exit_code, "reason": reason,
                                  "stopped": self._store.now()}
        if records:
            fields["attempts"] = records
            fields["log"] = records[-1]["log"]
            if records[-1].get("nodes"):
                fields["nodes"] = records[-1]["nodes"]
        self._store.transition(unit.job_id, status, **fields)
        log.info("Batch job done", extra={"job_id": unit.job_id, "status": status,
                                          "exit_code": exit_code, "reason": reason})
        with self._lock:
            self._active.discard(unit.job_id)
        if unit.parent is not None:
            self._child_done(unit.parent, status == "SUCCEEDED")

    def _child_done(self, parent: str, succeeded: bool) -> None:
        with self._lock:
            array = self._arrays[parent]
            array.done += 1
            array.failed += 0 if succeeded else 1
            if array.done < array.size:
                return
        failed = array.failed
        status = "FAILED" if failed else "SUCCEEDED"
        reason = (f"{failed} of {array.size} child jobs failed" if failed
                  else f"all {array.size} child jobs succeeded")
        self._store.transition(parent, status, reason=reason, stopped=self._store.now())
        with self._lock:
            self._active.discard(parent)
