"""Reading a local session's state (``supervisor local``) for ``status`` and ``logs``.

The state is :class:`~supervisor.local.store.LocalStore`'s JSON document:
``invocations[request_id]`` (function, status, started, ended, duration,
object, records with their job ids, log) and ``jobs[job_id]`` (name, queue,
definition, status, history, exit code, reason, attempts with their logs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..local.store import DEFAULT_STATE_DIR, STORE_FILE, LocalStore
from .errors import CliError

__all__ = ["DEFAULT_STATE_DIR", "read_state", "function_invocations", "function_jobs",
           "functions_in", "job_ids_of"]


def read_state(state_dir: Path) -> dict[str, Any]:
    """The state document under ``state_dir``; ``CliError`` when there is none."""
    if not (state_dir / STORE_FILE).is_file():
        raise CliError(f"no local session state in {state_dir}: run supervisor local first, "
                       "or give its --state-dir")
    try:
        doc = LocalStore.read(state_dir)
    except ValueError as exc:  # not JSON, or not an object
        raise CliError(f"{state_dir / STORE_FILE}: not a local session state file "
                       f"({' '.join(str(exc).split())})") from exc
    doc.setdefault("invocations", {})
    doc.setdefault("jobs", {})
    return doc


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def functions_in(doc: Mapping[str, Any]) -> list[str]:
    """The functions the session's invocations ran, sorted."""
    return sorted({str(v.get("function")) for v in doc["invocations"].values()
                   if isinstance(v, dict) and v.get("function")})


def job_ids_of(invocation: Mapping[str, Any]) -> list[str]:
    """The Batch job ids an invocation's records were handed to."""
    records = invocation.get("records")
    return [str(r["job_id"]) for r in records or []
            if isinstance(r, dict) and r.get("job_id")] if isinstance(records, list) else []


def function_invocations(doc: Mapping[str, Any], function: str) -> list[dict[str, Any]]:
    """The function's invocations, oldest first, each with its ``request_id``."""
    found = [dict(entry, request_id=rid) for rid, entry in doc["invocations"].items()
             if isinstance(entry, dict) and entry.get("function") == function]
    return sorted(found, key=lambda e: _number(e.get("started")))


def _created(job: Mapping[str, Any]) -> float:
    if isinstance(job.get("created"), (int, float)):
        return float(job["created"])
    history = job.get("history")
    if isinstance(history, list) and history and isinstance(history[0], dict):
        return _number(history[0].get("at"))
    return 0.0


def function_jobs(doc: Mapping[str, Any], function: str, queue: str) -> list[dict[str, Any]]:
    """The function's Batch jobs (handed off by its invocations, or on ``queue``), oldest first."""
    ids = {j for inv in function_invocations(doc, function) for j in job_ids_of(inv)}
    found = [dict(job, job_id=jid) for jid, job in doc["jobs"].items()
             if isinstance(job, dict) and (jid in ids or job.get("queue") == queue)]
    return sorted(found, key=_created)
