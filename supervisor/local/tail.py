"""The scripts' output of a local session, line by line as it is written.

The local Lambda and Batch write each invocation's and each job's log to a file the
session's state names; :class:`ScriptTail` reads what was added to those files since
it last looked, picks the lines of the script's own output (the records of
:data:`~supervisor.jsonlog.SCRIPT_LOGGER`) and hands each to ``stream`` prefixed with
the function and the object, as ``supervisor local`` shows them. It remembers the last
few lines of each, for the report of a run that failed.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping, Optional

from ..jsonlog import script_line

__all__ = ["ScriptTail", "TAIL_LINES"]

TAIL_LINES = 3
_READ_MAX = 1 << 20  # bytes read from one log in one look


class ScriptTail:
    """Follows every log of a session's state document (see :meth:`poll`)."""

    def __init__(self, stream: Optional[Callable[[str], None]] = None,
                 keep: int = TAIL_LINES) -> None:
        self._stream = stream
        self._keep = keep
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._last: dict[str, deque[str]] = {}

    def poll(self, doc: Mapping[str, Any]) -> None:
        """Read what every log the state names has gained since the last look."""
        jobs = _job_labels(doc)
        for invocation in doc.get("invocations", {}).values():
            label = f"{invocation.get('function')} {_short(invocation.get('object'))}"
            for log in _logs(invocation):
                self._read(log, label)
        for job_id, job in doc.get("jobs", {}).items():
            label = jobs.get(job_id) or f"batch {job.get('name', job_id)}"
            for log in _logs(job):
                self._read(log, label)

    def last_lines(self, log: Optional[str]) -> list[str]:
        """The last script lines read from ``log`` (empty: none, or never read)."""
        return list(self._last.get(str(log), ())) if log else []

    def _read(self, log: str, label: str) -> None:
        try:
            with open(log, "rb") as handle:
                handle.seek(self._offsets.get(log, 0))
                chunk = handle.read(_READ_MAX)
        except OSError:  # not written yet
            return
        if not chunk:
            return
        self._offsets[log] = self._offsets.get(log, 0) + len(chunk)
        data = self._partial.pop(log, b"") + chunk
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial[log] = rest
        for raw in lines:
            text = script_line(raw.decode("utf-8", "replace"))
            if text is None:
                continue
            self._last.setdefault(log, deque(maxlen=self._keep)).append(text)
            if self._stream is not None:
                self._stream(f"  {label} | {text}")


def _short(obj: Any) -> str:
    """``s3://bucket/dir/key`` as ``dir/key`` (the bucket is the function's, mostly)."""
    text = str(obj or "(request)")
    return text[5:].partition("/")[2] or text if text.startswith("s3://") else text


def _logs(entry: Mapping[str, Any]) -> list[str]:
    """The log files an invocation or a job wrote: each attempt's (and node's), in order."""
    found: list[str] = []
    for attempt in entry.get("attempts") or []:
        if isinstance(attempt, Mapping) and attempt.get("log"):
            found.append(str(attempt["log"]))
    for node in entry.get("nodes") or []:
        if isinstance(node, Mapping) and node.get("log"):
            found.append(str(node["log"]))
    if entry.get("log"):
        found.append(str(entry["log"]))
    return list(dict.fromkeys(found))


def _job_labels(doc: Mapping[str, Any]) -> dict[str, str]:
    """``function object (batch)`` of every job an invocation handed off."""
    labels: dict[str, str] = {}
    for invocation in doc.get("invocations", {}).values():
        for record in invocation.get("records") or []:
            if isinstance(record, Mapping) and record.get("job_id"):
                labels[str(record["job_id"])] = (f"{invocation.get('function')} "
                                                 f"{record.get('key')} (batch)")
    return labels

