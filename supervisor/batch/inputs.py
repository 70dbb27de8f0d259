"""What the job runs: the hand-off document, or SCAR's ``EVENT``/stdin, ``FUNCTION_CONFIG``
and ``SCRIPT``."""
from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional, TextIO

from .. import config as config_mod
from .. import events
from ..aws import ClientFactory
from ..config import FunctionConfig
from ..errors import (
    ConfigError,
    DelegationError,
    EventError,
)
from ..events import InputObject
from ..handoff import HANDOFF_ENV, REQUEST_ID_ENV, parse_s3_uri, read_handoff
from ..script import resolve_script
from .settings import EVENT_ENV, JOB_ID_ENV, REQUEST_ID_ALT_ENV, SCRIPT_ENV

__all__ = ["Work", "resolve"]

_NO_INPUT = (f"no input: neither {HANDOFF_ENV} nor {EVENT_ENV} is set and stdin is {{}}; "
             f"set {HANDOFF_ENV}=s3://bucket/key, or {EVENT_ENV} to the S3 event JSON, "
             "or pass the event on stdin")


@dataclass(frozen=True)
class Work:
    """What to run: resolved from the hand-off or from SCAR's variables."""

    config: FunctionConfig
    script: str
    request_id: str
    objects: list[InputObject]
    source: str  # for the log: the hand-off URI, "EVENT" or "stdin"
    attempt: Optional[int] = None  # the hand-off's attempt number


def resolve(environ: Mapping[str, str], stdin: Optional[TextIO],
             clients: ClientFactory) -> Work:
    uri = environ.get(HANDOFF_ENV, "").strip()
    if uri:
        return _from_handoff(uri, clients)
    return _from_scar(environ, stdin)


def _from_handoff(uri: str, clients: ClientFactory) -> Work:
    try:
        parse_s3_uri(uri)
    except DelegationError as exc:  # a malformed variable is configuration, not input
        raise ConfigError([str(exc)]) from exc
    doc = read_handoff(clients.s3(), uri)
    objects = events.parse({"Records": [dict(doc.record)]})
    if not objects:
        raise EventError(f"the hand-off {uri} holds no S3 object record")
    config = config_mod.parse(doc.function_config, check_files=False)
    return Work(config=config, script=doc.script, request_id=doc.request_id,
                 objects=objects, source=uri, attempt=doc.attempt)


def _from_scar(environ: Mapping[str, str], stdin: Optional[TextIO]) -> Work:
    text = environ.get(EVENT_ENV)
    source = EVENT_ENV
    if text is None:
        text, source = _read_stdin(stdin), "stdin"
    elif not text.strip():
        raise ConfigError([f"{EVENT_ENV} is empty; expected the S3 event as JSON"])
    objects = events.parse(text)
    event = json.loads(text)  # valid: events.parse accepted it
    # SCRIPT usually replaces init_script here: its file is checked only when it is read.
    config = config_mod.load(environ, check_files=False)
    script = _scar_script(environ, event if isinstance(event, Mapping) else {}, config)
    request_id = (environ.get(REQUEST_ID_ENV) or environ.get(REQUEST_ID_ALT_ENV)
                  or environ.get(JOB_ID_ENV) or str(uuid.uuid4()))
    return Work(config=config, script=script, request_id=request_id, objects=objects,
                 source=source)


def _read_stdin(stdin: Optional[TextIO]) -> str:
    stream = sys.stdin if stdin is None else stdin
    if stream is None or stream.closed:
        raise ConfigError([_NO_INPUT.format("closed")])
    try:
        if stream.isatty():
            raise ConfigError([_NO_INPUT.format("a terminal")])
        text = stream.read()
    except (OSError, ValueError) as exc:
        raise ConfigError([f"cannot read the event from stdin: {exc}"]) from exc
    if not text.strip():
        raise ConfigError([_NO_INPUT.format("empty")])
    return text


def _scar_script(environ: Mapping[str, str], event: Mapping[str, Any],
                 config: FunctionConfig) -> str:
    return resolve_script(event, config, encoded=environ.get(SCRIPT_ENV),
                          encoded_name=SCRIPT_ENV)


