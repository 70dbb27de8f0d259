"""The local Lambda side: S3 uploads -> notifications -> invocations in their own processes.

Functions are deployed with ``supervisor.provision.deploy`` to the moto
server; the executor runs the deployed zip (verified against CodeSha256)
with a minimal layer, the supervisor itself coming from the venv.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import textwrap
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from conftest import process_gone

from supervisor.aws import ClientFactory
from supervisor.config import FunctionConfig, from_fdl
from supervisor.events import parse
from supervisor.local.event_source import EventSource
from supervisor.local.lambda_executor import Invocation, LambdaExecutor, LocalLambdaError
from supervisor.local.lambda_sandbox import Sandbox, lambda_environment
from supervisor.local.store import LocalStore
from supervisor.provision import HANDLER, Waiting, deploy, deployment_zip
from supervisor.s3event import event_of, object_created_record

pytestmark = pytest.mark.integration

FAST = Waiting(timeout=10.0, interval=0.01)
LAYER_NAME = "supervisor-local-lambda-test"

ENV_SCRIPT = """\
set -eu
name=$(basename "$INPUT_FILE_PATH")
case "$name" in bad*) echo "refusing $name"; exit 3;; esac
env > "$TMP_OUTPUT_DIR/$name.env"
pwd > "$TMP_OUTPUT_DIR/$name.cwd"
echo "processed $name in $AWS_LAMBDA_FUNCTION_NAME"
"""

# Ignores SIGTERM (so does its sleep), so the supervisor's own watchdog cannot stop it
# in time: only the local Lambda's hard kill at the timeout does.
STUBBORN_SCRIPT = """\
trap '' TERM
sleep 60 &
echo $! > "$PID_DIR/sleep.$$"
wait
"""

SHORT_SCRIPT = """\
sleep 0.4
echo "done $(basename "$INPUT_FILE_PATH")"
"""


@pytest.fixture(scope="module")
def role(moto_endpoint: str) -> str:
    """A Lambda execution role in moto's IAM."""
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com"}}]}
    name = f"local-lambda-{uuid.uuid4().hex[:8]}"
    return str(iam.create_role(RoleName=name,
                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal layer: ``python/`` with nothing importable (the venv has the supervisor)."""
    path = tmp_path_factory.mktemp("layer") / "layer.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/", "")
        archive.writestr("python/README", "local Lambda test layer\n")
    return path


@dataclasses.dataclass
class Local:
    """One test's deployed functions, store and executors."""

    tmp_path: Path
    role: str
    layer_zip: Path
    endpoint_env: dict[str, str]
    s3: Any
    clients: ClientFactory = dataclasses.field(default_factory=ClientFactory)
    configs: dict[str, FunctionConfig] = dataclasses.field(default_factory=dict)
    executors: list[LambdaExecutor] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = LocalStore(self.tmp_path / "state")
        self.work_root = self.tmp_path / "work"

    def deploy(self, script: str, *, bucket: str, timeout: int = 60, threshold: int = 2,
               variables: Optional[dict[str, str]] = None) -> FunctionConfig:
        name = f"local-{uuid.uuid4().hex[:10]}"
        folder = self.tmp_path / name
        folder.mkdir()
        (folder / "script.sh").write_text(script)
        env = "".join(f"\n              {k}: {json.dumps(v)}" for k, v in
                      (variables or {"GREETING": "hi"}).items())
        (folder / "function.yaml").write_text(textwrap.dedent(f"""\
            functions:
              aws:
              - lambda:
                  name: {name}
                  execution_mode: lambda
                  init_script: script.sh
                  timeout: {timeout}
                  container:
                    image: busybox
                    run_on_host: true
                    timeout_threshold: {threshold}
                    environment:
                      Variables:{{env}}
                  input:
                  - storage_provider: s3
                    path: {bucket}/input
                  output:
                  - storage_provider: s3
                    path: {bucket}/output
                iam:
                  role: {self.role}
            """).replace("{env}", env))
        config = from_fdl(folder / "function.yaml")[0]
        deploy(config, self.clients, layer_zip=self.layer_zip,
               batch_pyz=self.tmp_path / "unused.pyz", layer_name=LAYER_NAME, waiting=FAST)
        self.configs[name] = config
        return config

    def executor(self, *, code: Optional[Callable[[str], bytes]] = None,
                 **kwargs: Any) -> LambdaExecutor:
        settings: dict[str, Any] = {"retry_delay": 0.0}
        settings.update(kwargs)
        executor = LambdaExecutor(
            self.clients, endpoint_env=self.endpoint_env, store=self.store,
            work_root=self.work_root,
            code=code or (lambda name: deployment_zip(self.configs[name])),
            layers=lambda arn: self.layer_zip, **settings)
        self.executors.append(executor)
        return executor

    def put(self, bucket: str, key: str, body: bytes = b"some words\n") -> dict[str, Any]:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        head = self.s3.head_object(Bucket=bucket, Key=key)
        return event_of(object_created_record(bucket, key, size=head["ContentLength"],
                                              etag=head["ETag"]))

    def invocations(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.store.snapshot()["invocations"]
        return found


@pytest.fixture
def local(tmp_path: Path, aws_env: dict[str, str], s3: Any, role: str,
          layer_zip: Path) -> Iterator[Local]:
    state = Local(tmp_path=tmp_path, role=role, layer_zip=layer_zip,
                  endpoint_env=dict(aws_env), s3=s3)
    yield state
    for executor in state.executors:
        executor.shutdown(wait=False)


def _env_file(text: str) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)


def _read(s3: Any, bucket: str, key: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


# --- uploads become invocations ---------------------------------------------------------


def test_an_upload_under_the_input_prefix_runs_once_in_a_lambda_process(
        local: Local, bucket: str, aws_env: dict[str, str]) -> None:
    config = local.deploy(ENV_SCRIPT, bucket=bucket)
    executor = local.executor()
    source = EventSource(local.clients, executor)
    local.put(bucket, "input/before.txt")  # there before the source read the notification
    assert [(w.function, w.prefix) for w in source.refresh()] == [(config.name, "input/")]

    local.put(bucket, "input/good one.txt")
    local.put(bucket, "input/bad.txt")
    local.put(bucket, "elsewhere/ignored.txt")
    assert source.poll_once() == 2
    assert executor.wait_idle(30)
    assert not source.pending() and source.poll_once() == 0  # outputs are not inputs

    entries = {e["objects"][0]["key"]: e for e in local.invocations().values()}
    assert sorted(entries) == ["input/bad.txt", "input/good one.txt"]
    good, bad = entries["input/good one.txt"], entries["input/bad.txt"]
    assert (good["status"], good["attempt"], good["status_code"]) == ("succeeded", 1, 200)
    assert good["function"] == config.name and good["invocation_type"] == "Event"
    assert good["object"] == f"s3://{bucket}/input/good one.txt"
    [record] = good["records"]
    assert record["status"] == "completed"
    assert sorted(record["uploaded"]) == [f"s3://{bucket}/output/good one.txt.cwd",
                                          f"s3://{bucket}/output/good one.txt.env"]
    # A handler that returns statusCode 500 succeeded as an invocation: no retry.
    assert (bad["status"], bad["attempt"], bad["status_code"]) == ("succeeded", 1, 500)
    assert [r["status"] for r in bad["records"]] == ["failed"]
    assert len(bad["attempts"]) == 1 and bad["retrying"] is False

    # The script ran under the deployed code's unpacked dir, with the Lambda environment.
    code_sha = local.clients.client("lambda").get_function_configuration(
        FunctionName=config.name)["CodeSha256"]
    task_root = (local.work_root / "functions" / config.name
                 / base64.b64decode(code_sha).hex()[:16]).resolve()
    assert (task_root / "function_config.yaml").is_file() and (task_root / "script.sh").is_file()
    env = _env_file(_read(local.s3, bucket, "output/good one.txt.env"))
    assert env["LAMBDA_TASK_ROOT"] == str(task_root)
    assert env["_HANDLER"] == HANDLER
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == config.name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(config.memory)
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{config.name}"
    assert env["AWS_ENDPOINT_URL"] == aws_env["AWS_ENDPOINT_URL"]
    assert env["TZ"] == ":UTC" and env["GREETING"] == "hi"
    assert env["AWS_LAMBDA_REQUEST_ID"] == good["request_id"]
    path = env["PYTHONPATH"].split(":")
    assert path[0] == str(task_root)
    assert path[1].endswith("/python/lib/python3.12/site-packages")
    assert path[2].endswith("/python") and Path(path[2], "README").is_file()
    assert "ACCESS_KEY" not in " ".join(env)  # the role's credentials stay with the supervisor

    log = Path(good["log"]).read_text()
    assert log.startswith(f"START RequestId: {good['request_id']} Version: $LATEST\n")
    assert "processed good one.txt in " + config.name in log
    assert f"END RequestId: {good['request_id']}" in log and "REPORT RequestId" in log
    assert not (local.work_root / "run").exists() or not any((local.work_root / "run").iterdir())


def test_the_event_source_sends_one_s3_event_per_new_object_version(
        aws_env: dict[str, str], s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn-csv"
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{
            "Id": "supervisor-fn-csv", "LambdaFunctionArn": arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"},
                                               {"Name": "suffix", "Value": ".csv"}]}}}]})

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict[str, Any], str]] = []

        def invoke(self, function: str, event: Any, invocation_type: Any = "Event", *,
                   request_id: Optional[str] = None) -> None:
            self.calls.append((function, event, invocation_type))

    s3.put_object(Bucket=bucket, Key="in/before.csv", Body=b"1")
    recorder = Recorder()
    source = EventSource(ClientFactory(), recorder, interval=0.05)
    source.refresh()
    versions = [s3.put_object(Bucket=bucket, Key="in/a b.csv", Body=body)["VersionId"]
                for body in (b"first", b"second")]
    s3.put_object(Bucket=bucket, Key="in/skip.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="out/x.csv", Body=b"x")
    source.start()
    try:
        deadline = time.monotonic() + 10
        while source.dispatched < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        source.stop()
    assert not source.pending() and source.poll_once() == 0

    assert [(f, t) for f, _, t in recorder.calls] == [("fn-csv", "Event")] * 2
    records = [event["Records"] for _, event, _ in recorder.calls]
    assert all(len(r) == 1 for r in records)
    objects = [r[0]["s3"]["object"] for r in records]
    assert [o["key"] for o in objects] == ["in/a+b.csv", "in/a+b.csv"]
    assert [o["versionId"] for o in objects] == versions
    assert objects[0]["sequencer"] < objects[1]["sequencer"]
    first = records[0][0]
    assert (first["eventVersion"], first["eventName"]) == ("2.1", "ObjectCreated:Put")
    assert first["s3"]["configurationId"] == "supervisor-fn-csv"
    assert first["s3"]["bucket"]["name"] == bucket
    [parsed] = parse(recorder.calls[0][1])
    assert (parsed.bucket, parsed.key, parsed.size) == (bucket, "in/a b.csv", 5)


# --- timeouts, retries, concurrency -----------------------------------------------------


def test_a_handler_past_its_timeout_is_killed_hard_and_retried(
        local: Local, bucket: str, tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    config = local.deploy(STUBBORN_SCRIPT, bucket=bucket, threshold=0,
                          variables={"PID_DIR": str(pid_dir)})
    done: list[Invocation] = []
    executor = local.executor(timeout_override=1.5, max_retries=2, on_done=done.append)
    event = local.put(bucket, "input/slow.txt")

    last = executor.invoke(config.name, event, "Event").result(timeout=40)

    assert (last.status, last.attempt, last.will_retry) == ("timed-out", 3, False)
    assert last.error == "Task timed out after 1.50 seconds"
    assert [(i.attempt, i.status, i.will_retry) for i in done] == [
        (1, "timed-out", True), (2, "timed-out", True), (3, "timed-out", False)]
    entry = local.invocations()[last.request_id]
    assert [a["status"] for a in entry["attempts"]] == ["timed-out"] * 3
    assert entry["status"] == "timed-out" and entry["max_attempts"] == 3
    pids = sorted(int(p.read_text()) for p in pid_dir.iterdir())
    assert len(pids) == 3
    assert all(process_gone(pid) for pid in pids)  # the script's sleep died with the sandbox
    assert last.log_path is not None
    assert "Task timed out after 1.50 seconds" in last.log_path.read_text()
    assert _keys(local.s3, bucket, "output/") == []


def test_the_concurrency_limit_runs_invocations_one_at_a_time(
        local: Local, bucket: str) -> None:
    config = local.deploy(SHORT_SCRIPT, bucket=bucket)
    executor = local.executor(concurrency=1)
    futures = [executor.invoke(config.name, local.put(bucket, f"input/{i}.txt"))
               for i in range(3)]
    assert executor.busy()
    assert [f.result(timeout=30).status for f in futures] == ["succeeded"] * 3
    assert not executor.busy()
    spans = sorted((e["started"], e["ended"]) for e in local.invocations().values())
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))


