"""``supervisor logs``: readable lines, one object's invocation and job together, short ids,
``--follow`` and ``--json``, over a local session's state and log files."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from supervisor.cli import build_parser, main
from supervisor.cli.context import Context
from supervisor.cli.logs import run_logs
from supervisor.cli.logs_local import log_path
from supervisor.cli.logtext import readable, record_time
from supervisor.local.store import LocalStore

RID = "8ee570a7-c445-44b7-aab4-b2bd691c572a"
JOB = "3a149fb3-79e5-48a2-8211-39c092040ca7"
OTHER_JOB = "3a1f0000-0000-4000-8000-000000000000"

LAMBDA_LINES = [
    f"START RequestId: {RID} Version: $LATEST",
    json.dumps({"level": "INFO", "location": "run_job:102", "message": "stage-in done",
                "timestamp": "2024-05-01 12:00:03,693+0000", "service": "supervisor",
                "request_id": RID, "bucket": "demo", "key": "prepared/sample.txt",
                "phase": "stage-in", "seconds": 0.025, "bytes": 99}),
    json.dumps({"level": "INFO", "location": "_log_script_line:205",
                "message": "counting the words of sample.txt on lambda",
                "timestamp": "2024-05-01 12:00:03,714+0000", "service": "supervisor",
                "request_id": RID, "bucket": "demo", "key": "prepared/sample.txt"}),
    json.dumps({"level": "INFO", "location": "_submit:87", "message": "handed off to AWS Batch",
                "timestamp": "2024-05-01 12:00:06,527+0000", "service": "supervisor",
                "request_id": RID, "bucket": "demo", "key": "prepared/sample.txt",
                "job_id": JOB, "job_queue": "demo-count",
                "reason": "script exceeded the time budget after 2.7 s"}),
    json.dumps({"_aws": {"Timestamp": 1714564806528, "CloudWatchMetrics": []},
                "service": "supervisor", "Invocations": [1.0]}),
    f"END RequestId: {RID}",
    f"REPORT RequestId: {RID}\tDuration: 3346.91 ms\tBilled Duration: 3347 ms",
]
BATCH_LINES = [
    json.dumps({"time": "2024-05-01T12:00:08.273Z", "level": "INFO", "logger": "supervisor.batch",
                "message": "job start", "request_id": RID, "function": "demo-count",
                "job_id": JOB, "attempt": 1, "records": 1}),
    json.dumps({"time": "2024-05-01T12:00:08.317Z", "level": "INFO",
                "logger": "supervisor.script", "message": "counting the words of sample.txt "
                "on batch", "request_id": RID, "function": "demo-count", "job_id": JOB,
                "bucket": "demo", "key": "prepared/sample.txt"}),
    json.dumps({"records": [{"bucket": "demo", "key": "prepared/sample.txt",
                             "status": "completed", "exit_code": 0,
                             "uploaded": ["s3://demo/counted/sample.words"]}],
                "exit_code": 0, "request_id": RID}),
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A local session in which one object went from its Lambda invocation to a Batch job."""
    state = tmp_path / ".supervisor-local"
    store = LocalStore(state, endpoint="http://127.0.0.1:5123", clock=lambda: 1714564800.0)
    lambda_log = _write(state / "lambda" / "logs" / "demo-count" / f"{RID}.1.log", LAMBDA_LINES)
    batch_log = _write(state / "batch" / JOB / "attempt-1.log", BATCH_LINES)
    store.put("invocations", RID, {
        "function": "demo-count", "status": "succeeded", "started": 1714564803.0,
        "object": "s3://demo/prepared/sample.txt",
        "objects": [{"bucket": "demo", "key": "prepared/sample.txt"}],
        "records": [{"bucket": "demo", "key": "prepared/sample.txt", "status": "delegated",
                     "job_id": JOB}],
        "log": str(lambda_log),
        "attempts": [{"attempt": 1, "status": "succeeded", "log": str(lambda_log)}]})
    store.put("invocations", "0c0c0c0c-0000-4000-8000-000000000000", {
        "function": "demo-count", "status": "succeeded", "started": 1714564900.0,
        "object": "s3://demo/prepared/other.txt",
        "objects": [{"bucket": "demo", "key": "prepared/other.txt"}], "records": []})
    store.transition(JOB, "SUCCEEDED", name="demo-count-sample_txt", queue="demo-count",
                     exit_code=0, attempts=[{"attempt": 1, "exit_code": 0,
                                             "reason": "Essential container in task exited",
                                             "log": str(batch_log), "started": 1714564808.0,
                                             "stopped": 1714564809.0}])
    store.transition(OTHER_JOB, "RUNNABLE", name="demo-count-other", queue="demo-count")
    return state


