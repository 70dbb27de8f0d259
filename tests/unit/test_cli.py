"""The ``supervisor`` command offline: parsing, help, rendering, errors, local-state views.

Nothing here reaches AWS: commands that would are either stopped by an
error before their first call, or make none (``deploy --dry-run``); the
``local`` command runs with a fake session runner passed in.
"""
from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytest

from supervisor.cli import build_parser, main
from supervisor.cli.cloudwatch import LogEvent, invocations, parse_report, request_block
from supervisor.cli.context import Context
from supervisor.cli.errors import CliError, reason
from supervisor.cli.files import Location, plan_uploads
from supervisor.cli.invoke import answer_text, build_event, records_of
from supervisor.cli.local import run_local_command
from supervisor.cli.logs_aws import job_streams
from supervisor.cli.output import cell, seconds, size, table, to_json, when
from supervisor.cli.progress import ProgressBar
from supervisor.local.store import LocalStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COMMANDS = ("init", "deploy", "rm", "put", "ls", "get", "invoke", "status", "logs", "local")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no endpoint: any AWS call would fail, none should happen."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


class Calls:
    """A session factory counting every AWS operation its clients would call."""

    def __init__(self) -> None:
        self.sessions = 0
        self.operations: list[str] = []

    def __call__(self, profile: Optional[str], region: Optional[str]) -> Any:
        import boto3.session

        self.sessions += 1
        session = boto3.session.Session(profile_name=profile, region_name=region)
        session.events.register("before-call.*.*",
                                lambda event_name, **_: self.operations.append(event_name))
        return session


def run(capsys: pytest.CaptureFixture[str], *argv: str,
        calls: Optional[Calls] = None) -> tuple[int, str, str]:
    code = main(list(argv), session_factory=calls or Calls())
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def context(*, json_output: bool = False) -> tuple[Context, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Context(stdout=out, stderr=err, json=json_output), out, err


# --- parsing and help ---------------------------------------------------------------------


def test_global_options_are_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--region", "eu-west-1", "ls", "-b", "b"])
    after = parser.parse_args(["ls", "-b", "b", "--json", "--endpoint-url", "http://x:1"])
    assert (before.json, before.region, before.endpoint_url) == (True, "eu-west-1", None)
    assert (after.json, after.region, after.endpoint_url) == (True, None, "http://x:1")
    assert parser.parse_args(["ls", "-b", "b"]).json is False


def test_local_state_dir_is_optional_after_local() -> None:
    parser = build_parser()
    assert parser.parse_args(["status", "-n", "f"]).local is None
    assert parser.parse_args(["status", "-n", "f", "--local"]).local == Path(".supervisor-local")
    assert parser.parse_args(["status", "--local", "/tmp/s", "-n", "f"]).local == Path("/tmp/s")
    args = parser.parse_args(["local", "-f", "x.yaml", "--put", "a", "--put", "b"])
    assert (args.put, args.timeout, args.state_dir) == (
        [Path("a"), Path("b")], None, Path(".supervisor-local"))


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "logs", "-n", "f", "--request-id", "r", "--job-id", "j")
    assert (code, out) == (2, "") and "not allowed with argument" in err
    assert run(capsys, "deploy")[0] == 2  # -f is required
    assert run(capsys, "fly")[0] == 2
    code, _, err = run(capsys)
    assert code == 2 and "typical flow" in err