def test_a_request_response_invocation_waits_and_is_never_retried(
        local: Local, bucket: str) -> None:
    config = local.deploy(SHORT_SCRIPT, bucket=bucket)
    lam = local.clients.client("lambda")
    lam.update_function_configuration(FunctionName=config.name, Handler="no_such.handler")
    executor = local.executor()
    result = executor.invoke(config.name, local.put(bucket, "input/x.txt"), "RequestResponse")
    assert (result.status, result.attempt) == ("failed", 1)
    assert result.error is not None
    assert result.error.startswith("Runtime.ImportModuleError: Unable to import module "
                                   "'no_such'")


def test_local_code_that_differs_from_the_deployed_code_is_a_clear_error(
        local: Local, bucket: str) -> None:
    config = local.deploy(SHORT_SCRIPT, bucket=bucket)
    other = dataclasses.replace(config, memory=config.memory * 2)
    executor = local.executor(code=lambda name: deployment_zip(other))
    with pytest.raises(LocalLambdaError, match=(
            rf"function {config.name}: the local code \(CodeSha256 \S+\) is not the code "
            r"that was deployed \(CodeSha256 \S+\)")):
        executor.invoke(config.name, local.put(bucket, "input/x.txt"))
    assert local.invocations() == {} and not executor.busy()


