"""Terminal manners: tables fit the width, one line per error, progress bars that redraw cleanly."""
from __future__ import annotations

import io
from typing import Any

import pytest

from supervisor.cli import main
from supervisor.cli.local import report_text
from supervisor.cli.output import table
from supervisor.cli.progress import ProgressBar
from supervisor.cli.status import status_text
from supervisor.cli.terminal import terminal_width

JOB_A = "3a149fb3-79e5-48a2-8211-39c092040ca7"
JOB_B = "b1a84966-b2a5-4d2c-ae01-a02d3b005108"
DEMO_ROWS: list[dict[str, Any]] = [
    {"object": "s3://demo/upload/sample.txt", "function": "demo-prepare", "mode": "lambda",
     "ran_on": "lambda", "status": "completed", "duration": 0.68, "job_id": None,
     "job_state": None, "outputs": ["s3://demo/prepared/sample.txt"]},
    {"object": "s3://demo/prepared/sample.txt", "function": "demo-count",
     "mode": "lambda-batch", "ran_on": "batch", "status": "completed", "duration": 10.6,
     "job_id": JOB_A, "job_state": "SUCCEEDED", "outputs": ["s3://demo/counted/sample.words"]},
    {"object": "s3://demo/counted/sample.words", "function": "demo-report", "mode": "batch",
     "ran_on": "batch", "status": "completed", "duration": 1.54, "job_id": JOB_B,
     "job_state": "SUCCEEDED", "outputs": ["s3://demo/reports/sample.report.txt",
                                           "s3://demo/reports/sample.summary.txt"]}]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- tables fit the terminal ------------------------------------------------------------


def test_the_local_result_table_fits_100_columns_with_short_job_ids(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    lines = report_text(DEMO_ROWS).splitlines()
    assert all(len(line) <= 100 for line in lines), "\n".join(lines)
    assert lines[0].split()[:2] == ["OBJECT", "FUNCTION"]
    assert JOB_A[:8] in lines[2] and JOB_A not in lines[2]
    assert "demo-count" in lines[2] and "completed" in lines[2]


def test_at_80_columns_the_local_result_is_still_a_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = report_text(DEMO_ROWS).splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert lines[0].split()[:3] == ["OBJECT", "FUNCTION", "RAN"] and len(lines) == 4
    assert JOB_A[:8] in lines[2] and "demo-count" in lines[2]


def test_rows_too_wide_for_any_table_become_blocks_that_fit() -> None:
    rows = [dict(row, outputs=[f"s3://demo/{'x' * 60}/{i}.txt" for i in range(3)])
            for row in DEMO_ROWS]
    columns = [("object", "object"), ("function", "function"), ("mode", "mode"),
               ("ran_on", "ran on"), ("status", "status"), ("job_id", "batch job"),
               ("job_state", "job state"), ("outputs", "outputs")]
    text = table(rows, columns, width=40)
    assert all(len(line) <= 40 for line in text.splitlines()), text
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    assert blocks[1].splitlines()[:2] == ["OBJECT     s3://demo/prepared/sample.txt",
                                          "FUNCTION   demo-count"]


def test_a_wide_terminal_shows_the_whole_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    text = report_text(DEMO_ROWS)
    assert JOB_A in text and "s3://demo/reports/sample.summary.txt" in text


def test_a_narrow_table_cuts_the_widest_cells_and_keeps_the_ends_of_paths() -> None:
    rows = [{"key": "output/2024/05/01/a-very-long-file-name.txt", "size": "12 B",
             "reason": "the script exited with code 3 after writing half its outputs"}]
    lines = table(rows, [("key", "key"), ("size", "size"), ("reason", "reason")],
                  width=50).splitlines()
    assert all(len(line) <= 50 for line in lines), lines
    assert lines[1].startswith("…") and "file-name.txt" in lines[1]  # a path keeps its end
    assert lines[1].rstrip().endswith("…") and "the script" in lines[1]  # text keeps its start
    assert "12 B" in lines[1]


def test_width_none_means_no_limit_when_nothing_says_otherwise() -> None:
    rows = [{"a": "x" * 300}]
    assert table(rows, [("a", "a")], width=0).splitlines()[1] == "x" * 300


def test_the_terminal_width_comes_from_columns_else_the_terminal_else_no_limit() -> None:
    assert terminal_width({"COLUMNS": "72"}, io.StringIO()) == 72
    assert terminal_width({"COLUMNS": "wide"}, io.StringIO()) is None
    assert terminal_width({}, io.StringIO()) is None  # not a terminal: no limit


def test_status_tables_of_a_local_session_fit_80_columns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    counts = {s: 0 for s in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING",
                             "SUCCEEDED", "FAILED")}
    view: dict[str, Any] = {"state_dir": ".supervisor-local", "endpoint": "http://127.0.0.1:5", "name": "f",
            "queue": "f", "functions": ["f"],
            "invocations": [{"request_id": "8ee570a7-c445-44b7-aab4-b2bd691c572a",
                             "status": "delegated", "started": 1714564800.0, "duration": 3.3,
                             "object": "s3://demo/prepared/a-rather-long-input-name.txt",
                             "records": [{"job_id": JOB_A}],
                             "error": "script exceeded the time budget after 2.7 s"}],
            "jobs": {"queue": "f", "counts": counts, "capped": [],
                     "latest": [{"job_id": JOB_A, "name": "demo-count-sample_txt",
                                 "status": "SUCCEEDED", "exit_code": 0,
                                 "reason": "Essential container in task exited",
                                 "attempts": [{}]}]}}
    lines = status_text(view).splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert "REQUEST ID     8ee570a7-c445-44b7-aab4-b2bd691c572a" in lines  # a block per row
    assert any(line.startswith(JOB_A[:8] + "  demo-count") for line in lines)


# --- one line for every error ---------------------------------------------------------------


@pytest.mark.parametrize("argv, says", [
    (["deploy"], "the following arguments are required: -f/--file"),
    (["fly"], "invalid choice: 'fly'"),
    (["logs", "-n", "f", "--request-id", "r", "--job-id", "j"], "not allowed with argument"),
    (["status", "-n", "f", "--limit", "many"], "invalid int value: 'many'"),
    (["ls", "-b", "b", "--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_argument_errors_are_one_line_and_exit_2(argv: list[str], says: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("supervisor: ") and says in err, err
    assert "--help" in err  # says where the options are


# --- progress bars --------------------------------------------------------------------------


class Terminal(io.StringIO):
    """What a terminal shows of what was written: ``\\r`` returns to the line's start."""

    def screen(self) -> list[str]:
        lines: list[str] = []
        for raw in self.getvalue().split("\n"):
            shown = ""
            for part in raw.split("\r"):
                shown = part + shown[len(part):]
            lines.append(shown)
        return lines


def test_a_shorter_redraw_leaves_nothing_of_the_longer_line_behind() -> None:
    screen = Terminal()
    total = 60 * 1024 * 1024
    bar = ProgressBar(screen, "in/big.bin", total, width=100)
    bar(1023 * 1024 + 512)  # 1023.5 KB: a longer number than what follows
    bar(total - bar.sent)
    bar.done()
    [line, _] = screen.screen()
    assert line.split()[-6:] == ["100%", "60.0", "MB", "/", "60.0", "MB"], line


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_progress_bar_fits_the_terminal(width: int) -> None:
    screen = Terminal()
    bar = ProgressBar(screen, "input/a/rather/long/key/of/an/upload/file.bin", 5 * 1024 * 1024,
                      width=width)
    bar(1024 * 1024)
    bar.done()
    assert all(len(line) < width for line in screen.screen()), screen.screen()
