"""supervisor-batch as a real process against the moto server: hand-off and SCAR's form."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import pytest
import yaml

from supervisor.handoff import Handoff, now_iso, write_handoff
from supervisor.process import group_alive
from supervisor.s3event import event_of, object_created_record

pytestmark = pytest.mark.integration

KEY = "input/sub dir/data file.txt"
REQUEST_ID = "0f1e2d3c-req-from-lambda"

REPORT_SCRIPT = """\
set -eu
mkdir -p "$TMP_OUTPUT_DIR/out"
{
  echo "EXECUTION_SERVICE=$EXECUTION_SERVICE"
  echo "REQUEST_ID=$REQUEST_ID"
  echo "AWS_LAMBDA_REQUEST_ID=$AWS_LAMBDA_REQUEST_ID"
  echo "INPUT=$(basename "$INPUT_FILE_PATH")"
  echo "CONTENT=$(cat "$INPUT_FILE_PATH")"
  echo "KEY=$STORAGE_OBJECT_KEY"
  echo "SECRET=${AWS_SECRET_ACCESS_KEY:-none}"
  echo "HANDOFF=${SUPERVISOR_HANDOFF:-none}"
  echo "JOB_ID=${AWS_BATCH_JOB_ID:-unset}"
  echo "NODE=${AWS_BATCH_JOB_NODE_INDEX:-unset}"
} > "$TMP_OUTPUT_DIR/out/result.txt"
echo "processed $(basename "$INPUT_FILE_PATH")"
"""

FAILING_SCRIPT = """\
mkdir -p "$TMP_OUTPUT_DIR/out"
echo partial > "$TMP_OUTPUT_DIR/out/result.txt"
echo "about to fail"
exit 3
"""


def function_config(bucket: str) -> dict[str, Any]:
    return {"name": "fn", "execution_mode": "batch", "container": {"image": "busybox"},
            "input": [{"storage_provider": "s3", "path": f"{bucket}/input"}],
            "output": [{"storage_provider": "s3", "path": f"{bucket}/output"}],
            "batch": {"compute_resources": {"subnets": ["subnet-1"],
                                            "security_group_ids": ["sg-1"]}}}


def upload_input(s3: Any, bucket: str) -> dict[str, Any]:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"hello batch")
    head = s3.head_object(Bucket=bucket, Key=KEY)
    return object_created_record(bucket, KEY, size=head["ContentLength"], etag=head["ETag"])


def stage_handoff(s3: Any, bucket: str, script: str = REPORT_SCRIPT) -> str:
    record = upload_input(s3, bucket)
    handoff = Handoff(record=record, function_config=function_config(bucket), script=script,
                      request_id=REQUEST_ID, function_name="fn", created_at=now_iso(),
                      reason="execution_mode is batch")
    return write_handoff(s3, handoff, bucket, f"supervisor-handoff/fn/{REQUEST_ID}/doc.json")


class Run:
    """A finished supervisor-batch process."""

    def __init__(self, proc: "subprocess.CompletedProcess[str]") -> None:
        self.code = proc.returncode
        self.stderr_lines = proc.stderr.splitlines()
        self.stdout = proc.stdout
        self.logs = [json.loads(line) for line in self.stderr_lines if line.startswith("{")]

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def phase(self, name: str) -> dict[str, Any]:
        found = [line for line in self.logs if line.get("phase") == name]
        assert len(found) == 1, (name, self.stderr_lines)
        return dict(found[0])


def batch_env(aws_env: Mapping[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return dict(aws_env, PATH=os.environ.get("PATH", "/usr/bin:/bin"),
                SUPERVISOR_WORK_DIR=str(work), AWS_BATCH_JOB_ID="batch-job-1", **extra)


def run_batch(env: Mapping[str, str], cwd: Path, stdin: Optional[str] = None) -> Run:
    proc = subprocess.run([sys.executable, "-m", "supervisor.batch_entry"], env=dict(env),
                          cwd=cwd, input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=60)
    return Run(proc)


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def report(s3: Any, bucket: str) -> dict[str, str]:
    body = s3.get_object(Bucket=bucket, Key="output/out/result.txt")["Body"].read().decode()
    return dict(line.split("=", 1) for line in body.splitlines())


# --------------------------------------------------------------------------- hand-off form

def test_handoff_job_runs_the_script_and_uploads_its_outputs(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    uri = stage_handoff(s3, bucket)
    run = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri,
                              AWS_LAMBDA_REQUEST_ID="ignored-the-document-wins"), tmp_path)

    assert run.code == 0, run.stderr_lines
    assert keys(s3, bucket, "output/") == ["output/out/result.txt"]
    values = report(s3, bucket)
    assert values["EXECUTION_SERVICE"] == "batch"
    assert values["REQUEST_ID"] == values["AWS_LAMBDA_REQUEST_ID"] == REQUEST_ID
    assert values["INPUT"] == "data file.txt" and values["CONTENT"] == "hello batch"
    assert values["KEY"] == KEY
    assert values["SECRET"] == "none" and values["HANDOFF"] == "none"
    assert values["JOB_ID"] == "batch-job-1"

    for phase in ("stage-in", "run", "stage-out"):
        line = run.phase(phase)
        assert isinstance(line["seconds"], (int, float)) and line["seconds"] >= 0
        assert line["request_id"] == REQUEST_ID and line["key"] == KEY
    assert run.phase("run")["exit_code"] == 0
    assert any(line["logger"] == "supervisor.script"
               and line["message"] == "processed data file.txt" for line in run.logs)
    done = run.logs[-1]
    assert done["message"] == "job done" and done["status"] == "completed"
    assert done["exit_code"] == 0 and done["uploaded"] == [f"s3://{bucket}/output/out/result.txt"]
    assert all(line.startswith("{") for line in run.stderr_lines)

    record = run.summary["records"][0]
    assert record["status"] == "completed" and record["exit_code"] == 0
    assert record["uploaded"] == [f"s3://{bucket}/output/out/result.txt"]
    assert list(tmp_path.joinpath("work").iterdir()) == []


def test_script_exit_code_is_the_job_exit_code_and_nothing_is_uploaded(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    uri = stage_handoff(s3, bucket, script=FAILING_SCRIPT)
    run = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri), tmp_path)

    assert run.code == 3, run.stderr_lines
    assert keys(s3, bucket, "output/") == []
    assert run.stderr_lines[-1] == (f"supervisor-batch: s3://{bucket}/{KEY}: "
                                    "script exited with code 3")
    assert run.logs[-1]["status"] == "failed" and run.logs[-1]["exit_code"] == 3
    assert run.summary["records"][0]["output_tail"].strip() == "about to fail"


def test_missing_handoff_document_exits_66_with_one_line(
        bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    uri = f"s3://{bucket}/supervisor-handoff/fn/gone.json"
    run = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri), tmp_path)

    assert run.code == 66
    assert len(run.stderr_lines) == 1
    assert run.stderr_lines[0].startswith(f"supervisor-batch: cannot read the hand-off {uri}")


def test_script_past_the_timeout_exits_124_and_uploads_nothing(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    script = 'mkdir -p "$TMP_OUTPUT_DIR/out"; echo x > "$TMP_OUTPUT_DIR/out/a.txt"; sleep 30\n'
    uri = stage_handoff(s3, bucket, script=script)
    started = time.monotonic()
    run = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri,
                              SUPERVISOR_SCRIPT_TIMEOUT="1"), tmp_path)

    assert run.code == 124, run.stderr_lines
    assert time.monotonic() - started < 20
    assert keys(s3, bucket, "output/") == []
    assert "time budget" in run.stderr_lines[-1]


def test_sigterm_stops_the_script_group_and_exits_143(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "script.pid"
    script = f'echo $$ > "{marker}"; sleep 30; echo late > "$TMP_OUTPUT_DIR/late.txt"\n'
    uri = stage_handoff(s3, bucket, script=script)
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.batch_entry"],
                            env=batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri),
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (marker.exists() and marker.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "supervisor-batch: stopped by SIGTERM"
    assert not group_alive(int(marker.read_text()))
    assert keys(s3, bucket, "output/") == []


# --------------------------------------------------------------------------- SCAR's form

@pytest.mark.parametrize("via", ["EVENT", "stdin"])
def test_scar_form_event_config_and_script_from_the_environment(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path, via: str) -> None:
    record = upload_input(s3, bucket)
    delete = dict(record, eventName="ObjectRemoved:Delete")
    event = json.dumps(event_of(delete, record))
    env = batch_env(aws_env, tmp_path,
                    FUNCTION_CONFIG=base64.b64encode(
                        yaml.safe_dump(function_config(bucket)).encode()).decode(),
                    SCRIPT=base64.b64encode(REPORT_SCRIPT.encode()).decode())
    if via == "EVENT":
        env["EVENT"] = event
        run = run_batch(env, tmp_path)
        expected_request_id = "batch-job-1"  # no request id given: the Batch job id
    else:
        env["AWS_LAMBDA_REQUEST_ID"] = REQUEST_ID
        run = run_batch(env, tmp_path, stdin=event)
        expected_request_id = REQUEST_ID

    assert run.code == 0, run.stderr_lines
    assert keys(s3, bucket, "output/") == ["output/out/result.txt"]
    values = report(s3, bucket)
    assert values["EXECUTION_SERVICE"] == "batch" and values["INPUT"] == "data file.txt"
    assert values["REQUEST_ID"] == expected_request_id and values["SECRET"] == "none"
    assert [r["status"] for r in run.summary["records"]] == ["skipped", "completed"]
    assert run.summary["request_id"] == expected_request_id


# --------------------------------------------------------------------------- multi-node

def test_multi_node_job_runs_everywhere_but_only_the_main_node_uploads(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    uri = stage_handoff(s3, bucket)
    nodes = {"AWS_BATCH_JOB_MAIN_NODE_INDEX": "0", "AWS_BATCH_JOB_NUM_NODES": "2"}

    child = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri,
                                AWS_BATCH_JOB_NODE_INDEX="1", **nodes), tmp_path)
    assert child.code == 0, child.stderr_lines
    assert keys(s3, bucket, "output/") == []
    assert child.phase("run")["exit_code"] == 0
    record = child.summary["records"][0]
    assert record["status"] == "completed" and record["uploaded"] == []
    assert record["node_index"] == 1 and record["main_node"] is False

    main = run_batch(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri,
                               AWS_BATCH_JOB_NODE_INDEX="0", **nodes), tmp_path)
    assert main.code == 0, main.stderr_lines
    assert keys(s3, bucket, "output/") == ["output/out/result.txt"]
    assert report(s3, bucket)["NODE"] == "0"
    assert main.summary["records"][0]["main_node"] is True
