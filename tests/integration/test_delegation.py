"""`lambda-batch` and `batch` modes against the moto server: watchdog, hand-off, SubmitJob,
idempotency, and the job's own run through `supervisor-batch`."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import boto3
import pytest
from conftest import make_batch_queue, process_gone

from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.handoff import HANDOFF_ENV, REQUEST_ID_ENV, Handoff, parse_s3_uri
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of, object_created_record

pytestmark = pytest.mark.integration

JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")

SLOW_SCRIPT = """\
echo partial > "$TMP_OUTPUT_DIR/partial.txt"
sleep 60 &
echo $! > "$PID_FILE"
echo "started on $EXECUTION_SERVICE"
sleep 60
"""

QUICK_SCRIPT = """\
set -eu
mkdir -p "$TMP_OUTPUT_DIR/res"
printf '%s %s %s\\n' "$EXECUTION_SERVICE" "$REQUEST_ID" "$(cat "$INPUT_FILE_PATH")" \\
    > "$TMP_OUTPUT_DIR/res/out.txt"
if [ -n "${MARKER:-}" ]; then touch "$MARKER"; fi
exit "${EXIT_WITH:-0}"
"""


class Function:
    """A function wired to a Batch queue on the moto server, invoked like Lambda would."""

    def __init__(self, s3: Any, bucket: str, network: dict[str, str], tmp_path: Path,
                 aws_env: dict[str, str], *, multi_node: bool = False) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.tmp_path = tmp_path
        self.aws_env = aws_env
        self.name = f"fn-{uuid.uuid4().hex[:8]}"
        self.network = network
        self.batch = boto3.client("batch", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                                  region_name="us-east-1")
        make_batch_queue(self.batch, network, self.name, multi_node=multi_node)
        (tmp_path / "work").mkdir()

    def config(self, *, mode: str, script: str, threshold: int = 2,
               variables: Optional[dict[str, str]] = None, extra: str = "",
               outputs: int = 1) -> str:
        script_path = self.tmp_path / "script.sh"
        script_path.write_text(script)
        output_lines = "\n".join(
            f"- {{storage_provider: s3, path: {self.bucket}/output{'' if i == 0 else i}}}"
            for i in range(outputs))
        var_lines = "".join(f"\n      {k}: '{v}'" for k, v in (variables or {}).items())
        return textwrap.dedent(f"""\
            name: {self.name}
            execution_mode: {mode}
            timeout: 60
            init_script: {script_path}
            container:
              image: busybox
              run_on_host: true
              timeout_threshold: {threshold}
              environment:
                Variables:
                  PLACEHOLDER: x""") + var_lines + textwrap.dedent(f"""
            input:
            - {{storage_provider: s3, path: {self.bucket}/input}}
            output:
            """) + output_lines + textwrap.dedent(f"""
            batch:
              compute_resources:
                subnets: [{self.network['subnet']}]
                security_group_ids: [{self.network['security_group']}]
            """) + extra

    def put(self, key: str = "input/data.txt", body: bytes = b"payload") -> dict[str, Any]:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        return object_created_record(self.bucket, key, size=head["ContentLength"],
                                     etag=head["ETag"])

    def invoke(self, event: dict[str, Any], config_yaml: str, *, timeout: float = 60,
               request_id: Optional[str] = None,
               clients: Optional[ClientFactory] = None) -> tuple[dict[str, Any], dict[str, Any]]:
        environ = dict(self.aws_env, PATH=os.environ["PATH"],
                       SUPERVISOR_WORK_DIR=str(self.tmp_path / "work"),
                       FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
        context = LocalContext(function_name=self.name, timeout=timeout)
        if request_id:
            context.aws_request_id = request_id
        response = handle(event, context, environ=environ, clients=clients or ClientFactory())
        self.left_ms = context.get_remaining_time_in_millis()  # 0: Lambda would have killed it
        return response, json.loads(response["body"])

    def jobs(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for state in JOB_STATES:
            for job in self.batch.list_jobs(jobQueue=self.name, jobStatus=state)["jobSummaryList"]:
                found[job["jobId"]] = job
        return list(found.values())

    def job_environment(self, job_id: str) -> dict[str, str]:
        (job,) = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        return {e["name"]: e["value"] for e in job["container"]["environment"]}

    def outputs(self, prefix: str = "output") -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture
def fn(s3: Any, bucket: str, batch_network: dict[str, str], tmp_path: Path,
       aws_env: dict[str, str]) -> Function:
    return Function(s3, bucket, batch_network, tmp_path, aws_env)


def run_batch_entry(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `supervisor-batch` as the job container would, with the job's environment."""
    work = tmp_path / "batch-work"
    work.mkdir(exist_ok=True)
    full = dict(env, PATH=os.environ["PATH"], SUPERVISOR_WORK_DIR=str(work))
    return subprocess.run([sys.executable, "-m", "supervisor.batch_entry"], env=full,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_lambda_batch_timeout_kills_script_discards_outputs_and_submits_one_job(
        fn: Function, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    config = fn.config(mode="lambda-batch", script=SLOW_SCRIPT, threshold=2,
                       variables={"PID_FILE": str(pid_file)})
    event = event_of(fn.put())
    response, body = fn.invoke(event, config, timeout=5, request_id="req-lb-1")

    assert response["statusCode"] == 200, body
    (record,) = body["records"]
    assert record["status"] == "delegated"
    assert "exceeded the time budget" in record["reason"]
    grandchild = int(pid_file.read_text())
    assert process_gone(grandchild, wait=0.5)
    assert fn.outputs() == []  # the partial output was discarded, not uploaded
    assert list((tmp_path / "work").iterdir()) == []

    jobs = fn.jobs()
    assert [j["jobId"] for j in jobs] == [record["job_id"]]
    (job,) = fn.batch.describe_jobs(jobs=[record["job_id"]])["jobs"]
    assert job["jobQueue"].endswith(f"job-queue/{fn.name}")
    assert re.fullmatch(rf"{fn.name}-data_txt-[0-9a-f]{{12}}", job["jobName"])  # one per hand-off
    env = fn.job_environment(record["job_id"])
    assert env[REQUEST_ID_ENV] == "req-lb-1"
    bucket, key = parse_s3_uri(env[HANDOFF_ENV])
    assert key.startswith(f"supervisor-handoff/{fn.name}/req-lb-1/")
    doc = Handoff.from_json(fn.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert doc.request_id == "req-lb-1" and doc.function_name == fn.name
    assert doc.script == SLOW_SCRIPT
    assert doc.record == event["Records"][0]
    assert doc.function_config["name"] == fn.name
    assert "exceeded the time budget" in doc.reason


def test_batch_mode_hands_off_without_running_and_the_job_completes_on_batch(
        fn: Function, tmp_path: Path, aws_env: dict[str, str]) -> None:
    marker = tmp_path / "ran-in-lambda"
    config = fn.config(mode="batch", script=QUICK_SCRIPT, variables={"MARKER": str(marker)})
    response, body = fn.invoke(event_of(fn.put(body=b"from s3")), config,
                               request_id="req-batch-1")

    (record,) = body["records"]
    assert record["status"] == "delegated" and record["reason"] == "execution_mode is batch"
    assert not marker.exists()  # nothing ran in Lambda
    assert fn.outputs() == []

    job_env = fn.job_environment(record["job_id"])
    assert job_env["AWS_BATCH_JOB_ID"] == record["job_id"]
    done = run_batch_entry(dict(aws_env, **job_env), tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.exists()  # ran on "Batch"
    bucket, key = parse_s3_uri(job_env[HANDOFF_ENV])
    assert "Contents" not in fn.s3.list_objects_v2(Bucket=bucket, Prefix=key)  # secrets gone
    assert fn.outputs() == ["output/res/out.txt"]
    text = fn.s3.get_object(Bucket=fn.bucket, Key="output/res/out.txt")["Body"].read()
    assert text.decode() == "batch req-batch-1 from s3\n"


def test_an_api_request_to_a_batch_function_is_staged_and_its_body_is_the_jobs_input(
        fn: Function, tmp_path: Path, aws_env: dict[str, str]) -> None:
    from supervisor.gateway import Route, proxy_event

    marker = tmp_path / "ran-in-lambda"
    config = fn.config(mode="batch", script=QUICK_SCRIPT, variables={"MARKER": str(marker)})
    route = Route(api_id="api1", stage="scar", region="us-east-1",
                  url="https://api1.execute-api.us-east-1.amazonaws.com/scar/launch",
                  function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{fn.name}")
    event = proxy_event(route, b"from the request", headers={
        "Content-Disposition": 'attachment; filename="req.txt"'})
    response, body = fn.invoke(event, config, request_id="req-api-1")

    (record,) = body["records"]
    assert record["status"] == "delegated", record
    assert record["key"] == "supervisor-handoff/requests/req-api-1/req.txt"
    assert not marker.exists()
    staged = fn.s3.get_object(Bucket=fn.bucket, Key=record["key"])["Body"].read()
    assert staged == b"from the request"
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]
    done = run_batch_entry(dict(aws_env, **fn.job_environment(record["job_id"])), tmp_path)
    assert done.returncode == 0, done.stderr
    text = fn.s3.get_object(Bucket=fn.bucket, Key="output/res/out.txt")["Body"].read()
    assert text.decode() == "batch req-api-1 from the request\n"

    _, refused = fn.invoke({}, config)  # no body to hand over: runs in Lambda only
    assert refused["records"][0]["status"] == "failed"
    assert "{}, script and cmd_args run in Lambda" in refused["records"][0]["error"]


def test_batch_side_exit_code_is_the_scripts_and_nothing_is_uploaded(
        fn: Function, tmp_path: Path, aws_env: dict[str, str]) -> None:
    config = fn.config(mode="batch", script=QUICK_SCRIPT, variables={"EXIT_WITH": "9"})
    _, body = fn.invoke(event_of(fn.put()), config)
    (record,) = body["records"]

    job_env = fn.job_environment(record["job_id"])
    done = run_batch_entry(dict(aws_env, **job_env), tmp_path)
    assert done.returncode == 9
    assert fn.outputs() == []
    bucket, key = parse_s3_uri(job_env[HANDOFF_ENV])
    assert fn.s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 1  # for a retry
    assert done.stderr.splitlines()[-1].startswith("supervisor-batch: ")


def test_duplicate_event_with_idempotency_submits_nothing_new(
        fn: Function, aws_env: dict[str, str]) -> None:
    table = f"idem-{uuid.uuid4().hex[:8]}"
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                            region_name="us-east-1")
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    config = fn.config(mode="batch", script=QUICK_SCRIPT, extra=f"idempotency: {{table: {table}}}\n")
    event = event_of(fn.put())

    _, first = fn.invoke(event, config, request_id="req-1")
    _, again = fn.invoke(event, config, request_id="req-2")  # an async retry / duplicate

    assert first["records"][0]["status"] == "delegated"
    assert first["records"][0]["duplicate"] is False
    assert again["records"][0]["status"] == "delegated"
    assert again["records"][0]["duplicate"] is True
    assert again["records"][0]["job_id"] == first["records"][0]["job_id"]
    assert len(fn.jobs()) == 1
    assert dynamodb.scan(TableName=table)["Count"] == 1

    other = event_of(fn.put(key="input/other.txt"))  # a different object is its own job
    _, third = fn.invoke(other, config)
    assert third["records"][0]["job_id"] != first["records"][0]["job_id"]
    assert len(fn.jobs()) == 2


def test_large_script_and_fifty_outputs_still_hand_off_by_pointer(
        fn: Function, tmp_path: Path, aws_env: dict[str, str]) -> None:
    filler = "".join(f"# comment line {i:05d} to make the script large\n" for i in range(700))
    script = filler + QUICK_SCRIPT
    assert len(script.encode()) > 24 * 1024
    config = fn.config(mode="batch", script=script, outputs=50)
    _, body = fn.invoke(event_of(fn.put()), config)

    (record,) = body["records"]
    assert record["status"] == "delegated", record
    env = fn.job_environment(record["job_id"])
    ours = {name for name in env if not name.startswith("AWS_BATCH_")}
    assert ours == {HANDOFF_ENV, REQUEST_ID_ENV}  # Batch adds only its AWS_BATCH_* names
    bucket, key = parse_s3_uri(env[HANDOFF_ENV])
    doc = Handoff.from_json(fn.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert doc.script == script and len(doc.function_config["output"]) == 50

    done = run_batch_entry(dict(aws_env, **env), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "output/res/out.txt" in fn.outputs("output/") and "output49/res/out.txt" in fn.outputs("output49/")


def test_lambda_batch_delegates_at_once_when_the_budget_is_below_the_threshold(
        fn: Function, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = fn.config(mode="lambda-batch", script=QUICK_SCRIPT, threshold=5,
                       variables={"MARKER": str(marker)})
    _, body = fn.invoke(event_of(fn.put()), config, timeout=8)  # budget 3 s < threshold 5 s

    (record,) = body["records"]
    assert record["status"] == "delegated"
    assert "below the threshold" in record["reason"]
    assert not marker.exists()


def test_lambda_batch_short_job_completes_in_lambda(fn: Function) -> None:
    config = fn.config(mode="lambda-batch", script=QUICK_SCRIPT, threshold=2)
    response, body = fn.invoke(event_of(fn.put()), config, timeout=60)

    (record,) = body["records"]
    assert record["status"] == "completed" and record["job_id"] is None
    assert fn.outputs() == ["output/res/out.txt"]
    assert fn.jobs() == []


def test_missing_job_queue_is_a_failed_record_with_the_reason(fn: Function) -> None:
    config = fn.config(mode="batch", script=QUICK_SCRIPT,
                       extra="  job_queue: no-such-queue\n")
    response, body = fn.invoke(event_of(fn.put()), config)

    assert response["statusCode"] == 500
    (record,) = body["records"]
    assert record["status"] == "failed" and "no-such-queue" in record["error"]


def test_multi_node_function_submits_node_overrides(
        s3: Any, bucket: str, batch_network: dict[str, str], tmp_path: Path,
        aws_env: dict[str, str]) -> None:
    fn = Function(s3, bucket, batch_network, tmp_path, aws_env, multi_node=True)
    config = fn.config(mode="batch", script=QUICK_SCRIPT, extra=textwrap.indent(
        "multi_node_parallel: {enabled: true, number_nodes: 2, main_node_index: 0}\n", "  "))
    response, body = fn.invoke(event_of(fn.put()), config)

    (record,) = body["records"]
    assert record["status"] == "delegated", record
    (job,) = fn.batch.describe_jobs(jobs=[record["job_id"]])["jobs"]
    assert job["jobDefinition"].split("/")[-1].startswith(fn.name)


class Delayed(ClientFactory):
    """Real clients, but every S3 call of ``operation`` waits ``delay`` seconds first (a slow
    network)."""

    def __init__(self, operation: str, delay: float) -> None:
        super().__init__()
        self.operation, self.delay = operation, delay

    def with_providers(self, providers: Any) -> "Delayed":
        return self  # the function names no other provider

    def s3(self, storage_provider: str = "s3") -> Any:
        real, operation, delay = super().s3(storage_provider), self.operation, self.delay

        class Slow:
            def __getattr__(self, name: str) -> Any:
                method = getattr(real, name)
                if name != operation:
                    return method

                def slow(**kwargs: Any) -> Any:
                    time.sleep(delay)
                    return method(**kwargs)
                return slow
        return Slow()


def test_lambda_batch_hands_off_when_the_download_outlasts_the_budget(
        fn: Function, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = fn.config(mode="lambda-batch", script=QUICK_SCRIPT, threshold=1,
                       variables={"MARKER": str(marker)})
    big = fn.put(key="input/big.bin", body=b"\0" * 1024)
    # a 1.2 s budget; the download takes 3 s (a slow network)
    _, body = fn.invoke(event_of(big), config, timeout=2.2, clients=Delayed("get_object", 3.0))

    (record,) = body["records"]
    assert record["status"] == "delegated", record
    assert record["reason"] == "stage-in of s3://%s/input/big.bin exceeded the time budget" % (
        fn.bucket)
    assert not marker.exists()  # the script never ran in Lambda
    assert len(fn.jobs()) == 1


def test_a_script_ignoring_sigterm_is_still_handed_off_before_the_lambda_deadline(
        fn: Function) -> None:
    config = fn.config(mode="lambda-batch", script="trap '' TERM\nsleep 60\n", threshold=2)
    _, body = fn.invoke(event_of(fn.put()), config, timeout=5)

    (record,) = body["records"]
    assert record["status"] == "delegated", record
    assert fn.left_ms > 0  # the kill's grace left the hand-off time inside the invocation


def test_lambda_batch_hands_off_when_stage_out_does_not_fit_and_shows_no_output(
        fn: Function) -> None:
    script = 'for i in $(seq 1 80); do echo "$i" > "$TMP_OUTPUT_DIR/out-$i.txt"; done\n'
    config = fn.config(mode="lambda-batch", script=script, threshold=2)
    response, body = fn.invoke(event_of(fn.put()), config, timeout=6,
                               clients=Delayed("upload_part", 0.5))
    (record,) = body["records"]
    assert record["status"] == "delegated", record
    assert "stage-out exceeded the time budget" in record["reason"]
    assert fn.outputs() == []  # not one of the 80 became visible
    assert len(fn.jobs()) == 1 and fn.left_ms > 0  # handed off before Lambda's deadline
    end = time.monotonic() + 10  # aborted once the requests running at the deadline end
    while fn.s3.list_multipart_uploads(Bucket=fn.bucket).get("Uploads") and \
            time.monotonic() < end:
        time.sleep(0.05)
    assert fn.s3.list_multipart_uploads(Bucket=fn.bucket).get("Uploads", []) == []


def test_lambda_mode_answers_before_the_deadline_when_stage_out_does_not_fit(
        fn: Function) -> None:
    script = 'for i in $(seq 1 80); do echo "$i" > "$TMP_OUTPUT_DIR/out-$i.txt"; done\n'
    config = fn.config(mode="lambda", script=script, threshold=2)
    response, body = fn.invoke(event_of(fn.put()), config, timeout=6,
                               clients=Delayed("upload_part", 0.5))
    (record,) = body["records"]
    assert record["status"] == "failed" and "time budget" in record["error"]
    assert fn.outputs() == [] and fn.left_ms > 0


class BatchFault(ClientFactory):
    """Real clients; SubmitJob's first call either loses its answer after the job was made
    ("lost") or is refused for good ("refused")."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.submits = 0

    def with_providers(self, providers: Any) -> "BatchFault":
        return self

    def client(self, service: str) -> Any:
        return self._faulty(service, super().client(service))

    def bounded(self, service: str, seconds: float) -> Any:  # the hand-off's clients
        return self._faulty(service, super().bounded(service, seconds))

    def _faulty(self, service: str, real: Any) -> Any:
        if service != "batch":
            return real
        fault = self

        class Faulty:
            def __getattr__(self, name: str) -> Any:
                method = getattr(real, name)
                if name != "submit_job":
                    return method

                def submit(**request: Any) -> Any:
                    from botocore.exceptions import ClientError, ReadTimeoutError

                    fault.submits += 1
                    if fault.kind == "refused":
                        raise ClientError({"Error": {"Code": "ClientException",
                                                     "Message": "queue is disabled"}},
                                          "SubmitJob")
                    answer = method(**request)  # the job exists now...
                    if fault.submits == 1:
                        raise ReadTimeoutError(endpoint_url="http://batch")  # ...unheard
                    return answer
                return submit
        return Faulty()


def test_a_lost_submit_answer_makes_exactly_one_job(fn: Function) -> None:
    config = fn.config(mode="batch", script=QUICK_SCRIPT)
    faults = BatchFault("lost")
    response, body = fn.invoke(event_of(fn.put()), config, clients=faults)
    (record,) = body["records"]
    assert record["status"] == "delegated", record
    (job,) = fn.jobs()  # one job, not two
    assert job["jobId"] == record["job_id"] and faults.submits == 1


def test_a_hand_off_that_fails_for_good_removes_its_document(fn: Function) -> None:
    config = fn.config(mode="batch", script=QUICK_SCRIPT)
    response, body = fn.invoke(event_of(fn.put()), config, clients=BatchFault("refused"))
    (record,) = body["records"]
    assert record["status"] == "failed" and "ClientException" in record["error"]
    assert fn.outputs("supervisor-handoff/") == []  # the configuration is not left behind
    assert fn.jobs() == []
