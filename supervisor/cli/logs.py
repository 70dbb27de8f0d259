"""``supervisor logs``: the log lines of a function's invocations and of its Batch jobs.

On AWS: the newest events of ``/aws/lambda/NAME``; with ``--request-id``
the lines of that invocation (``START`` to ``REPORT`` in its stream); with
``--job-id`` the job's log stream(s) from ``DescribeJobs``
(``container.logStreamName`` of each attempt, in ``/aws/batch/job`` or the
job's ``awslogs-group``). With ``--local [DIR]``: the log files a local
session recorded for its invocations and job attempts.

Asking for one request or job that has no log (yet) is an error; a function
whose log group is empty is not.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from .args import Subparsers, add_command
from .cloudwatch import (
    BATCH_LOG_GROUP,
    LogEvent,
    lambda_log_group,
    read_stream,
    recent_streams,
    request_block,
    search,
)
from .context import Context
from .errors import CliError
from .localstate import DEFAULT_STATE_DIR, function_invocations, read_state
from .output import cell, when

__all__ = ["register", "run_logs", "job_streams", "events_text", "LocalLog", "local_logs"]

EXAMPLES = """
  supervisor logs -n scar-plants                      # the newest Lambda log lines
  supervisor logs -n scar-plants --request-id 8f1c…   # one invocation
  supervisor logs -n scar-plants --job-id 4d2e…       # the Batch job's log stream
  supervisor logs -n scar-plants --local              # the session of supervisor local
  supervisor logs -n scar-plants --local --job-id 4d2e…
"""
RECENT_STREAMS = 5


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``logs``."""
    parser = add_command(
        subparsers, "logs", common=common, func=run_logs, examples=EXAMPLES,
        summary="print the log of a function's invocations or of a Batch job",
        description="Print the function's newest Lambda log lines, one invocation's lines "
                    "(--request-id), or a Batch job's log stream (--job-id, every attempt); "
                    "--local reads the log files of a local session instead.")
    parser.add_argument("-n", "--name", required=True, help="the function")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--request-id", metavar="ID", help="one invocation's lines")
    which.add_argument("--job-id", metavar="ID", help="a Batch job's log")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="lines shown without --request-id/--job-id (default 100)")
    parser.add_argument("--local", nargs="?", type=Path, const=DEFAULT_STATE_DIR,
                        metavar="STATE_DIR",
                        help=f"read a local session's log files (default {DEFAULT_STATE_DIR})")


def events_text(events: list[LogEvent], *,
                headers: Optional[Mapping[str, str]] = None) -> str:
    """One line per event, ``time  message``; ``headers`` introduces each stream."""
    lines: list[str] = []
    stream: Optional[str] = None
    for event in events:
        if headers and event.stream != stream:
            stream = event.stream
            lines.append(headers.get(stream, f"== {stream} =="))
        lines.append(f"{when(event.timestamp, millis=True)}  {event.message}")
    return "\n".join(lines)


