"""supervisor-batch offline: exit codes, argument and environment errors, JSON logging."""
from __future__ import annotations

import base64
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping

import pytest

from supervisor.aws import ClientFactory
from supervisor.batch_entry import (
    EX_CANNOT_RUN,
    EX_CONFIG,
    EX_IOERR,
    EX_NOINPUT,
    EX_OK,
    EX_SOFTWARE,
    EX_TIMEOUT,
    Settings,
    Terminated,
    exit_code_for,
    main,
    read_settings,
    script_exit_code,
)
from supervisor.config import S3Provider
from supervisor.errors import (
    ConfigError,
    DelegationError,
    EventError,
    ScriptError,
    ScriptTimeout,
    StageInError,
    StageOutError,
    SupervisorError,
)
from supervisor.jsonlog import JsonFormatter, install
from supervisor.result import RecordResult
from supervisor.s3event import event_of, object_created_record

CONFIG_YAML = """\
name: fn
container:
  image: busybox
input:
- storage_provider: s3
  path: bucket/input
output:
- storage_provider: s3
  path: bucket/output
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def result(status: Any, exit_code: Any = None) -> RecordResult:
    return RecordResult(bucket="b", key="k", status=status, exit_code=exit_code)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_main(capsys: pytest.CaptureFixture[str], environ: Mapping[str, str],
             argv: tuple[str, ...] = (), stdin: Any = None,
             clients: Any = None) -> tuple[int, list[str], str]:
    code = main(list(argv), environ=environ,
                stdin=io.StringIO("") if stdin is None else stdin, clients=clients)
    out, err = capsys.readouterr()
    return code, err.splitlines(), out


# --------------------------------------------------------------------------- exit codes

@pytest.mark.parametrize("outcome, code", [
    (result("completed", 0), EX_OK),
    (result("skipped"), EX_OK),
    (result("failed", 3), 3),
    (result("failed", 255), 255),
    (result("failed", -9), 137),
    (result("failed", -15), 143),
    (result("failed", None), EX_SOFTWARE),
    (result("delegated"), EX_SOFTWARE),
    (ScriptTimeout("late"), EX_TIMEOUT),
    (ConfigError(["x: bad"]), EX_CONFIG),
    (EventError("not S3"), EX_CONFIG),
    (StageInError("no object"), EX_NOINPUT),
    (DelegationError("no hand-off"), EX_NOINPUT),
    (StageOutError("denied"), EX_IOERR),
    (ScriptError("cannot start"), EX_CANNOT_RUN),
    (SupervisorError("other"), EX_SOFTWARE),
    (RuntimeError("bug"), EX_SOFTWARE),
    (Terminated(15), 143),
    (KeyboardInterrupt(), 130),
])
def test_exit_code_for_maps_results_and_errors(outcome: Any, code: int) -> None:
    assert exit_code_for(outcome) == code


@pytest.mark.parametrize("returncode, code", [(0, 0), (1, 1), (42, 42), (-2, 130), (-9, 137)])
def test_script_exit_code_is_the_shell_convention(returncode: int, code: int) -> None:
    assert script_exit_code(returncode) == code


# --------------------------------------------------------------------------- arguments

def test_help_describes_inputs_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, out = run_main(capsys, {}, ("--help",))
    assert code == 0
    for text in ("SUPERVISOR_HANDOFF", "EVENT", "FUNCTION_CONFIG", "SCRIPT", "124", "78"):
        assert text in out


def test_unknown_argument_is_a_config_error_on_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = run_main(capsys, {}, ("--bogus",))
    assert code == EX_CONFIG
    assert len(err) == 1 and err[0].startswith("supervisor-batch: ")
    assert "--bogus" in err[0]


# --------------------------------------------------------------------------- environment

def test_no_input_and_empty_stdin_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = run_main(capsys, {}, stdin=io.StringIO(""))
    assert code == EX_CONFIG
    assert len(err) == 1
    assert err[0].startswith("supervisor-batch: no input")
    assert "SUPERVISOR_HANDOFF" in err[0] and "EVENT" in err[0] and "empty" in err[0]
    summary = json.loads(out)
    assert summary["exit_code"] == EX_CONFIG and summary["records"] == []


def test_no_input_and_terminal_stdin_is_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_main(capsys, {}, stdin=Tty('{"Records": []}'))
    assert code == EX_CONFIG
    assert len(err) == 1 and "terminal" in err[0]


def test_empty_event_variable_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_main(capsys, {"EVENT": "  "})
    assert code == EX_CONFIG
    assert len(err) == 1 and "EVENT is empty" in err[0]


def test_event_that_is_not_json_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_main(capsys, {"EVENT": "{not json"})
    assert code == EX_CONFIG
    assert len(err) == 1 and "not valid JSON" in err[0]


def test_event_without_a_configuration_is_a_config_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    event = json.dumps(event_of(object_created_record("bucket", "input/a.txt", size=1)))
    code, err, _ = run_main(capsys, {"EVENT": event,
                                     "FUNCTION_CONFIG_PATH": str(tmp_path / "missing.yaml")})
    assert code == EX_CONFIG
    assert len(err) == 1 and "FUNCTION_CONFIG_PATH" in err[0]


def test_event_without_a_script_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    event = json.dumps(event_of(object_created_record("bucket", "input/a.txt", size=1)))
    code, err, _ = run_main(capsys, {"EVENT": event, "FUNCTION_CONFIG": b64(CONFIG_YAML)})
    assert code == EX_CONFIG
    assert len(err) == 1 and "no script to run" in err[0]


def test_script_that_is_not_base64_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    event = json.dumps(event_of(object_created_record("bucket", "input/a.txt", size=1)))
    code, err, _ = run_main(capsys, {"EVENT": event, "FUNCTION_CONFIG": b64(CONFIG_YAML),
                                     "SCRIPT": "echo hi!"})
    assert code == EX_CONFIG
    assert len(err) == 1 and err[0].startswith("supervisor-batch: SCRIPT: not base64")


def test_malformed_handoff_uri_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_main(capsys, {"SUPERVISOR_HANDOFF": "bucket/key"})
    assert code == EX_CONFIG
    assert len(err) == 1 and "SUPERVISOR_HANDOFF" in err[0]


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_invalid_script_timeout_is_a_config_error(capsys: pytest.CaptureFixture[str],
                                                  value: str) -> None:
    code, err, _ = run_main(capsys, {"SUPERVISOR_SCRIPT_TIMEOUT": value,
                                     "SUPERVISOR_HANDOFF": "s3://bucket/key"})
    assert code == EX_CONFIG
    assert len(err) == 1
    assert err[0].startswith("supervisor-batch: SUPERVISOR_SCRIPT_TIMEOUT=")
    assert "positive number of seconds" in err[0]


def test_every_settings_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings({"SUPERVISOR_SCRIPT_TIMEOUT": "x",
                       "SUPERVISOR_WORK_DIR": str(tmp_path / "nope"),
                       "AWS_BATCH_JOB_NODE_INDEX": "one", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"})
    assert len(caught.value.problems) == 3


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = read_settings({"SUPERVISOR_SCRIPT_TIMEOUT": "2.5",
                              "SUPERVISOR_WORK_DIR": str(tmp_path)})
    assert settings.timeout == 2.5 and settings.work_base == tmp_path and settings.upload
    assert settings.deadline(clock=lambda: 100.0).at == 102.5
    assert read_settings({}).deadline().at is None


@pytest.mark.parametrize("node, main_node, upload", [
    ("1", "0", False), ("0", "0", True), ("3", "3", True), ("2", None, True), (None, None, True),
])
def test_only_the_main_node_uploads(node: Any, main_node: Any, upload: bool) -> None:
    environ = {}
    if node is not None:
        environ["AWS_BATCH_JOB_NODE_INDEX"] = node
    if main_node is not None:
        environ["AWS_BATCH_JOB_MAIN_NODE_INDEX"] = main_node
    assert read_settings(environ).upload is upload


def test_settings_default_has_no_deadline() -> None:
    assert Settings().deadline().at is None


# --------------------------------------------------------------------------- whole runs

def test_event_on_stdin_without_object_creations_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    record = object_created_record("bucket", "input/a.txt", size=1,
                                   event_name="ObjectRemoved:Delete")
    code, err, out = run_main(
        capsys, {"FUNCTION_CONFIG": b64(CONFIG_YAML), "SCRIPT": b64("exit 0\n"),
                 "AWS_BATCH_JOB_ID": "job-1"},
        stdin=io.StringIO(json.dumps(event_of(record))), clients=ClientFactory())
    assert code == EX_OK, err
    summary = json.loads(out)
    assert summary["request_id"] == "job-1"
    assert [r["status"] for r in summary["records"]] == ["skipped"]
    lines = [json.loads(line) for line in err]
    done = lines[-1]
    assert done["message"] == "job done" and done["exit_code"] == 0
    assert done["status"] == "completed" and done["uploaded"] == []
    assert done["request_id"] == "job-1" and isinstance(done["duration"], float)


class BrokenClients(ClientFactory):
    def with_providers(self, providers: Mapping[str, S3Provider]) -> ClientFactory:
        raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_is_70_with_one_line_and_traceback_only_in_debug(
        capsys: pytest.CaptureFixture[str], debug: bool) -> None:
    record = object_created_record("bucket", "input/a.txt", size=1)
    environ = {"EVENT": json.dumps(event_of(record)), "FUNCTION_CONFIG": b64(CONFIG_YAML),
               "SCRIPT": b64("exit 0\n")}
    if debug:
        environ["SUPERVISOR_DEBUG"] = "1"
    code, err, out = run_main(capsys, environ, clients=BrokenClients())
    assert code == EX_SOFTWARE
    assert err[-1] == "supervisor-batch: internal error: RuntimeError: boom second line"
    assert any("Traceback" in line for line in err) is debug
    assert json.loads(out)["error"].startswith("internal error")


def test_secrets_of_the_configuration_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    config = CONFIG_YAML + ("storage_providers:\n  s3:\n    other:\n"
                            "      access_key: AKIDSECRETVALUE\n      secret_key: SeCrEtKeY\n")
    record = object_created_record("bucket", "input/a.txt", size=1,
                                   event_name="ObjectRemoved:Delete")
    code, err, out = run_main(capsys, {"EVENT": json.dumps(event_of(record)),
                                       "FUNCTION_CONFIG": b64(config),
                                       "SCRIPT": b64("exit 0\n")}, clients=ClientFactory())
    assert code == EX_OK, err
    text = "\n".join(err) + out
    assert "SeCrEtKeY" not in text and "AKIDSECRETVALUE" not in text


# --------------------------------------------------------------------------- jsonlog

def test_json_lines_hold_core_bound_and_extra_fields() -> None:
    stream = io.StringIO()
    with install("supervisor.test-jsonlog", stream=stream, fields={"job": "j1"}) as setup:
        logger = logging.getLogger("supervisor.test-jsonlog.child")
        logger.info("two\nlines", extra={"phase": "run", "seconds": 1.5, "path": Path("/x")})
        setup.bind(key="k", job=None)
        logger.debug("hidden")
        assert setup.set_level("debug") and not setup.set_level("loud")
        logger.debug("shown", extra={"level": "not the level"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines" and first["level"] == "INFO"
    assert first["logger"] == "supervisor.test-jsonlog.child"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert (first["job"], first["phase"], first["seconds"], first["path"]) == \
        ("j1", "run", 1.5, "/x")
    assert second["key"] == "k" and "job" not in second and second["level"] == "DEBUG"
    logger = logging.getLogger("supervisor.test-jsonlog")
    assert logger.handlers == [] and logger.propagate


def test_json_formatter_includes_the_exception() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed",
                                                   (), sys.exc_info())
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "failed" and "ValueError: bad" in doc["exception"]
