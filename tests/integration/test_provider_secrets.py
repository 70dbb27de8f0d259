"""Storage-provider keys kept in Secrets Manager and Parameter Store, against the moto server:
read by the Lambda handler and by the Batch job, never in the hand-off, the job or the zip."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import textwrap
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional

import boto3
import pytest
from conftest import make_batch_queue, put

from supervisor.aws import ClientFactory
from supervisor.batch_entry import EX_CONFIG, main
from supervisor.handler import handle
from supervisor.handoff import HANDOFF_ENV, parse_s3_uri
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of

pytestmark = pytest.mark.integration

COPY_SCRIPT = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n'


def _client(service: str, aws_env: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                        region_name="us-east-1")


class Keys:
    """Provider keys stored in the moto server: a JSON secret and a SecureString parameter."""

    def __init__(self, aws_env: dict[str, str]) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.access_key = f"AKIDLAB{suffix.upper()}"
        self.secret_key = f"lab-secret-{suffix}"
        self.secret_name = f"lab-minio-{suffix}"
        self.parameter = f"/lab/{suffix}/secret-key"
        secrets = _client("secretsmanager", aws_env)
        self.secret_arn = secrets.create_secret(
            Name=self.secret_name, SecretString=json.dumps(
                {"access_key": self.access_key, "secret_key": self.secret_key}))["ARN"]
        ssm = _client("ssm", aws_env)
        ssm.put_parameter(Name=self.parameter, Value=self.secret_key, Type="SecureString")
        self.parameter_arn = ssm.get_parameter(Name=self.parameter)["Parameter"]["ARN"]

    def values(self) -> tuple[str, str]:
        return self.access_key, self.secret_key

    def provider_yaml(self, endpoint: str, *, secret_name: Optional[str] = None,
                      parameter_arn: Optional[str] = None) -> str:
        """``storage_providers.minio.lab``: the access key from the secret's JSON, the secret
        key from the parameter (by its ARN, as ECS's valueFrom names it)."""
        return textwrap.dedent(f"""\
            storage_providers:
              minio:
                lab:
                  endpoint: {endpoint}
                  region: us-east-1
                  access_key: {{secretsmanager: {secret_name or self.secret_name}, key: access_key}}
                  secret_key: {parameter_arn or self.parameter_arn}
            """)


class Signed:
    """A boto3 session whose S3 requests are noted with the access key id that signed them."""

    def __init__(self) -> None:
        self.session = boto3.session.Session()
        self.requests: list[tuple[str, str, str]] = []  # (method, access key id, url)
        self.session.events.register("before-send.s3", self._note)

    def _note(self, request: Any, **_: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else str(auth)
        match = re.search(r"Credential=([^/]+)/", auth)
        self.requests.append((request.method, match.group(1) if match else "", request.url))

    def keys_used(self, bucket: str, prefix: str) -> set[tuple[str, str]]:
        return {(method, key) for method, key, url in self.requests
                if f"/{bucket}/{prefix}" in url}


@pytest.fixture
def keys(aws_env: dict[str, str]) -> Keys:
    return Keys(aws_env)


def function_yaml(name: str, bucket: str, script: Path, *, mode: str = "lambda",
                  input_provider: str = "s3") -> str:
    return textwrap.dedent(f"""\
        name: {name}
        execution_mode: {mode}
        timeout: 60
        init_script: {script}
        container: {{image: busybox, run_on_host: true, timeout_threshold: 2}}
        input:
        - {{storage_provider: {input_provider}, path: {bucket}/input}}
        output:
        - {{storage_provider: minio.lab, path: {bucket}/output}}
        handoff: {{bucket: {bucket}}}
        """)


def invoke(event: dict[str, Any], config_yaml: str, aws_env: dict[str, str], tmp_path: Path,
           clients: ClientFactory, name: str = "fn-secrets") -> dict[str, Any]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    environ = dict(aws_env, PATH=os.environ["PATH"], SUPERVISOR_WORK_DIR=str(work),
                   FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
    response = handle(event, LocalContext(function_name=name, timeout=60), environ=environ,
                      clients=clients)
    return response


def write_script(tmp_path: Path, text: str = COPY_SCRIPT) -> Path:
    path = tmp_path / "script.sh"
    path.write_text(text)
    return path


def test_a_minio_provider_whose_keys_are_references_is_read_and_written_with_them(
        s3: Any, bucket: str, keys: Keys, aws_env: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = function_yaml("fn-secrets", bucket, write_script(tmp_path),
                           input_provider="minio.lab")
    config += keys.provider_yaml(aws_env["AWS_ENDPOINT_URL"])
    signed = Signed()
    response = invoke(event_of(put(s3, bucket, "input/a.txt", b"via the lab store")), config,
                      aws_env, tmp_path, ClientFactory(session=signed.session))

    body = json.loads(response["body"])
    assert body["records"][0]["status"] == "completed", body
    assert s3.get_object(Bucket=bucket, Key="output/copy.txt")["Body"].read() == \
        b"via the lab store"
    assert signed.keys_used(bucket, "input/a.txt") == {("GET", keys.access_key)}
    assert signed.keys_used(bucket, "output/copy.txt") == {("PUT", keys.access_key)}
    logged = capsys.readouterr()
    for value in keys.values():
        assert value not in response["body"]
        assert value not in logged.out and value not in logged.err


def test_warm_invocations_read_the_keys_once(s3: Any, bucket: str, keys: Keys,
                                             aws_env: dict[str, str], tmp_path: Path) -> None:
    config = function_yaml("fn-secrets", bucket, write_script(tmp_path))
    config += keys.provider_yaml(aws_env["AWS_ENDPOINT_URL"])
    reads: list[str] = []
    signed = Signed()
    signed.session.events.register("before-call.secrets-manager.GetSecretValue",
                                   lambda **_: reads.append("secretsmanager"))
    signed.session.events.register("before-call.ssm.GetParameter",
                                   lambda **_: reads.append("ssm"))
    clients = ClientFactory(session=signed.session)  # one per process, as in Lambda
    for key in ("input/one.txt", "input/two.txt"):
        response = invoke(event_of(put(s3, bucket, key, b"x")), config, aws_env, tmp_path,
                          clients)
        assert json.loads(response["body"])["records"][0]["status"] == "completed"
    assert reads == ["secretsmanager", "ssm"]


def test_an_unreadable_reference_fails_the_record_in_one_line_naming_it(
        s3: Any, bucket: str, keys: Keys, aws_env: dict[str, str], tmp_path: Path) -> None:
    config = function_yaml("fn-secrets", bucket, write_script(tmp_path))
    config += keys.provider_yaml(aws_env["AWS_ENDPOINT_URL"], secret_name="no-such-secret")
    response = invoke(event_of(put(s3, bucket, "input/a.txt", b"x")), config, aws_env,
                      tmp_path, ClientFactory())

    (record,) = json.loads(response["body"])["records"]
    assert record["status"] == "failed" and record["uploaded"] == []
    assert record["error"].startswith(
        "storage_providers.minio.lab.access_key: cannot read Secrets Manager secret "
        "'no-such-secret' key 'access_key': ")
    assert "ResourceNotFoundException" in record["error"] and "\n" not in record["error"]
    assert "output/copy.txt" not in str(s3.list_objects_v2(Bucket=bucket, Prefix="output/"))


def test_a_hand_off_carries_the_references_and_the_batch_job_reads_the_keys_itself(
        s3: Any, bucket: str, keys: Keys, aws_env: dict[str, str], tmp_path: Path,
        batch_network: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    batch = _client("batch", aws_env)
    make_batch_queue(batch, batch_network, name)
    config = function_yaml(name, bucket, write_script(tmp_path), mode="batch")
    config += keys.provider_yaml(aws_env["AWS_ENDPOINT_URL"])
    response = invoke(event_of(put(s3, bucket, "input/a.txt", b"on batch")), config, aws_env,
                      tmp_path, ClientFactory(), name=name)
    (record,) = json.loads(response["body"])["records"]
    assert record["status"] == "delegated", record

    (job,) = batch.describe_jobs(jobs=[record["job_id"]])["jobs"]
    job_env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    handoff_bucket, handoff_key = parse_s3_uri(job_env[HANDOFF_ENV])
    document = s3.get_object(Bucket=handoff_bucket, Key=handoff_key)["Body"].read().decode()
    lab = json.loads(document)["function_config"]["storage_providers"]["minio"]["lab"]
    assert lab["access_key"] == {"secretsmanager": keys.secret_name, "key": "access_key"}
    assert lab["secret_key"] == keys.parameter_arn
    for value in keys.values():
        assert value not in document and value not in json.dumps(job)

    signed = Signed()
    batch_work = tmp_path / "batch-work"
    batch_work.mkdir()
    capsys.readouterr()
    code = main([], environ=dict(aws_env, **job_env, PATH=os.environ["PATH"],
                                 SUPERVISOR_WORK_DIR=str(batch_work)),
                stdin=io.StringIO(""), clients=ClientFactory(session=signed.session))
    logged = capsys.readouterr()
    assert code == 0, logged.err
    assert s3.get_object(Bucket=bucket, Key="output/copy.txt")["Body"].read() == b"on batch"
    assert signed.keys_used(bucket, "output/copy.txt") == {("PUT", keys.access_key)}
    for value in keys.values():
        assert value not in logged.out and value not in logged.err


def test_a_batch_job_whose_reference_cannot_be_read_exits_78_naming_it(
        s3: Any, bucket: str, keys: Keys, aws_env: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = function_yaml("fn-secrets", bucket, write_script(tmp_path))
    missing = keys.parameter_arn.replace("/secret-key", "/gone")
    config += keys.provider_yaml(aws_env["AWS_ENDPOINT_URL"], parameter_arn=missing)
    event = event_of(put(s3, bucket, "input/a.txt", b"x"))
    work = tmp_path / "batch-work"
    work.mkdir()
    capsys.readouterr()
    code = main([], environ=dict(aws_env, PATH=os.environ["PATH"], SUPERVISOR_WORK_DIR=str(work),
                                 EVENT=json.dumps(event),
                                 FUNCTION_CONFIG=base64.b64encode(config.encode()).decode()),
                stdin=io.StringIO(""), clients=ClientFactory())
    err = capsys.readouterr().err.splitlines()
    assert code == EX_CONFIG
    assert err[-1].startswith(
        f"supervisor-batch: s3://{bucket}/input/a.txt: storage_providers.minio.lab.secret_key: "
        f"cannot read SSM parameter {missing!r}: ")
    assert "ParameterNotFound" in err[-1]


# --------------------------------------------------------------------------- deploy

FDL = """\
functions:
  aws:
  - lambda:
      name: {name}
      init_script: script.sh
      container: {{image: busybox, run_on_host: true}}
      input: [{{storage_provider: s3, path: {name}/input}}]
      output: [{{storage_provider: minio.lab, path: {name}/output}}]
    iam: {{role: "{role}"}}
storage_providers:
  minio:
    lab:
      endpoint: https://minio.example.org
      access_key: {access_key}
      secret_key: {secret_key}
"""


class Deployed:
    """A session factory for the CLI whose Lambda CreateFunction/UpdateFunctionCode zips are
    kept: the deployment package as AWS receives it."""

    def __init__(self) -> None:
        self.zips: list[bytes] = []

    def __call__(self, profile: Optional[str], region: Optional[str]) -> Any:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        session.events.register("before-parameter-build.lambda.CreateFunction", self._keep)
        session.events.register("before-parameter-build.lambda.UpdateFunctionCode",
                                self._keep)
        return session

    def _keep(self, params: dict[str, Any], **_: Any) -> None:
        code = params.get("Code", params)
        if "ZipFile" in code:
            self.zips.append(code["ZipFile"])


def cli(aws_env: dict[str, str], deployed: Deployed, *args: str) -> int:
    from supervisor.cli import main as cli_main

    return cli_main([*args, "--endpoint-url", aws_env["AWS_ENDPOINT_URL"],
                     "--region", "us-east-1"], session_factory=deployed)


@pytest.fixture
def deployed(aws_env: dict[str, str], tmp_path: Path) -> Iterator[Deployed]:
    """What the test deploys, removed again afterwards."""
    watcher = Deployed()
    yield watcher
    if (tmp_path / "function.yaml").exists():
        assert cli(aws_env, watcher, "rm", "-f", str(tmp_path / "function.yaml")) == 0


def deploy_cli(fdl: Path, tmp_path: Path, aws_env: dict[str, str], deployed: Deployed,
               capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    layer = tmp_path / "supervisor-layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/supervisor/__init__.py", "# fake layer\n")
    pyz = tmp_path / "supervisor-batch.pyz"
    pyz.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    capsys.readouterr()
    code = cli(aws_env, deployed, "deploy", "-f", str(fdl), "--layer-zip", str(layer),
               "--pyz", str(pyz))
    return code, capsys.readouterr().err


def write_fdl(tmp_path: Path, aws_env: dict[str, str], access_key: str, secret_key: str) -> Path:
    iam = _client("iam", aws_env)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "lambda.amazonaws.com"}}]})
    role = iam.create_role(RoleName=f"secrets-{uuid.uuid4().hex[:8]}",
                           AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    fdl = tmp_path / "function.yaml"
    fdl.write_text(FDL.format(name=name, role=role, access_key=access_key,
                              secret_key=secret_key))
    (tmp_path / "script.sh").write_text(COPY_SCRIPT)
    return fdl


def test_the_deployment_package_keeps_the_references_and_deploy_says_nothing_of_them(
        keys: Keys, aws_env: dict[str, str], tmp_path: Path, deployed: Deployed,
        capsys: pytest.CaptureFixture[str]) -> None:
    fdl = write_fdl(tmp_path, aws_env, f"{{secretsmanager: {keys.secret_name}, key: access_key}}",
                    f'"{keys.secret_arn}:secret_key::"')  # YAML: a trailing ":" needs quotes
    code, err = deploy_cli(fdl, tmp_path, aws_env, deployed, capsys)
    assert code == 0, err
    (package,) = deployed.zips
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        text = archive.read("function_config.yaml").decode()
    lab = json.loads(text)["storage_providers"]["minio"]["lab"]
    assert lab["access_key"] == {"secretsmanager": keys.secret_name, "key": "access_key"}
    assert lab["secret_key"] == f"{keys.secret_arn}:secret_key::"
    for value in keys.values():
        assert value not in text and value.encode() not in package
    assert "plain text" not in err


def test_deploy_of_plain_keys_says_so_in_one_line_and_deploys_them_as_they_are(
        aws_env: dict[str, str], tmp_path: Path, deployed: Deployed,
        capsys: pytest.CaptureFixture[str]) -> None:
    fdl = write_fdl(tmp_path, aws_env, "AKIDPLAINKEY", "plain-secret-value")
    code, err = deploy_cli(fdl, tmp_path, aws_env, deployed, capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "plain text" in line]
    assert len(notes) == 1, err
    assert re.match(r"secrets-[0-9a-f]{8}: storage_providers\.minio\.lab\.access_key, "
                    r"storage_providers\.minio\.lab\.secret_key are plain text", notes[0])
    assert "{secretsmanager: NAME, key: secret_key}" in notes[0]
    assert "AKIDPLAINKEY" not in err and "plain-secret-value" not in err
    (package,) = deployed.zips  # SCAR's plain keys are not refused
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        lab = json.loads(archive.read("function_config.yaml"))["storage_providers"]["minio"]
    assert lab["lab"]["secret_key"] == "plain-secret-value"