def test_the_lambda_environment_points_var_task_at_the_unpacked_code(tmp_path: Path) -> None:
    sandbox = Sandbox(
        name="fn", arn="arn:aws:lambda:eu-west-1:123456789012:function:fn", region="eu-west-1",
        handler=HANDLER, runtime="python3.12", memory=256, timeout=2.5,
        variables={"FUNCTION_CONFIG_PATH": "/var/task/function_config.yaml",
                   "OTHER": "/var/task/kept", "AWS_REGION": "ignored", "PATH": "/custom"},
        task_root=tmp_path / "code", opt_dir=tmp_path / "opt", code_sha256="x")
    env = lambda_environment(sandbox, log_stream="s", endpoint_env={"AWS_ENDPOINT_URL": "u"},
                             tmp_dir=tmp_path / "tmp", python="/venv/bin/python",
                             host_path="/usr/bin", runtime_dir=tmp_path / "rt")
    assert env["FUNCTION_CONFIG_PATH"] == str(tmp_path / "code" / "function_config.yaml")
    assert env["OTHER"] == "/var/task/kept"
    assert env["PATH"] == "/custom"  # a function may set PATH, as on Lambda
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1", "eu-west-1")
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "2.5" and env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["PYTHONPATH"].split(":") == [
        str(tmp_path / "code"), str(tmp_path / "opt/python/lib/python3.12/site-packages"),
        str(tmp_path / "opt/python")]
    assert env["AWS_ENDPOINT_URL"] == "u" and env["LAMBDA_RUNTIME_DIR"] == str(tmp_path / "rt")