def _text(out: str) -> list[str]:
    """The lines without their times (titles as they are)."""
    return [line if line.startswith("==") else line[21:] for line in out.splitlines()]


# --- readable lines ---------------------------------------------------------------------


def test_records_read_as_one_line_each_without_what_every_line_repeats() -> None:
    context = {"request_id": RID, "function": "demo-count", "bucket": "demo",
               "key": "prepared/sample.txt"}
    assert readable(LAMBDA_LINES[0], context) == LAMBDA_LINES[0]
    assert readable(LAMBDA_LINES[1], context) == \
        "INFO    stage-in done  phase=stage-in  seconds=0.025  bytes=99"
    assert readable(LAMBDA_LINES[2], context) == \
        "script  counting the words of sample.txt on lambda"
    assert readable(LAMBDA_LINES[3], context) == (
        f"INFO    handed off to AWS Batch  job_id={JOB}  job_queue=demo-count  "
        'reason="script exceeded the time budget after 2.7 s"')
    assert readable(LAMBDA_LINES[4], context) is None  # metrics
    assert readable(BATCH_LINES[1], {"job_id": JOB, "request_id": None}) == \
        "script  counting the words of sample.txt on batch"
    assert readable(BATCH_LINES[2]) == "result  exit 0; prepared/sample.txt: completed, 1 uploaded"


def test_a_record_with_a_traceback_shows_it_indented_under_its_line() -> None:
    line = json.dumps({"level": "ERROR", "message": "record failed", "error": "boom",
                       "exception": "Traceback (most recent call last):\n  x\nValueError: boom"})
    assert readable(line) == ("ERROR   record failed  error=boom\n"
                              "        Traceback (most recent call last):\n"
                              "          x\n        ValueError: boom")


def test_both_sides_times_are_read() -> None:
    assert record_time({"timestamp": "2024-05-01 12:00:03,693+0000"}) == 1714564803693
    assert record_time({"time": "2024-05-01T12:00:03.693Z"}) == 1714564803693
    assert record_time({"time": "yesterday"}) is None and record_time({}) is None


# --- one object, short ids, the whole function --------------------------------------------


def test_key_shows_the_lambda_invocation_then_the_batch_job_of_the_object(
        capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    code, out, err = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                         "--key", "prepared/sample.txt")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("== lambda demo-count request 8ee570a7: succeeded, "
                        "s3://demo/prepared/sample.txt ==")
    assert lines[1] == f"2024-05-01 12:00:03  START RequestId: {RID} Version: $LATEST"
    assert lines[2] == "2024-05-01 12:00:03  INFO    stage-in done  phase=stage-in  " \
                       "seconds=0.025  bytes=99"
    assert "2024-05-01 12:00:03  script  counting the words of sample.txt on lambda" in lines
    title = lines.index("== batch job demo-count-sample_txt 3a149fb3, attempt 1: exit 0, "
                        "Essential container in task exited ==")
    assert title > lines.index(f"2024-05-01 12:00:06  END RequestId: {RID}")
    assert _text("\n".join(lines[title + 1:])) == [
        "INFO    job start  attempt=1  records=1",
        "script  counting the words of sample.txt on batch",
        "result  exit 0; prepared/sample.txt: completed, 1 uploaded"]
    assert not any('"level"' in line for line in lines)  # no raw JSON

    code, again, _ = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                         "--key", "s3://demo/prepared/sample.txt")
    assert (code, again) == (0, out)
    code, _, err = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                       "--key", "prepared/nothing.txt")
    assert (code, err) == (1, "supervisor: no invocation of demo-count for prepared/nothing.txt"
                              " in this local session\n")


def test_the_short_ids_progress_lines_print_are_accepted(
        capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    code, out, err = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                         "--job-id", JOB[:8])
    assert code == 0, err
    assert out.splitlines()[0].startswith("== batch job demo-count-sample_txt 3a149fb3,")
    code, out, err = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                         "--request-id", RID[:8])
    assert code == 0, err
    assert out.splitlines()[0].startswith("== lambda demo-count request 8ee570a7")
    code, _, err = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                       "--job-id", "3a1")
    assert code == 1
    assert err == (f"supervisor: job id 3a1 is ambiguous: {JOB}, {OTHER_JOB}; "
                   "give more of it\n")


