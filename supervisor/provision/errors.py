"""The provisioning error, and the one place botocore errors are translated.

::

    SupervisorError
    └── ProvisionError   a resource could not be planned, checked, created or removed
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import SupervisorError

__all__ = ["ProvisionError", "translated", "error_code"]


class ProvisionError(SupervisorError):
    """Deploying or removing a function's AWS resources failed; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _message(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        text = str(error.get("Message") or "").strip()
        code = str(error.get("Code") or "").strip()
        if code or text:
            return f"{code}: {text}" if code and text else code or text
    return str(exc)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn a botocore error raised inside the block into ``ProvisionError("<what>: ...")``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise ProvisionError(f"{what}: {_message(exc)}") from exc
