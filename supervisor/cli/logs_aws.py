"""``logs`` on AWS: CloudWatch Logs streams as :mod:`.logsource` sources.

* the function's newest lines: the streams of ``/aws/lambda/NAME`` with the
  newest events, merged in time order (:class:`RecentView`);
* one invocation: its ``START`` to ``REPORT`` lines, found by a search of
  the group for its id, which may be the short id a table shows
  (:class:`RequestView`);
* one Batch job: a stream per attempt from ``DescribeJobs`` (in
  ``/aws/batch/job`` or the job's ``awslogs-group``); a short id is looked
  up among the jobs of the function's queue (:class:`JobView`);
* one object (``--key``): every invocation whose records name the key,
  each with the Batch job it handed the object to (:class:`KeyView`).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Optional, Sequence

from botocore.exceptions import ClientError

from .batchjobs import FINAL_JOB_STATES, JOB_STATES, list_jobs
from .cloudwatch import (
    BATCH_LOG_GROUP,
    LogEvent,
    StreamTail,
    lambda_log_group,
    recent_streams,
    request_ids,
    search,
)
from .context import Context
from .errors import CliError
from .logsource import RequestTail, Source, Tail, Tails, match_id
from .logtext import record_of
from .output import SHORT_ID, cell

__all__ = ["job_streams", "RecentView", "RequestView", "JobView", "KeyView"]

RECENT_STREAMS = 5
MAX_JOBS = 1000  # per state, when a short job id is looked up on the queue
_FULL_JOB_ID = 36


def job_streams(job: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """The job's log group and its ``(stream, label)`` per attempt, the current one last."""
    container = job.get("container") or {}
    config = container.get("logConfiguration") or {}
    group = BATCH_LOG_GROUP
    if config.get("logDriver") == "awslogs":
        group = (config.get("options") or {}).get("awslogs-group") or BATCH_LOG_GROUP
    streams: list[tuple[str, str]] = []
    attempts = job.get("attempts") or []
    for number, attempt in enumerate(attempts, start=1):
        detail = attempt.get("container") or {}
        stream = detail.get("logStreamName")
        if stream:
            why = attempt.get("statusReason") or detail.get("reason")
            code = detail.get("exitCode")
            state = (f"exit {cell(code)}" if code is not None or number < len(attempts)
                     else str(job.get("status")))
            streams.append((stream, f"attempt {number}: {state}{', ' + why if why else ''}"))
    current = container.get("logStreamName")
    if current and current not in [s for s, _ in streams]:
        streams.append((current, f"attempt {len(streams) + 1}: {job.get('status')}"))
    return group, streams


class RecentTail:
    """The newest lines of a log group's most recently written streams, in time order.

    The first poll keeps the newest ``limit`` lines; later polls add the new
    lines of those streams and of streams that start later (whole).
    """

    def __init__(self, logs: Any, group: str, limit: int) -> None:
        self._logs = logs
        self._group = group
        self._limit = limit
        self._streams: dict[str, StreamTail] = {}
        self.missing: Optional[str] = None

    def poll(self, *, final: bool = False) -> list[LogEvent]:
        """The lines new since the last poll."""
        first = not self._streams
        for stream in recent_streams(self._logs, self._group, RECENT_STREAMS):
            if stream not in self._streams:
                self._streams[stream] = StreamTail(self._logs, self._group, stream,
                                                   last=self._limit if first else None)
        events = sorted((e for tail in self._streams.values() for e in tail.poll()),
                        key=lambda e: e.timestamp)
        self.missing = None if self._streams else f"no log events in {self._group}"
        return events[-self._limit:] if first else events


class RecentView:
    """The newest lines of the function's log group (never finished: more may come)."""

    def __init__(self, ctx: Context, function: str, limit: int) -> None:
        self._function = function
        self._group = lambda_log_group(function)
        self._tail = RecentTail(ctx.clients.client("logs"), self._group, limit)

    def sources(self) -> list[Source]:
        """One source: the merged streams."""
        return [Source(key="lambda/recent", side="lambda", ident="", tail=self._tail,
                       title=f"== lambda {self._function}: the newest lines of {self._group} ==",
                       context={"function": self._function})]

    def finished(self) -> bool:
        """Never: the function may be invoked again."""
        return False

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """An empty log group is no error."""
        return None

    def empty_note(self) -> str:
        """The group has no events."""
        return f"no log events in {self._group}"


