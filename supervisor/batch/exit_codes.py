"""``supervisor-batch``'s exit codes (**contract**; see :mod:`supervisor.batch`) and the
one line that says why. Pure."""
from __future__ import annotations

import signal
from typing import Union

from ..errors import (
    ConfigError,
    DelegationError,
    EventError,
    ScriptError,
    ScriptTimeout,
    StageInError,
    StageOutError,
    describe,
)
from ..records import one_line
from ..result import RecordResult
from ..runner import shell_exit_code

__all__ = ["EX_OK", "EX_NOINPUT", "EX_SOFTWARE", "EX_IOERR", "EX_CONFIG", "EX_TIMEOUT",
           "EX_CANNOT_RUN", "Terminated", "script_exit_code", "exit_code_for", "reason_for",
           "signal_name"]

EX_OK = 0
EX_NOINPUT = 66  # sysexits.h
EX_SOFTWARE = 70
EX_IOERR = 74
EX_CONFIG = 78
EX_TIMEOUT = 124  # as timeout(1)
EX_CANNOT_RUN = 126  # as the shell's "found but cannot execute"


class Terminated(BaseException):
    """``supervisor-batch`` got SIGTERM (Batch stops a job that way) or another signal.

    A ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception``
    on the way swallows it; the runner's cleanup still kills the script's group.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal_name(signum)}")


def script_exit_code(returncode: int) -> int:
    """The process exit code for a script's ``Popen.returncode``.

    ``0``–``255`` as is; killed by signal N (``-N``) is ``128 + N``, as a shell reports it.
    """
    return EX_SOFTWARE if returncode > 255 else shell_exit_code(returncode)


def exit_code_for(outcome: Union[RecordResult, BaseException]) -> int:
    """The exit code for one record's result or for what was raised (pure; see the table)."""
    if isinstance(outcome, RecordResult):
        if outcome.status in ("completed", "skipped"):
            return EX_OK
        if outcome.status == "failed" and outcome.exit_code:
            return script_exit_code(outcome.exit_code)
        return EX_SOFTWARE  # failed without a script exit code, or "delegated": not here
    if isinstance(outcome, Terminated):
        return min(128 + outcome.signum, 255)
    if isinstance(outcome, KeyboardInterrupt):
        return 128 + signal.SIGINT
    if isinstance(outcome, ScriptTimeout):
        return EX_TIMEOUT
    if isinstance(outcome, (ConfigError, EventError)):
        return EX_CONFIG
    if isinstance(outcome, (StageInError, DelegationError)):
        return EX_NOINPUT
    if isinstance(outcome, StageOutError):
        return EX_IOERR
    if isinstance(outcome, ScriptError):
        return EX_CANNOT_RUN
    return EX_SOFTWARE


def reason_for(exc: BaseException) -> str:
    """One line saying what went wrong (an unexpected error names its type)."""
    if isinstance(exc, Terminated):
        return one_line(str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return describe(exc)



def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

