"""The ``supervisor`` command against the moto server over HTTP, run in-process.

``main([...])`` gets ``--endpoint-url`` and a session factory whose clients
record every operation and its parameters, so a test can count calls (a
dry run makes none) and see the exact request ``invoke`` sent.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import make_batch_queue

from supervisor.cli import build_parser, main

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
READ_ONLY = ("Describe", "Get", "List", "Head")


def _client(service: str, endpoint: str, region: str = "us-east-1") -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


class Recorder:
    """A session factory for ``main`` whose clients record each call and its parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, profile: Optional[str], region: Optional[str]) -> Any:
        import boto3.session

        session = boto3.session.Session(profile_name=profile, region_name=region)
        session.events.register("before-parameter-build.*.*", self._record)
        return session

    def _record(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((event_name.rsplit(".", 1)[-1], dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def mutating(self) -> list[str]:
        return [n for n in self.names() if not n.startswith(READ_ONLY)]


class Cli:
    """Runs ``supervisor`` in this process against the moto server; returns code, out, err."""

    def __init__(self, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.endpoint = endpoint
        self.capsys = capsys
        self.recorder = Recorder()

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--endpoint-url", self.endpoint, "--region", "us-east-1"],
                    session_factory=self.recorder)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(aws_env["AWS_ENDPOINT_URL"], capsys)


@pytest.fixture(scope="module")
def roles(moto_endpoint: str) -> dict[str, str]:
    """The Lambda execution role and the default Batch roles the plants example names."""
    iam = _client("iam", moto_endpoint)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": ["lambda.amazonaws.com", "batch.amazonaws.com",
                                  "ec2.amazonaws.com"]}}]})
    role = iam.create_role(RoleName=f"cli-lambda-{uuid.uuid4().hex[:8]}",
                           AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    for name, path in (("AWSBatchServiceRole", "/service-role/"), ("ecsInstanceRole", "/")):
        try:
            iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=trust)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
    try:
        iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
        iam.add_role_to_instance_profile(InstanceProfileName="ecsInstanceRole",
                                         RoleName="ecsInstanceRole")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    return {"lambda": role}


@pytest.fixture
def artifacts(tmp_path: Path) -> list[str]:
    """``--layer-zip`` and ``--pyz`` options naming tiny fake artifacts."""
    layer = tmp_path / "supervisor-layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/supervisor/__init__.py", "# fake layer\n")
    pyz = tmp_path / "supervisor-batch.pyz"
    pyz.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return ["--layer-zip", str(layer), "--pyz", str(pyz)]


