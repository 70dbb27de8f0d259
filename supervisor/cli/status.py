"""``supervisor status``: a function, its recent invocations and its Batch jobs by state.

On AWS: ``GetFunction`` (state, runtime, memory, timeout), the invocations
of the newest streams of ``/aws/lambda/NAME`` (their ``REPORT`` lines), and
``ListJobs`` on the function's job queue for every Batch state (counts and
the latest jobs). The queue is the FDL's (``-f``), else ``--queue``, else
named like the function. With a run-history table (``--history-table``, or the FDL's
``history.table``), what history learned (:mod:`.history_status`). With ``--local
[DIR]``: the same from a local session's state file, read-only.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, Optional

from botocore.exceptions import ClientError

from ..config import from_fdl
from ..local.sessions import session_dir
from .args import Subparsers, add_command
from .batchjobs import JOB_STATES, list_jobs
from .cloudwatch import invocations, lambda_log_group, read_stream, recent_streams
from .context import Context
from .errors import CliError, error_code
from .history_status import add_arguments as add_history_arguments
from .history_status import history_text, history_view
from .localstate import (
    DEFAULT_STATE_DIR,
    function_invocations,
    function_jobs,
    functions_in,
    job_ids_of,
    read_state,
)
from .output import Column, cell, seconds, table, when

__all__ = ["register", "run_status", "JOB_STATES", "aws_status", "local_status",
           "status_text"]

MAX_LISTED = 1000  # jobs counted per state; more shows as "1000+"
EVENTS_PER_STREAM = 200

EXAMPLES = """
  supervisor status -n scar-plants             # invocations and Batch jobs by state
  supervisor status -n scar-plants -f scar-plants.yaml   # the FDL's queue and mode
  supervisor status -n scar-plants --queue my-queue --limit 20 --json
  supervisor status -n scar-plants --history-table supervisor-history   # wasted Lambda s
  supervisor status -n scar-plants --local     # the session of supervisor local
  supervisor status -n scar-plants --local /tmp/session
"""
INVOCATION_COLUMNS: tuple[Column, ...] = (
    ("request_id", "request id"), ("started_text", "started (UTC)"), ("status", "status"),
    ("duration_text", "duration"), ("max_memory_text", "max memory"))
JOB_COLUMNS: tuple[Column, ...] = (
    ("job_id", "job id"), ("name", "name"), ("status", "status"),
    ("created_text", "created (UTC)"), ("reason", "reason"))
LOCAL_INVOCATION_COLUMNS: tuple[Column, ...] = (
    ("request_id", "request id"), ("status", "status"), ("started_text", "started (UTC)"),
    ("duration_text", "duration"), ("object", "object"), ("job_ids", "batch job"),
    ("error", "error"))
LOCAL_JOB_COLUMNS: tuple[Column, ...] = (
    ("job_id", "job id"), ("name", "name"), ("status", "status"), ("exit_code", "exit"),
    ("reason", "reason"), ("attempt_count", "attempts"))


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``status``."""
    parser = add_command(
        subparsers, "status", common=common, func=run_status, examples=EXAMPLES,
        summary="show a function, its recent invocations and its Batch jobs by state",
        description="Show the Lambda function, its recent invocations (from its log group's "
                    "REPORT lines) and the Batch jobs of its queue by state, with the latest "
                    "ones; --local reads the state a local session wrote instead.")
    parser.add_argument("-n", "--name", required=True, help="the function")
    parser.add_argument("-f", "--file", type=Path, metavar="FDL",
                        help="the function definition: its job queue and execution mode")
    parser.add_argument("--queue", help="the Batch job queue (default: the FDL's, else NAME)")
    parser.add_argument("--limit", type=int, default=10, metavar="N",
                        help="invocations and jobs listed (default 10)")
    parser.add_argument("--local", nargs="?", type=Path, const=DEFAULT_STATE_DIR,
                        metavar="STATE_DIR",
                        help=f"read a local session's state (default {DEFAULT_STATE_DIR}: the "
                             "latest session)")
    parser.add_argument("--session", metavar="ID",
                        help="with --local: that session (its id as supervisor local printed "
                             "it, or its start) instead of the latest")
    add_history_arguments(parser)


