"""Local sessions: one folder each, the latest named, any found by its id or its start."""
from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.errors import CliError
from supervisor.local.sessions import new_session, session_dir, session_ids
from supervisor.local.store import STORE_FILE


def _made(root: Path) -> tuple[str, Path]:
    ident, folder = new_session(root)
    (folder / STORE_FILE).write_text("{}")
    return ident, folder


def test_each_session_has_its_own_folder_and_the_latest_is_the_default(tmp_path: Path) -> None:
    first, first_dir = _made(tmp_path)
    second, second_dir = _made(tmp_path)
    assert first != second and first_dir != second_dir
    assert session_ids(tmp_path) == sorted([first, second])
    assert session_dir(tmp_path) == second_dir
    assert session_dir(tmp_path, first) == first_dir
    assert session_dir(second_dir) == second_dir  # a session's own folder reads as itself


def test_an_unknown_or_ambiguous_session_is_one_line(tmp_path: Path) -> None:
    first, _ = _made(tmp_path)
    second, _ = _made(tmp_path)
    with pytest.raises(CliError, match=r"^no local session 'nope' in .*\(latest: "):
        session_dir(tmp_path, "nope")
    common = first[:8]  # the same day
    with pytest.raises(CliError, match="is ambiguous"):
        session_dir(tmp_path, common)
    with pytest.raises(CliError, match="none yet"):
        session_dir(tmp_path / "empty", "x")