def example_scar_cfg(folder: Path, role: str, network: dict[str, str]) -> Path:
    """examples/scar.cfg with this test's role, subnet and group, in ``folder``."""
    text = ((EXAMPLES / "scar.cfg").read_text()
            .replace("arn:aws:iam::123456789012:role/supervisor-lambda", role)
            .replace("subnet-0123456789abcdef0", network["subnet"])
            .replace("sg-0123456789abcdef0", network["security_group"]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scar.cfg").write_text(text)
    return folder / "scar.cfg"


@pytest.fixture
def plants(tmp_path: Path, batch_network: dict[str, str], roles: dict[str, str],
           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A copy of the plants example with this test's names; its account values (role,
    subnet, group) in a scar.cfg, as SCAR users keep them."""
    suffix = uuid.uuid4().hex[:8]
    name = f"scar-plants-{suffix}"
    text = (EXAMPLES / "plants" / "function.yaml").read_text().replace("scar-plants", name)
    assert "arn:aws:iam" not in text and "subnet-" not in text  # no account values in it
    monkeypatch.setenv("SCAR_CONFIG_FOLDER", str(
        example_scar_cfg(tmp_path / "scar", roles["lambda"], batch_network).parent))
    fdl = tmp_path / "function.yaml"
    fdl.write_text(text)
    shutil.copy(EXAMPLES / "plants" / "bootstrap-plants.sh", tmp_path)
    return fdl, name


def _nothing_left(endpoint: str, name: str, template: str) -> None:
    s3 = _client("s3", endpoint)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    lam = _client("lambda", endpoint)
    assert name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    batch = _client("batch", endpoint)
    assert [e for e in batch.describe_compute_environments(
        computeEnvironments=[name])["computeEnvironments"] if e.get("status") != "DELETED"] == []
    assert [q for q in batch.describe_job_queues(jobQueues=[name])["jobQueues"]
            if q.get("status") != "DELETED"] == []
    assert batch.describe_job_definitions(jobDefinitionName=name,
                                          status="ACTIVE")["jobDefinitions"] == []
    ec2 = _client("ec2", endpoint)
    assert template not in [t["LaunchTemplateName"]
                            for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    logs = _client("logs", endpoint)
    assert logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"] == []


# --- deploy / rm ------------------------------------------------------------------------


def test_deploy_then_rm_leaves_nothing_behind(cli: Cli, plants: tuple[Path, str],
                                              artifacts: list[str]) -> None:
    fdl, name = plants
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    assert "RESOURCE" in out and "lambda-function" in out and "batch-job-queue" in out
    assert f"deploying {name} (batch)" in err
    lam = _client("lambda", cli.endpoint)
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name

    code, out, err = cli("rm", "-f", str(fdl), "--json")
    assert code == 0, err
    [removed] = json.loads(out)
    actions = {o["resource"]: o["action"] for o in removed["outcomes"]}
    assert "kept" not in actions.values()
    assert actions["lambda-function"] == actions["s3-bucket"] == "deleted"
    _nothing_left(cli.endpoint, name, f"faas-supervisor-{name}")

    code, out, _ = cli("rm", "-f", str(fdl), "--json")  # twice is harmless
    assert code == 0
    assert {o["action"] for o in json.loads(out)[0]["outcomes"]} == {"unchanged"}


def test_deploy_dry_run_makes_no_call_at_all(cli: Cli, plants: tuple[Path, str],
                                             artifacts: list[str]) -> None:
    fdl, name = plants
    code, out, err = cli("deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code == 0, err
    assert cli.recorder.calls == []
    assert f"{name}: dry run in us-east-1, nothing was called" in out
    assert "batch-compute-environment" in out

    code, out, _ = cli("--json", "deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code == 0 and cli.recorder.calls == []
    [plan] = json.loads(out)
    assert plan["dry_run"] and plan["account_id"] == "<account-id>" and plan["outcomes"] == []
    assert [r["resource"] for r in plan["plan"]][:3] == ["s3-bucket", "lambda-layer",
                                                         "lambda-function"]
    _nothing_left(cli.endpoint, name, f"faas-supervisor-{name}")


def test_the_mrbayes_example_deploys_as_it_is_with_a_scar_cfg(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str],
        batch_network: dict[str, str]) -> None:
    """SCAR's older form as the example writes it; its role from a scar.cfg (--config)."""
    suffix = uuid.uuid4().hex[:8]
    text = (EXAMPLES / "mrbayes" / "function.yaml").read_text()
    assert "arn:aws:iam" not in text
    fdl = tmp_path / "function.yaml"
    fdl.write_text(text.replace("scar-mrbayes", f"scar-mrbayes-{suffix}"))
    shutil.copy(EXAMPLES / "mrbayes" / "run-mrbayes.sh", tmp_path)
    cfg = example_scar_cfg(tmp_path / "scar", roles["lambda"], batch_network)
    code, out, err = cli("deploy", "-f", str(fdl), "--config", str(cfg), *artifacts)
    assert code == 0, err
    name = f"scar-mrbayes-{suffix}"
    config = _client("lambda", cli.endpoint).get_function_configuration(FunctionName=name)
    assert config["Role"] == roles["lambda"]
    notifications = _client("s3", cli.endpoint).get_bucket_notification_configuration(
        Bucket=name)["LambdaFunctionConfigurations"]
    assert [n["Filter"]["Key"]["FilterRules"][0]["Value"] for n in notifications] == [
        f"{name}/input/"]  # SCAR's per-function folder of a bare input_bucket
    assert cli("rm", "-f", str(fdl), "--config", str(cfg))[0] == 0


def test_deploy_of_a_missing_role_fails_in_one_line_and_creates_nothing(
        cli: Cli, plants: tuple[Path, str], artifacts: list[str]) -> None:
    fdl, name = plants
    cfg = Path(os.environ["SCAR_CONFIG_FOLDER"]) / "scar.cfg"
    settings = json.loads(cfg.read_text())
    settings["aws"]["iam"]["role"] = "arn:aws:iam::123456789012:role/no-such-role"
    cfg.write_text(json.dumps(settings))
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 1 and out == ""
    [line] = [x for x in err.splitlines() if x.startswith("supervisor:")]
    assert "no-such-role does not exist" in line
    assert cli.recorder.mutating() == []


# --- put / ls ---------------------------------------------------------------------------


def test_put_of_a_folder_uploads_every_file_and_ls_lists_them(cli: Cli, bucket: str, s3: Any,
                                                              tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(b"a" * 10)
    (photos / "sub" / "b c.jpg").write_bytes(b"b" * 2000)
    single = tmp_path / "daisy.jpg"
    single.write_bytes(b"daisy")
    code, out, err = cli("put", "-b", f"{bucket}/input", str(photos), str(single))
    assert code == 0, err
    expected = ["input/a.jpg", "input/sub/b c.jpg", "input/daisy.jpg"]
    assert out.splitlines() == [f"s3://{bucket}/{k}" for k in expected]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(expected)
    assert s3.get_object(Bucket=bucket, Key="input/sub/b c.jpg")["Body"].read() == b"b" * 2000
    assert "[" not in err  # no progress bar when stderr is not a terminal

    s3.put_object(Bucket=bucket, Key="inputs-elsewhere.txt", Body=b"x")
    code, out, _ = cli("ls", "-b", f"{bucket}/input")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["KEY", "SIZE"]
    assert [line.split("  ")[0] for line in lines[1:4]] == sorted(expected)
    assert "2.0 KB" in out and lines[-1] == "3 objects, 2.0 KB"
    code, out, _ = cli("ls", "-b", f"s3://{bucket}/input/", "--json")
    assert {o["key"]: o["size"] for o in json.loads(out)} == {
        "input/a.jpg": 10, "input/sub/b c.jpg": 2000, "input/daisy.jpg": 5}


def test_an_aws_error_is_one_line_and_exit_1(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("ls", "-b", f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("supervisor: ") and "NoSuchBucket" in err


# --- invoke ---------------------------------------------------------------------------


@pytest.fixture
def function(aws_env: dict[str, str], roles: dict[str, str]) -> str:
    """A Lambda function in moto (moto cannot run its code here: no Docker)."""
    import io

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    name = f"cli-fn-{uuid.uuid4().hex[:8]}"
    _client("lambda", aws_env["AWS_ENDPOINT_URL"]).create_function(
        FunctionName=name, Runtime="python3.12", Role=roles["lambda"],
        Handler="handler.handler", Code={"ZipFile": code.getvalue()})
    return name


def test_get_downloads_a_folder_as_put_uploaded_it_and_one_object(
        cli: Cli, bucket: str, s3: Any, tmp_path: Path) -> None:
    for key, body in (("output/a.txt", b"a"), ("output/deep/b.txt", b"bb"),
                      ("output/", b""), ("other/c.txt", b"c")):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    target = tmp_path / "results"
    code, out, err = cli("get", "-b", f"{bucket}/output", "-p", str(target))
    assert code == 0, err
    assert out.splitlines() == [str(target / "a.txt"), str(target / "deep" / "b.txt")]
    assert (target / "a.txt").read_bytes() == b"a"
    assert (target / "deep" / "b.txt").read_bytes() == b"bb"
    assert sorted(p.name for p in target.rglob("*")) == ["a.txt", "b.txt", "deep"]

    code, out, err = cli("get", "-b", f"s3://{bucket}/other/c.txt", "-p", str(tmp_path),
                         "--json")
    assert code == 0, err
    assert json.loads(out) == [{"uri": f"s3://{bucket}/other/c.txt",
                                "path": str(tmp_path / "c.txt"), "size": 1}]
    code, out, err = cli("get", "-b", f"{bucket}/nothing", "-p", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == f"supervisor: nothing to download: no objects under s3://{bucket}/nothing/\n"


def test_get_refuses_a_key_that_would_leave_the_folder(cli: Cli, bucket: str, s3: Any,
                                                       tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="output/ok.txt", Body=b"1")
    s3.put_object(Bucket=bucket, Key="output/../escape.txt", Body=b"2")
    code, _, err = cli("get", "-b", f"{bucket}/output", "-p", str(tmp_path / "in"))
    assert code == 1 and "output/../escape.txt would not be a file under" in err
    assert not (tmp_path / "in").exists() and not (tmp_path / "escape.txt").exists()


def test_ls_without_a_bucket_lists_the_functions_deploy_made(
        cli: Cli, function: str, roles: dict[str, str]) -> None:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("function_config.yaml", "{}\n")
    name = f"cli-sup-{uuid.uuid4().hex[:8]}"
    _client("lambda", cli.endpoint).create_function(
        FunctionName=name, Runtime="python3.12", Role=roles["lambda"], MemorySize=512,
        Timeout=60, Handler="supervisor.handler.lambda_handler",
        Description="supervisor: busybox", Code={"ZipFile": code.getvalue()})
    code_, out, err = cli("ls", "--json")
    assert code_ == 0, err
    listed = {f["name"]: f for f in json.loads(out)}
    assert function not in listed  # not the supervisor's
    assert (listed[name]["memory"], listed[name]["timeout"], listed[name]["description"]) == (
        512, 60, "supervisor: busybox")
    code_, out, _ = cli("ls")
    assert out.splitlines()[0].split()[:3] == ["NAME", "MEMORY", "(MB)"]
    assert any(line.split()[:3] == [name, "512", "60"] for line in out.splitlines())


def test_invoke_sends_the_s3_event_of_the_object(cli: Cli, function: str, bucket: str,
                                                 s3: Any) -> None:
    key = "input/my photo.jpg"
    s3.put_object(Bucket=bucket, Key=key, Body=b"12345")
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    code, out, err = cli("invoke", "-n", function, "-b", bucket, "-k", key)
    [(_, params)] = [c for c in cli.recorder.calls if c[0] == "Invoke"]
    assert (params["FunctionName"], params["InvocationType"], params["LogType"]) == (
        function, "RequestResponse", "Tail")
    [record] = json.loads(params["Payload"])["Records"]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["key"] == "input/my+photo.jpg"
    assert (record["s3"]["object"]["size"], record["s3"]["object"]["eTag"]) == (5, etag)
    # moto cannot run the function's code without Docker: whatever it answers is shown,
    # and a function error is one line and exit 1
    if code:
        assert err.splitlines()[-1].startswith("supervisor: the function failed")
    assert out

    code, out, err = cli("invoke", "-n", function, "-b", bucket, "-k", key, "--async",
                         "--json")
    assert code == 0, err
    [_, (_, params)] = [c for c in cli.recorder.calls if c[0] == "Invoke"]
    assert params["InvocationType"] == "Event"
    answer = json.loads(out)
    assert (answer["status_code"], answer["object"]) == (202, f"s3://{bucket}/{key}")


def test_invoke_of_a_missing_object_says_so(cli: Cli, function: str, bucket: str) -> None:
    code, out, err = cli("invoke", "-n", function, "-b", bucket, "-k", "input/nothing.jpg")
    assert (code, out) == (1, "")
    assert err == f"supervisor: s3://{bucket}/input/nothing.jpg: no such object\n"
    assert "Invoke" not in cli.recorder.names()


# --- status / logs ------------------------------------------------------------------------


def _put_events(logs: Any, group: str, stream: str, messages: list[str]) -> None:
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


@pytest.fixture
def queue(aws_env: dict[str, str], batch_network: dict[str, str]) -> str:
    """A Batch queue (and job definition) named like a function that has no Lambda."""
    name = f"cli-jobs-{uuid.uuid4().hex[:8]}"
    make_batch_queue(_client("batch", aws_env["AWS_ENDPOINT_URL"]), batch_network, name)
    return name


def test_status_shows_invocations_and_jobs_by_state(cli: Cli, queue: str) -> None:
    batch = _client("batch", cli.endpoint)
    ids = [batch.submit_job(jobName=f"job-{i}", jobQueue=queue, jobDefinition=queue)["jobId"]
           for i in range(2)]
    _put_events(_client("logs", cli.endpoint), f"/aws/lambda/{queue}", "2024/05/01/[$LATEST]a", [
        "START RequestId: req-1 Version: $LATEST", "working",
        "END RequestId: req-1",
        "REPORT RequestId: req-1\tDuration: 1234.5 ms\tBilled Duration: 1235 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 88 MB"])

    code, out, err = cli("status", "-n", queue, "--json")
    assert code == 0, err
    view = json.loads(out)
    assert view["function"] is None and view["queue"] == queue
    counts = view["jobs"]["counts"]
    assert list(counts) == ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING",
                            "SUCCEEDED", "FAILED"]
    assert sum(counts.values()) == 2  # moto finishes jobs at once without Docker
    assert sorted(j["job_id"] for j in view["jobs"]["latest"]) == sorted(ids)
    [invocation] = view["invocations"]
    assert (invocation["request_id"], invocation["duration_ms"], invocation["status"]) == (
        "req-1", 1234.5, "done")

    code, out, _ = cli("status", "-n", queue)
    assert code == 0
    assert f"function {queue}: not found" in out
    assert "req-1" in out and "1.23 s" in out and "88 MB" in out
    assert f"Batch jobs on queue {queue}:" in out
    header, values = out.split(f"Batch jobs on queue {queue}:\n")[1].splitlines()[:2]
    assert header.split() == list(counts)
    assert [int(v) for v in values.split()] == list(counts.values())


def test_status_of_nothing_is_an_error(cli: Cli) -> None:
    code, out, err = cli("status", "-n", f"nothing-{uuid.uuid4().hex[:8]}")
    assert (code, out) == (1, "")
    assert err.startswith("supervisor: no function, log group or job queue named")


def _lines(out: str) -> list[str]:
    """Titles as they are, log lines without their time."""
    return [line if line.startswith("==") else line.split("  ", 1)[1]
            for line in out.splitlines()]


def test_logs_prints_a_job_stream_and_one_request(cli: Cli, queue: str) -> None:
    batch = _client("batch", cli.endpoint)
    job_id = batch.submit_job(jobName="job", jobQueue=queue, jobDefinition=queue)["jobId"]
    stream = batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["logStreamName"]
    logs = _client("logs", cli.endpoint)

    code, out, err = cli("logs", "-n", queue, "--job-id", job_id)
    assert (code, out) == (1, "")
    assert err == (f"supervisor: job {job_id} is SUCCEEDED; its log stream {stream} is not "
                   "in /aws/batch/job (yet)\n")

    _put_events(logs, "/aws/batch/job", stream, ["stage-in done", "script exit 0"])
    code, out, err = cli("logs", "-n", queue, "--job-id", job_id)
    assert code == 0, err
    assert _lines(out) == [f"== batch job job {job_id[:8]}, attempt 1: SUCCEEDED ==",
                           "stage-in done", "script exit 0"]

    group = f"/aws/lambda/{queue}"
    _put_events(logs, group, "s1", [
        "START RequestId: r-1 Version: $LATEST", "one", "END RequestId: r-1",
        "REPORT RequestId: r-1\tDuration: 1 ms",
        "START RequestId: r-2 Version: $LATEST", "two", "END RequestId: r-2",
        "REPORT RequestId: r-2\tDuration: 2 ms"])
    code, out, _ = cli("logs", "-n", queue, "--request-id", "r-2", "--json")
    assert code == 0
    assert [e["message"] for e in json.loads(out)] == [
        "START RequestId: r-2 Version: $LATEST", "two", "END RequestId: r-2",
        "REPORT RequestId: r-2\tDuration: 2 ms"]
    code, out, _ = cli("logs", "-n", queue, "--limit", "3")
    assert _lines(out) == [f"== lambda {queue}: the newest lines of {group} ==",
                           "two", "END RequestId: r-2", "REPORT RequestId: r-2\tDuration: 2 ms"]
    code, _, err = cli("logs", "-n", queue, "--job-id", "no-such-job")
    assert (code, err) == (1, "supervisor: no Batch job no-such-job (nor one on queue "
                              f"{queue} whose id starts so)\n")


def _record(message: str, request_id: str, **fields: Any) -> str:
    """A line as the Lambda side's logger writes it."""
    return json.dumps({"level": "INFO", "location": "run_job:90", "message": message,
                       "timestamp": "2024-05-01 12:00:03,667+0000", "service": "supervisor",
                       "request_id": request_id, **fields})


def test_logs_of_one_object_show_its_invocation_then_its_batch_job(cli: Cli,
                                                                  queue: str) -> None:
    batch = _client("batch", cli.endpoint)
    job_id = batch.submit_job(jobName="job", jobQueue=queue, jobDefinition=queue)["jobId"]
    stream = batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["logStreamName"]
    logs = _client("logs", cli.endpoint)
    rid, other = "8ee570a7-c445-44b7-aab4-b2bd691c572a", "0c0c0c0c-0000-4000-8000-00000000000c"
    obj = {"bucket": "demo", "key": "input/a.txt"}
    _put_events(logs, f"/aws/lambda/{queue}", "2024/05/01/[$LATEST]abc", [
        f"START RequestId: {other} Version: $LATEST",
        _record("stage-in done", other, bucket="demo", key="input/b.txt"),
        f"REPORT RequestId: {other}\tDuration: 1 ms",
        f"START RequestId: {rid} Version: $LATEST",
        _record("stage-in done", rid, bucket="demo", key="input/a.txt", bytes=99),
        _record("handed off to AWS Batch", rid, job_id=job_id, **obj),
        f"END RequestId: {rid}", f"REPORT RequestId: {rid}\tDuration: 3346.91 ms"])
    _put_events(logs, "/aws/batch/job", stream, [json.dumps({
        "time": "2024-05-01T12:00:08.317Z", "level": "INFO", "logger": "supervisor.script",
        "message": "counting on batch", "request_id": rid, "job_id": job_id, **obj})])

    code, out, err = cli("logs", "-n", queue, "--key", "input/a.txt")
    assert code == 0, err
    assert _lines(out) == [
        f"== lambda {queue} request 8ee570a7 ==",
        f"START RequestId: {rid} Version: $LATEST",
        "INFO    stage-in done  bytes=99",
        f"INFO    handed off to AWS Batch  job_id={job_id}",
        f"END RequestId: {rid}", f"REPORT RequestId: {rid}\tDuration: 3346.91 ms",
        f"== batch job job {job_id[:8]}, attempt 1: SUCCEEDED ==",
        "script  counting on batch"]

    code, short, err = cli("logs", "-n", queue, "--job-id", job_id[:8])  # a short id
    assert code == 0, err
    assert _lines(short)[-1] == "script  counting on batch"
    code, out, err = cli("logs", "-n", queue, "--request-id", rid[:8])
    assert code == 0, err
    assert _lines(out)[0] == f"== lambda {queue} request 8ee570a7 =="
    code, _, err = cli("logs", "-n", queue, "--key", "input/none.txt")
    assert code == 1 and err.startswith(f"supervisor: no log lines of {queue} name input/none")


def test_logs_follow_a_job_until_it_has_ended(cli: Cli, queue: str) -> None:
    from supervisor.cli.context import Context
    from supervisor.cli.logs import run_logs

    batch = _client("batch", cli.endpoint)
    job_id = batch.submit_job(jobName="job", jobQueue=queue, jobDefinition=queue)["jobId"]
    stream = batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["logStreamName"]
    logs = _client("logs", cli.endpoint)
    _put_events(logs, "/aws/batch/job", stream, ["first"])
    out = io.StringIO()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the job has ended: one more read after a pause
        sleeps.append(seconds)
        logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=[
            {"timestamp": int(time.time() * 1000) + 10, "message": "last"}])

    ctx = Context(stdout=out, stderr=io.StringIO(), endpoint_url=cli.endpoint,
                  region="us-east-1", session_factory=cli.recorder)
    args = build_parser().parse_args(["logs", "-n", queue, "--job-id", job_id[:8],
                                      "--follow"])
    assert run_logs(args, ctx, sleep=sleep) == 0
    assert len(sleeps) == 1
    assert _lines(out.getvalue()) == [f"== batch job job {job_id[:8]}, attempt 1: SUCCEEDED ==",
                                      "first", "last"]


SCAR_SHAPED_FDL = """\
functions:
  aws:
  - lambda:
      name: {name}
      execution_mode: batch
      init_script: job.sh
      container:
        image: grycap/cowsay
      input:
      - storage_provider: s3
        path: {name}/input
      output:
      - storage_provider: s3
        path: {name}/output
    batch:
      compute_resources:
        launch_template_name: lt-{suffix}
"""


def scar_cfg(role: str, subnet: str, group: str) -> dict[str, Any]:
    """~/.scar/scar.cfg as SCAR writes it (JSON), account values filled in."""
    return {"scar": {"config_version": "1.0.9"}, "aws": {
        "iam": {"boto_profile": "default", "role": role},
        "lambda": {"boto_profile": "default", "region": "us-east-1", "execution_mode": "lambda",
                   "timeout": 300, "memory": 512, "runtime": "python3.7", "layers": [],
                   "invocation_type": "RequestResponse", "log_type": "Tail",
                   "environment": {"Variables": {"UDOCKER_DIR": "/tmp/shared/udocker"}},
                   "container": {"environment": {"Variables": {}}, "timeout_threshold": 10},
                   "supervisor": {"version": "1.2.0-rc4", "layer_name": "faas-supervisor"}},
        "cloudwatch": {"boto_profile": "default", "log_retention_policy_in_days": 30},
        "batch": {"vcpus": 1, "memory": 1024, "enable_gpu": False, "state": "ENABLED",
                  "type": "MANAGED", "environment": {"Variables": {}},
                  "compute_resources": {"security_group_ids": [group], "type": "EC2",
                                        "desired_v_cpus": 0, "min_v_cpus": 0, "max_v_cpus": 2,
                                        "subnets": [subnet], "instance_types": ["m3.medium"]},
                  "service_role": "arn:aws:iam::{account_id}:role/service-role/"
                                  "AWSBatchServiceRole"}}}


def test_scar_cfg_supplies_the_account_values_and_dry_run_says_which(
        cli: Cli, artifacts: list[str], tmp_path: Path, batch_network: dict[str, str],
        roles: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = uuid.uuid4().hex[:8]
    name = f"scar-cfg-{suffix}"
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(SCAR_SHAPED_FDL.format(name=name, suffix=suffix))
    (tmp_path / "job.sh").write_text("echo moo\n")
    home = tmp_path / "home"
    (home / ".scar").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SCAR_CONFIG_FOLDER", raising=False)

    code, _, err = cli("deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code != 0 and "iam.role" in err  # nothing to take it from yet

    cfg = home / ".scar" / "scar.cfg"
    cfg.write_text(json.dumps(scar_cfg(roles["lambda"], batch_network["subnet"],
                                       batch_network["security_group"]), indent=2))
    code, out, err = cli("deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code == 0, err
    taken = next(line for line in err.splitlines() if line.startswith(f"{name}: from {cfg}"))
    for key in ("iam.role", "batch.compute_resources.subnets",
                "batch.compute_resources.security_group_ids", "lambda.timeout"):
        assert key in taken
    assert "runtime" not in taken and "UDOCKER" not in taken  # SCAR's own plumbing stays
    assert "lambda.execution_mode" not in taken  # the definition's own value wins

    code, out, err = cli("--json", "deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    batch = _client("batch", cli.endpoint)
    (env,) = batch.describe_compute_environments(computeEnvironments=[name])[
        "computeEnvironments"]
    assert env["computeResources"]["subnets"] == [batch_network["subnet"]]
    assert cli("rm", "-f", str(fdl))[0] == 0

    other = tmp_path / "other.cfg"
    code, _, err = cli("deploy", "-f", str(fdl), "--dry-run", "--config", str(other),
                       *artifacts)
    assert code != 0 and f"--config {other}: no such file" in err


def test_a_function_with_its_own_region_lands_there(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str]) -> None:
    name = f"scar-region-{uuid.uuid4().hex[:8]}"
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(f"""\
functions:
  aws:
  - lambda:
      name: {name}
      region: eu-west-1
      boto_profile: default
      init_script: job.sh
      container: {{image: busybox, run_on_host: true}}
      input: [{{storage_provider: s3, path: {name}-in/input}}]
      output: [{{storage_provider: s3, path: {name}-in/output}}]
    iam: {{role: "{roles['lambda']}"}}
""")
    (tmp_path / "job.sh").write_text("echo hi\n")
    code, out, err = cli("deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code == 0, err
    assert f"{name}: dry run in eu-west-1" in out
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)  # --region us-east-1 given too
    assert code == 0, err
    assert _client("lambda", cli.endpoint, "eu-west-1").get_function(FunctionName=name)
    with pytest.raises(Exception, match="Function not found|ResourceNotFound"):
        _client("lambda", cli.endpoint).get_function(FunctionName=name)
    assert cli("rm", "-f", str(fdl))[0] == 0
    with pytest.raises(Exception, match="Function not found|ResourceNotFound"):
        _client("lambda", cli.endpoint, "eu-west-1").get_function(FunctionName=name)


def test_every_scar_key_deploy_does_not_act_on_is_reported_in_one_line(
        cli: Cli, artifacts: list[str], tmp_path: Path) -> None:
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text("""\
functions:
  oscar:
  - my-cluster: {name: on-oscar, script: s.sh}
  aws:
  - lambda:
      name: scar-keys
      init_script: job.sh
      run_script: run.sh
      architectures: [arm64]
      vpc: {SubnetIds: [subnet-1], SecurityGroupIds: [sg-1]}
      file_system: [{Arn: "arn:aws:elasticfilesystem:us-east-1:1:access-point/fsap-1",
                     LocalMountPath: /mnt/efs}]
      deployment: {bucket: my-deploy-bucket}
      container: {image: busybox, run_on_host: true}
      input: [{storage_provider: s3, path: keys/input}]
      output: [{storage_provider: s3, path: keys/output}]
    api_gateway: {name: keys-api}
    iam: {role: "arn:aws:iam::123456789012:role/x"}
storage_providers:
  onedata:
    space: {oneprovider_host: op.example, token: t, space: s}
""")
    (tmp_path / "job.sh").write_text("echo hi\n")
    code, out, err = cli("deploy", "-f", str(fdl), "--dry-run", *artifacts)
    assert code == 0, err
    notes = [line for line in err.splitlines() if ": ignored: " in line]
    for key in ("functions.oscar", "scar-keys.run_script",
                "scar-keys.storage_providers.onedata"):
        assert any(line.startswith(f"{key}: ignored: ") for line in notes), (key, notes)
    assert len(notes) == 3  # vpc, file_system, architectures, deployment, api_gateway: deployed


def one_function_fdl(folder: Path, name: str, role: str, lines: str = "", *,
                     siblings: str = "", script: str = "true\n") -> Path:
    """``folder/fdl.yaml``: one function in SCAR's list form, its script ``job.sh``
    (``script``), input ``NAME/input``; ``lines`` go into its ``lambda`` section and
    ``siblings`` beside it (each line as the section's own keys, unindented)."""
    def indented(text: str, by: int) -> str:
        return "".join(" " * by + line + "\n" for line in text.splitlines())

    fdl = folder / "fdl.yaml"
    fdl.write_text("functions:\n  aws:\n  - lambda:\n"
                   f"      name: {name}\n      init_script: job.sh\n"
                   + indented(lines, 6)
                   + f"      input: [{{storage_provider: s3, path: {name}/input}}]\n"
                   + indented(siblings, 4) + f'    iam: {{role: "{role}"}}\n')
    (folder / "job.sh").write_text(script)
    return fdl


def test_vpc_file_system_and_architectures_reach_the_function(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str],
        batch_network: dict[str, str]) -> None:
    name = f"scar-vpc-{uuid.uuid4().hex[:8]}"
    access_point = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123"
    vpc = (f"architectures: [arm64]\nvpc:\n  SubnetIds: [{batch_network['subnet']}]\n"
           f"  SecurityGroupIds: [{batch_network['security_group']}]")
    fdl = one_function_fdl(tmp_path, name, roles["lambda"], vpc, script="ls /mnt/efs\n")
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    assert ": ignored: " not in err
    config = _client("lambda", cli.endpoint).get_function_configuration(FunctionName=name)
    assert config["Architectures"] == ["arm64"]
    assert config["VpcConfig"]["SubnetIds"] == [batch_network["subnet"]]
    assert config["VpcConfig"]["SecurityGroupIds"] == [batch_network["security_group"]]
    before = len(cli.recorder.calls)
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)  # nothing changed
    assert code == 0, err
    assert [n for n, _ in cli.recorder.calls[before:] if not n.startswith(READ_ONLY)] == []

    # an EFS mount added later updates the configuration (moto keeps no FileSystemConfigs,
    # so the request is what is checked)
    one_function_fdl(tmp_path, name, roles["lambda"], vpc + f'\nfile_system: [{{Arn: '
                     f'"{access_point}", LocalMountPath: /mnt/efs}}]', script="ls /mnt/efs\n")
    before = len(cli.recorder.calls)
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    [update] = [p for n, p in cli.recorder.calls[before:] if n == "UpdateFunctionConfiguration"]
    assert update["FileSystemConfigs"] == [{"Arn": access_point, "LocalMountPath": "/mnt/efs"}]
    assert update["VpcConfig"]["SubnetIds"] == [batch_network["subnet"]]
    assert cli("rm", "-f", str(fdl))[0] == 0


def test_a_script_that_does_not_parse_is_refused_with_the_shells_own_words(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str]) -> None:
    fdl = one_function_fdl(tmp_path, f"broken-{uuid.uuid4().hex[:8]}", roles["lambda"],
                           script='if [ -f "$INPUT_FILE_PATH" ]; then\n  wc -c\n')
    for extra in (["--dry-run"], []):
        code, out, err = cli("deploy", "-f", str(fdl), *artifacts, *extra)
        assert code == 1, err
        [error] = [line for line in err.splitlines() if line.startswith("supervisor: ")]
        assert "init_script: job.sh does not parse as a shell script: job.sh: 3: " in error
        assert 'expecting "fi"' in error and str(tmp_path) not in error
    assert cli.recorder.mutating() == []


def test_deployment_bucket_carries_the_package_as_scar_sends_it(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str],
        s3: Any) -> None:
    name = f"scar-code-{uuid.uuid4().hex[:8]}"
    fdl = one_function_fdl(tmp_path, name, roles["lambda"],
                           f"deployment: {{bucket: {name}-code, max_payload_size: 52428800}}")
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    assert f"{name}.deployment.max_payload_size: ignored: " in err
    [(_, create)] = [c for c in cli.recorder.calls if c[0] == "CreateFunction"]
    assert create["Code"] == {"S3Bucket": f"{name}-code", "S3Key": f"supervisor-code/{name}.zip"}
    package = s3.get_object(Bucket=f"{name}-code", Key=f"supervisor-code/{name}.zip")["Body"]
    with zipfile.ZipFile(io.BytesIO(package.read())) as archive:
        assert archive.read("job.sh") == b"true\n"

    (tmp_path / "job.sh").write_text("echo changed\n")
    before = len(cli.recorder.calls)
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    [(_, update)] = [c for c in cli.recorder.calls[before:] if c[0] == "UpdateFunctionCode"]
    assert (update["S3Bucket"], update["S3Key"]) == (f"{name}-code",
                                                     f"supervisor-code/{name}.zip")
    code, out, err = cli("rm", "-f", str(fdl))
    assert code == 0, err
    assert f"{name}-code" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_api_gateway_makes_scars_rest_api_in_front_of_the_function(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str]) -> None:
    name = f"scar-api-{uuid.uuid4().hex[:8]}"
    fdl = one_function_fdl(tmp_path, name, roles["lambda"],
                           f"output: [{{storage_provider: s3, path: {name}/output}}]",
                           siblings=f"api_gateway: {{name: {name}-api}}",
                           script='wc -c "$INPUT_FILE_PATH"\n')
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)
    assert code == 0, err
    apigw = _client("apigateway", cli.endpoint)
    [api] = [a for a in apigw.get_rest_apis()["items"] if a["name"] == f"{name}-api"]
    assert api["tags"] == {"supervisor:function": name}
    assert f"https://{api['id']}.execute-api.us-east-1.amazonaws.com/scar/launch" in out
    [proxy] = [r for r in apigw.get_resources(restApiId=api["id"])["items"]
               if r["path"] == "/{proxy+}"]
    integration = apigw.get_integration(restApiId=api["id"], resourceId=proxy["id"],
                                        httpMethod="ANY")
    assert integration["type"] == "AWS_PROXY"
    assert integration["uri"].endswith(f":function:{name}/invocations")
    assert [s["stageName"] for s in apigw.get_stages(restApiId=api["id"])["item"]] == ["scar"]
    policy = json.loads(_client("lambda", cli.endpoint).get_policy(FunctionName=name)["Policy"])
    [grant] = [s for s in policy["Statement"] if s["Sid"] == "supervisor-apigateway"]
    assert grant["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert f":{api['id']}/*" in json.dumps(grant["Condition"])

    before = len(cli.recorder.calls)
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts)  # nothing changed
    assert code == 0, err
    assert [n for n, _ in cli.recorder.calls[before:] if not n.startswith(READ_ONLY)] == []

    # invoke --api: moto serves no execute-api host, so the request goes to the function
    # as API Gateway's AWS_PROXY event (moto cannot run the function's code: no Docker)
    before = len(cli.recorder.calls)
    code, out, err = cli("invoke", "-n", name, "--api", "--data", "hello", "--async", "--json")
    assert code == 0, err
    assert "no execute-api host at this endpoint" in err
    [(_, params)] = [c for c in cli.recorder.calls[before:] if c[0] == "Invoke"]
    assert params["FunctionName"].endswith(f":function:{name}")
    assert params["InvocationType"] == "Event"
    event = json.loads(params["Payload"])
    assert (event["httpMethod"], event["resource"], event["body"], event["isBase64Encoded"]) \
        == ("POST", "/{proxy+}", "hello", False)
    assert event["requestContext"]["apiId"] == api["id"]
    assert event["headers"]["X-Amz-Invocation-Type"] == "Event"
    # moto, in this process, may print its first Docker probe's warning before the answer
    answer = json.loads(out[out.index("{\n"):])
    assert answer["endpoint"].startswith(f"https://{api['id']}.execute-api.")

    code, out, err = cli("rm", "-f", str(fdl))
    assert code == 0, err
    assert [a for a in apigw.get_rest_apis()["items"]
            if a.get("tags", {}).get("supervisor:function") == name] == []
    code, out, err = cli("invoke", "-n", name, "--api", "--data", "hello")
    assert code == 1 and f"supervisor: {name}: no REST API was deployed for it" in err


@pytest.mark.parametrize("lines, problem", [
    ("vpc: {SubnetIds: [subnet-nope], SecurityGroupIds: [sg-nope]}", "vpc.SubnetIds: "),
    ("vpc: {SubnetIds: subnet-1}", "vpc: SubnetIds and SecurityGroupIds must each"),
    ('file_system: [{Arn: "arn:aws:elasticfilesystem:us-east-1:1:access-point/fsap-1", '
     "LocalMountPath: /mnt/efs}]", "file_system: an EFS mount needs the function in"),
    ("architectures: [sparc]", "architectures: ['sparc']; must be one of x86_64, arm64"),
    ("architectures: [arm64]\n      container: {image: busybox}",
     "architectures: arm64 cannot run container.image on Lambda"),
    ("api_gateway: {stage_name: prod}", "api_gateway.name: missing"),
    ("api_gateway: {name: api, authorizer: x}", "api_gateway: unknown keys authorizer"),
])
def test_bad_vpc_file_system_or_architectures_are_one_line_before_anything_is_made(
        cli: Cli, artifacts: list[str], tmp_path: Path, roles: dict[str, str],
        lines: str, problem: str) -> None:
    fdl = one_function_fdl(tmp_path, f"scar-bad-{uuid.uuid4().hex[:8]}", roles["lambda"],
                           lines.replace("\n      ", "\n"))
    udocker = tmp_path / "udocker-layer.zip"
    udocker.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    code, out, err = cli("deploy", "-f", str(fdl), *artifacts, "--udocker-layer-zip",
                         str(udocker))
    assert code == 1, err
    [error] = [line for line in err.splitlines() if line.startswith("supervisor: ")]
    assert problem in error, err
    assert cli.recorder.mutating() == []
