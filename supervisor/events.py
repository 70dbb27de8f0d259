"""The invocation event: S3 notification records as typed ``InputObject`` values.

``parse`` turns the event Lambda hands the supervisor (an S3 notification, or
its JSON text) into one ``InputObject`` per record, in order, with the object
key decoded. It also accepts S3's ``s3:TestEvent`` (no records) and, for
robustness, one level of SNS or SQS envelope around an S3 event.
``script_from_event`` reads SCAR's optional base64 ``script`` field.

Every problem is an ``EventError`` whose message is one line naming the field
path (``Records[1].s3.object.key``), what is wrong and what is expected.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union
from urllib.parse import unquote_plus

from supervisor.errors import EventError

__all__ = ["InputObject", "event_mapping", "parse", "parse_each", "script_from_event"]

_S3_SOURCE = "aws:s3"
_S3_TEST_EVENT = "s3:TestEvent"
_CREATE_PREFIX = "ObjectCreated:"
_EXPECTED_RECORD = f"expected an S3 event record (eventSource {_S3_SOURCE})"


@dataclass(frozen=True)
class InputObject:
    """One S3 notification record: which object, which event, and the raw record.

    ``key`` is already decoded (S3 sends it URL-encoded with ``+`` for spaces).
    ``record`` is the record exactly as received; it takes no part in equality
    or hashing.
    """

    bucket: str
    key: str
    size: int
    etag: Optional[str]
    version_id: Optional[str]
    sequencer: Optional[str]
    event_time: str
    event_name: str
    record: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def is_create(self) -> bool:
        """True for ``ObjectCreated:*`` events, the only ones the script runs on, and for a
        record that names no event at all (faas-supervisor's own test events)."""
        return not self.event_name or self.event_name.startswith(_CREATE_PREFIX)

    @property
    def uri(self) -> str:
        """The object as ``s3://bucket/key`` (key decoded)."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def identity(self) -> str:
        """The idempotency key of this event: bucket, key and what tells versions apart.

        ``bucket/key#v=<versionId>`` when the bucket is versioned, else
        ``bucket/key#seq=<sequencer>``, else ``bucket/key#etag=<eTag>``, else
        ``bucket/key#none``. A retry of the same notification gives the same
        identity; a new upload of the same key gives a different one.
        """
        base = f"{self.bucket}/{self.key}"
        if self.version_id:
            return f"{base}#v={self.version_id}"
        if self.sequencer:
            return f"{base}#seq={self.sequencer}"
        if self.etag:
            return f"{base}#etag={self.etag}"
        return f"{base}#none"

    def event_json(self) -> str:
        """What the script receives as ``EVENT``: the S3 event as S3 sends it, holding this
        one record (``{"Records": [record]}``)."""
        return json.dumps({"Records": [self.record]})


def parse(raw: Union[Mapping[str, Any], str, bytes]) -> list[InputObject]:
    """The S3 objects an invocation event is about, one per record, in order.

    ``raw`` is the event mapping or its JSON text (``str`` or ``bytes``).
    Non-create records (deletes, …) are returned too; the caller skips them.
    S3's ``s3:TestEvent`` and an empty ``Records`` list give ``[]``. Records
    that are SNS (``Sns.Message``) or SQS (``body``) envelopes holding an S3
    event are replaced by the inner records, in order (one level only).

    Raises ``EventError`` (one line: field path, problem, expectation) when
    the event is not such an S3 event.
    """
    objects, problems = parse_each(raw)
    if problems:
        raise problems[0][1]
    return objects


def event_mapping(raw: Any) -> Mapping[str, Any]:
    """The invocation event as a mapping: JSON text is parsed; ``EventError`` (one line)
    for text that is not JSON and for anything that is not a JSON object."""
    event = _loads(raw, "event") if isinstance(raw, (str, bytes, bytearray)) else raw
    if not isinstance(event, Mapping):
        raise EventError(f"the event is {_type_name(event)}; expected a JSON object (an S3 "
                         "event, a direct invocation or an API Gateway request)")
    return event


def parse_each(raw: Union[Mapping[str, Any], str, bytes]
               ) -> tuple[list[InputObject], list[tuple[Mapping[str, Any], EventError]]]:
    """Like :func:`parse`, but a bad record does not sink the others.

    Returns the good records' objects and, for each bad record, the raw
    record (``{}`` when it is not a mapping) and its ``EventError``. Raises
    ``EventError`` only when the event as a whole is not an S3 event.
    """
    if isinstance(raw, (str, bytes, bytearray)):
        event = _loads(raw, "event")
    else:
        event = raw
    problems: list[tuple[Mapping[str, Any], EventError]] = []
    objects = _parse_event(event, prefix="", where="not an S3 event", allow_envelopes=True,
                           problems=problems)
    return objects, problems


def script_from_event(raw: Mapping[str, Any]) -> Optional[str]:
    """The user's script carried in the event's top-level ``script`` field, decoded.

    SCAR lets an invocation carry the script as base64 text; whitespace in it
    (line wrapping) is ignored. Returns ``None`` when the field is absent or
    null. Raises ``EventError`` naming the field when it is not a string, not
    base64, or does not decode to UTF-8 text.
    """
    value = raw.get("script")
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(
            f"event field 'script' is {_type_name(value)}; expected base64 text of the script"
        )
    compact = "".join(value.split())
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EventError(
            f"event field 'script' is not valid base64 ({exc}); expected base64 text of the script"
        ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(
            f"event field 'script' does not decode to UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); expected a base64-encoded UTF-8 script"
        ) from exc


def _loads(text: Union[str, bytes, bytearray], what: str) -> Any:
    """``json.loads`` with its errors translated to a one-line ``EventError``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise EventError(f"{what} is nested too deeply to be an event") from None
    except UnicodeDecodeError as exc:
        raise EventError(
            f"{what} is not UTF-8 JSON text ({exc.reason}); expected an S3 event as JSON"
        ) from exc
    except json.JSONDecodeError as exc:
        raise EventError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "expected an S3 event as JSON"
        ) from exc


