"""The deploy plan: typed resource requests built from a configuration, no AWS calls."""
from __future__ import annotations

import base64
import dataclasses
import email
import email.message
import hashlib
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config import FunctionConfig, StoragePath, from_fdl, parse
from supervisor.provision import (
    PLACEHOLDER_ACCOUNT_ID,
    ArtifactRequest,
    BucketRequest,
    ComputeEnvironmentRequest,
    FunctionRequest,
    JobDefinitionRequest,
    JobQueueRequest,
    LaunchTemplateRequest,
    LayerRequest,
    LogGroupRequest,
    NotificationRequest,
    PermissionRequest,
    Plan,
    ProvisionError,
    build_plan,
    check_job_definition_size,
    deployment_zip,
)
from supervisor.provision.batch import compute_environment_conflicts, compute_environment_updates
from supervisor.provision.batch_plan import JOB_COMMAND, PYTHON_CHECK
from supervisor.provision.lambda_fn import configuration_diff
from supervisor.provision.userdata import HOST_PYZ

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACCOUNT = "111122223333"
REGION = "eu-west-1"


def _example(name: str) -> FunctionConfig:
    """An example as deploy reads it: its account values from examples/scar.cfg."""
    from supervisor.config.scarcfg import read_defaults

    return from_fdl(EXAMPLES / name / "function.yaml", check_files=True,
                    defaults=read_defaults(EXAMPLES / "scar.cfg", required=True))[0]


@pytest.fixture
def plants() -> FunctionConfig:
    return _example("plants")


@pytest.fixture
def mrbayes() -> FunctionConfig:
    return _example("mrbayes")


@pytest.fixture
def layer_zip(tmp_path: Path) -> Path:
    path = tmp_path / "supervisor-layer.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/supervisor/__init__.py", "")
    return path


@pytest.fixture
def pyz(tmp_path: Path) -> Path:
    path = tmp_path / "supervisor-batch.pyz"
    path.write_bytes(b"PK fake pyz")
    return path


def plan_for(config: FunctionConfig, layer_zip: Path, pyz: Path,
             account_id: str = ACCOUNT) -> Plan:
    udocker_zip = layer_zip.with_name("udocker-layer.zip")
    if not udocker_zip.exists():
        with zipfile.ZipFile(udocker_zip, "w") as archive:
            archive.writestr("python/udocker/__init__.py", "")
    return build_plan(config, account_id=account_id, region=REGION, layer_zip=layer_zip,
                      batch_pyz=pyz, udocker_layer_zip=udocker_zip)


def one(plan: Plan, kind: Any) -> Any:
    found = plan.all(kind)
    assert len(found) == 1, [r.kind for r in plan.requests]
    return found[0]


def with_batch(config: FunctionConfig, **changes: Any) -> FunctionConfig:
    return dataclasses.replace(config, batch=dataclasses.replace(config.batch, **changes))


def with_compute(config: FunctionConfig, **changes: Any) -> FunctionConfig:
    compute = dataclasses.replace(config.batch.compute_resources, **changes)
    return with_batch(config, compute_resources=compute)


# --- the plants example, resource by resource ---------------------------------------


def test_plants_plan_lists_every_resource_in_apply_order(plants: FunctionConfig,
                                                         layer_zip: Path, pyz: Path) -> None:
    plan = plan_for(plants, layer_zip, pyz)
    assert [r.kind for r in plan.requests] == [
        "s3-bucket", "lambda-layer", "lambda-function", "lambda-permission",
        "s3-notification", "s3-artifact", "launch-template", "batch-compute-environment",
        "batch-job-queue", "batch-job-definition"]
    assert plan.account_id == ACCOUNT and not plan.placeholder_account
    json.dumps(plan.summary())  # JSON-ready for the CLI


