"""The local Lambda: every invocation in its own process, with the code that was deployed.

::

    invoke(fn, event, "Event")  ──▶ Future[Invocation]   (queued; retried on error)
    invoke(fn, event, "RequestResponse") ──▶ Invocation  (waits; never retried)
        │ Sandboxes.resolve: GetFunctionConfiguration, code and layers verified, unpacked
        ▼
    thread pool (``concurrency``) ─▶ python lambda_worker.py  (own session, Lambda env,
        cwd LAMBDA_TASK_ROOT, event on stdin, log = stdout+stderr, result file)
        init ─▶ "ready" ─▶ handler(event, context) ─▶ result JSON
        at ready + timeout: SIGKILL the worker and everything it started ("timed-out")

Like Lambda:

- **timeouts** kill hard, with no signal the handler sees: the worker and all
  its descendants, in whatever session or group, are stopped (SIGSTOP, so
  nothing forks meanwhile) and then SIGKILLed. Init (importing the handler's
  module) is not part of the timeout; it has its own limit, 10 s.
- **async retries**: an ``Event`` invocation whose handler raised, crashed or
  timed out runs again, up to ``max_retries`` more times (Lambda's default
  ``MaximumRetryAttempts`` is 2), with the same request id, ``retry_delay``
  seconds apart (Lambda waits minutes). A handler that *returns*, whatever it
  returns (``statusCode`` 500 included), succeeded and is not retried.
- **concurrency**: at most ``concurrency`` invocations run at once; further
  ones wait in a queue, as Lambda queues async events. (A synchronous
  invocation over the limit would be throttled by Lambda; here it waits.)
- every invocation is a cold start: a fresh process and a fresh ``TMPDIR``.

Every attempt is recorded in the :class:`~supervisor.local.store.LocalStore`
under ``invocations[request_id]`` (see :meth:`Invocation.to_store`), its
log in ``<work root>/logs/<function>/<request id>.<attempt>.log``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, Literal, Mapping, Optional, Union, overload
from urllib.parse import unquote_plus

from ..aws import ClientFactory
from ..process import kill_group_now, kill_tree, wait_exit
from .lambda_sandbox import LocalLambdaError, Sandbox, Sandboxes, lambda_environment
from .store import LocalStore

__all__ = [
    "LambdaExecutor", "Invocation", "InvocationType", "InvocationStatus", "LocalLambdaError",
    "INIT_TIMEOUT_S", "KILL_MARGIN_S",
]

InvocationType = Literal["Event", "RequestResponse"]
InvocationStatus = Literal["queued", "running", "succeeded", "failed", "timed-out"]

INIT_TIMEOUT_S = 10.0
"""Lambda's limit for the init phase (starting the runtime, importing the handler)."""
KILL_MARGIN_S = 0.1
"""How long after the timeout the hard kill comes: the poll granularity, no more."""
WORKER = Path(__file__).with_name("lambda_worker.py")
_RECORD_KEYS = ("bucket", "key", "status", "exit_code", "job_id", "uploaded", "error",
                "reason", "output_tail")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invocation:
    """One attempt of one invocation, as it ended (``on_done`` gets every attempt)."""

    request_id: str
    function: str
    invocation_type: InvocationType
    attempt: int  # 1, 2, 3: retries keep the request id
    status: InvocationStatus
    started: float  # store clock (epoch seconds): the worker was started
    ended: float
    duration: float  # seconds of the invoke phase (the handler's run)
    init_duration: float  # seconds to start the runtime and import the handler
    log_path: Optional[Path]  # None when the attempt never ran
    response: Any = None  # the handler's return value, when it returned
    error: Optional[str] = None  # "<errorType>: <errorMessage>" when failed or timed out
    records: tuple[Mapping[str, Any], ...] = ()  # the response body's records, summarised
    objects: tuple[Mapping[str, Any], ...] = ()  # the S3 objects of the event
    will_retry: bool = False

    @property
    def status_code(self) -> Optional[int]:
        """The response's ``statusCode``, when the handler returned one."""
        if isinstance(self.response, Mapping):
            code = self.response.get("statusCode")
            return code if isinstance(code, int) else None
        return None

    def to_store(self) -> dict[str, Any]:
        """The JSON fields this attempt sets in ``invocations[request_id]``."""
        return {
            "function": self.function, "request_id": self.request_id,
            "invocation_type": self.invocation_type, "status": self.status,
            "attempt": self.attempt, "started": self.started, "ended": self.ended,
            "duration": round(self.duration, 3), "init_duration": round(self.init_duration, 3),
            "log": str(self.log_path) if self.log_path else None, "error": self.error, "status_code": self.status_code,
            "records": [dict(r) for r in self.records], "object": _object_uri(self.objects),
            "objects": [dict(o) for o in self.objects], "retrying": self.will_retry,
        }


