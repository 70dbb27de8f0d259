"""The supervisor's own error tree.

Every failure the supervisor knows how to describe is one of these; foreign
errors (botocore, OSError, yaml) are translated where they happen with
``raise Ours(msg) from exc``. Only ``handler.py`` and ``batch_entry.py`` turn
them into a response or an exit code.

::

    SupervisorError
    ├── ConfigError        the function configuration is missing or invalid
    ├── EventError         the invocation event is not a usable S3 event
    ├── StageInError       the input object could not be downloaded
    ├── StageOutError      an output could not be uploaded
    ├── ScriptError        the user's script could not be found or started
    │   └── ImageError     the container image could not be had (pulled, loaded, set up)
    ├── ScriptTimeout      the script exceeded its time budget
    └── DelegationError    the job could not be handed to AWS Batch
        └── HandoffInProgress  a duplicate event while another invocation hands it off
"""
from __future__ import annotations

from typing import Iterable, Optional

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