def _function(lam: Any, name: str) -> Optional[dict[str, Any]]:
    try:
        conf = lam.get_function(FunctionName=name)["Configuration"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return {"name": name, "state": conf.get("State"),
            "last_update": conf.get("LastUpdateStatus"), "runtime": conf.get("Runtime"),
            "memory": conf.get("MemorySize"), "timeout": conf.get("Timeout"),
            "ephemeral_storage": (conf.get("EphemeralStorage") or {}).get("Size"),
            "last_modified": conf.get("LastModified")}


def _recent_invocations(logs: Any, name: str, limit: int) -> list[dict[str, Any]]:
    group = lambda_log_group(name)
    events = []
    for stream in recent_streams(logs, group, limit):
        events.extend(read_stream(logs, group, stream, limit=EVENTS_PER_STREAM) or [])
    return invocations(events)[:limit]


def _jobs(batch: Any, queue: str, limit: int) -> Optional[dict[str, Any]]:
    queues = batch.describe_job_queues(jobQueues=[queue]).get("jobQueues") or []
    if not [q for q in queues if q.get("status") != "DELETED"]:
        return None
    counts: dict[str, int] = {}
    capped: list[str] = []
    summaries: list[dict[str, Any]] = []
    for state in JOB_STATES:
        listed = list_jobs(batch, queue, state, MAX_LISTED)
        counts[state] = len(listed)
        if len(listed) >= MAX_LISTED:
            capped.append(state)
        summaries.extend(listed)
    summaries.sort(key=lambda s: float(s.get("createdAt") or 0), reverse=True)
    latest = [{"job_id": s.get("jobId"), "name": s.get("jobName"), "status": s.get("status"),
               "created": s.get("createdAt"), "reason": s.get("statusReason")}
              for s in summaries[:limit]]
    return {"queue": queue, "counts": counts, "capped": capped, "latest": latest}


def aws_status(ctx: Context, name: str, queue: str, mode: Optional[str],
               limit: int) -> dict[str, Any]:
    """What AWS says about the function (``CliError`` when nothing of it exists)."""
    function = _function(ctx.clients.client("lambda"), name)
    recent = _recent_invocations(ctx.clients.client("logs"), name, limit)
    jobs = None if mode == "lambda" else _jobs(ctx.clients.client("batch"), queue, limit)
    if function is None and not recent and jobs is None:
        raise CliError(f"no function, log group or job queue named {name!r} "
                       f"(queue {queue!r}); is it deployed in this region?")
    return {"name": name, "function": function, "execution_mode": mode, "queue": queue,
            "log_group": lambda_log_group(name), "invocations": recent, "jobs": jobs}


def local_status(doc: Mapping[str, Any], name: str, queue: str,
                 state_dir: Path) -> dict[str, Any]:
    """The function's invocations and jobs in a local session's state."""
    jobs = function_jobs(doc, name, queue)
    counts = {state: sum(1 for j in jobs if j.get("status") == state) for state in JOB_STATES}
    return {"state_dir": str(state_dir), "endpoint": doc.get("endpoint", ""),
            "name": name, "queue": queue, "functions": functions_in(doc),
            "invocations": function_invocations(doc, name),
            "jobs": {"queue": queue, "counts": counts, "capped": [], "latest": jobs}}


def _counts_table(jobs: Mapping[str, Any]) -> str:
    capped = set(jobs.get("capped", []))
    row = {s: f"{n}+" if s in capped else n for s, n in jobs["counts"].items()}
    return table([row], [(s, s) for s in JOB_STATES])


def _function_line(function: Optional[Mapping[str, Any]], name: str,
                   mode: Optional[str]) -> str:
    if function is None:
        return f"function {name}: not found"
    parts = [cell(function.get("state")), f"last update {cell(function.get('last_update'))}",
             cell(function.get("runtime")), f"{cell(function.get('memory'))} MB",
             f"timeout {cell(function.get('timeout'))} s",
             f"modified {when(function.get('last_modified'))}"]
    if mode:
        parts.insert(0, f"mode {mode}")
    return f"function {name}: " + ", ".join(parts)


def status_text(view: Mapping[str, Any]) -> str:
    """The status as text: the function line, the invocations, the jobs by state."""
    local = "state_dir" in view
    name = view["name"]
    blocks: list[str] = []
    if local:
        blocks.append(f"local session in {view['state_dir']} (endpoint "
                      f"{view.get('endpoint') or '-'})")
        rows = [dict(i, started_text=when(i.get("started")),
                     duration_text=seconds(i.get("duration")), job_ids=job_ids_of(i))
                for i in view["invocations"]]
        if rows:
            blocks.append(f"invocations of {name}:\n{table(rows, LOCAL_INVOCATION_COLUMNS)}")
        else:
            others = ", ".join(view["functions"]) or "none"
            blocks.append(f"no invocations of {name} (functions in this session: {others})")
    else:
        blocks.append(_function_line(view["function"], name, view.get("execution_mode")))
        rows = [dict(i, started_text=when(i.get("started"), millis=True),
                     duration_text=_ms(i.get("duration_ms")),
                     max_memory_text=_mb(i.get("max_memory_mb")))
                for i in view["invocations"]]
        blocks.append(f"recent invocations (newest first, {view['log_group']}):\n"
                      f"{table(rows, INVOCATION_COLUMNS)}" if rows else
                      f"no invocations logged in {view['log_group']}")
    jobs = view["jobs"]
    if local and not jobs["latest"]:
        blocks.append(f"no Batch jobs of {name}")
    elif jobs is None:
        if view.get("execution_mode") != "lambda":
            blocks.append(f"no Batch job queue {view['queue']}")
    else:
        blocks.append(f"Batch jobs on queue {jobs['queue']}:\n{_counts_table(jobs)}")
        if jobs["latest"]:
            if local:
                rows = [dict(j, attempt_count=len(j.get("attempts") or []))
                        for j in jobs["latest"]]
                blocks.append(table(rows, LOCAL_JOB_COLUMNS))
            else:
                rows = [dict(j, created_text=when(j.get("created"), millis=True))
                        for j in jobs["latest"]]
                blocks.append(f"latest jobs:\n{table(rows, JOB_COLUMNS)}")
    if view.get("history") is not None:
        blocks.append(history_text(view["history"]))
    return "\n\n".join(blocks)


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else seconds(value / 1000)


def _mb(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:g} MB"


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    """Show the status, on AWS or (``--local``) of a local session."""
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    queue, mode, history_table = args.queue, None, args.history_table
    if args.file is not None:
        [config] = from_fdl(args.file, args.name, check_files=False)
        queue, mode = queue or config.job_queue_name, config.execution_mode
        history_table = history_table or config.history.table
    queue = queue or args.name
    if args.local is not None:
        state = session_dir(args.local, args.session)
        view = local_status(read_state(state), args.name, queue, state)
    else:
        view = aws_status(ctx, args.name, queue, mode, args.limit)
        if history_table:
            view["history"] = history_view(ctx.clients.client("dynamodb"), history_table,
                                           args.name)
    ctx.emit(view, lambda: status_text(view))
    return 0
