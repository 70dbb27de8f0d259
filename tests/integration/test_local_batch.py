"""The local Batch executor against the moto server: discovery, states, retries, timeouts,
multi-node and array jobs, and a real hand-off run through `supervisor-batch`."""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import boto3
import pytest
from conftest import make_batch_queue, process_gone

from supervisor.handoff import HANDOFF_ENV, REQUEST_ID_ENV, Handoff, now_iso, write_handoff
from supervisor.local.batch_executor import SHUTDOWN_REASON, START_REASON, LocalBatchExecutor
from supervisor.local.batch_resolve import EXIT_REASON, TIMEOUT_REASON, LocalHost, base_env
from supervisor.local.batch_tap import SubmitJobTap
from supervisor.local.endpoint import start_endpoint
from supervisor.local.store import LocalStore
from supervisor.s3event import object_created_record

pytestmark = pytest.mark.integration

RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]
WAIT = 30.0


def env_list(**values: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


class Batch:
    """A compute environment and queue of its own on the moto server, and an executor on it."""

    def __init__(self, endpoint: str, aws_env: dict[str, str], network: dict[str, str],
                 tmp_path: Path, tap: Optional[SubmitJobTap] = None,
                 watch: Optional[list[str]] = None, max_jobs: int = 2) -> None:
        self.client = boto3.client("batch", endpoint_url=endpoint, region_name="us-east-1")
        self.name = f"lb-{uuid.uuid4().hex[:10]}"
        make_batch_queue(self.client, network, self.name)
        self.tmp_path = tmp_path
        self.store = LocalStore(tmp_path / "state")
        self.host_dir = tmp_path / "host-opt-supervisor"
        self.host_dir.mkdir()
        self.host = LocalHost(base_env=base_env(os.environ, aws_env),
                              host_paths={"/opt/supervisor": self.host_dir},
                              executables={"python3": sys.executable})
        self.executor = LocalBatchExecutor(
            self.client, self.store, tmp_path / "work", host=self.host, tap=tap,
            queues=[self.name] if watch is None else watch, grace=1.0, poll_interval=0.1,
            max_jobs=max_jobs)

    def register(self, command: list[str], *, env: Optional[dict[str, str]] = None,
                 **extra: Any) -> str:
        container: dict[str, Any] = {"image": "busybox", "command": command,
                                     "environment": env_list(**(env or {})),
                                     "resourceRequirements": RESOURCES}
        for key in ("volumes", "mountPoints"):
            if key in extra:
                container[key] = extra.pop(key)
        name = f"{self.name}-{uuid.uuid4().hex[:6]}"
        return str(self.client.register_job_definition(
            jobDefinitionName=name, type="container", containerProperties=container,
            **extra)["jobDefinitionArn"])

    def submit(self, definition: str, **kwargs: Any) -> str:
        return str(self.client.submit_job(jobName="job", jobQueue=self.name,
                                          jobDefinition=definition, **kwargs)["jobId"])

    def run(self) -> None:
        assert self.executor.wait_idle(WAIT), self.store.snapshot()["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        found = self.store.get("jobs", job_id)
        assert found is not None, f"{job_id} not recorded"
        return found


def history(job: dict[str, Any]) -> list[str]:
    return [h["status"] for h in job["history"]]


@pytest.fixture
def batch(moto_endpoint: str, aws_env: dict[str, str], batch_network: dict[str, str],
          tmp_path: Path) -> Iterator[Batch]:
    setup = Batch(moto_endpoint, aws_env, batch_network, tmp_path)
    yield setup
    setup.executor.shutdown()


@pytest.fixture(scope="module")
def tapped() -> Iterator[tuple[str, SubmitJobTap]]:
    """A second moto server (same backends) with a SubmitJob tap in front of it."""
    endpoint = start_endpoint()
    tap = SubmitJobTap()
    tap.install(endpoint.server)
    yield endpoint.url, tap
    endpoint.stop()


def test_submitted_job_is_discovered_runs_and_succeeds(batch: Batch) -> None:
    definition = batch.register(["/bin/sh", "-c", "echo hello from the job; exit 0"])
    job_id = batch.submit(definition)

    assert batch.executor.poll_once() == 1
    batch.run()

    job = batch.job(job_id)
    assert job["status"] == "SUCCEEDED"
    assert history(job) == ["SUBMITTED", "RUNNABLE", "RUNNING", "SUCCEEDED"]
    assert job["exit_code"] == 0 and job["reason"] == EXIT_REASON
    assert job["queue"] == batch.name and job["definition"] == definition
    (attempt,) = job["attempts"]
    assert attempt["attempt"] == 1 and attempt["exit_code"] == 0
    assert attempt["log"] == job["log"]
    assert Path(job["log"]).read_text() == "hello from the job\n"
    assert batch.executor.poll_once() == 0  # moto still lists it: not run twice


def test_job_env_is_definition_then_overrides_then_batch_variables(batch: Batch) -> None:
    out = batch.tmp_path / "job.env"
    definition = batch.register(["/bin/sh", "-c", 'env > "$OUT"'],
                                env={"SHARED": "definition", "DEF_ONLY": "definition"})
    job_id = batch.submit(definition, containerOverrides={"environment": env_list(
        SHARED="override", OUT=str(out))})
    batch.run()

    assert batch.job(job_id)["status"] == "SUCCEEDED"
    env = read_env(out)
    assert env["SHARED"] == "override" and env["DEF_ONLY"] == "definition"
    assert env["AWS_BATCH_JOB_ID"] == job_id
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == batch.name
    assert env["AWS_BATCH_CE_NAME"] == batch.name
    assert env["AWS_ENDPOINT_URL"] == os.environ["AWS_ENDPOINT_URL"]
    assert "PYTEST_CURRENT_TEST" not in env  # nothing else of the host's environment
    assert env["TMPDIR"].startswith(str(batch.tmp_path / "work"))


def test_failing_command_is_retried_attempts_times_and_ends_failed(batch: Batch) -> None:
    seen = batch.tmp_path / "attempts.txt"
    definition = batch.register(
        ["/bin/sh", "-c", f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {seen}; exit 7'],
        retryStrategy={"attempts": 3})
    job_id = batch.submit(definition)
    batch.run()

    job = batch.job(job_id)
    assert job["status"] == "FAILED"
    assert job["exit_code"] == 7 and job["reason"] == EXIT_REASON
    assert [(a["attempt"], a["exit_code"]) for a in job["attempts"]] == [(1, 7), (2, 7), (3, 7)]
    assert seen.read_text().split() == ["1", "2", "3"]
    assert history(job) == ["SUBMITTED"] + ["RUNNABLE", "RUNNING"] * 3 + ["FAILED"]
    assert len({a["log"] for a in job["attempts"]}) == 3


def test_job_over_its_timeout_is_killed_not_retried_and_failed(batch: Batch) -> None:
    pid_file = batch.tmp_path / "grandchild.pid"
    definition = batch.register(
        ["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; sleep 60"],
        retryStrategy={"attempts": 3})
    # moto accepts a timeout under Batch's 60 s minimum, and the executor honours it.
    job_id = batch.submit(definition, timeout={"attemptDurationSeconds": 1})
    started = time.monotonic()
    batch.run()

    job = batch.job(job_id)
    assert time.monotonic() - started < 10
    assert job["status"] == "FAILED" and job["reason"] == TIMEOUT_REASON
    assert len(job["attempts"]) == 1  # Batch does not retry a timed-out attempt
    assert job["exit_code"] == 143  # SIGTERM, as a container reports it
    assert process_gone(int(pid_file.read_text()))
    assert all(process_gone(pid) for pid in job["pids"])


def test_unmapped_host_volume_fails_the_job_with_a_clear_reason(batch: Batch) -> None:
    definition = batch.register(
        ["python3", "/data/run.py"],
        volumes=[{"name": "data", "host": {"sourcePath": "/srv/data"}}],
        mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}])
    job_id = batch.submit(definition)
    batch.run()

    job = batch.job(job_id)
    assert job["status"] == "FAILED"
    assert "sourcePath /srv/data" in job["reason"] and "host_paths" in job["reason"]


def test_array_job_runs_each_child_with_its_index(batch: Batch) -> None:
    out = batch.tmp_path / "array"
    out.mkdir()
    definition = batch.register(
        ["/bin/sh", "-c", f'echo "$AWS_BATCH_JOB_ID" > {out}/"$AWS_BATCH_JOB_ARRAY_INDEX"'])
    job_id = batch.submit(definition, arrayProperties={"size": 2})
    batch.run()

    parent = batch.job(job_id)
    assert parent["status"] == "SUCCEEDED"
    assert history(parent) == ["SUBMITTED", "PENDING", "SUCCEEDED"]
    assert parent["children"] == [f"{job_id}:0", f"{job_id}:1"]
    assert {p.name: p.read_text().strip() for p in out.iterdir()} == {
        "0": f"{job_id}:0", "1": f"{job_id}:1"}
    assert all(batch.job(child)["status"] == "SUCCEEDED" for child in parent["children"])


def test_command_that_cannot_start_fails_the_attempt_with_batchs_reason(batch: Batch) -> None:
    definition = batch.register(["/no/such/program", "arg"], retryStrategy={"attempts": 2})
    job_id = batch.submit(definition)
    batch.run()

    job = batch.job(job_id)
    assert job["status"] == "FAILED" and job["exit_code"] is None
    assert job["reason"].startswith(f"{START_REASON}: cannot start /no/such/program")
    assert len(job["attempts"]) == 2
    assert "/no/such/program" in Path(job["log"]).read_text()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def test_shutdown_stops_the_running_job_and_fails_the_waiting_one(
        moto_endpoint: str, aws_env: dict[str, str], batch_network: dict[str, str],
        tmp_path: Path) -> None:
    setup = Batch(moto_endpoint, aws_env, batch_network, tmp_path, max_jobs=1)
    definition = setup.register(["/bin/sh", "-c", "sleep 60"])
    first, second = setup.submit(definition), setup.submit(definition)
    setup.executor.start()  # the polling thread finds them
    try:
        wait_for(lambda: (setup.store.get("jobs", first) or {}).get("status") == "RUNNING")
        assert setup.executor.busy()
        time.sleep(0.3)  # one job at a time: the second one waits
        assert setup.job(second)["status"] == "SUBMITTED"
    finally:
        setup.executor.shutdown()

    running, waiting = setup.job(first), setup.job(second)
    assert running["status"] == "FAILED" and running["reason"] == SHUTDOWN_REASON
    assert running["exit_code"] == 143
    assert all(process_gone(pid) for pid in running["pids"])
    assert waiting["status"] == "FAILED" and waiting["reason"] == SHUTDOWN_REASON
    assert "attempts" not in waiting
    assert not setup.executor.busy()


MAIN_NODE = """\
i=0
while [ ! -s "$OUT/node-1.env" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
env > "$OUT/node-$AWS_BATCH_JOB_NODE_INDEX.env"
"""
CHILD_NODE = """\
env > "$OUT/node-$AWS_BATCH_JOB_NODE_INDEX.env.tmp"
mv "$OUT/node-$AWS_BATCH_JOB_NODE_INDEX.env.tmp" "$OUT/node-$AWS_BATCH_JOB_NODE_INDEX.env"
echo $$ > "$OUT/child.pid"
sleep 60
"""


def test_multinode_job_runs_every_node_with_its_variables_and_follows_the_main(
        moto_endpoint: str, aws_env: dict[str, str], batch_network: dict[str, str],
        tmp_path: Path, tapped: tuple[str, SubmitJobTap]) -> None:
    url, tap = tapped
    setup = Batch(url, aws_env, batch_network, tmp_path, tap=tap)
    out = tmp_path / "nodes"
    out.mkdir()
    script = 'if [ "$AWS_BATCH_JOB_NODE_INDEX" = "$AWS_BATCH_JOB_MAIN_NODE_INDEX" ]; ' \
             f'then {MAIN_NODE} else {CHILD_NODE} fi'
    container = {"image": "busybox", "command": ["/bin/sh", "-c", script],
                 "environment": env_list(OUT=str(out)), "resourceRequirements": RESOURCES}
    definition = setup.client.register_job_definition(
        jobDefinitionName=f"{setup.name}-mnp", type="multinode",
        nodeProperties={"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0:", "container": container}]})["jobDefinitionArn"]
    # nodeOverrides reach the nodes only through the tap: moto drops them.
    job_id = setup.submit(definition, nodeOverrides={"nodePropertyOverrides": [
        {"targetNodes": "0:", "containerOverrides": {
            "environment": env_list(MARK="from-node-overrides")}}]})
    try:
        setup.run()
    finally:
        setup.executor.shutdown()

    job = setup.job(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["exit_code"] == 0
    assert [n["index"] for n in job["nodes"]] == [0, 1]
    assert job["nodes"][0]["exit_code"] == 0
    assert job["nodes"][1]["exit_code"] == 143  # still running when the main exited: stopped
    assert process_gone(int((out / "child.pid").read_text()))
    main, child = read_env(out / "node-0.env"), read_env(out / "node-1.env")
    for index, env in enumerate((main, child)):
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(index)
        assert env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "2"
        assert env["MARK"] == "from-node-overrides"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main
    assert child["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"


# ------------------------------------------------------------------ through supervisor-batch

KEY = "input/data.txt"
REPORT_SCRIPT = """\
set -eu
mkdir -p "$TMP_OUTPUT_DIR/res"
echo "$EXECUTION_SERVICE $AWS_LAMBDA_REQUEST_ID $(cat "$INPUT_FILE_PATH")" \\
    > "$TMP_OUTPUT_DIR/res/out.txt"
"""
FAILING_SCRIPT = """\
echo "attempt $AWS_BATCH_JOB_ATTEMPT failing"
exit 3
"""
RUNNER = "from supervisor.batch_entry import console_main\nconsole_main()\n"


def stage_handoff(s3: Any, bucket: str, script: str, request_id: str) -> str:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"payload")
    head = s3.head_object(Bucket=bucket, Key=KEY)
    record = object_created_record(bucket, KEY, size=head["ContentLength"], etag=head["ETag"])
    config = {"name": "fn", "execution_mode": "batch", "container": {"image": "busybox"},
              "input": [{"storage_provider": "s3", "path": f"{bucket}/input"}],
              "output": [{"storage_provider": "s3", "path": f"{bucket}/output"}],
              "batch": {"compute_resources": {"subnets": ["subnet-1"],
                                              "security_group_ids": ["sg-1"]}}}
    handoff = Handoff(record=record, function_config=config, script=script,
                      request_id=request_id, function_name="fn", created_at=now_iso(),
                      reason="execution_mode is batch")
    return write_handoff(s3, handoff, bucket, f"supervisor-handoff/fn/{request_id}/doc.json")


def supervisor_definition(batch: Batch, **extra: Any) -> str:
    """The deployed layout: the image's python3 runs a file of the host's /opt/supervisor."""
    (batch.host_dir / "run.py").write_text(RUNNER)
    return batch.register(
        ["python3", "/opt/supervisor/run.py"],
        volumes=[{"name": "supervisor", "host": {"sourcePath": "/opt/supervisor"}}],
        mountPoints=[{"sourceVolume": "supervisor", "containerPath": "/opt/supervisor",
                      "readOnly": True}], **extra)


def handoff_overrides(uri: str, request_id: str) -> dict[str, Any]:
    return {"environment": env_list(**{HANDOFF_ENV: uri, REQUEST_ID_ENV: request_id})}


def test_handoff_job_runs_supervisor_batch_and_uploads_outputs(
        moto_endpoint: str, aws_env: dict[str, str], batch_network: dict[str, str],
        tmp_path: Path, s3: Any, bucket: str) -> None:
    # Watching no queue: the job runs because the caller tracks its id.
    setup = Batch(moto_endpoint, aws_env, batch_network, tmp_path, watch=["no-such-queue"])
    request_id = "req-local-batch-1"
    uri = stage_handoff(s3, bucket, REPORT_SCRIPT, request_id)
    request = {"containerOverrides": handoff_overrides(uri, request_id)}
    job_id = setup.submit(supervisor_definition(setup), **request)
    try:
        assert setup.executor.poll_once() == 0
        assert setup.executor.track(job_id, request)
        setup.run()
    finally:
        setup.executor.shutdown()

    job = setup.job(job_id)
    assert job["status"] == "SUCCEEDED", Path(job["log"]).read_text()
    assert job["overrides_from"] == "SubmitJob"
    body = s3.get_object(Bucket=bucket, Key="output/res/out.txt")["Body"].read()
    assert body.decode().split() == ["batch", request_id, "payload"]
    log_lines = Path(job["log"]).read_text().splitlines()
    assert any('"job done"' in line for line in log_lines)


def test_failing_script_in_batch_mode_is_retried_and_ends_failed_with_its_exit_code(
        batch: Batch, s3: Any, bucket: str) -> None:
    request_id = "req-local-batch-2"
    uri = stage_handoff(s3, bucket, FAILING_SCRIPT, request_id)
    definition = supervisor_definition(batch, retryStrategy={"attempts": 2})
    job_id = batch.submit(definition, containerOverrides=handoff_overrides(uri, request_id))
    batch.run()

    job = batch.job(job_id)
    assert job["status"] == "FAILED"
    assert job["exit_code"] == 3 and job["reason"] == EXIT_REASON
    assert [a["exit_code"] for a in job["attempts"]] == [3, 3]
    assert "attempt 2 failing" in Path(job["log"]).read_text()
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="output/")
    assert listing.get("KeyCount", 0) == 0
