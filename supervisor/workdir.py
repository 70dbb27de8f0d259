"""A fresh per-record working directory: ``input/``, ``output/``, the script, the log."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["WorkDirs"]


@dataclass(frozen=True)
class WorkDirs:
    """The directories one record is processed in.

    ``root`` is the script's cwd and the parent of ``output_dir``; the script
    file and the captured output live in ``root``, never in ``input_dir``.
    """

    root: Path
    input_dir: Path
    output_dir: Path

    @property
    def script_path(self) -> Path:
        """Where the user's script is written before it runs."""
        return self.root / "script.sh"

    @property
    def log_path(self) -> Path:
        """Where the script's combined stdout/stderr is captured."""
        return self.root / "script.log"

    @classmethod
    def create(cls, base: Optional[Path] = None, label: str = "job") -> "WorkDirs":
        """Make a new, empty work dir under ``base`` (default: the system temp dir)."""
        # Resolved now, so that a symlink the script puts in its place later shows.
        root = Path(os.path.realpath(tempfile.mkdtemp(prefix=f"supervisor-{label}-", dir=base)))
        dirs = cls(root=root, input_dir=root / "input", output_dir=root / "output")
        dirs.input_dir.mkdir()
        dirs.output_dir.mkdir()
        return dirs

    def clear_outputs(self) -> None:
        """Throw away everything the script wrote (a timed-out run uploads nothing)."""
        shutil.rmtree(self.output_dir, ignore_errors=True)
        self.output_dir.mkdir(exist_ok=True)

    def remove(self) -> None:
        """Delete the whole work dir; nothing carries over to the next record."""
        shutil.rmtree(self.root, ignore_errors=True)