def test_plants_bucket_layer_and_function(plants: FunctionConfig, layer_zip: Path,
                                          pyz: Path) -> None:
    plan = plan_for(plants, layer_zip, pyz)
    assert one(plan, BucketRequest) == BucketRequest("scar-plants", REGION, "scar-plants")
    layer = one(plan, LayerRequest)
    digest = hashlib.sha256(layer_zip.read_bytes()).hexdigest()
    assert layer.description == f"supervisor sha256:{digest}"
    assert layer.compatible_runtimes == ("python3.12",)
    function = one(plan, FunctionRequest)
    assert (function.name, function.runtime, function.handler) == (
        "scar-plants", "python3.12", "supervisor.handler.lambda_handler")
    assert function.role == "arn:aws:iam::123456789012:role/supervisor-lambda"
    assert (function.memory, function.timeout, function.ephemeral_storage) == (512, 300, 512)
    assert function.environment == {"FUNCTION_CONFIG_PATH": "/var/task/function_config.yaml"}
    config = function.configuration(["arn:layer:1"])
    assert config["Layers"] == ["arn:layer:1"]
    assert function.code_sha256 == base64.b64encode(
        hashlib.sha256(function.code).digest()).decode()


def test_plants_notification_and_permission(plants: FunctionConfig, layer_zip: Path,
                                            pyz: Path) -> None:
    plan = plan_for(plants, layer_zip, pyz)
    notification = one(plan, NotificationRequest)
    assert notification.entry() == {
        "Id": "supervisor-scar-plants",
        "LambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:scar-plants",
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "input/"}]}},
    }
    assert one(plan, PermissionRequest).add_kwargs() == {
        "FunctionName": "scar-plants", "StatementId": "supervisor-s3-scar-plants",
        "Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com",
        "SourceArn": "arn:aws:s3:::scar-plants", "SourceAccount": ACCOUNT,
    }