@dataclass
class _Request:
    """One invocation across its attempts (mutable; owned by the executor)."""

    sandbox: Sandbox
    event_json: str
    request_id: str
    invocation_type: InvocationType
    objects: tuple[Mapping[str, Any], ...]
    future: Future[Invocation] = field(default_factory=Future)
    attempts: list[dict[str, Any]] = field(default_factory=list)


class LambdaExecutor:
    """Runs Lambda invocations of deployed functions as local processes.

    ``clients`` reads function and layer configurations from the endpoint;
    ``endpoint_env`` (``Endpoint.env``: the endpoint URL and fake credentials)
    is what the function's process gets as its execution role's credentials.
    ``code(name)`` gives the zip deployed as function ``name`` and
    ``layers(arn)`` the zip of a layer version, both checked against what the
    endpoint holds (:mod:`supervisor.local.lambda_sandbox`). ``python`` is the
    interpreter of the runtime. ``timeout_override`` shortens every function's
    timeout (``supervisor local --timeout``). ``on_done`` is called with every
    finished attempt, on a pool thread. ``host_path`` (default: this process's
    ``PATH``) ends the functions' ``PATH``.
    """

    def __init__(self, clients: ClientFactory, *, endpoint_env: Mapping[str, str],
                 store: LocalStore, work_root: Path, code: Callable[[str], bytes],
                 layers: Callable[[str], Path], concurrency: int = 2,
                 python: str = sys.executable, max_retries: int = 2,
                 retry_delay: float = 1.0, timeout_override: Optional[float] = None,
                 on_done: Optional[Callable[[Invocation], None]] = None,
                 init_timeout: float = INIT_TIMEOUT_S,
                 host_path: Optional[str] = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_retries < 0 or retry_delay < 0:
            raise ValueError("max_retries and retry_delay must not be negative")
        self.work_root = work_root.resolve()
        self.sandboxes = Sandboxes(clients, work_root=self.work_root, code=code, layers=layers,
                                   timeout_override=timeout_override)
        self._endpoint_env = dict(endpoint_env)
        self._store = store
        self._python = python
        self._host_path = os.environ.get("PATH", os.defpath) if host_path is None else host_path
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.init_timeout = init_timeout
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="local-lambda")
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._aborting = False
        self._timers: dict[threading.Timer, tuple[_Request, int]] = {}
        self._running: dict[int, subprocess.Popen[bytes]] = {}

    # --- the public surface ---------------------------------------------------------------

    @overload
    def invoke(self, function: str, event: Mapping[str, Any],
               invocation_type: Literal["Event"] = "Event", *,
               request_id: Optional[str] = None) -> Future[Invocation]: ...

    @overload
    def invoke(self, function: str, event: Mapping[str, Any],
               invocation_type: Literal["RequestResponse"], *,
               request_id: Optional[str] = None) -> Invocation: ...

    def invoke(self, function: str, event: Mapping[str, Any],
               invocation_type: InvocationType = "Event", *,
               request_id: Optional[str] = None) -> Union[Future[Invocation], Invocation]:
        """Invoke ``function`` (name or ARN) with ``event``.

        ``"Event"`` queues it and returns a future of its last attempt at once;
        ``"RequestResponse"`` waits and returns the attempt. The function is
        resolved first, here: a function that is not deployed, or whose local
        code or layers differ from the deployed ones, is a
        :class:`LocalLambdaError` raised by this call, and nothing is queued.
        """
        if invocation_type not in ("Event", "RequestResponse"):
            raise ValueError(f"invocation_type must be Event or RequestResponse, "
                             f"not {invocation_type!r}")
        with self._cond:
            if self._closed:
                raise LocalLambdaError("the local Lambda is shut down")
        try:
            event_json = json.dumps(event)
        except (TypeError, ValueError) as exc:
            raise LocalLambdaError(f"the event for {function} is not JSON: {exc}") from exc
        sandbox = self.sandboxes.resolve(function)
        request = _Request(sandbox=sandbox, event_json=event_json,
                           request_id=request_id or str(uuid.uuid4()),
                           invocation_type=invocation_type, objects=_objects(event))
        with self._cond:
            self._pending += 1
        self._store.put("invocations", request.request_id, {
            "function": sandbox.name, "request_id": request.request_id,
            "invocation_type": invocation_type, "status": "queued", "attempt": 0,
            "max_attempts": 1 + (self.max_retries if invocation_type == "Event" else 0),
            "queued": self._store.now(), "object": _object_uri(request.objects),
            "objects": [dict(o) for o in request.objects], "attempts": []})
        try:
            self._submit(request, 1)
        except RuntimeError as exc:  # shut down meanwhile
            self._abandon(request, 1, "the local Lambda shut down before the invocation started")
            raise LocalLambdaError("the local Lambda is shut down") from exc
        if invocation_type == "Event":
            return request.future
        return request.future.result()

    def busy(self) -> bool:
        """True while any invocation is queued, running or waiting for a retry."""
        with self._cond:
            return self._pending > 0

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until nothing is queued, running or due for a retry; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking invocations.

        ``wait``: let everything queued, running and due for a retry finish.
        Otherwise retries and queued invocations end ``failed`` without
        running, and running ones are killed like a timeout and end
        ``failed``. Every future gets its :class:`Invocation` either way.
        """
        if wait:
            self.wait_idle()
        with self._cond:
            self._closed = True
            self._aborting = not wait
            timers = dict(self._timers) if not wait else {}
            running = list(self._running.values()) if not wait else []
        for timer, (request, attempt) in timers.items():
            timer.cancel()
            with self._cond:
                cancelled = self._timers.pop(timer, None) is not None
            if cancelled:
                self._abandon(request, attempt, "the local Lambda shut down before the retry")
        for proc in running:
            kill_tree(proc.pid)
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "LambdaExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=exc[0] is None)

    # --- queueing and retries -------------------------------------------------------------

    def _submit(self, request: _Request, attempt: int) -> None:
        self._pool.submit(self._run, request, attempt)

    def _schedule_retry(self, request: _Request, attempt: int) -> None:
        def fire() -> None:
            with self._cond:
                if self._timers.pop(timer, None) is None:
                    return  # cancelled by shutdown
            try:
                self._submit(request, attempt)
            except RuntimeError:  # the pool is shut down
                self._abandon(request, attempt, "the local Lambda shut down before the retry")

        timer = threading.Timer(self.retry_delay, fire)
        timer.daemon = True
        with self._cond:
            self._timers[timer] = (request, attempt)
        timer.start()

    def _abandon(self, request: _Request, attempt: int, reason: str) -> None:
        """End a request whose next attempt will not run."""
        invocation = self._not_run(request, attempt, reason)
        self._record(request, invocation)
        request.future.set_result(invocation)
        self._finish_one()

    def _finish_one(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _run(self, request: _Request, attempt: int) -> None:
        """One attempt on a pool thread; then a retry, or the request's end."""
        try:
            if self._aborting:
                invocation = self._not_run(request, attempt, "the local Lambda shut down "
                                                             "before the invocation started")
            else:
                invocation = self._attempt(request, attempt)
        except Exception as exc:  # the executor's own failure must still end the request
            log.exception("local Lambda: invocation %s failed to run", request.request_id)
            invocation = self._not_run(request, attempt, f"LocalLambdaError: {exc}")
        retry = (request.invocation_type == "Event" and not self._aborting
                 and invocation.status in ("failed", "timed-out")
                 and attempt <= self.max_retries)
        invocation = replace(invocation, will_retry=retry)
        self._record(request, invocation)
        if self._on_done is not None:
            try:
                self._on_done(invocation)
            except Exception:  # a broken callback must not stop the executor
                log.exception("local Lambda: on_done failed")
        if retry:
            self._schedule_retry(request, attempt + 1)
            return
        request.future.set_result(invocation)
        self._finish_one()

    def _not_run(self, request: _Request, attempt: int, error: str) -> Invocation:
        now = self._store.now()
        return Invocation(request_id=request.request_id, function=request.sandbox.name,
                          invocation_type=request.invocation_type, attempt=attempt,
                          status="failed", started=now, ended=now, duration=0.0,
                          init_duration=0.0, log_path=None,
                          error=error, objects=request.objects)

    def _record(self, request: _Request, invocation: Invocation) -> None:
        fields = invocation.to_store()
        request.attempts.append({k: fields[k] for k in (
            "attempt", "status", "started", "ended", "duration", "log", "error",
            "status_code")})
        fields["attempts"] = list(request.attempts)
        self._store.put("invocations", request.request_id, fields)

    # --- one attempt ----------------------------------------------------------------------

    def _log_path(self, request: _Request, attempt: int) -> Path:
        return (self.work_root / "logs" / request.sandbox.name
                / f"{request.request_id}.{attempt}.log")

    def _attempt(self, request: _Request, attempt: int) -> Invocation:
        sandbox, rid = request.sandbox, request.request_id
        log_path = self._log_path(request, attempt)
        run_dir = self.work_root / "run" / f"{rid}.{attempt}"
        tmp_dir, result_path = run_dir / "tmp", run_dir / "result.json"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{rid.replace('-', '')}"
        env = lambda_environment(sandbox, log_stream=stream, endpoint_env=self._endpoint_env,
                                 tmp_dir=tmp_dir, python=self._python,
                                 host_path=self._host_path, runtime_dir=WORKER.parent)
        argv = [self._python, str(WORKER), "--request-id", rid,
                "--timeout", repr(sandbox.timeout), "--result", str(result_path)]
        started = self._store.now()
        self._store.put("invocations", rid, {"status": "running", "attempt": attempt,
                                             "started": started, "ended": None,
                                             "log": str(log_path), "retrying": False})
        try:
            with log_path.open("ab") as log_file:
                _log_line(log_file, f"START RequestId: {rid} Version: $LATEST")
                run = self._spawn_and_wait(argv, env, sandbox, request, log_file)
                response: Any = None
                status: InvocationStatus
                if run.how == "exited":
                    status, response, error = _read_result(result_path, run.exit_code)
                else:
                    status, error = ("timed-out" if run.how == "timed-out" else "failed"), run.error
                    _log_line(log_file, f"{_utc_now()} {rid} {error}")
                end = time.monotonic()
                duration = end - run.ready_at if run.ready_at is not None else 0.0
                init = (run.ready_at if run.ready_at is not None else end) - run.spawned
                _log_line(log_file, f"END RequestId: {rid}")
                _log_line(log_file, _report_line(rid, duration, init, sandbox.memory, status))
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return Invocation(request_id=rid, function=sandbox.name,
                          invocation_type=request.invocation_type, attempt=attempt,
                          status=status, started=started, ended=self._store.now(),
                          duration=duration, init_duration=init, log_path=log_path,
                          response=response, error=error, records=_records(response),
                          objects=request.objects)

    def _spawn_and_wait(self, argv: list[str], env: Mapping[str, str], sandbox: Sandbox,
                        request: _Request, log_file: IO[bytes]) -> _Run:
        """Start the worker, feed it the event, and wait for it or for its deadline."""
        read_fd, write_fd = os.pipe()
        try:
            spawned = time.monotonic()
            proc = subprocess.Popen(
                argv + ["--ready-fd", str(write_fd)], stdin=subprocess.PIPE, stdout=log_file,
                stderr=subprocess.STDOUT, cwd=str(sandbox.task_root), env=dict(env),
                start_new_session=True, close_fds=True, pass_fds=(write_fd,))
        except OSError as exc:
            os.close(read_fd)
            raise LocalLambdaError(f"cannot start the runtime {argv[0]}: {exc}") from exc
        finally:
            os.close(write_fd)
        with self._cond:
            self._running[proc.pid] = proc
        try:
            _feed(proc, request.event_json)
            init_limit = spawned + self.init_timeout
            ready_at = _wait_ready(read_fd, init_limit)
            limit = ready_at + sandbox.timeout if ready_at is not None else init_limit
            if not wait_exit(proc, max(0.0, limit + KILL_MARGIN_S - time.monotonic())):
                kill_tree(proc.pid)
                proc.wait()
                if ready_at is None:
                    error = f"Init timed out after {self.init_timeout:.2f} seconds"
                else:
                    error = f"Task timed out after {sandbox.timeout:.2f} seconds"
                return _Run("timed-out", ready_at, spawned, proc.returncode, error)
            if self._aborting and proc.returncode is not None and proc.returncode < 0:
                return _Run("killed", ready_at, spawned, proc.returncode,
                            "killed: the local Lambda shut down")
            return _Run("exited", ready_at, spawned, proc.returncode)
        finally:
            os.close(read_fd)
            kill_group_now(proc.pid)  # what the worker left in its group: the sandbox goes away
            with self._cond:
                self._running.pop(proc.pid, None)


