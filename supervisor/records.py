"""The one record path both entry points call: skip, run, and the record's error boundary.

``handler.py`` (Lambda) and ``batch/entry.py`` (Batch) each give :func:`run_record` the
step that processes one record their way; what is the same on both sides lives here: a
record that is not an object creation is skipped, and whatever the step raises ends as a
``failed`` result with a one-line reason, so the event's other records still run.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from .errors import describe, one_line
from .events import InputObject
from .result import RecordResult

__all__ = ["skipped", "failed", "malformed", "one_line", "run_record"]


def skipped(obj: InputObject, why: Optional[str] = None) -> RecordResult:
    """A record the script does not run on (a delete, a duplicate being handed off, …)."""
    return RecordResult(bucket=obj.bucket, key=obj.key, status="skipped",
                        reason=why or f"{obj.event_name} is not an object creation")


def failed(obj: Optional[InputObject], error: str, duration: float = 0.0) -> RecordResult:
    """A failed record (``obj`` None: a direct invocation, no bucket or key)."""
    return RecordResult(bucket=obj.bucket if obj else "", key=obj.key if obj else "",
                        status="failed", error=one_line(error), duration=duration)


def malformed(record: Mapping[str, Any], error: Exception) -> RecordResult:
    """A record that is not a usable S3 record: failed, with what could be read of it."""
    def part(mapping: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = mapping.get(name)
        return value if isinstance(value, Mapping) else {}

    s3 = part(record, "s3")
    return RecordResult(bucket=one_line(str(part(s3, "bucket").get("name") or "")),
                        key=one_line(str(part(s3, "object").get("key") or "")),
                        status="failed", error=one_line(str(error)))


def run_record(obj: Optional[InputObject], step: Callable[[], RecordResult], *,
               on_error: Callable[[BaseException], None] = lambda exc: None,
               clock: Callable[[], float] = time.monotonic,
               ) -> tuple[RecordResult, Optional[BaseException]]:
    """One record through ``step`` with its error boundary; the result and what was raised.

    A record that is not an object creation is skipped without calling ``step``. An
    ``Exception`` from ``step`` is reported to ``on_error`` (for the log) and ends as a
    failed result; a ``BaseException`` (a stop signal) goes on up.
    """
    if obj is not None and not obj.is_create:
        return skipped(obj), None
    start = clock()
    try:
        return step(), None
    except Exception as exc:  # the record's error boundary: the next record still runs
        on_error(exc)
        return failed(obj, describe(exc), clock() - start), exc
