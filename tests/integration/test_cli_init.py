"""``supervisor init NAME`` writes a function that a real local session runs as is, and that
``deploy --dry-run`` plans."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Built

from supervisor.cli import main
from supervisor.local.session import run_local

pytestmark = pytest.mark.integration


def test_an_init_function_runs_locally_as_written_and_its_log_shows_the_script(
        tmp_path: Path, built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    assert main(["init", "hello", "-d", str(work)]) == 0
    data = tmp_path / "notes.txt"
    data.write_text("one two three\nfour\n")
    state = tmp_path / "state"
    progress: list[str] = []
    report = run_local(work / "hello.yaml", [data], timeout=None, state_dir=state,
                       progress=progress.append, layer_zip=built.layer, batch_pyz=built.pyz,
                       max_wait=120)
    assert report.ok, (report.rows, progress)
    [row] = report.rows
    assert (row["function"], row["status"], row["outputs"]) == (
        "hello", "completed", ["s3://hello/output/notes.txt.count"])
    assert report.session_dir is not None
    count = report.session_dir / "outputs" / "hello" / "output" / "notes.txt.count"
    assert count.read_text().split() == ["2", "4", "19"]

    capsys.readouterr()
    assert main(["logs", "-n", "hello", "--local", str(state), "--key", "input/notes.txt"]) == 0
    out = capsys.readouterr().out
    assert "script  counting notes.txt on lambda" in out and "script  wrote notes.txt.count" in out

    assert main(["deploy", "-f", str(work / "hello.yaml"), "--dry-run", "--region", "eu-west-1",
                 "--layer-zip", str(built.layer), "--pyz", str(built.pyz)]) == 0
    plan = capsys.readouterr().out
    assert plan.startswith("hello: dry run in eu-west-1, nothing was called")
    assert "lambda-function" in plan and "s3-notification" in plan
