"""Which files an upload of some paths sends, and under which names (pure but for the walk).

``supervisor put`` and ``supervisor local --put`` read paths the same way: a file is
sent under its own name; a folder sends every file under it, named by its path
relative to the folder (symlinked folders are not entered, as ``os.walk`` does).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

__all__ = ["files_under", "named_files"]


def files_under(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, in sorted walk order."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # symlinked folders are not entered
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files)
                     if (Path(root) / name).is_file())
    return found


def named_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """``(file, name)`` for every file ``paths`` give: a folder's relative to it, with ``/``."""
    named: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            named.extend((f, f.relative_to(path).as_posix()) for f in files_under(path))
        else:
            named.append((path, path.name))
    return named
