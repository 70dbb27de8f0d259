"""What the local Lambda and Batch executors did, kept in one JSON file.

``supervisor local`` writes it as things happen; ``supervisor status`` and
``supervisor logs`` read it in local mode. Writes are atomic (temp file and
rename), so a reader never sees half a document.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["LocalStore", "STORE_FILE", "DEFAULT_STATE_DIR"]

STORE_FILE = "state.json"
DEFAULT_STATE_DIR = Path(".supervisor-local")


class LocalStore:
    """Invocations and Batch jobs of one local session, by id.

    ``invocations[request_id]`` and ``jobs[job_id]`` are plain JSON objects;
    the executors own their fields. Every change is written through.
    """

    def __init__(self, state_dir: Path, *, endpoint: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STORE_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._doc: dict[str, Any] = {"endpoint": endpoint, "started": clock(),
                                     "invocations": {}, "jobs": {}}
        state_dir.mkdir(parents=True, exist_ok=True)
        self._write()

    @staticmethod
    def read(state_dir: Path) -> dict[str, Any]:
        """The last state written under ``state_dir`` (for ``status`` and ``logs``)."""
        path = state_dir / STORE_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"endpoint": "", "invocations": {}, "jobs": {}}
        if not isinstance(doc, dict):
            raise ValueError(f"{path} is not a local-mode state file")
        return doc

    def now(self) -> float:
        """The store's clock (seconds since the epoch)."""
        return self._clock()

    def put(self, kind: str, ident: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` into ``kind[ident]`` ("invocations" or "jobs"); returns a copy."""
        with self._lock:
            entry = self._doc[kind].setdefault(ident, {})
            entry.update(fields)
            self._write()
            return _copy(entry)

    def transition(self, ident: str, state: str, **fields: Any) -> dict[str, Any]:
        """Move job ``ident`` to ``state``, appending to its history."""
        with self._lock:
            job = self._doc["jobs"].setdefault(ident, {})
            job["status"] = state
            job.setdefault("history", []).append({"status": state, "at": self._clock()})
            job.update(fields)
            self._write()
            return _copy(job)

    def get(self, kind: str, ident: str) -> Optional[dict[str, Any]]:
        """A copy of one entry, or None."""
        with self._lock:
            entry = self._doc[kind].get(ident)
            return None if entry is None else _copy(entry)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the whole document."""
        with self._lock:
            return _copy(self._doc)

    def _write(self) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._doc, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _copy(entry: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(entry))
    return copied
