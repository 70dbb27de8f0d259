"""JSON-lines logging for the Batch side: one JSON object per line, stdlib only.

Every line holds ``time`` (UTC, ISO 8601 with milliseconds and ``Z``),
``level``, ``logger`` and ``message``, then the fields bound with
:meth:`JsonLogging.bind`, then every field the call passed with ``extra=``;
``exception`` holds the formatted traceback when the call had ``exc_info``.
A message with newlines stays on one line (JSON escapes them).

The Lambda side logs with powertools' ``Logger``; this module exists so the
Batch container needs nothing beyond the standard library to log the same way.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, TextIO

__all__ = ["JsonFormatter", "JsonLogging", "install", "SCRIPT_LOGGER", "record_of",
           "is_script_record", "script_line"]

SCRIPT_LOGGER = "supervisor.script"
"""The logger both entry points write the script's output lines to, one record a line."""

_CORE = ("time", "level", "logger", "message")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (no newline inside)."""

    def __init__(self, fields: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        # Replaced, never mutated: another thread may be formatting with it.
        self.fields: Mapping[str, Any] = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in self.fields.items():
            doc.setdefault(key, value)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(doc, default=str, ensure_ascii=False)
        except (TypeError, ValueError):  # e.g. a circular structure in ``extra``
            return json.dumps({k: doc[k] if k in _CORE else repr(doc[k]) for k in doc},
                              ensure_ascii=False)


class JsonLogging:
    """A JSON-lines handler installed on one logger; :meth:`close` puts the logger back."""

    def __init__(self, logger: logging.Logger, handler: logging.StreamHandler[TextIO],
                 formatter: JsonFormatter) -> None:
        self.logger = logger
        self.handler = handler
        self.formatter = formatter
        self._saved = (logger.level, logger.propagate)

    def set_level(self, name: str) -> bool:
        """Set the logger's level by name (``"debug"``, ``"INFO"``…); False if unknown."""
        level = logging.getLevelName(name.strip().upper())
        if not isinstance(level, int):
            return False
        self.logger.setLevel(level)
        return True

    def bind(self, **fields: Any) -> None:
        """Add ``fields`` to every following line (``None`` removes a field)."""
        merged = dict(self.formatter.fields)
        for key, value in fields.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self.formatter.fields = merged

    def close(self) -> None:
        """Remove the handler and restore the logger's level and propagation."""
        self.handler.flush()
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._saved[0])
        self.logger.propagate = self._saved[1]

    def __enter__(self) -> "JsonLogging":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def install(logger_name: str = "supervisor", *, level: str = "INFO",
            stream: Optional[TextIO] = None,
            fields: Optional[Mapping[str, Any]] = None) -> JsonLogging:
    """Send ``logger_name`` and its children to ``stream`` (default stderr) as JSON lines.

    The logger stops propagating to the root logger, so nothing is printed
    twice; a JSON handler installed earlier on the same logger is replaced.
    """
    logger = logging.getLogger(logger_name)
    for old in list(logger.handlers):
        if isinstance(old.formatter, JsonFormatter):
            logger.removeHandler(old)
    formatter = JsonFormatter(fields)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    setup = JsonLogging(logger, handler, formatter)
    logger.addHandler(handler)
    logger.propagate = False
    if not setup.set_level(level):
        logger.setLevel(logging.INFO)
    return setup


def record_of(line: str) -> Optional[dict[str, Any]]:
    """The JSON object a log line holds, or None for any other line."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def is_script_record(record: Mapping[str, Any]) -> bool:
    """Whether a log record is a line of the script's output (this module's JSON lines on
    Batch, powertools' on Lambda, which names the logging call's location)."""
    return (record.get("logger") == SCRIPT_LOGGER
            or str(record.get("location", "")).startswith("_log_script_line:"))


def script_line(line: str) -> Optional[str]:
    """The script's output line a log line carries, or None when it carries none."""
    record = record_of(line)
    if record is None or not is_script_record(record):
        return None
    return str(record.get("message", ""))