def test_the_first_help_page_lists_every_command_and_the_typical_flow(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert f"\n    {command} " in out
    assert "typical flow:\n  supervisor deploy -f scar-plants.yaml" in out
    assert "supervisor rm -f scar-plants.yaml" in out and "supervisor local -f" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_ends_with_examples(command: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    examples = out.split("\nexamples:\n", 1)[1]
    assert f"  supervisor {command} " in examples
    assert "--json" in out  # the global options are listed on every command


# --- errors: one line, exit 1 ---------------------------------------------------------


def test_a_missing_fdl_file_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    calls = Calls()
    code, out, err = run(capsys, "deploy", "-f", str(tmp_path / "nope.yaml"), calls=calls)
    assert (code, out) == (1, "")
    assert err == f"supervisor: {tmp_path / 'nope.yaml'}: cannot read " \
                  f"'{tmp_path / 'nope.yaml'}': No such file or directory\n"
    assert calls.operations == []


def test_a_bad_configuration_is_one_line_naming_every_problem(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fdl = tmp_path / "bad.yaml"
    fdl.write_text("functions:\n  aws:\n  - lambda:\n      name: f\n"
                   "      execution_mode: fast\n      memory: lots\n")
    code, out, err = run(capsys, "deploy", "-f", str(fdl))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("supervisor: ")
    assert "execution_mode: 'fast'" in err and "memory" in err


def test_deploy_refuses_a_workflow_loop(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("echo hi\n")

    def entry(name: str, source: str, target: str) -> str:
        return (f"  - lambda:\n      name: {name}\n      init_script: s.sh\n"
                f"      container: {{image: busybox}}\n"
                f"      input: [{{storage_provider: s3, path: bkt/{source}}}]\n"
                f"      output: [{{storage_provider: s3, path: bkt/{target}}}]\n")

    fdl = tmp_path / "loop.yaml"
    fdl.write_text("functions:\n  aws:\n" + entry("one", "a", "b") + entry("two", "b", "a"))
    calls = Calls()
    code, out, err = run(capsys, "deploy", "-f", str(fdl), "-n", "one", "--dry-run",
                         calls=calls)
    assert (code, out) == (1, "")
    assert err.startswith("supervisor: workflow: one -> two -> one") and err.count("\n") == 1
    assert calls.sessions == 0


def test_an_unknown_function_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "deploy", "-f", str(EXAMPLES / "plants" / "function.yaml"),
                       "-n", "nope", "--dry-run")
    assert code == 1
    assert err == "supervisor: functions: no function named 'nope'; defined: scar-plants\n"


def test_put_of_a_missing_path_fails_before_any_call(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    calls = Calls()
    code, _, err = run(capsys, "put", "-b", "bkt/in", str(tmp_path / "gone.jpg"), calls=calls)
    assert code == 1 and err == f"supervisor: no such file or folder: {tmp_path / 'gone.jpg'}\n"
    assert calls.sessions == 0


def test_reasons_are_one_line_and_say_what_to_do() -> None:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    assert reason(NoRegionError()).startswith("no AWS region configured: pass --region, set "
                                              "AWS_REGION")
    assert reason(NoCredentialsError()).startswith("no AWS credentials found")
    assert reason(PermissionError(13, "Permission denied", "/x")) == "/x: Permission denied"
    assert reason(CliError("two\nlines")) == "two lines"


# --- deploy --dry-run makes no call ---------------------------------------------------


def test_deploy_dry_run_prints_the_plan_and_calls_nothing(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    layer, pyz = tmp_path / "layer.zip", tmp_path / "batch.pyz"
    layer.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    pyz.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    calls = Calls()
    argv = ["deploy", "-f", str(EXAMPLES / "plants" / "function.yaml"), "--dry-run",
            "--config", str(EXAMPLES / "scar.cfg"),
            "--layer-zip", str(layer), "--pyz", str(pyz), "--region", "eu-west-1"]
    code, out, err = run(capsys, *argv, calls=calls)
    assert code == 0, err
    assert calls.operations == []
    lines = out.splitlines()
    assert lines[0] == ("scar-plants: dry run in eu-west-1, nothing was called "
                        "(--json shows every setting)")
    assert lines[1].split() == ["RESOURCE", "NAME", "SETTINGS"]
    assert [line.split()[0] for line in lines[2:]] == [
        "s3-bucket", "lambda-layer", "lambda-function", "lambda-permission", "s3-notification",
        "s3-artifact", "launch-template", "batch-compute-environment", "batch-job-queue",
        "batch-job-definition"]
    assert all(len(line) < 220 for line in lines)

    code, out, _ = run(capsys, *argv, "--json", calls=calls)
    [plan] = json.loads(out)
    assert plan["dry_run"] is True and plan["account_id"] == "<account-id>"
    assert calls.operations == []


# --- rendering --------------------------------------------------------------------------


def test_table_aligns_columns_and_shows_missing_values_as_dashes() -> None:
    rows: list[dict[str, Any]] = [{"a": "x", "b": None, "c": ["s3://b/1", "s3://b/2"]},
                                  {"a": "longer", "b": 1.5, "c": []}]
    assert table(rows, [("a", "name"), ("b", "value"), ("c", "outputs")]).splitlines() == [
        "NAME    VALUE  OUTPUTS",
        "x       -      s3://b/1, s3://b/2",
        "longer  1.5    -"]


def test_cells_are_one_line() -> None:
    assert cell("two\nlines\there") == "two lines here"
    assert (cell(True), cell(0), cell(2.0), cell(0.125)) == ("yes", "0", "2", "0.12")
    assert cell({"k": 1}) == '{"k":1}'


def test_json_output_handles_times_and_paths() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 3, tzinfo=timezone.utc)
    assert json.loads(to_json({"t": moment, "p": Path("/x")})) == {
        "t": "2024-05-01T12:00:03+00:00", "p": "/x"}


def test_times_sizes_and_durations_for_people() -> None:
    assert when(1714564803) == when(1714564803000, millis=True) == "2024-05-01 12:00:03"
    assert when("2024-05-01T12:00:03.123+0000") == "2024-05-01 12:00:03"
    assert when(None) == "-"
    assert (size(512), size(2048), size(3 * 1024 * 1024)) == ("512 B", "2.0 KB", "3.0 MB")
    assert (seconds(0.4213), seconds(12.34), seconds(245), seconds(None)) == (
        "0.42 s", "12.3 s", "4 min 05 s", "-")


def test_json_flag_prints_json_and_text_otherwise() -> None:
    ctx, out, _ = context(json_output=True)
    ctx.emit({"a": 1}, lambda: "text")
    assert json.loads(out.getvalue()) == {"a": 1}
    ctx, out, _ = context()
    ctx.emit({"a": 1}, lambda: "text")
    assert out.getvalue() == "text\n"
    assert ctx.interactive is False  # a StringIO is no terminal


# --- put / ls / invoke helpers ------------------------------------------------------------


def test_locations_are_folders() -> None:
    assert Location.parse("s3://bkt/in/2024/") == Location("bkt", "in/2024")
    assert Location.parse("bkt").key("a.jpg") == "a.jpg"
    assert Location.parse("bkt/in").key("a/b.jpg") == "in/a/b.jpg"
    assert (Location.parse("bkt/in").folder, Location.parse("bkt").folder) == ("in/", "")
    with pytest.raises(CliError, match="names no bucket"):
        Location.parse("s3:///in")


def test_a_folder_uploads_every_file_keyed_by_its_relative_path(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "z" / "deep").mkdir(parents=True)
    (photos / "b.jpg").write_bytes(b"bb")
    (photos / "z" / "deep" / "c.jpg").write_bytes(b"c")
    (tmp_path / "a.jpg").write_bytes(b"a")
    uploads = plan_uploads([photos, tmp_path / "a.jpg"], Location("bkt", "in"))
    assert [(u.key, u.size) for u in uploads] == [
        ("in/b.jpg", 2), ("in/z/deep/c.jpg", 1), ("in/a.jpg", 1)]


def test_two_files_for_one_key_are_refused_before_uploading(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.jpg").write_bytes(b"1")
    (tmp_path / "a.jpg").write_bytes(b"2")
    with pytest.raises(CliError, match="would both be uploaded to s3://bkt/a.jpg"):
        plan_uploads([tmp_path / "x", tmp_path / "a.jpg"], Location("bkt"))


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, "in/daisy.jpg", 2048)
    bar(1024)
    bar(1)  # same percentage: not redrawn
    assert stream.getvalue().count("\r") == 1
    assert "in/daisy.jpg  [############------------]   50%     1.0 KB /    2.0 KB" in \
        stream.getvalue()
    bar.done()
    assert stream.getvalue().endswith("100%     2.0 KB /    2.0 KB\n")
    quiet = io.StringIO()
    silent = ProgressBar(quiet, "x", 10, enabled=False)
    silent(10)
    silent.done()
    assert quiet.getvalue() == "" and silent.sent == 10


def test_the_invoke_event_is_the_one_s3_sends() -> None:
    event = build_event("bkt", "in/my photo.jpg",
                        {"ContentLength": 5, "ETag": '"abc"', "VersionId": "v1"}, "eu-west-1")
    [record] = event["Records"]
    assert (record["eventSource"], record["eventName"], record["awsRegion"]) == (
        "aws:s3", "ObjectCreated:Put", "eu-west-1")
    assert record["s3"]["object"]["key"] == "in/my+photo.jpg"
    assert (record["s3"]["object"]["size"], record["s3"]["object"]["eTag"],
            record["s3"]["object"]["versionId"]) == (5, "abc", "v1")


def test_a_supervisor_answer_is_shown_as_its_records() -> None:
    body: dict[str, Any] = {"records": [{"bucket": "b", "key": "in/a.jpg", "status": "delegated",
                         "exit_code": None, "duration": 0.5, "job_id": "job-1",
                         "uploaded": []}]}
    answer = {"statusCode": 200, "body": json.dumps(body)}
    assert records_of(answer) == body["records"]
    lines = answer_text(answer).splitlines()
    assert lines[0] == "statusCode 200"
    assert lines[2].split() == ["s3://b/in/a.jpg", "delegated", "-", "0.50", "s", "job-1", "-"]
    assert records_of("an error text") is None and answer_text("an error text") == "an error text"


# --- CloudWatch lines -----------------------------------------------------------------


def test_report_lines_are_read_field_by_field() -> None:
    line = ("REPORT RequestId: 8f1c-aa\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
            "Memory Size: 1024 MB\tMax Memory Used: 88 MB\tInit Duration: 301.2 ms\t"
            "Status: timeout")
    assert parse_report(line) == {
        "request_id": "8f1c-aa", "duration_ms": 1234.56, "billed_ms": 1235.0,
        "memory_mb": 1024.0, "max_memory_mb": 88.0, "init_ms": 301.2, "status": "timeout"}
    assert parse_report("START RequestId: x") is None


def _events(stream: str, *messages: str, start: int = 0) -> list[LogEvent]:
    return [LogEvent(start + i, stream, m) for i, m in enumerate(messages)]


def test_invocations_are_read_from_start_and_report_lines_newest_first() -> None:
    events = (_events("s1", "START RequestId: r1 Version: $LATEST", "hello",
                      "REPORT RequestId: r1\tDuration: 5.0 ms")
              + _events("s2", "START RequestId: r2 Version: $LATEST", start=10))
    rows = invocations(events)
    assert [(r["request_id"], r["status"], r.get("duration_ms")) for r in rows] == [
        ("r2", "running", None), ("r1", "done", 5.0)]


def test_one_request_is_its_lines_from_start_to_report() -> None:
    events = _events("s1", "START RequestId: r1 Version: $LATEST", "one",
                     "REPORT RequestId: r1\tDuration: 1 ms",
                     "START RequestId: r2 Version: $LATEST", "two",
                     "REPORT RequestId: r2\tDuration: 1 ms", "later")
    assert [e.message for e in request_block(events, "r2")] == [
        "START RequestId: r2 Version: $LATEST", "two", "REPORT RequestId: r2\tDuration: 1 ms"]
    assert request_block(_events("s", "r9 Task timed out"), "r9")[0].message == "r9 Task timed out"


def test_a_job_has_one_stream_per_attempt_in_its_log_group() -> None:
    job = {"status": "RUNNING",
           "container": {"logStreamName": "def/default/3",
                         "logConfiguration": {"logDriver": "awslogs",
                                              "options": {"awslogs-group": "/custom"}}},
           "attempts": [{"container": {"logStreamName": "def/default/1", "exitCode": 137},
                         "statusReason": "Host EC2 terminated"}]}
    group, streams = job_streams(job)
    assert group == "/custom"
    assert streams == [("def/default/1", "attempt 1: exit 137, Host EC2 terminated"),
                       ("def/default/3", "attempt 2: RUNNING")]
    assert job_streams({"status": "RUNNABLE", "container": {}}) == ("/aws/batch/job", [])


# --- status and logs of a local session ---------------------------------------------------


@pytest.fixture
def session(tmp_path: Path) -> Path:
    """A local session's state: two invocations of plants (one delegated), one of another."""
    state = tmp_path / "state"
    clock = iter(float(t) for t in range(1714564800, 1714564900))
    store = LocalStore(state, endpoint="http://127.0.0.1:5123", clock=lambda: next(clock))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "req-1.log").write_text("START req-1\nprediction: daisy\n")
    (logs / "job-1-1.log").write_text("attempt one output\n")
    (logs / "job-1-2.log").write_text("attempt two output\n")
    store.put("invocations", "req-1", {
        "function": "plants", "status": "completed", "started": 1714564801.0,
        "ended": 1714564803.5, "duration": 2.5, "object": "s3://plants/input/daisy.jpg",
        "records": [{"status": "completed", "job_id": None}], "log": str(logs / "req-1.log")})
    store.put("invocations", "req-2", {
        "function": "plants", "status": "delegated", "started": 1714564805.0,
        "ended": 1714564806.0, "duration": 1.0, "object": "s3://plants/input/rose.jpg",
        "records": [{"status": "delegated", "job_id": "job-1"}], "log": None})
    store.put("invocations", "req-3", {"function": "other", "status": "failed",
                                       "started": 1714564807.0, "object": "s3://o/in/x"})
    for state_name in ("SUBMITTED", "RUNNABLE", "RUNNING", "FAILED"):
        store.transition("job-1", state_name, name="plants-rose", queue="plants",
                         definition="plants")
    store.put("jobs", "job-1", {"exit_code": 1, "reason": "script exited 1", "attempts": [
        {"attempt": 1, "exit_code": 137, "reason": "killed", "log": str(logs / "job-1-1.log")},
        {"attempt": 2, "exit_code": 1, "reason": "script exited 1",
         "log": str(logs / "job-1-2.log")}]})
    store.transition("job-2", "SUCCEEDED", name="other-x", queue="other", definition="other")
    return state


def test_status_local_shows_the_function_invocations_and_jobs(
        capsys: pytest.CaptureFixture[str], session: Path) -> None:
    calls = Calls()
    code, out, err = run(capsys, "status", "-n", "plants", "--local", str(session),
                         calls=calls)
    assert code == 0, err
    assert calls.sessions == 0
    blocks = out.split("\n\n")
    assert blocks[0] == f"local session in {session} (endpoint http://127.0.0.1:5123)"
    invocation_lines = blocks[1].splitlines()
    assert invocation_lines[0] == "invocations of plants:"
    assert invocation_lines[2].split() == ["req-1", "completed", "2024-05-01", "12:00:01",
                                           "2.50", "s", "s3://plants/input/daisy.jpg", "-",
                                           "-"]
    assert invocation_lines[3].split()[:2] == ["req-2", "delegated"]
    assert invocation_lines[3].split()[-2:] == ["job-1", "-"]
    counts = blocks[2].splitlines()
    assert counts[0] == "Batch jobs on queue plants:"
    assert counts[2].split() == ["0", "0", "0", "0", "0", "0", "1"]
    [job] = blocks[3].splitlines()[1:]
    assert job.split("  ")[0] == "job-1" and "script exited 1" in job and job.endswith("2")

    code, out, _ = run(capsys, "status", "-n", "plants", "--local", str(session), "--json")
    view = json.loads(out)
    assert [i["request_id"] for i in view["invocations"]] == ["req-1", "req-2"]
    assert view["jobs"]["counts"]["FAILED"] == 1
    assert [j["job_id"] for j in view["jobs"]["latest"]] == ["job-1"]
    assert [h["status"] for h in view["jobs"]["latest"][0]["history"]] == [
        "SUBMITTED", "RUNNABLE", "RUNNING", "FAILED"]


def test_status_local_of_a_function_without_invocations_names_the_others(
        capsys: pytest.CaptureFixture[str], session: Path) -> None:
    code, out, _ = run(capsys, "status", "-n", "nothing", "--local", str(session))
    assert code == 0
    assert "no invocations of nothing (functions in this session: other, plants)" in out


def test_status_local_without_a_session_is_one_line(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    code, out, err = run(capsys, "status", "-n", "plants", "--local", str(tmp_path))
    assert (code, out) == (1, "")
    assert err.startswith(f"supervisor: no local session state in {tmp_path}")
    (tmp_path / "state.json").write_text("[1, 2]")
    code, _, err = run(capsys, "status", "-n", "plants", "--local", str(tmp_path))
    assert code == 1 and "not a local session state file" in err


def _messages(out: str) -> list[str]:
    """Titles as they are, log lines without their time."""
    return [line if line.startswith("==") else line[21:] for line in out.splitlines()]


def test_logs_local_prints_the_invocation_and_attempt_logs(
        capsys: pytest.CaptureFixture[str], session: Path) -> None:
    code, out, _ = run(capsys, "logs", "-n", "plants", "--local", str(session),
                       "--request-id", "req-1")
    assert code == 0
    assert out.splitlines() == [
        "== lambda plants request req-1: completed, s3://plants/input/daisy.jpg ==",
        "2024-05-01 12:00:01  START req-1", "2024-05-01 12:00:01  prediction: daisy"]
    code, out, _ = run(capsys, "logs", "-n", "plants", "--local", str(session),
                       "--job-id", "job-1")
    assert _messages(out) == ["== batch job plants-rose job-1, attempt 1: exit 137, killed ==",
                              "attempt one output",
                              "== batch job plants-rose job-1, attempt 2: exit 1, "
                              "script exited 1 ==", "attempt two output"]
    code, out, _ = run(capsys, "logs", "-n", "plants", "--local", str(session), "--json")
    assert [(x["side"], x["id"], x["message"]) for x in json.loads(out)] == [
        ("lambda", "req-1", "START req-1"), ("lambda", "req-1", "prediction: daisy"),
        ("batch", "job-1", "attempt one output"), ("batch", "job-1", "attempt two output")]
    code, _, err = run(capsys, "logs", "-n", "plants", "--local", str(session),
                       "--job-id", "job-9")
    assert (code, err) == (1, "supervisor: no Batch job job-9 in this local session\n")
    code, _, err = run(capsys, "logs", "-n", "plants", "--local", str(session),
                       "--request-id", "req-2")
    assert (code, err) == (1, "supervisor: invocation req-2 has no log yet\n")


def test_logs_local_of_a_retried_invocation_shows_every_attempt(
        capsys: pytest.CaptureFixture[str], session: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "r.1.log", tmp_path / "r.2.log"
    first.write_text("crashed\n")
    second.write_text("worked\n")
    LocalStore(tmp_path / "retry").put("invocations", "req-9", {
        "function": "plants", "status": "succeeded", "log": str(second), "attempts": [
            {"attempt": 1, "status": "failed", "log": str(first)},
            {"attempt": 2, "status": "succeeded", "log": str(second)}]})
    code, out, _ = run(capsys, "logs", "-n", "plants", "--local", str(tmp_path / "retry"),
                       "--request-id", "req-9")
    assert code == 0
    assert _messages(out) == ["== lambda plants request req-9, attempt 1: failed, - ==",
                              "crashed",
                              "== lambda plants request req-9, attempt 2: succeeded, - ==",
                              "worked"]


# --- supervisor local, with a fake session runner --------------------------------------


@dataclass
class FakeReport:
    rows: list[dict[str, Any]]
    ok: bool
    endpoint: str = "http://127.0.0.1:5555"
    session: str = "20261201-120000-abcd"


@dataclass
class FakeRunner:
    report: FakeReport
    calls: list[dict[str, Any]] = field(default_factory=list)
    bars: Optional[Callable[[str, int], Any]] = None

    def __call__(self, fdl: Path, puts: Sequence[Path], *, timeout: Optional[float],
                 state_dir: Path, progress: Callable[[str], None],
                 max_wait: float, requests: Sequence[Path] = (),
                 stream: Optional[Callable[[str], None]] = None,
                 bars: Optional[Callable[[str, int], Any]] = None) -> FakeReport:
        self.calls.append({"fdl": fdl, "puts": list(puts), "timeout": timeout,
                           "state_dir": state_dir, "max_wait": max_wait,
                           "requests": list(requests)})
        self.bars = bars
        if stream is not None:
            stream("  plants input/daisy.jpg | predicting")
        progress("embedded AWS endpoint: http://127.0.0.1:5555")
        progress("uploaded daisy.jpg")
        return self.report


ROWS = [{"object": "s3://plants/input/daisy.jpg", "function": "plants", "mode": "lambda-batch",
         "ran_on": "batch", "status": "completed", "duration": 12.5, "job_id": "job-1",
         "job_state": "SUCCEEDED", "outputs": ["s3://plants/output/daisy.json"]}]


def _local_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    (tmp_path / "daisy.jpg").write_bytes(b"x")
    (tmp_path / "rose.jpg").write_bytes(b"y")
    return build_parser().parse_args(
        ["local", "-f", "function.yaml", "--put", str(tmp_path / "daisy.jpg"),
         "--put", str(tmp_path / "rose.jpg"), *extra])


def test_local_quiet_shows_no_script_output_and_takes_folders_and_globs(
        tmp_path: Path) -> None:
    runner = FakeRunner(FakeReport(rows=ROWS, ok=True))
    (tmp_path / "dir").mkdir()
    args = build_parser().parse_args(["local", "-f", "f.yaml", "--quiet", "--put",
                                      str(tmp_path / "dir"), str(tmp_path / "daisy.jpg"),
                                      "--put", str(tmp_path / "rose.jpg")])
    for name in ("daisy.jpg", "rose.jpg"):
        (tmp_path / name).write_bytes(b"x")
    ctx, out, err = context()
    assert run_local_command(args, ctx, runner=runner) == 0
    assert runner.calls[0]["puts"] == [tmp_path / "dir", tmp_path / "daisy.jpg",
                                       tmp_path / "rose.jpg"]
    assert "predicting" not in err.getvalue()


def test_local_draws_a_bar_for_a_big_upload_on_a_terminal(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    runner = FakeRunner(FakeReport(rows=ROWS, ok=True))
    err = Terminal()
    ctx = Context(stdout=io.StringIO(), stderr=err)
    assert run_local_command(_local_args(tmp_path), ctx, runner=runner) == 0
    assert runner.bars is not None
    small = runner.bars("input/small.txt", 1024)
    small(1024)
    small.done()
    assert "small.txt" not in err.getvalue()
    big = runner.bars("input/big.bin", 8 * 1024 * 1024)
    big(4 * 1024 * 1024)
    big.done()
    assert "input/big.bin" in err.getvalue() and "100%" in err.getvalue()


def test_local_needs_something_to_run() -> None:
    args = build_parser().parse_args(["local", "-f", "function.yaml"])
    with pytest.raises(CliError, match="nothing to run: give files with --put"):
        run_local_command(args, context()[0], runner=FakeRunner(FakeReport(rows=[], ok=True)))


def test_local_runs_the_session_and_prints_progress_then_the_table(tmp_path: Path) -> None:
    runner = FakeRunner(FakeReport(rows=ROWS, ok=True))
    ctx, out, err = context()
    (tmp_path / "body.bin").write_bytes(b"z")
    code = run_local_command(_local_args(tmp_path, "--timeout", "5", "--state-dir", "st",
                                         "--max-wait", "90", "--request",
                                         str(tmp_path / "body.bin")), ctx, runner=runner)
    assert code == 0
    assert runner.calls == [{"fdl": Path("function.yaml"),
                             "puts": [tmp_path / "daisy.jpg", tmp_path / "rose.jpg"],
                             "timeout": 5.0, "state_dir": Path("st"), "max_wait": 90.0,
                             "requests": [tmp_path / "body.bin"]}]
    assert err.getvalue() == (
        "  plants input/daisy.jpg | predicting\n"
        "embedded AWS endpoint: http://127.0.0.1:5555\nuploaded daisy.jpg\n"
        "session 20261201-120000-abcd: supervisor status/logs -n NAME --local read it "
        "(--session 20261201-120000-abcd once there are newer ones)\n")
    header, row = out.getvalue().splitlines()
    assert header.split("  ")[0] == "OBJECT" and "RAN ON" in header and "BATCH JOB" in header
    assert row.split() == ["s3://plants/input/daisy.jpg", "plants", "batch",
                           "completed", "12.5", "s", "job-1", "s3://plants/output/daisy.json"]


def test_local_exits_1_when_an_object_failed_and_prints_json(tmp_path: Path) -> None:
    failed = [dict(ROWS[0], status="failed", outputs=[])]
    ctx, out, _ = context(json_output=True)
    with pytest.raises(CliError, match="not every object was processed successfully"):
        run_local_command(_local_args(tmp_path), ctx,
                          runner=FakeRunner(FakeReport(rows=failed, ok=False)))
    assert json.loads(out.getvalue()) == {"endpoint": "http://127.0.0.1:5555", "ok": False,
                                          "session": "20261201-120000-abcd", "rows": failed}


def test_local_shows_why_an_object_failed_under_the_table(tmp_path: Path) -> None:
    failed = [dict(ROWS[0], status="failed", outputs=[], job_state="FAILED",
                   error="script exited 1\n(see the log)",
                   output_tail=["wc: /nowhere: No such file or directory"])]
    ctx, out, _ = context()
    with pytest.raises(CliError):
        run_local_command(_local_args(tmp_path), ctx,
                          runner=FakeRunner(FakeReport(rows=failed, ok=False)))
    assert out.getvalue().splitlines()[-2:] == [
        "s3://plants/input/daisy.jpg: script exited 1 (see the log)",
        "  | wc: /nowhere: No such file or directory"]
    ctx, out, _ = context()
    with pytest.raises(CliError):
        run_local_command(_local_args(tmp_path), ctx,
                          runner=FakeRunner(FakeReport(rows=[], ok=False)))
    assert out.getvalue() == "no object was processed\n"


def test_local_refuses_a_missing_file_before_starting(tmp_path: Path) -> None:
    runner = FakeRunner(FakeReport(rows=[], ok=True))
    args = build_parser().parse_args(["local", "-f", "f.yaml", "--put",
                                      str(tmp_path / "gone.jpg")])
    with pytest.raises(CliError, match="no such file or folder: .*gone.jpg"):
        run_local_command(args, context()[0], runner=runner)
    assert runner.calls == []


@pytest.mark.parametrize("argv, message", [
    (["invoke", "-n", "f"], "invoke needs -b BUCKET and -k KEY"),
    (["invoke", "-n", "f", "-b", "b", "-k", "k", "--data", "x"], "--data and --data-file go "
                                                                 "with --api"),
    (["invoke", "-n", "f", "--api", "-b", "b"], "--api sends a request body"),
])
def test_invoke_refuses_mixed_or_missing_targets_before_any_call(
        capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    calls = Calls()
    code, out, err = run(capsys, *argv, calls=calls)
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert (calls.sessions, calls.operations) == (0, [])


def test_an_api_request_event_is_what_api_gateway_sends_and_the_handler_reads() -> None:
    from supervisor.direct import direct_invocation
    from supervisor.gateway import Route, proxy_event

    route = Route(api_id="abc123", stage="scar", region="eu-west-1",
                  url="https://abc123.execute-api.eu-west-1.amazonaws.com/scar/launch",
                  function_arn="arn:aws:lambda:eu-west-1:1:function:f")
    binary = bytes(range(256))
    event = proxy_event(route, binary, headers={
        "Content-Disposition": 'attachment; filename="photo.jpg"'})
    assert event["isBase64Encoded"] is True
    assert event["headers"]["Host"] == "abc123.execute-api.eu-west-1.amazonaws.com"
    assert event["requestContext"]["path"] == "/scar/launch"
    direct = direct_invocation(json.loads(json.dumps(event)))
    assert direct is not None
    assert (direct.kind, direct.body, direct.body_name) == ("api-gateway", binary, "photo.jpg")
    assert proxy_event(route, b"text")["body"] == "text"
