"""Reading CloudWatch Logs for ``status`` and ``logs``: streams, events, Lambda's lines.

The pure part reads what the Lambda runtime writes around each invocation
(``START RequestId: …``, ``END RequestId: …``, ``REPORT RequestId: …\\t
Duration: … ms\\t…``); the rest are thin reads over a ``logs`` client. A log
group or stream that does not exist (yet) reads as empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from botocore.exceptions import ClientError

from .errors import error_code

__all__ = ["LogEvent", "BATCH_LOG_GROUP", "lambda_log_group", "parse_report", "invocations",
           "request_block", "recent_streams", "read_stream", "search"]

BATCH_LOG_GROUP = "/aws/batch/job"
MAX_PAGES = 100  # of get_log_events / filter_log_events: 10,000 events and more
_MISSING = "ResourceNotFoundException"


def lambda_log_group(function: str) -> str:
    """The log group Lambda writes a function's logs to."""
    return f"/aws/lambda/{function}"


@dataclass(frozen=True)
class LogEvent:
    """One log line: when (epoch ms), which stream, what."""

    timestamp: int
    stream: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"timestamp": self.timestamp, "stream": self.stream, "message": self.message}


def _event(raw: dict[str, Any], stream: str = "") -> LogEvent:
    return LogEvent(timestamp=int(float(raw.get("timestamp", 0))),
                    stream=str(raw.get("logStreamName", stream)),
                    message=str(raw.get("message", "")).rstrip("\n"))


def _number(text: str) -> Optional[float]:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


_REPORT_FIELDS = {"Duration": "duration_ms", "Billed Duration": "billed_ms",
                  "Memory Size": "memory_mb", "Max Memory Used": "max_memory_mb",
                  "Init Duration": "init_ms"}


def parse_report(message: str) -> Optional[dict[str, Any]]:
    """The fields of a ``REPORT RequestId: …`` line, or None for any other line."""
    if not message.startswith("REPORT RequestId:"):
        return None
    parts = [p.strip() for p in message.split("\t") if p.strip()]
    head = parts[0][len("REPORT RequestId:"):].split()
    report: dict[str, Any] = {"request_id": head[0] if head else ""}
    for part in parts[1:]:
        name, _, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if name in _REPORT_FIELDS:
            report[_REPORT_FIELDS[name]] = _number(value)
        elif name == "Status":
            report["status"] = value
    return report


def _request_of(message: str, word: str) -> Optional[str]:
    prefix = f"{word} RequestId:"
    if not message.startswith(prefix):
        return None
    rest = message[len(prefix):].split()
    return rest[0] if rest else None


def invocations(events: Sequence[LogEvent]) -> list[dict[str, Any]]:
    """One row per request seen (``START`` or ``REPORT``), newest first.

    ``status`` is the REPORT's ``Status`` (``timeout``, ``error`` on newer
    runtimes), ``done`` when the REPORT has none, ``running`` before it.
    """
    rows: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        started = _request_of(event.message, "START")
        if started:
            rows.setdefault(started, {"request_id": started, "started": event.timestamp,
                                      "stream": event.stream, "status": "running"})
            continue
        report = parse_report(event.message)
        if report and report["request_id"]:
            row = rows.setdefault(report["request_id"], {
                "request_id": report["request_id"], "started": event.timestamp,
                "stream": event.stream})
            row.update(report)
            row["status"] = report.get("status") or "done"
    return sorted(rows.values(), key=lambda r: r["started"], reverse=True)


def request_block(events: Sequence[LogEvent], request_id: str) -> list[LogEvent]:
    """The lines of one invocation: ``START`` to ``REPORT`` of ``request_id`` in its stream.

    Without a ``START`` line (it may have aged out) the lines naming the id.
    """
    ordered = sorted(events, key=lambda e: e.timestamp)
    start = next((i for i, e in enumerate(ordered)
                  if _request_of(e.message, "START") == request_id), None)
    if start is None:
        return [e for e in ordered if request_id in e.message]
    stream = ordered[start].stream
    block: list[LogEvent] = []
    for event in ordered[start:]:
        if event.stream != stream:
            continue
        block.append(event)
        if _request_of(event.message, "REPORT") == request_id:
            break
    return block


def recent_streams(logs: Any, group: str, limit: int) -> list[str]:
    """The ``limit`` streams of ``group`` with the newest events, newest first."""
    try:
        answer = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                           descending=True, limit=limit)
    except ClientError as exc:
        if error_code(exc) == _MISSING:
            return []
        raise
    return [s["logStreamName"] for s in answer.get("logStreams", [])]


def read_stream(logs: Any, group: str, stream: str, *,
                limit: Optional[int] = None) -> Optional[list[LogEvent]]:
    """The events of one stream, oldest first (the last ``limit`` only, when given).

    None when the group or the stream does not exist.
    """
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                              "startFromHead": limit is None}
    if limit is not None:
        kwargs["limit"] = limit
    events: list[LogEvent] = []
    try:
        for _ in range(1 if limit is not None else MAX_PAGES):
            answer = logs.get_log_events(**kwargs)
            events.extend(_event(e, stream) for e in answer.get("events", []))
            token = answer.get("nextForwardToken")
            if not answer.get("events") or not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    except ClientError as exc:
        if error_code(exc) == _MISSING:
            return None
        raise
    return events


def search(logs: Any, group: str, term: str) -> list[LogEvent]:
    """The events of ``group`` containing ``term`` (a quoted filter pattern), oldest first."""
    kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": f'"{term}"'}
    events: list[LogEvent] = []
    try:
        for _ in range(MAX_PAGES):
            answer = logs.filter_log_events(**kwargs)
            events.extend(_event(e) for e in answer.get("events", []))
            token = answer.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
    except ClientError as exc:
        if error_code(exc) == _MISSING:
            return []
        raise
    return sorted(events, key=lambda e: e.timestamp)
