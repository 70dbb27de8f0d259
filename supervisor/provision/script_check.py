"""The script's syntax, checked with ``sh -n`` before anything is deployed or run.

A script that does not parse would fail every invocation with the shell's message
in a log; deploy (and ``supervisor local``, which deploys the same way) refuses it
at once with that message instead. The check runs the host's ``sh``, which reads
POSIX shell as the image's ``/bin/sh`` does; where there is no ``sh`` the check is
skipped (the runtime still reports the error).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

__all__ = ["syntax_problem"]

_TIMEOUT_S = 10.0
_SHOWN_LINES = 3


def syntax_problem(script: Path, shell: Optional[str] = None) -> Optional[str]:
    """Why ``sh -n`` refuses ``script`` (the shell's own words, one line), or None."""
    sh = shell or shutil.which("sh")
    if sh is None or not script.is_file():
        return None
    try:
        done = subprocess.run([sh, "-n", str(script)], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return None
    text = done.stderr.decode("utf-8", "replace").replace(str(script), script.name)
    said = [line.strip() for line in text.splitlines() if line.strip()][:_SHOWN_LINES]
    message = "; ".join(said) or f"sh -n exited with code {done.returncode}"
    return f"init_script: {script.name} does not parse as a shell script: {message}"