def _parse_event(
    event: Any, prefix: str, where: str, allow_envelopes: bool,
    problems: list[tuple[Mapping[str, Any], EventError]],
) -> list[InputObject]:
    """Records of one S3 event found at ``prefix`` (``""`` at the top level)."""
    if isinstance(event, Mapping) and "Records" not in event:
        if event.get("Event") == _S3_TEST_EVENT:
            return []
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise EventError(
            f"{where}: expected a mapping with a 'Records' list (got {_summary(event)})"
        )
    objects: list[InputObject] = []
    for index, record in enumerate(records):
        path = f"{prefix}Records[{index}]"
        try:
            if not isinstance(record, Mapping):
                raise EventError(f"{path} is {_type_name(record)}; {_EXPECTED_RECORD}")
            inner = _envelope_body(record, path) if allow_envelopes and "s3" not in record \
                else None
            if inner is None:
                objects.append(_parse_record(record, path))
                continue
            body_path, body = inner
            event_inner = _loads(body, body_path)
            objects.extend(_parse_event(event_inner, prefix=f"{body_path}.",
                                        where=f"{body_path} is not an S3 event",
                                        allow_envelopes=False, problems=problems))
        except EventError as exc:  # this record only: the others still count
            problems.append((record if isinstance(record, Mapping) else {}, exc))
    return objects


def _envelope_body(record: Mapping[str, Any], path: str) -> Optional[tuple[str, str]]:
    """``(field path, JSON text)`` of an SNS or SQS envelope record, else ``None``."""
    sns = record.get("Sns")
    if isinstance(sns, Mapping):
        message = sns.get("Message")
        if not isinstance(message, str):
            raise EventError(
                f"{path}.Sns.Message is {_describe(message)}; expected an S3 event as JSON text"
            )
        return f"{path}.Sns.Message", message
    if record.get("eventSource") == "aws:sqs":
        body = record.get("body")
        if not isinstance(body, str):
            raise EventError(
                f"{path}.body is {_describe(body)}; expected an S3 event as JSON text"
            )
        return f"{path}.body", body
    return None


def _parse_record(record: Mapping[str, Any], path: str) -> InputObject:
    """One S3 record at ``path``, validated."""
    source = record.get("eventSource")
    if source != _S3_SOURCE:
        raise EventError(f"{path}.eventSource is {_describe(source)}; {_EXPECTED_RECORD}")
    s3 = _mapping(record, "s3", path)
    bucket = _mapping(s3, "bucket", f"{path}.s3")
    obj = _mapping(s3, "object", f"{path}.s3")
    name = _required_str(bucket, "name", f"{path}.s3.bucket", "the bucket name")
    raw_key = _required_str(obj, "key", f"{path}.s3.object", "the URL-encoded object key")
    try:
        key = unquote_plus(raw_key, errors="strict")
        key.encode("utf-8")  # a lone surrogate sent as is: no S3 key can hold it
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise EventError(
            f"{path}.s3.object.key {ascii(raw_key)} is not UTF-8 text ({exc.reason}); "
            "expected a URL-encoded UTF-8 object key"
        ) from exc
    return InputObject(
        bucket=name,
        key=key,
        size=_size(obj, f"{path}.s3.object"),
        etag=_optional_str(obj, "eTag", f"{path}.s3.object"),
        version_id=_optional_str(obj, "versionId", f"{path}.s3.object"),
        sequencer=_optional_str(obj, "sequencer", f"{path}.s3.object"),
        event_time=_optional_str(record, "eventTime", path) or "",
        event_name=_optional_str(record, "eventName", path) or "",
        record=record,
    )


def _mapping(parent: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise EventError(f"{path}.{name} is {_describe(value)}; {_EXPECTED_RECORD}")
    return value


def _required_str(parent: Mapping[str, Any], name: str, path: str, meaning: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str):
        raise EventError(f"{path}.{name} is {_describe(value)}; expected a string ({meaning})")
    if not value:
        raise EventError(f"{path}.{name} is empty; expected a non-empty string ({meaning})")
    return value


def _optional_str(parent: Mapping[str, Any], name: str, path: str) -> Optional[str]:
    value = parent.get(name)
    if value is None or isinstance(value, str):
        return value
    raise EventError(f"{path}.{name} is {_type_name(value)}; expected a string or nothing")


def _size(obj: Mapping[str, Any], path: str) -> int:
    value = obj.get("size")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{path}.size is {_type_name(value)}; expected an integer byte count")
    if value < 0:
        raise EventError(f"{path}.size is {value}; expected a byte count >= 0")
    return value


def _describe(value: Any) -> str:
    """``missing`` for ``None``, ``'text'`` for a short string, else the type name."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:37]!r}..."
    return _type_name(value)


def _type_name(value: Any) -> str:
    """A JSON-ish name of ``value``'s type with its article: ``a list``, ``an int``."""
    names = {
        bool: "a boolean",
        int: "an int",
        float: "a float",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }
    for kind, label in names.items():
        if type(value) is kind:
            return label
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _summary(event: Any) -> str:
    """What was received instead of an S3 event, short enough for one log line."""
    if isinstance(event, Mapping):
        if "Records" in event:
            return f"'Records' as {_type_name(event['Records'])}"
        keys = sorted(str(k) for k in event)
        if not keys:
            return "an empty object"
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        return f"an object with keys {shown}"
    return _type_name(event)