@dataclass(frozen=True)
class _Run:
    """How a worker process ended; ``exited``: by itself, its result file tells the rest."""

    how: Literal["exited", "timed-out", "killed"]
    ready_at: Optional[float]  # monotonic time the invoke phase began; None: never
    spawned: float
    exit_code: Optional[int]
    error: Optional[str] = None


# --- the worker protocol ------------------------------------------------------------------


def _feed(proc: subprocess.Popen[bytes], event_json: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(event_json.encode("utf-8"))
        proc.stdin.close()
    except (BrokenPipeError, OSError):  # the worker died first: its exit tells why
        pass


def _wait_ready(fd: int, deadline: float) -> Optional[float]:
    """The worker's ``ready <monotonic>`` time; None on EOF or at ``deadline``."""
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return None
        chunk = os.read(fd, 256)
        if not chunk:
            return None
        data += chunk
    word, _, value = data.split(b"\n", 1)[0].decode("ascii", "replace").partition(" ")
    try:
        return float(value) if word == "ready" else None
    except ValueError:
        return None


def _read_result(path: Path, exit_code: Optional[int]
                 ) -> tuple[InvocationStatus, Any, Optional[str]]:
    """(status, response, error) from the worker's result file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if exit_code is not None and exit_code < 0:
            try:
                how = f"signal: {signal.Signals(-exit_code).name.lower()[3:]}"
            except ValueError:  # a real-time signal has no name
                how = f"signal {-exit_code}"
        else:
            how = f"exit status {exit_code}"
        return "failed", None, f"Runtime.ExitError: Runtime exited with error: {how}"
    if isinstance(document, dict) and document.get("ok") is True:
        return "succeeded", document.get("response"), None
    if not isinstance(document, dict):
        return "failed", None, "Runtime.ExitError: the runtime wrote no usable result"
    return "failed", None, (f"{document.get('errorType', 'Error')}: "
                            f"{document.get('errorMessage', '')}")


def _records(response: Any) -> tuple[Mapping[str, Any], ...]:
    """The per-record summary of a supervisor response (empty for anything else)."""
    if not isinstance(response, Mapping) or not isinstance(response.get("body"), str):
        return ()
    try:
        body = json.loads(response["body"])
    except ValueError:
        return ()
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return ()
    return tuple({k: r.get(k) for k in _RECORD_KEYS if k in r}
                 for r in records if isinstance(r, dict))


def _objects(event: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The S3 objects an event is about: bucket, decoded key, version, sequencer."""
    out: list[Mapping[str, Any]] = []
    records = event.get("Records")
    for record in records if isinstance(records, list) else []:
        s3 = record.get("s3") if isinstance(record, Mapping) else None
        if not isinstance(s3, Mapping):
            continue
        obj = s3.get("object") or {}
        entry = {"bucket": (s3.get("bucket") or {}).get("name"),
                 "key": unquote_plus(str(obj.get("key", ""))),
                 "event_name": record.get("eventName")}
        for source, name in (("versionId", "version_id"), ("sequencer", "sequencer"),
                             ("size", "size")):
            if obj.get(source) is not None:
                entry[name] = obj[source]
        out.append(entry)
    return tuple(out)


def _object_uri(objects: tuple[Mapping[str, Any], ...]) -> Optional[str]:
    """``s3://bucket/key`` of the event's first object (``+N`` more), for display."""
    if not objects:
        return None
    first = f"s3://{objects[0].get('bucket')}/{objects[0].get('key')}"
    return first if len(objects) == 1 else f"{first} (+{len(objects) - 1})"


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _log_line(stream: IO[bytes], line: str) -> None:
    stream.write(line.encode("utf-8") + b"\n")
    stream.flush()


def _report_line(rid: str, duration: float, init: float, memory: int, status: str) -> str:
    ms = duration * 1000
    line = (f"REPORT RequestId: {rid}\tDuration: {ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(ms)} ms\tMemory Size: {memory} MB\t"
            f"Init Duration: {init * 1000:.2f} ms")
    return line + ("\tStatus: timeout" if status == "timed-out" else "")
