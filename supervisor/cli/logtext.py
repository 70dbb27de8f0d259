"""Log lines for people: the supervisor's JSON records as one readable line each. Pure.

Both sides log one JSON object per line: the Lambda side with powertools
(``level``, ``location``, ``message``, ``timestamp`` like ``2024-05-01
12:00:03,123+0000``, ``service``, then the bound and extra fields), the
Batch side with :mod:`supervisor.jsonlog` (``time`` in ISO 8601, ``level``,
``logger``, ``message``, then the fields). :func:`readable` shows such a
record as ``LEVEL   message  field=value …`` and a line of the script's
output as ``script  <the line>``; the fields every line repeats (level,
logger, where, the service) and those the section's title already says
(``context``: the request id, the job id, the object) are left out. A
metrics record (EMF, ``_aws``) is not shown; any other line is shown as is.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from ..jsonlog import is_script_record, record_of

__all__ = ["record_of", "record_time", "readable"]

SCRIPT_TAG = "script"
_ALWAYS_LEFT_OUT = frozenset({
    "time", "timestamp", "level", "logger", "location", "message", "service",
    "xray_trace_id", "sampling_rate", "cold_start", "function_name", "function_memory_size",
    "function_arn", "function_request_id", "exception", "exception_name", "stack",
    "stack_trace"})
_POWERTOOLS_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d),(\d{3})([+-]\d{4})$")


def record_time(record: Mapping[str, Any]) -> Optional[int]:
    """When the record was written (epoch ms), from ``time`` or ``timestamp``; None if neither."""
    value = record.get("time") or record.get("timestamp")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str):
        return None
    powertools = _POWERTOOLS_TIME.match(value.strip())
    if powertools:  # fromisoformat before 3.11 wants a "+00:00" offset
        date, clock, millis, offset = powertools.groups()
        text = f"{date}T{clock}.{millis}{offset[:3]}:{offset[3:]}"
    else:
        text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


def _fields(record: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    shown = [f"{name}={_value(value)}" for name, value in record.items()
             if name not in _ALWAYS_LEFT_OUT and not name.startswith("_")
             and not (name in context and context[name] in (None, value))
             and value is not None and value != []]
    return "  ".join(shown)


def _result_text(record: Mapping[str, Any]) -> str:
    """The line ``supervisor-batch`` prints last: its records and its exit code."""
    parts = []
    for item in record.get("records") or []:
        if isinstance(item, Mapping):
            uploaded = item.get("uploaded") or []
            why = item.get("error") or item.get("reason")
            parts.append(f"{item.get('key')}: {item.get('status')}"
                         + (f", {len(uploaded)} uploaded" if uploaded else "")
                         + (f" ({why})" if why else ""))
    return f"{'result':<7} exit {record.get('exit_code')}" + (
        f"; {'; '.join(parts)}" if parts else "")


def readable(message: str, context: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """``message`` for people (None: not worth a line).

    ``context`` holds the fields the section's title already shows
    (``{"request_id": …, "key": …}``): a record's field of the same value is
    left out; a field whose context value is None is left out whatever it holds.
    """
    record = record_of(message)
    if record is None:
        return message
    if "_aws" in record:
        return None
    if "records" in record and "exit_code" in record and "message" not in record:
        return _result_text(record)
    if is_script_record(record):
        return f"{SCRIPT_TAG:<7} {record.get('message', '')}"
    level = str(record.get("level") or "-").upper()
    fields = _fields(record, context or {})
    text = f"{level:<7} {record.get('message', '')}" + (f"  {fields}" if fields else "")
    trace = record.get("exception") or record.get("stack_trace")
    if isinstance(trace, str) and trace.strip():
        text += "\n" + "\n".join("        " + line for line in trace.rstrip().splitlines())
    return text
