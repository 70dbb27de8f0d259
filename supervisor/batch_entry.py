"""``python -m supervisor.batch_entry``: the AWS Batch job's entry, kept at its old name.

The code lives in :mod:`supervisor.batch` (``entry``, ``inputs``, ``settings``,
``exit_codes``); this module re-exports what callers and the ``supervisor-batch``
console script use.
"""
from __future__ import annotations

from .batch.entry import console_main, main
from .batch.exit_codes import (
    EX_CANNOT_RUN,
    EX_CONFIG,
    EX_IOERR,
    EX_NOINPUT,
    EX_OK,
    EX_SOFTWARE,
    EX_TIMEOUT,
    Terminated,
    exit_code_for,
    script_exit_code,
)
from .batch.settings import Settings, read_settings

__all__ = [
    "main", "console_main", "exit_code_for", "script_exit_code", "read_settings",
    "Settings", "Terminated",
    "EX_OK", "EX_NOINPUT", "EX_SOFTWARE", "EX_IOERR", "EX_CONFIG", "EX_TIMEOUT",
    "EX_CANNOT_RUN",
]

if __name__ == "__main__":  # pragma: no cover - python -m supervisor.batch_entry
    console_main()
