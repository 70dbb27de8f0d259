"""Direct invocations, as ``scar run`` / ``scar invoke`` and API Gateway send them.

Besides S3 events the handler serves:

- ``{}``: the script runs once with no input file;
- ``{"script": "<base64>"}``: that script instead of ``init_script``, no input file;
- ``{"cmd_args": [...]}`` (a list, or its JSON text as SCAR sends it): the image's
  command (its ENTRYPOINT, if any) runs with those arguments instead of the script;
- an API Gateway proxy request (``httpMethod``/``requestContext`` and a ``body``): the
  body, base64-decoded when ``isBase64Encoded``, is the input file.

Pure: :func:`direct_invocation` only reads the event.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .errors import EventError

__all__ = ["DirectInvocation", "direct_invocation", "BODY_NAME"]

BODY_NAME = "request-body"
"""The input file's name when an API Gateway request carries no usable file name."""
_DIRECT_KEYS = frozenset({"script", "cmd_args"})
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_FILENAME = re.compile(r'filename="?([^";]+)"?')


@dataclass(frozen=True)
class DirectInvocation:
    """One run of the script that no S3 object started."""

    kind: str  # "direct" or "api-gateway"
    body: Optional[bytes] = None  # the input file's content; None: no input file
    body_name: str = BODY_NAME
    cmd_args: Optional[tuple[str, ...]] = None


def _cmd_args(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise EventError(f"event field 'cmd_args' is text but not a JSON list ({exc.msg}); "
                             "expected a list of strings") from None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise EventError("event field 'cmd_args' must be a non-empty list of strings "
                         "(or its JSON text)")
    return tuple(value)


def _body_name(request: Mapping[str, Any]) -> str:
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if str(name).lower() == "content-disposition" and isinstance(value, str):
                found = _FILENAME.search(value)
                if found and _SAFE_NAME.fullmatch(found.group(1)):
                    return found.group(1)
    return BODY_NAME


def _api_body(request: Mapping[str, Any]) -> bytes:
    body = request.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise EventError("API Gateway request field 'body' must be text")
    if request.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EventError(f"API Gateway request body is marked isBase64Encoded but is not "
                             f"base64 ({exc})") from None
    return body.encode("utf-8")


def direct_invocation(event: Any) -> Optional[DirectInvocation]:
    """The direct invocation ``event`` is, or None when it is not one (an S3 event, …).

    Raises ``EventError`` (one line) for a direct invocation with a bad field.
    """
    if not isinstance(event, Mapping) or "Records" in event:
        return None
    if "httpMethod" in event or ("requestContext" in event and "body" in event):
        return DirectInvocation(kind="api-gateway", body=_api_body(event),
                                body_name=_body_name(event))
    if not set(event) <= _DIRECT_KEYS:
        return None
    cmd_args = _cmd_args(event["cmd_args"]) if event.get("cmd_args") is not None else None
    return DirectInvocation(kind="direct", cmd_args=cmd_args)