def job_streams(job: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """The job's log group and its ``(stream, label)`` per attempt, the current one last."""
    container = job.get("container") or {}
    config = container.get("logConfiguration") or {}
    group = BATCH_LOG_GROUP
    if config.get("logDriver") == "awslogs":
        group = (config.get("options") or {}).get("awslogs-group") or BATCH_LOG_GROUP
    streams: list[tuple[str, str]] = []
    for number, attempt in enumerate(job.get("attempts") or [], start=1):
        detail = attempt.get("container") or {}
        stream = detail.get("logStreamName")
        if stream:
            why = attempt.get("statusReason") or detail.get("reason")
            streams.append((stream, f"== attempt {number}: exit {cell(detail.get('exitCode'))}"
                                    f"{', ' + why if why else ''} ({stream}) =="))
    current = container.get("logStreamName")
    if current and current not in [s for s, _ in streams]:
        streams.append((current, f"== attempt {len(streams) + 1}: {job.get('status')} "
                                 f"({current}) =="))
    return group, streams


def _job_events(ctx: Context, job_id: str) -> tuple[list[LogEvent], dict[str, str]]:
    jobs = ctx.clients.client("batch").describe_jobs(jobs=[job_id]).get("jobs") or []
    if not jobs:
        raise CliError(f"no Batch job {job_id}")
    job = jobs[0]
    group, streams = job_streams(job)
    status = job.get("status", "?")
    if not streams:
        raise CliError(f"job {job_id} is {status} and has no log stream yet (a job gets one "
                       "when its container starts)")
    logs = ctx.clients.client("logs")
    events: list[LogEvent] = []
    missing: list[str] = []
    for stream, _ in streams:
        found = read_stream(logs, group, stream)
        if found is None:
            missing.append(stream)
        else:
            events.extend(found)
    if missing and not events:
        raise CliError(f"job {job_id} is {status}; its log stream {missing[-1]} is not in "
                       f"{group} (yet)")
    for stream in missing:
        ctx.note(f"log stream {stream} is not in {group} (yet)")
    headers = dict(streams) if len(streams) > 1 else {}
    return events, headers


def _request_events(ctx: Context, name: str, request_id: str) -> list[LogEvent]:
    logs = ctx.clients.client("logs")
    group = lambda_log_group(name)
    hits = search(logs, group, request_id)
    if not hits:
        raise CliError(f"no log lines of request {request_id} in {group}")
    events: list[LogEvent] = []
    for stream in dict.fromkeys(e.stream for e in hits):
        events.extend(read_stream(logs, group, stream) or [])
    return request_block(events or hits, request_id)


def _recent_events(ctx: Context, name: str, limit: int) -> list[LogEvent]:
    logs = ctx.clients.client("logs")
    group = lambda_log_group(name)
    events: list[LogEvent] = []
    for stream in recent_streams(logs, group, RECENT_STREAMS):
        events.extend(read_stream(logs, group, stream, limit=limit) or [])
    events.sort(key=lambda e: e.timestamp)
    return events[-limit:]


@dataclass(frozen=True)
class LocalLog:
    """One log file of a local session: which invocation or attempt, where, what."""

    kind: str  # "invocation" or "attempt"
    ident: str  # the request id or the job id
    title: str
    path: Optional[str]

    def text(self) -> Optional[str]:
        """The file's text; None when it is not there."""
        if not self.path:
            return None
        try:
            return Path(self.path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the text."""
        return {"kind": self.kind, "id": self.ident, "path": self.path, "text": self.text()}


def local_logs(doc: Mapping[str, Any], name: str, request_id: Optional[str],
               job_id: Optional[str]) -> list[LocalLog]:
    """The log files to show from a local session's state."""
    if job_id is not None:
        job = doc["jobs"].get(job_id)
        if not isinstance(job, dict):
            raise CliError(f"no Batch job {job_id} in this local session")
        found = [LocalLog("attempt", job_id,
                          f"== attempt {a.get('attempt', i)}: exit {cell(a.get('exit_code'))}"
                          f"{', ' + str(a['reason']) if a.get('reason') else ''} ==",
                          a.get("log"))
                 for i, a in enumerate(job.get("attempts") or [], start=1)
                 if isinstance(a, dict) and a.get("log")]
        if not found and job.get("log"):
            found = [LocalLog("attempt", job_id, f"== job {job_id}: {job.get('status')} ==",
                              job["log"])]
        if not found:
            raise CliError(f"job {job_id} is {job.get('status', '?')} and has no log yet")
        return found
    if request_id is not None:
        invocation = doc["invocations"].get(request_id)
        if not isinstance(invocation, dict):
            raise CliError(f"no invocation {request_id} in this local session")
        found = _attempt_logs(request_id, invocation)
        if not found:
            raise CliError(f"invocation {request_id} has no log yet")
        return found
    return [LocalLog("invocation", i["request_id"],
                     f"== request {i['request_id']}: {i.get('status', '?')}, "
                     f"{i.get('object', '-')} ==", i.get("log"))
            for i in function_invocations(doc, name)]


def _attempt_logs(request_id: str, invocation: Mapping[str, Any]) -> list[LocalLog]:
    """One log per attempt of an invocation (async invocations are retried), else its log."""
    attempts = [a for a in invocation.get("attempts") or []
                if isinstance(a, dict) and a.get("log")]
    if len(attempts) > 1:
        return [LocalLog("invocation", request_id,
                         f"== request {request_id}, attempt {a.get('attempt', i)}: "
                         f"{a.get('status', '?')} ==", a["log"])
                for i, a in enumerate(attempts, start=1)]
    if invocation.get("log"):
        return [LocalLog("invocation", request_id, f"== request {request_id} ==",
                         invocation["log"])]
    return []


def _local_text(found: list[LocalLog]) -> str:
    blocks = []
    for log in found:
        text = log.text()
        if text is not None:
            body = text.rstrip("\n")
        else:
            body = f"(log file {log.path} is missing)" if log.path else "(no log)"
        blocks.append(f"{log.title}\n{body}" if len(found) > 1 or log.kind == "attempt"
                      else body)
    return "\n".join(blocks)


def run_logs(args: argparse.Namespace, ctx: Context) -> int:
    """Print the logs asked for."""
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    if args.local is not None:
        found = local_logs(read_state(args.local), args.name, args.request_id, args.job_id)
        if not found and not ctx.json:
            ctx.note(f"no invocations of {args.name} in {args.local}")
        ctx.emit([log.to_dict() for log in found], lambda: _local_text(found))
        return 0
    headers: dict[str, str] = {}
    if args.job_id:
        events, headers = _job_events(ctx, args.job_id)
    elif args.request_id:
        events = _request_events(ctx, args.name, args.request_id)
    else:
        events = _recent_events(ctx, args.name, args.limit)
        if not events and not ctx.json:
            ctx.note(f"no log events in {lambda_log_group(args.name)}")
    ctx.emit([e.to_dict() for e in events], lambda: events_text(events, headers=headers))
    return 0
