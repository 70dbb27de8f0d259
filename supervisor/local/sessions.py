"""Where local sessions keep their state: one folder per run, none deleted by the next.

``<root>/sessions/<id>/`` holds one ``supervisor local`` run: its ``state.json``, the
Lambda and Batch logs and work folders, and the outputs copied out of the embedded
endpoint. ``<root>/LATEST`` names the newest. An id is the run's start time and a
random suffix (``20261201-221500-3fa2``); ``status``/``logs --local`` read the newest
unless given one (or an unambiguous start of one).
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Optional

from ..errors import CliError
from .store import STORE_FILE

__all__ = ["SESSIONS", "LATEST", "new_session", "session_dir", "session_ids"]

SESSIONS = "sessions"
LATEST = "LATEST"


def new_session(root: Path) -> tuple[str, Path]:
    """Make a new session's folder under ``root`` and name it the latest; (id, folder)."""
    sessions = root / SESSIONS
    sessions.mkdir(parents=True, exist_ok=True)
    while True:
        ident = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        folder = sessions / ident
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        break
    latest = root / f".{LATEST}.{ident}"
    latest.write_text(ident + "\n", encoding="utf-8")
    os.replace(latest, root / LATEST)
    return ident, folder


def session_ids(root: Path) -> list[str]:
    """The sessions under ``root``, oldest first."""
    sessions = root / SESSIONS
    if not sessions.is_dir():
        return []
    return sorted(p.name for p in sessions.iterdir() if (p / STORE_FILE).is_file())


def session_dir(root: Path, session: Optional[str] = None) -> Path:
    """The folder of session ``session`` (an id or its unambiguous start) under ``root``,
    else of the latest one; ``root`` itself when it is a session's folder.

    Raises ``CliError`` (one line) for an unknown or ambiguous id.
    """
    if session is None:
        if (root / STORE_FILE).is_file():
            return root
        try:
            latest = (root / LATEST).read_text(encoding="utf-8").strip()
        except OSError:
            latest = ""
        return root / SESSIONS / latest if latest else root
    found = [ident for ident in session_ids(root) if ident.startswith(session)]
    if session in found:
        return root / SESSIONS / session
    if len(found) == 1:
        return root / SESSIONS / found[0]
    known = session_ids(root)
    if not found:
        listed = ", ".join(known[-5:]) if known else "none yet"
        raise CliError(f"no local session {session!r} in {root} (latest: {listed})")
    raise CliError(f"local session {session!r} is ambiguous in {root}: "
                   f"{', '.join(found[:5])}")
