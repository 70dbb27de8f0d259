"""The project's error tree, and the one place foreign errors are put into words.

Every failure the project knows how to describe is one of these; foreign errors
(botocore, OSError, yaml) are translated where they happen with ``raise Ours(msg)
from exc`` (:func:`translated` for AWS calls). :func:`one_line` and
:func:`describe` are how any error becomes the one line a response, a log or the
CLI shows. Only the entry points (``handler.py``, ``batch/entry.py``, the CLI's
``main``) turn errors into a response or an exit code.

::

    SupervisorError
    ├── ConfigError        the function configuration is missing or invalid
    ├── EventError         the invocation event is not a usable S3 event
    ├── StageInError       the input object could not be downloaded
    ├── StageOutError      an output could not be uploaded
    ├── ScriptError        the user's script could not be found or started
    │   └── ImageError     the container image could not be had (pulled, loaded, set up)
    ├── ScriptTimeout      the script exceeded its time budget
    ├── DelegationError    the job could not be handed to AWS Batch
    │   └── HandoffInProgress  a duplicate event while another invocation hands it off
    ├── ProvisionError     deploy or rm could not plan, check, create or remove a resource
    ├── BuildError         the layers or supervisor-batch.pyz could not be built
    ├── CliError           a command cannot do what was asked (bad argument, missing object)
    ├── LocalLambdaError   the local Lambda cannot run a function as deployed
    ├── JobSpecError       the local Batch cannot run a job as its definition says
    └── EndpointError      the local endpoint could not be asked about its Batch jobs
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

__all__ = [
    "SupervisorError",
    "ConfigError",
    "EventError",
    "StageInError",
    "StageOutError",
    "ScriptError",
    "ImageError",
    "ScriptTimeout",
    "DelegationError",
    "HandoffInProgress",
    "ProvisionError",
    "BuildError",
    "CliError",
    "LocalLambdaError",
    "JobSpecError",
    "EndpointError",
    "one_line",
    "describe",
    "error_code",
    "aws_message",
    "translated",
]


class SupervisorError(Exception):
    """Base of every error the supervisor raises on purpose."""


class ConfigError(SupervisorError):
    """The function configuration is missing or invalid.

    ``problems`` holds one line per problem, each naming the field path and
    what is allowed; ``str(err)`` joins them with ``"; "`` so the error stays
    one line in logs.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems) or ("invalid configuration",)
        super().__init__("; ".join(self.problems))


class EventError(SupervisorError):
    """The invocation event is not an S3 event the supervisor can process."""


class StageInError(SupervisorError):
    """The input object could not be downloaded."""


class StageOutError(SupervisorError):
    """One or more outputs could not be uploaded."""


class ScriptError(SupervisorError):
    """The user's script could not be found or started."""


class ImageError(ScriptError):
    """The container image could not be had: unknown name, registry down, disk full, bad
    archive, or a sandbox that cannot run it. The message names the image as configured."""


class ScriptTimeout(SupervisorError):
    """The script (with stage-in) exceeded the time budget and was killed.

    ``exit_code`` and ``output_tail`` are the killed script's, when it had started.
    """

    def __init__(self, message: str, *, exit_code: Optional[int] = None,
                 output_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output_tail = output_tail


class DelegationError(SupervisorError):
    """The job could not be handed off to AWS Batch."""


class HandoffInProgress(DelegationError):
    """A duplicate event arrived while another invocation is handing the same object off."""


class ProvisionError(SupervisorError):
    """Deploying or removing a function's AWS resources failed; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class BuildError(SupervisorError):
    """The layers or ``supervisor-batch.pyz`` could not be built correctly; the message
    says why (and, for missing system files, what to install)."""


class CliError(SupervisorError):
    """A command cannot do what was asked; the message is the one line the user sees."""


class LocalLambdaError(SupervisorError):
    """The local Lambda cannot run a function as deployed (missing, code differs, ...)."""


class JobSpecError(SupervisorError):
    """The job cannot be run locally as its definition and overrides say (it ends FAILED)."""


class EndpointError(SupervisorError):
    """The endpoint could not be asked about its Batch jobs (try again later)."""


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def one_line(text: str) -> str:
    """``text`` on one line: whitespace runs become one space, other control characters
    and lone surrogates are escaped (``\\x00``, ``\\udc80``), so any key stays readable. Pure."""
    flat = " ".join(text.split())
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace")
                            .decode("ascii"), flat)


def describe(exc: BaseException) -> str:
    """What went wrong, in one line; an error that is not the project's names its type."""
    if isinstance(exc, SupervisorError):
        return one_line(str(exc) or type(exc).__name__)
    return one_line(f"internal error: {type(exc).__name__}: {exc}")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def aws_message(exc: BaseException) -> str:
    """A botocore error as ``Code: Message`` (its text for anything else)."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        text = str(error.get("Message") or "").strip()
        code = str(error.get("Code") or "").strip()
        if code or text:
            return f"{code}: {text}" if code and text else code or text
    return str(exc)


@contextmanager
def translated(what: str, into: type[SupervisorError] = ProvisionError) -> Iterator[None]:
    """Turn a botocore error raised inside the block into ``into("<what>: Code: Message")``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise into(f"{what}: {aws_message(exc)}") from exc
