"""How wide the terminal is, for tables and progress bars.

``COLUMNS`` wins (as for ``ls`` and ``shutil``), then the size of the
terminal the stream is; output that goes to no terminal (a pipe, a file, a
test's buffer) has no width limit.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, TextIO

__all__ = ["terminal_width"]


def terminal_width(environ: Optional[Mapping[str, str]] = None,
                   stream: Optional[TextIO] = None) -> Optional[int]:
    """The columns of the terminal ``stream`` (default stdout) shows; None for no limit."""
    environ = os.environ if environ is None else environ
    stream = sys.stdout if stream is None else stream
    columns = environ.get("COLUMNS", "").strip()
    if columns:
        return int(columns) if columns.isdigit() and int(columns) > 0 else None
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        return None
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (OSError, ValueError):
        return None
