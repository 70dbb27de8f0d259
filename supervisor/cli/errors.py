"""The CLI's own error, and the one-line reason shown for any error it stops.

::

    SupervisorError
    └── CliError     a command cannot do what was asked (bad argument, missing object, ...)

:func:`reason` turns what ``main`` catches (``SupervisorError``, botocore and
boto3 errors, ``OSError``) into the text after ``supervisor: ``: one line.
"""
from __future__ import annotations

from ..errors import CliError, error_code

__all__ = ["CliError", "reason", "error_code"]


def reason(exc: BaseException) -> str:
    """One line saying what went wrong, without a traceback."""
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoRegionError):
        text = "no AWS region configured: pass --region or set AWS_REGION"
    elif isinstance(exc, NoCredentialsError):
        text = "no AWS credentials found: pass --profile or configure credentials"
    elif isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
