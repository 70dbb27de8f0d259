"""Reading CloudWatch Logs for ``status`` and ``logs``: streams, events, Lambda's lines.

The pure part reads what the Lambda runtime writes around each invocation
(``START RequestId: …``, ``END RequestId: …``, ``REPORT RequestId: …\\t
Duration: … ms\\t…``); the rest are thin reads over a ``logs`` client. A log
group or stream that does not exist (yet) reads as empty. :class:`StreamTail`
reads a stream in steps (what is new since the last read), for ``logs
--follow``; :class:`RequestFilter` keeps one invocation's lines of a stream.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from botocore.exceptions import ClientError

from .errors import error_code

__all__ = ["LogEvent", "BATCH_LOG_GROUP", "lambda_log_group", "parse_report", "invocations",
           "request_block", "RequestFilter", "request_ids", "recent_streams", "read_stream",
           "StreamTail", "search"]

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


class RequestFilter:
    """Keeps the lines of one invocation, fed a stream's events in order, in steps.

    Its lines are ``START`` to ``REPORT`` of ``request_id`` (every time: an
    async retry may run again in the same sandbox); before any ``START`` of
    it (which may have aged out), the lines that name the id.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = False
        self.reported = False
        self._inside = False

    def feed(self, events: Sequence[LogEvent]) -> list[LogEvent]:
        """The events of ``events`` (in stream order) that belong to the invocation."""
        kept: list[LogEvent] = []
        for event in events:
            if _request_of(event.message, "START") == self.request_id:
                self.started = self._inside = True
            if self._inside:
                kept.append(event)
                if _request_of(event.message, "REPORT") == self.request_id:
                    self._inside = False
                    self.reported = True
            elif not self.started and self.request_id in event.message:
                kept.append(event)
        return kept


def request_block(events: Sequence[LogEvent], request_id: str) -> list[LogEvent]:
    """The lines of one invocation: ``START`` to ``REPORT`` of ``request_id`` in its stream.

    Without a ``START`` line (it may have aged out) the lines naming the id.
    """
    ordered = sorted(events, key=lambda e: e.timestamp)
    start = next((e for e in ordered if _request_of(e.message, "START") == request_id), None)
    return RequestFilter(request_id).feed(
        [e for e in ordered if start is None or e.stream == start.stream])


_RECORD_ID = re.compile(r'"request_id"\s*:\s*"([^"]+)"')


def request_ids(events: Sequence[LogEvent], prefix: str) -> list[str]:
    """The request ids starting with ``prefix`` that ``events`` name (Lambda's own lines
    and the supervisor's records), in the order first seen."""
    found: dict[str, None] = {}
    for event in events:
        for word in ("START", "END", "REPORT"):
            rid = _request_of(event.message, word)
            if rid and rid.startswith(prefix):
                found.setdefault(rid)
        for rid in _RECORD_ID.findall(event.message):
            if rid.startswith(prefix):
                found.setdefault(rid)
    return list(found)


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


class StreamTail:
    """One log stream read in steps: each :meth:`poll` returns the events new since the last.

    The first poll reads the whole stream (``last``: only its newest
    ``last`` events); later ones continue from the forward token. A group or
    stream that does not exist (yet) polls empty, with :attr:`missing` saying so.
    """

    def __init__(self, logs: Any, group: str, stream: str, *, last: Optional[int] = None) -> None:
        self.group = group
        self.stream = stream
        self.missing: Optional[str] = None
        self._logs = logs
        self._last = last
        self._token: Optional[str] = None

    def poll(self, *, final: bool = False) -> list[LogEvent]:
        """The events written since the last poll, oldest first (``final`` changes nothing)."""
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream,
                                  "startFromHead": True}
        if self._token is not None:
            kwargs["nextToken"] = self._token
        elif self._last is not None:
            kwargs.update(startFromHead=False, limit=self._last)
        events: list[LogEvent] = []
        try:
            for _ in range(MAX_PAGES):
                answer = self._logs.get_log_events(**kwargs)
                page = answer.get("events", [])
                events.extend(_event(e, self.stream) for e in page)
                token = answer.get("nextForwardToken")
                done = not page or not token or token == kwargs.get("nextToken")
                self._token = token or self._token
                if done or "limit" in kwargs:
                    break
                kwargs["nextToken"] = token
        except ClientError as exc:
            if error_code(exc) == _MISSING:
                self.missing = f"log stream {self.stream} is not in {self.group} (yet)"
                return []
            raise
        self.missing = None
        return events


def read_stream(logs: Any, group: str, stream: str, *,
                limit: Optional[int] = None) -> Optional[list[LogEvent]]:
    """The events of one stream, oldest first (the last ``limit`` only, when given).

    None when the group or the stream does not exist.
    """
    tail = StreamTail(logs, group, stream, last=limit)
    events = tail.poll()
    return None if tail.missing is not None else events


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