def test_the_whole_function_shows_each_invocation_with_its_jobs(
        capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    code, out, _ = run(capsys, "logs", "-n", "demo-count", "--local", str(demo))
    assert code == 0
    titles = [line for line in out.splitlines() if line.startswith("==")]
    assert titles == [
        "== lambda demo-count request 8ee570a7: succeeded, s3://demo/prepared/sample.txt ==",
        "== batch job demo-count-sample_txt 3a149fb3, attempt 1: exit 0, Essential container "
        "in task exited ==",
        "== lambda demo-count request 0c0c0c0c: succeeded, s3://demo/prepared/other.txt =="]
    assert out.splitlines()[-1] == "  (no log yet)"


def test_json_prints_the_records_as_written(capsys: pytest.CaptureFixture[str],
                                            demo: Path) -> None:
    code, out, _ = run(capsys, "logs", "-n", "demo-count", "--local", str(demo),
                       "--key", "prepared/sample.txt", "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["message"] for r in records] == LAMBDA_LINES + BATCH_LINES
    assert [r["side"] for r in records] == ["lambda"] * 7 + ["batch"] * 3
    assert records[1]["record"]["phase"] == "stage-in" and records[0]["record"] is None
    assert {r["id"] for r in records[7:]} == {JOB}


def test_log_files_named_relative_to_the_session_are_found_from_elsewhere(
        tmp_path: Path) -> None:
    state = tmp_path / "copied-state"
    log = _write(state / "batch" / JOB / "attempt-1.log", ["x"])
    assert log_path(state, f".supervisor-local/batch/{JOB}/attempt-1.log") == log
    assert log_path(state, str(log)) == log and log_path(state, None) is None


# --- --follow -------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["logs", *argv])


def test_follow_prints_lines_as_they_come_and_ends_with_the_job(demo: Path) -> None:
    lines = [line.replace(JOB, OTHER_JOB) for line in BATCH_LINES]
    store_doc = json.loads((demo / "state.json").read_text())
    job_log = demo / "batch" / OTHER_JOB / "attempt-1.log"
    job_log.parent.mkdir(parents=True)
    job_log.write_text(lines[0] + "\n" + lines[1][:20])  # a line half written

    def set_job(**fields: Any) -> None:
        store_doc["jobs"][OTHER_JOB].update(fields)
        (demo / "state.json").write_text(json.dumps(store_doc))

    set_job(status="RUNNING", attempts=[{"attempt": 1, "log": str(job_log),
                                         "started": 1714564808.0}])
    steps: list[Callable[[], object]] = [
        lambda: job_log.write_text(lines[0] + "\n" + lines[1] + "\n"),
        lambda: set_job(status="SUCCEEDED", attempts=[{
            "attempt": 1, "log": str(job_log), "exit_code": 0, "started": 1714564808.0,
            "stopped": 1714564809.0}]),
        lambda: job_log.write_text(job_log.read_text() + lines[2] + "\n")]
    seen: list[str] = []
    out = io.StringIO()

    def sleep(seconds: float) -> None:
        seen.append(out.getvalue())
        if not steps:
            raise AssertionError("follow did not end with the job")
        steps.pop(0)()

    ctx = Context(stdout=out, stderr=io.StringIO())
    assert run_logs(_args("-n", "demo-count", "--local", str(demo), "--job-id", OTHER_JOB[:8],
                          "--follow"), ctx, sleep=sleep) == 0
    assert steps == []
    assert _text(seen[0]) == ["== batch job demo-count-other 3a1f0000, attempt 1: RUNNING ==",
                              "INFO    job start  attempt=1  records=1"]
    assert _text(out.getvalue()) == [
        "== batch job demo-count-other 3a1f0000, attempt 1: RUNNING ==",
        "INFO    job start  attempt=1  records=1",
        "script  counting the words of sample.txt on batch",
        "result  exit 0; prepared/sample.txt: completed, 1 uploaded"]


def test_follow_of_the_whole_function_runs_until_interrupted(demo: Path) -> None:
    out = io.StringIO()

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    ctx = Context(stdout=out, stderr=io.StringIO(), json=True)
    assert run_logs(_args("-n", "demo-count", "--local", str(demo), "--follow"), ctx,
                    sleep=sleep) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len(LAMBDA_LINES) + len(BATCH_LINES)  # JSON lines, one per record
    assert json.loads(lines[0])["message"] == LAMBDA_LINES[0]