class RequestView:
    """One invocation's lines, in each stream that holds them (a retry may run elsewhere)."""

    def __init__(self, ctx: Context, function: str, request_id: str, *, strict: bool) -> None:
        self._logs = ctx.clients.client("logs")
        self._function = function
        self._given = request_id
        self._group = lambda_log_group(function)
        self._strict = strict
        self._tails = Tails()
        self._found: list[Source] = []

    @property
    def group(self) -> str:
        """The function's log group."""
        return self._group

    def _tail(self, stream: str, request_id: str) -> Tail:
        return RequestTail(StreamTail(self._logs, self._group, stream), request_id)

    def find(self, hits: Sequence[LogEvent], request_id: str) -> list[Source]:
        """The sources of ``request_id`` in the streams of ``hits``."""
        sources = []
        streams = list(dict.fromkeys(e.stream for e in hits if request_id in e.message))
        for stream in streams:
            key = f"lambda/{request_id}/{stream}"
            tail = self._tails.get(key, partial(self._tail, stream, request_id))
            where = f" ({stream})" if len(streams) > 1 else ""
            sources.append(Source(key=key, side="lambda", ident=request_id, tail=tail,
                                  title=f"== lambda {self._function} request "
                                        f"{request_id[:SHORT_ID]}{where} ==",
                                  context={"request_id": request_id,
                                           "function": self._function}))
        return sources

    def sources(self) -> list[Source]:
        """The invocation's streams (searched again until it has ended)."""
        if self._found and self.finished():
            return self._found
        hits = search(self._logs, self._group, self._given)
        ids = request_ids(hits, self._given)
        if len(ids) > 1:
            match_id(self._given, ids, "request id")  # raises: ambiguous
        if not ids:
            if self._strict:
                raise CliError(f"no log lines of request {self._given} in {self._group}")
            return []
        self._found = self.find(hits, ids[0])
        return self._found

    def finished(self) -> bool:
        """Whether the invocation's ``REPORT`` line was read."""
        return any(isinstance(s.tail, RequestTail) and s.tail.reported for s in self._found)

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """Its stream holds none of its lines (yet)."""
        return f"no log lines of request {self._given} in {self._group}"

    def empty_note(self) -> str:
        """Not used: an invocation without lines is an error."""
        return f"no log lines of request {self._given} in {self._group}"


class JobView:
    """A Batch job's streams, one per attempt; ``job_id`` may be a short id of ``queue``'s."""

    def __init__(self, ctx: Context, job_id: str, queue: str, *, strict: bool,
                 context: Optional[Mapping[str, Any]] = None) -> None:
        self._batch = ctx.clients.client("batch")
        self._logs = ctx.clients.client("logs")
        self._given = job_id
        self._queue = queue
        self._strict = strict
        self._context = dict(context or {})
        self._tails = Tails()
        self._job: dict[str, Any] = {}

    def _describe(self, job_id: str) -> Optional[dict[str, Any]]:
        jobs = self._batch.describe_jobs(jobs=[job_id]).get("jobs") or []
        return dict(jobs[0]) if jobs else None

    def _resolve(self) -> dict[str, Any]:
        job = self._describe(self._given)
        if job is None and len(self._given) < _FULL_JOB_ID:
            ids: list[str] = []
            for state in JOB_STATES:
                try:
                    ids.extend(str(s["jobId"]) for s in list_jobs(self._batch, self._queue,
                                                                    state, MAX_JOBS))
                except ClientError:  # no such queue: the id is not a short one of its jobs
                    break
            full = match_id(self._given, ids, "job id")
            job = self._describe(full) if full else None
        if job is None:
            raise CliError(f"no Batch job {self._given}" + (
                f" (nor one on queue {self._queue} whose id starts so)"
                if len(self._given) < _FULL_JOB_ID else ""))
        return job

    def sources(self) -> list[Source]:
        """A source per attempt that has a log stream (``DescribeJobs`` again each time)."""
        job_id = self._job.get("jobId")
        self._job = self._resolve() if job_id is None else (self._describe(job_id) or self._job)
        job_id = str(self._job["jobId"])
        group, streams = job_streams(self._job)
        if not streams and self._strict:
            raise CliError(f"job {job_id} is {self._job.get('status', '?')} and has no log "
                           "stream yet (a job gets one when its container starts)")
        name = f"batch job {self._job.get('jobName') or '-'} {job_id[:SHORT_ID]}"
        context = {"job_id": job_id, "request_id": None, "function": None, "bucket": None,
                   **self._context}
        found: list[Source] = []
        for number, (stream, label) in enumerate(streams, start=1):
            key = f"batch/{job_id}/{stream}"
            tail = self._tails.get(key, partial(StreamTail, self._logs, group, stream))
            found.append(Source(key=key, side="batch", ident=job_id, tail=tail, attempt=number,
                                title=f"== {name}, {label} ==", context=context))
        return found

    def finished(self) -> bool:
        """Whether the job has ended (as of the last ``DescribeJobs``)."""
        return self._job.get("status") in FINAL_JOB_STATES

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """Its streams hold nothing (yet)."""
        status = self._job.get("status", "?")
        return f"job {self._job.get('jobId', self._given)} is {status}" + (
            f"; its {missing[-1]}" if missing else " and its log is empty")

    def empty_note(self) -> str:
        """Not used: a job without lines is an error."""
        return f"job {self._given} has no log lines"