def test_plants_compute_environment_has_scar_defaults_and_the_account(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    env = one(plan_for(plants, layer_zip, pyz), ComputeEnvironmentRequest)
    assert env.create_kwargs() == {
        "computeEnvironmentName": "scar-plants",
        "type": "MANAGED",
        "state": "ENABLED",
        "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBatchServiceRole",
        "computeResources": {
            "type": "EC2",
            "allocationStrategy": "BEST_FIT_PROGRESSIVE",
            "minvCpus": 0, "maxvCpus": 2, "desiredvCpus": 0,
            "instanceTypes": ["m3.medium"],
            "subnets": ["subnet-0123456789abcdef0"],
            "securityGroupIds": ["sg-0123456789abcdef0"],
            "instanceRole": f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole",
            "launchTemplate": {"launchTemplateName": "faas-supervisor-scar-plants"},
        },
    }


def test_plants_queue_and_job_definition(plants: FunctionConfig, layer_zip: Path,
                                         pyz: Path) -> None:
    plan = plan_for(plants, layer_zip, pyz)
    assert one(plan, JobQueueRequest) == JobQueueRequest("scar-plants", "scar-plants",
                                                         "ENABLED", 1)
    definition = one(plan, JobDefinitionRequest)
    body = dict(definition.definition)
    assert body["jobDefinitionName"] == "scar-plants" and body["type"] == "container"
    assert body["tags"] == {"supervisor:sha256": definition.sha256}
    assert "retryStrategy" not in body and "timeout" not in body
    assert body["containerProperties"] == {
        "image": "deephdc/deep-oc-plants-classification-tf",
        "command": ["/bin/sh", "-c", PYTHON_CHECK, "supervisor-batch",
                    "/opt/supervisor/supervisor-batch.pyz"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                 {"type": "MEMORY", "value": "1024"}],
        "environment": [],
        "volumes": [{"name": "supervisor", "host": {"sourcePath": "/opt/supervisor"}}],
        "mountPoints": [{"sourceVolume": "supervisor", "containerPath": "/opt/supervisor",
                         "readOnly": True}],
    }


def test_plants_artifact_goes_to_the_staging_prefix_named_by_its_digest(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    artifact = one(plan_for(plants, layer_zip, pyz), ArtifactRequest)
    digest = hashlib.sha256(pyz.read_bytes()).hexdigest()
    assert artifact.bucket == "scar-plants"
    assert artifact.key == f"supervisor-handoff/artifacts/supervisor-batch-{digest[:16]}.pyz"
    assert artifact.sha256 == digest


def test_dry_run_plan_marks_the_placeholder_account(plants: FunctionConfig, layer_zip: Path,
                                                    pyz: Path) -> None:
    plan = build_plan(plants, account_id=PLACEHOLDER_ACCOUNT_ID, region=REGION,
                      layer_zip=layer_zip, batch_pyz=pyz, placeholder_account=True)
    assert plan.placeholder_account
    env = one(plan, ComputeEnvironmentRequest)
    assert env.service_role == "arn:aws:iam::<account-id>:role/service-role/AWSBatchServiceRole"


# --- Batch variants -------------------------------------------------------------------


def test_gpu_adds_a_gpu_resource_requirement(plants: FunctionConfig, layer_zip: Path,
                                             pyz: Path) -> None:
    plan = plan_for(with_batch(plants, enable_gpu=True, vcpus=4, memory=8192), layer_zip, pyz)
    container = one(plan, JobDefinitionRequest).definition["containerProperties"]
    assert container["resourceRequirements"] == [{"type": "VCPU", "value": "4"},
                                                 {"type": "MEMORY", "value": "8192"},
                                                 {"type": "GPU", "value": "1"}]


def test_multi_node_parallel_makes_a_multinode_definition(plants: FunctionConfig,
                                                          layer_zip: Path, pyz: Path) -> None:
    nodes = dataclasses.replace(plants.batch.multi_node_parallel, enabled=True,
                                number_nodes=3, main_node_index=1)
    definition = one(plan_for(with_batch(plants, multi_node_parallel=nodes), layer_zip, pyz),
                     JobDefinitionRequest).definition
    assert definition["type"] == "multinode" and "containerProperties" not in definition
    properties = definition["nodeProperties"]
    assert (properties["numNodes"], properties["mainNode"]) == (3, 1)
    [node_range] = properties["nodeRangeProperties"]
    assert node_range["targetNodes"] == "0:"
    assert node_range["container"]["command"] == list(JOB_COMMAND)
    assert node_range["container"]["command"][-1] == HOST_PYZ


def test_retries_timeout_environment_and_job_role(plants: FunctionConfig, layer_zip: Path,
                                                  pyz: Path) -> None:
    config = with_batch(plants, retry_attempts=3, job_timeout=3600,
                        environment={"MODEL": "plants", "A": "1"})
    config = dataclasses.replace(config, raw={**config.raw, "batch": {
        "job_role": "arn:aws:iam::{account_id}:role/plants-job"}})
    definition = one(plan_for(config, layer_zip, pyz), JobDefinitionRequest).definition
    assert definition["retryStrategy"] == {"attempts": 3}
    assert definition["timeout"] == {"attemptDurationSeconds": 3600}
    container = definition["containerProperties"]
    assert container["environment"] == [{"name": "A", "value": "1"},
                                        {"name": "MODEL", "value": "plants"}]
    assert container["jobRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/plants-job"


def test_job_definition_digest_changes_only_with_the_definition(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    first = one(plan_for(plants, layer_zip, pyz), JobDefinitionRequest).sha256
    assert one(plan_for(plants, layer_zip, pyz), JobDefinitionRequest).sha256 == first
    changed = one(plan_for(with_batch(plants, memory=2048), layer_zip, pyz),
                  JobDefinitionRequest).sha256
    assert changed != first


def test_spot_uses_capacity_optimized_allocation(plants: FunctionConfig, layer_zip: Path,
                                                 pyz: Path) -> None:
    env = one(plan_for(with_compute(plants, type="SPOT"), layer_zip, pyz),
              ComputeEnvironmentRequest)
    assert env.compute_resources["allocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"


def test_unmanaged_environment_has_no_compute_resources_or_launch_template(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    plan = plan_for(with_batch(plants, type="UNMANAGED"), layer_zip, pyz)
    assert one(plan, ComputeEnvironmentRequest).compute_resources is None
    assert plan.all(LaunchTemplateRequest) == []


# --- the 24 KiB job definition limit ----------------------------------------------------


def test_a_job_definition_over_24_kib_is_refused_before_any_call(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    big = with_batch(plants, environment={f"VAR{i}": "x" * 1000 for i in range(25)})
    with pytest.raises(ProvisionError, match=r"job definition 'scar-plants' is \d+ bytes; "
                                             r"Batch allows 24576"):
        plan_for(big, layer_zip, pyz)


def test_check_job_definition_size_measures_the_serialized_request() -> None:
    small = {"jobDefinitionName": "x", "type": "container"}
    assert check_job_definition_size(small) == len(json.dumps(small, separators=(",", ":")))
    limit = {"jobDefinitionName": "x", "pad": "y" * (24 * 1024 - 40)}
    assert check_job_definition_size(limit) <= 24 * 1024
    with pytest.raises(ProvisionError):
        check_job_definition_size({"jobDefinitionName": "x", "pad": "y" * 24 * 1024})


# --- lambda mode, the older FDL form ------------------------------------------------------


def test_mrbayes_lambda_plan_has_no_batch_resources(mrbayes: FunctionConfig, layer_zip: Path,
                                                    pyz: Path) -> None:
    plan = plan_for(mrbayes, layer_zip, pyz)
    assert [r.kind for r in plan.requests] == [
        "s3-bucket", "lambda-layer", "lambda-layer", "lambda-function", "lambda-permission",
        "s3-notification"]
    assert one(plan, NotificationRequest).prefix == "scar-mrbayes/input/"
    function = one(plan, FunctionRequest)
    assert (function.memory, function.timeout) == (1024, 300)


def test_an_input_that_is_a_whole_bucket_has_no_prefix_filter(
        mrbayes: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    config = dataclasses.replace(mrbayes, input=(StoragePath("s3", "whole"),),
                                 output=(StoragePath("s3", "other/out"),))
    plan = plan_for(config, layer_zip, pyz)
    assert [b.name for b in plan.all(BucketRequest)] == ["whole", "other"]
    notification = one(plan, NotificationRequest)
    assert notification.prefix == "" and "Filter" not in notification.entry()


def test_log_retention_adds_the_log_group(mrbayes: FunctionConfig, layer_zip: Path,
                                          pyz: Path) -> None:
    plan = plan_for(dataclasses.replace(mrbayes, log_retention_days=14), layer_zip, pyz)
    assert one(plan, LogGroupRequest) == LogGroupRequest("/aws/lambda/scar-mrbayes", 14)


def test_runtime_ephemeral_storage_and_extra_layers_from_raw_keys(tmp_path: Path,
                                                                  layer_zip: Path,
                                                                  pyz: Path) -> None:
    config = parse({"name": "f", "container": {"image": "busybox"},
                    "runtime": "python3.11", "ephemeral_storage": 2048,
                    "layers": ["arn:aws:lambda:eu-west-1:1:layer:x:1"],
                    "iam": {"role": "arn:aws:iam::123456789012:role/r"},
                    "input": [{"path": "b/in"}]}, check_files=False)
    function = one(plan_for(config, layer_zip, pyz), FunctionRequest)
    assert (function.runtime, function.ephemeral_storage) == ("python3.11", 2048)
    assert function.configuration(["arn:ours"])["Layers"] == [
        "arn:ours", "arn:aws:lambda:eu-west-1:1:layer:x:1"]


# --- problems, reported before any call ---------------------------------------------------


def test_a_missing_role_is_a_clear_error_naming_iam_role(plants: FunctionConfig,
                                                         layer_zip: Path, pyz: Path) -> None:
    with pytest.raises(ProvisionError, match=r"iam\.role: missing"):
        plan_for(dataclasses.replace(plants, iam_role=None), layer_zip, pyz)


def test_a_role_that_is_not_an_arn_is_refused(plants: FunctionConfig, layer_zip: Path,
                                              pyz: Path) -> None:
    with pytest.raises(ProvisionError, match=r"iam\.role: 'lambda-role' is not an IAM role ARN"):
        plan_for(dataclasses.replace(plants, iam_role="lambda-role"), layer_zip, pyz)


def test_batch_without_network_or_image_lists_every_problem(plants: FunctionConfig,
                                                            layer_zip: Path, pyz: Path) -> None:
    config = with_compute(plants, subnets=(), security_group_ids=())
    config = dataclasses.replace(config, container=dataclasses.replace(config.container,
                                                                       image=""))
    with pytest.raises(ProvisionError) as caught:
        plan_for(config, layer_zip, pyz)
    message = str(caught.value)
    assert "container.image: missing" in message
    assert "batch.compute_resources.subnets: missing" in message
    assert "batch.compute_resources.security_group_ids: missing" in message


def test_fargate_is_refused_because_jobs_need_the_host_pyz(plants: FunctionConfig,
                                                           layer_zip: Path, pyz: Path) -> None:
    with pytest.raises(ProvisionError, match="FARGATE is not supported"):
        plan_for(with_compute(plants, type="FARGATE"), layer_zip, pyz)


def test_missing_artifacts_name_the_build_step(plants: FunctionConfig, tmp_path: Path) -> None:
    with pytest.raises(ProvisionError) as caught:
        plan_for(plants, tmp_path / "no-layer.zip", tmp_path / "no.pyz")
    assert "layer zip" in str(caught.value) and "supervisor-batch.pyz" in str(caught.value)
    assert "build it with supervisor build -o DIR" in str(caught.value)


def test_environment_over_4_kb_or_reserved_is_refused(mrbayes: FunctionConfig,
                                                      layer_zip: Path, pyz: Path) -> None:
    big = dataclasses.replace(mrbayes, environment={"BIG": "x" * 4090})
    with pytest.raises(ProvisionError, match="Lambda allows 4096"):
        plan_for(big, layer_zip, pyz)
    reserved = dataclasses.replace(mrbayes, environment={"AWS_REGION": "x"})
    with pytest.raises(ProvisionError, match="AWS_REGION are set by Lambda or deploy"):
        plan_for(reserved, layer_zip, pyz)


# --- the deployment zip -------------------------------------------------------------------


def test_deployment_zip_is_deterministic(plants: FunctionConfig, tmp_path: Path) -> None:
    script = Path(plants.init_script or "")
    first = deployment_zip(plants)
    os.utime(script, (1_000_000_000, 1_000_000_000))  # a new mtime changes nothing
    second = deployment_zip(plants)
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["bootstrap-plants.sh", "function_config.yaml"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
        assert (infos[0].external_attr >> 16) & 0o777 == 0o755
        assert archive.read("bootstrap-plants.sh") == script.read_bytes()
        deployed = yaml.safe_load(archive.read("function_config.yaml"))
    assert deployed["init_script"] == "bootstrap-plants.sh"  # resolved beside the YAML
    again = parse(deployed, check_files=False)
    assert dataclasses.replace(again, init_script=plants.init_script) == plants


# --- the launch template's user data ----------------------------------------------------


def test_user_data_is_mime_multipart_installing_the_pyz(plants: FunctionConfig,
                                                        layer_zip: Path, pyz: Path,
                                                        tmp_path: Path) -> None:
    plan = plan_for(plants, layer_zip, pyz)
    template = one(plan, LaunchTemplateRequest)
    artifact = one(plan, ArtifactRequest)
    assert template.name == f"faas-supervisor-{plants.name}"  # SCAR's default: per function
    assert template.description == f"supervisor sha256:{template.user_data_sha256}"
    assert base64.b64decode(template.user_data_b64).decode() == template.user_data
    message = email.message_from_string(template.user_data)
    assert message.get_content_type() == "multipart/mixed" and message.is_multipart()
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 1
    part = parts[0]
    assert isinstance(part, email.message.Message)
    assert part.get_content_type() == "text/x-shellscript"
    script = str(part.get_payload())
    assert script.startswith("#!/bin/bash\n")
    assert (f"aws s3 cp --only-show-errors --region {REGION} "
            f"s3://scar-plants/{artifact.key} {HOST_PYZ}.part") in script
    assert f"echo '{artifact.sha256}  {HOST_PYZ}.part' | sha256sum -c -" in script
    assert f"mv -f {HOST_PYZ}.part {HOST_PYZ}" in script
    shell = tmp_path / "user-data.sh"
    shell.write_text(script)
    assert subprocess.run(["bash", "-n", str(shell)], check=False).returncode == 0


# --- the pure comparisons apply relies on -------------------------------------------------


def test_configuration_diff_names_only_the_fields_that_differ(plants: FunctionConfig,
                                                               layer_zip: Path,
                                                               pyz: Path) -> None:
    desired = one(plan_for(plants, layer_zip, pyz), FunctionRequest).configuration(["arn:l:1"])
    current = dict(desired, Layers=[{"Arn": "arn:l:1", "CodeSize": 1}])
    assert configuration_diff(current, desired) == []
    current = dict(current, MemorySize=128, Environment={"Variables": {}})
    assert configuration_diff(current, desired) == ["MemorySize", "Environment"]


def test_configuration_diff_reads_vpc_and_file_systems_as_lambda_reports_them() -> None:
    from supervisor.provision.lambda_options import LambdaOptions

    options = LambdaOptions(subnet_ids=("subnet-a", "subnet-b"), security_group_ids=("sg-1",),
                            file_systems=(("arn:aws:elasticfilesystem:r:1:access-point/f",
                                           "/mnt/data"),))
    request = FunctionRequest(name="f", runtime="python3.12", handler="h", role="r",
                              memory=128, timeout=3, ephemeral_storage=512, environment={},
                              description="d", code=b"", options=options)
    desired = request.configuration(["arn:l:1"])
    # Lambda answers with the VPC id and in its own order
    current = dict(desired, VpcConfig={"SubnetIds": ["subnet-b", "subnet-a"],
                                       "SecurityGroupIds": ["sg-1"], "VpcId": "vpc-1"})
    assert configuration_diff(current, desired) == []
    out_of_vpc = dict(current, VpcConfig={"SubnetIds": [], "SecurityGroupIds": [],
                                          "VpcId": ""}, FileSystemConfigs=[])
    assert configuration_diff(out_of_vpc, desired) == ["VpcConfig", "FileSystemConfigs"]
    assert request.fields()["Architectures"] == ["x86_64"]


def test_compute_environment_updates_only_what_changed(plants: FunctionConfig,
                                                       layer_zip: Path, pyz: Path) -> None:
    env = one(plan_for(plants, layer_zip, pyz), ComputeEnvironmentRequest)
    current = dict(env.create_kwargs(), status="VALID")
    assert compute_environment_updates(current, env) == {}
    assert compute_environment_conflicts(current, env) == []
    bigger = dataclasses.replace(env, compute_resources={**env.compute_resources,
                                                         "maxvCpus": 8, "minvCpus": 1})
    assert compute_environment_updates(current, bigger) == {
        "computeResources": {"minvCpus": 1, "maxvCpus": 8, "desiredvCpus": 1}}
    assert compute_environment_updates(current, env, template_changed=True) == {
        "computeResources": {"launchTemplate": {
            "launchTemplateName": "faas-supervisor-scar-plants", "version": "$Default"}}}
    spot = dataclasses.replace(env, compute_resources={**env.compute_resources,
                                                       "type": "SPOT"})
    assert compute_environment_conflicts(current, spot) == [
        "computeResources.type EC2 -> SPOT"]


# --- waiting for Batch, with a stub client and a fake clock -------------------------------


class StubBatch:
    """Answers describe_compute_environments with the given statuses, one per call."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.created: list[dict[str, Any]] = []

    def describe_compute_environments(self, computeEnvironments: list[str]) -> dict[str, Any]:
        if not self.created:
            return {"computeEnvironments": []}
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"computeEnvironments": [{
            "computeEnvironmentName": computeEnvironments[0], "status": status,
            "statusReason": "no such subnet" if status == "INVALID" else "",
            "computeEnvironmentArn": "arn:aws:batch:eu-west-1:1:compute-environment/x"}]}

    def create_compute_environment(self, **kwargs: Any) -> dict[str, Any]:
        self.created.append(kwargs)
        return {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _env(plants: FunctionConfig, layer_zip: Path, pyz: Path) -> ComputeEnvironmentRequest:
    env: ComputeEnvironmentRequest = one(plan_for(plants, layer_zip, pyz),
                                         ComputeEnvironmentRequest)
    return env


def test_compute_environment_is_polled_until_valid(plants: FunctionConfig, layer_zip: Path,
                                                   pyz: Path) -> None:
    from supervisor.provision import Waiting
    from supervisor.provision.batch import ensure_compute_environment

    clock = FakeClock()
    batch = StubBatch("CREATING", "CREATING", "VALID")
    outcome, arn = ensure_compute_environment(
        batch, _env(plants, layer_zip, pyz),
        Waiting(timeout=60, interval=5, clock=clock, sleep=clock.sleep))
    assert outcome.action == "created" and arn.endswith("compute-environment/x")
    assert clock.sleeps == [5, 5]


def test_an_invalid_compute_environment_is_an_error_with_batch_reason(
        plants: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    from supervisor.provision import Waiting
    from supervisor.provision.batch import ensure_compute_environment

    clock = FakeClock()
    with pytest.raises(ProvisionError, match="scar-plants is INVALID: no such subnet"):
        ensure_compute_environment(StubBatch("CREATING", "INVALID"),
                                   _env(plants, layer_zip, pyz),
                                   Waiting(timeout=60, interval=5, clock=clock,
                                           sleep=clock.sleep))


def test_waiting_gives_up_after_the_timeout(plants: FunctionConfig, layer_zip: Path,
                                            pyz: Path) -> None:
    from supervisor.provision import Waiting
    from supervisor.provision.batch import ensure_compute_environment

    clock = FakeClock()
    with pytest.raises(ProvisionError, match="timed out after 20 s waiting for compute "
                                             "environment scar-plants to be VALID"):
        ensure_compute_environment(StubBatch("CREATING"), _env(plants, layer_zip, pyz),
                                   Waiting(timeout=20, interval=5, clock=clock,
                                           sleep=clock.sleep))
    assert clock.now <= 20


def test_a_local_image_archive_is_shipped_and_the_function_names_it_in_s3(
        mrbayes: FunctionConfig, layer_zip: Path, pyz: Path, tmp_path: Path) -> None:
    archive = tmp_path / "mrbayes.tar"
    archive.write_bytes(b"a docker save archive")
    config = dataclasses.replace(mrbayes, container=dataclasses.replace(
        mrbayes.container, image_file=str(archive)))
    plan = plan_for(config, layer_zip, pyz)
    kinds = [r.kind for r in plan.requests]
    assert kinds.index("s3-artifact") < kinds.index("lambda-function")  # there before it runs
    artifact = one(plan, ArtifactRequest)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (artifact.path, artifact.sha256) == (archive, digest)
    assert artifact.key == f"supervisor-handoff/artifacts/image-{digest[:16]}.tar"
    with zipfile.ZipFile(io.BytesIO(one(plan, FunctionRequest).code)) as code:
        deployed = json.loads(code.read("function_config.yaml"))
    assert deployed["container"]["image_file"] == artifact.name  # not the deployer's path
    assert str(archive) not in json.dumps(deployed)

    archive.unlink()
    with pytest.raises(ProvisionError, match="container.image_file: .* does not exist"):
        plan_for(config, layer_zip, pyz)


def test_the_job_command_names_a_missing_python3_in_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # an image's PATH with a shell and no python3
    bare.mkdir()
    done = subprocess.run(list(JOB_COMMAND), env={"PATH": str(bare)}, capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 127
    assert done.stderr.strip().splitlines() == [
        "supervisor-batch: the job image (container.image) has no python3 on its PATH; "
        "supervisor-batch needs Python 3.9 or newer in the image"]
    fake = bare / "python3"
    fake.write_text('#!/bin/sh\necho "ran $1"\n')
    fake.chmod(0o755)
    done = subprocess.run(list(JOB_COMMAND), env={"PATH": f"{bare}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (0, f"ran {HOST_PYZ}\n")


def test_a_function_that_runs_its_image_on_lambda_gets_the_udocker_layer(
        mrbayes: FunctionConfig, layer_zip: Path, pyz: Path) -> None:
    layers = [r.name for r in plan_for(mrbayes, layer_zip, pyz).all(LayerRequest)]
    assert layers == ["supervisor-runtime", "supervisor-runtime-udocker"]
    on_host = dataclasses.replace(mrbayes, container=dataclasses.replace(
        mrbayes.container, run_on_host=True))
    assert [r.name for r in plan_for(on_host, layer_zip, pyz).all(LayerRequest)] == [
        "supervisor-runtime"]
    fields = one(plan_for(mrbayes, layer_zip, pyz), FunctionRequest).fields()
    assert fields["Layers"] == ["<supervisor layer version>"]  # the ARNs come at apply
    with pytest.raises(ProvisionError, match="udocker layer zip: .* build it with"):
        build_plan(mrbayes, account_id=ACCOUNT, region=REGION, layer_zip=layer_zip,
                   batch_pyz=pyz, udocker_layer_zip=layer_zip.with_name("missing.zip"))


def test_the_script_check_says_what_sh_says_or_nothing(tmp_path: Path) -> None:
    from supervisor.provision.script_check import syntax_problem

    good, bad = tmp_path / "good.sh", tmp_path / "bad.sh"
    good.write_text('case "$1" in a) echo a ;; esac\n')
    bad.write_text("echo (\n")
    assert syntax_problem(good) is None
    problem = syntax_problem(bad)
    assert problem is not None and problem.startswith(
        "init_script: bad.sh does not parse as a shell script: bad.sh: 2: ")
    assert "\n" not in problem and str(tmp_path) not in problem
    assert syntax_problem(bad, shell=str(tmp_path / "no-such-sh")) is None  # no shell: skip
