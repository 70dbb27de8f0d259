"""The CLI's own error, and the one-line reason shown for any error it stops.

::

    SupervisorError
    └── CliError     a command cannot do what was asked (bad argument, missing object, ...)

:func:`reason` turns what ``main`` catches (``SupervisorError``, botocore and
boto3 errors, ``OSError``) into the text after ``supervisor: ``: one line.
"""
from __future__ import annotations

from ..errors import CliError, error_code
from ..provision.deploy import NO_REGION

__all__ = ["CliError", "reason", "error_code"]

NO_CREDENTIALS = ("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                  "or name a profile of ~/.aws/credentials or ~/.aws/config with --profile "
                  "or AWS_PROFILE")


def reason(exc: BaseException) -> str:
    """One line saying what went wrong, without a traceback."""
    from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

    if isinstance(exc, NoRegionError):
        text = NO_REGION
    elif isinstance(exc, NoCredentialsError):
        text = NO_CREDENTIALS
    elif isinstance(exc, ProfileNotFound):
        text = (f"AWS profile {exc.kwargs.get('profile')!r} not found in ~/.aws/config "
                "(AWS_CONFIG_FILE) or ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE): "
                "check --profile and AWS_PROFILE")
    elif isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