def _object(key: str) -> tuple[Optional[str], str]:
    """``s3://bucket/key`` or a key: the bucket (None when not given) and the key."""
    if key.startswith("s3://"):
        bucket, _, rest = key[len("s3://"):].partition("/")
        return bucket, rest
    return None, key


class KeyView:
    """Every invocation whose records name one object, each followed by its Batch job."""

    def __init__(self, ctx: Context, function: str, key: str, queue: str, *,
                 strict: bool) -> None:
        self._ctx = ctx
        self._logs = ctx.clients.client("logs")
        self._function = function
        self._bucket, self._key = _object(key)
        self._given = key
        self._queue = queue
        self._strict = strict
        self._requests = RequestView(ctx, function, "", strict=False)
        self._jobs: dict[str, JobView] = {}
        self._found: list[Source] = []
        self._ended = False

    def _names(self, record: Mapping[str, Any]) -> bool:
        return record.get("key") == self._key and (
            self._bucket is None or record.get("bucket") == self._bucket)

    def sources(self) -> list[Source]:
        """The invocations and jobs the function's log names with the key (searched again
        until they have ended)."""
        if self._found and self._ended:
            return self._found
        hits = search(self._logs, self._requests.group, self._key)
        records = [r for r in (record_of(e.message) for e in hits)
                   if r is not None and self._names(r)]
        rids = list(dict.fromkeys(str(r["request_id"]) for r in records if r.get("request_id")))
        if not rids and self._strict:
            raise CliError(f"no log lines of {self._function} name {self._given} in "
                           f"{self._requests.group}")
        context = {"key": self._key, "bucket": self._bucket}
        found: list[Source] = []
        ended = bool(rids)
        for rid in rids:
            requests = self._requests.find(hits, rid)
            found.extend(Source(key=s.key, title=s.title, side=s.side, ident=s.ident,
                                tail=s.tail, context={**s.context, **context})
                         for s in requests)
            ended = ended and any(isinstance(s.tail, RequestTail) and s.tail.reported
                                  for s in requests)
            for job_id in dict.fromkeys(str(r["job_id"]) for r in records
                                        if r.get("request_id") == rid and r.get("job_id")):
                view = self._jobs.setdefault(job_id, JobView(
                    self._ctx, job_id, self._queue, strict=False, context={"key": self._key}))
                found.extend(view.sources())
                ended = ended and view.finished()
        self._found, self._ended = found, ended
        return found

    def finished(self) -> bool:
        """Whether every invocation found has reported and each of its jobs has ended."""
        return self._ended

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """Nothing of the object was logged (yet)."""
        return f"no log lines of {self._function} name {self._given} in {self._requests.group}"

    def empty_note(self) -> str:
        """Not used: an object without lines is an error."""
        return self.empty_error([]) or ""
