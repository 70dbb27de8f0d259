"""Shared fixtures: one moto server per test session, reached over HTTP."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

EVENTS_DIR = Path(__file__).parent / "events"
ROOT = Path(__file__).resolve().parents[1]
# ``supervisor build`` as ./build.sh layer runs it, in this interpreter.
BUILDER = (sys.executable, "-c", "import sys; from supervisor.cli import main; "
           "sys.exit(main(['build', *sys.argv[1:]]))")
WHEELHOUSE = ROOT / "dist" / ".wheels"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def process_gone(pid: int, wait: float = 3.0) -> bool:
    """True once ``pid`` no longer exists or is only a zombie (within ``wait`` s)."""
    end = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        state = next(line for line in status.splitlines() if line.startswith("State:"))
        if state.split()[1] in ("Z", "X"):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def put(s3: Any, bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """Upload ``body`` and return the S3 event record S3 would send for it."""
    from supervisor.s3event import object_created_record

    s3.put_object(Bucket=bucket, Key=key, Body=body)
    head = s3.head_object(Bucket=bucket, Key=key)
    return object_created_record(bucket, key, size=head["ContentLength"], etag=head["ETag"])


def load_event(name: str) -> dict[str, Any]:
    """A sample event from ``tests/events/<name>.json``."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start one moto server on a free loopback port; yield its URL."""
    from supervisor.local.endpoint import start_endpoint

    endpoint = start_endpoint()
    yield endpoint.url
    endpoint.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 in this process at the moto server with fake credentials.

    Returns the environment a subprocess needs to reach the same server.
    """
    env = dict(FAKE_AWS_ENV, AWS_ENDPOINT_URL=moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    """A boto3 S3 client on the moto server."""
    import boto3

    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def batch_network(moto_endpoint: str) -> dict[str, str]:
    """A VPC subnet, security group and the IAM roles Batch needs.

    Made per test: a local-mode session in the same process resets moto's state when
    its endpoint stops.
    """
    import boto3

    kwargs = dict(endpoint_url=moto_endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2 = boto3.client("ec2", **kwargs)
    iam = boto3.client("iam", **kwargs)
    suffix = uuid.uuid4().hex[:8]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"batch-sg-{suffix}", Description="batch",
                                   VpcId=vpc)["GroupId"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"},
         "Action": "sts:AssumeRole"}]})
    service_role = iam.create_role(RoleName=f"AWSBatchServiceRole-{suffix}",
                                   AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_role(RoleName=f"ecsInstanceRole-{suffix}", AssumeRolePolicyDocument=trust)
    profile = iam.create_instance_profile(
        InstanceProfileName=f"ecsInstanceRole-{suffix}")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=f"ecsInstanceRole-{suffix}",
                                     RoleName=f"ecsInstanceRole-{suffix}")
    return {"subnet": subnet, "security_group": sg, "service_role": service_role,
            "instance_profile": profile}


def make_batch_queue(batch: Any, network: dict[str, str], name: str,
                     *, multi_node: bool = False) -> None:
    """A compute environment, job queue and job definition all called ``name``."""
    ce = batch.create_compute_environment(
        computeEnvironmentName=name, type="MANAGED", state="ENABLED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 2, "desiredvCpus": 0,
                          "instanceTypes": ["m3.medium"], "subnets": [network["subnet"]],
                          "securityGroupIds": [network["security_group"]],
                          "instanceRole": network["instance_profile"]},
        serviceRole=network["service_role"])
    batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1,
                                                     "computeEnvironment": ce["computeEnvironmentArn"]}])
    container = {"image": "busybox", "command": ["python3", "/opt/supervisor/supervisor-batch.pyz"],
                 "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                          {"type": "MEMORY", "value": "1024"}]}
    if multi_node:
        batch.register_job_definition(
            jobDefinitionName=name, type="multinode",
            nodeProperties={"numNodes": 2, "mainNode": 0,
                            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}]})
    else:
        batch.register_job_definition(jobDefinitionName=name, type="container",
                                      containerProperties=container)


@dataclass(frozen=True)
class Built:
    out: Path
    layer: Path
    pyz: Path
    stdout: str
    stderr: str


def run_builder(package: Path, out: Path, *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([*BUILDER, "--out", str(out), "--package",
                           str(package), "--wheelhouse", str(WHEELHOUSE), *args],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of supervisor/: every build of the session ships the same sources."""
    dest = tmp_path_factory.mktemp("src") / "supervisor"
    shutil.copytree(ROOT / "supervisor", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def built(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    proc = run_builder(package, out)
    assert proc.returncode == 0, proc.stderr
    return Built(out=out, layer=out / "supervisor-layer.zip", pyz=out / "supervisor-batch.pyz",
                 stdout=proc.stdout, stderr=proc.stderr)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Debian ``docker-registry`` on a free loopback port for the session (a
    ``support.registry.Registry``); skips when docker-registry or skopeo is missing."""
    from support.registry import Registry, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}: apt-get install {' '.join(missing)}")
    server = Registry(tmp_path_factory.mktemp("registry"))
    server.start()
    try:
        yield server
    finally:
        server.close()
