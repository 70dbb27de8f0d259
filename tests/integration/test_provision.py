"""deploy / remove against the moto server over HTTP, with the plants example."""
from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from supervisor.aws import ClientFactory
from supervisor.config import FunctionConfig, from_fdl
from supervisor.provision import (
    LaunchTemplateRequest,
    Outcome,
    ProvisionError,
    Waiting,
    deploy,
    remove,
)

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACCOUNT = "123456789012"  # moto's
FAST = Waiting(timeout=10.0, interval=0.01)
READ_ONLY = ("Describe", "Get", "List", "Head")


def _client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def network(moto_endpoint: str) -> dict[str, str]:
    """The VPC, subnet, security group and roles a Batch deploy needs (made once)."""
    ec2 = _client("ec2", moto_endpoint)
    iam = _client("iam", moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"batch-{uuid.uuid4().hex[:8]}",
                                      Description="batch hosts", VpcId=vpc)["GroupId"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": ["lambda.amazonaws.com", "batch.amazonaws.com",
                                  "ec2.amazonaws.com"]}}]}
    role_name = f"supervisor-lambda-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=role_name,
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for name, path in (("AWSBatchServiceRole", "/service-role/"), ("ecsInstanceRole", "/")):
        try:
            iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))
        except iam.exceptions.EntityAlreadyExistsException:
            pass
    try:
        iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
        iam.add_role_to_instance_profile(InstanceProfileName="ecsInstanceRole",
                                         RoleName="ecsInstanceRole")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    return {"subnet": subnet, "group": group, "role": role}


@pytest.fixture
def artifacts(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny fake layer zip and .pyz (the real ones come from ./build.sh layer)."""
    layer = tmp_path / "supervisor-layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/supervisor/__init__.py", "# fake layer\n")
    pyz = tmp_path / "supervisor-batch.pyz"
    pyz.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return layer, pyz


@pytest.fixture
def plants(tmp_path: Path, network: dict[str, str]) -> FunctionConfig:
    """The plants example with this test's own names; the account values (role, subnet,
    group), a log retention and a launch template of its own from a scar.cfg."""
    from supervisor.config.scarcfg import read_defaults

    suffix = uuid.uuid4().hex[:8]
    text = (EXAMPLES / "plants" / "function.yaml").read_text()
    (tmp_path / "function.yaml").write_text(text.replace("scar-plants", f"scar-plants-{suffix}"))
    shutil.copy(EXAMPLES / "plants" / "bootstrap-plants.sh", tmp_path)
    cfg = json.loads((EXAMPLES / "scar.cfg").read_text())
    cfg["aws"]["iam"]["role"] = network["role"]
    cfg["aws"]["batch"]["compute_resources"].update(
        subnets=[network["subnet"]], security_group_ids=[network["group"]],
        launch_template_name=f"lt-{suffix}")
    cfg["aws"]["cloudwatch"] = {"log_retention_policy_in_days": 7}
    (tmp_path / "scar.cfg").write_text(json.dumps(cfg))
    return from_fdl(tmp_path / "function.yaml", check_files=True,
                    defaults=read_defaults(tmp_path / "scar.cfg"))[0]


class Recorder:
    """A ClientFactory whose clients record every operation they call."""

    def __init__(self) -> None:
        import boto3

        self.calls: list[str] = []
        session = boto3.session.Session()
        session.events.register("before-call.*.*", self._record)
        self.clients = ClientFactory(session=session)

    def _record(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name.rsplit(".", 1)[-1])

    def mutating(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(READ_ONLY)]


@pytest.fixture
def recorder(aws_env: dict[str, str]) -> Recorder:
    return Recorder()


@pytest.fixture
def deployed(plants: FunctionConfig, artifacts: tuple[Path, Path],
             recorder: Recorder) -> Iterator[list[Outcome]]:
    layer, pyz = artifacts
    result = deploy(plants, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    yield list(result.outcomes)
    remove(plants, recorder.clients, waiting=FAST)


def _names(outcomes: list[Outcome], action: str) -> list[str]:
    return [o.resource for o in outcomes if o.action == action]


def _exists_nothing(config: FunctionConfig, aws_env: dict[str, str]) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    s3 = _client("s3", endpoint)
    assert config.input[0].bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    lam = _client("lambda", endpoint)
    assert config.name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    batch = _client("batch", endpoint)
    assert batch.describe_compute_environments(
        computeEnvironments=[config.name])["computeEnvironments"] == []
    assert batch.describe_job_queues(jobQueues=[config.name])["jobQueues"] == []


# --- deploy -------------------------------------------------------------------------------


def test_deploy_creates_every_resource_of_the_plants_example(
        plants: FunctionConfig, deployed: list[Outcome], artifacts: tuple[Path, Path],
        aws_env: dict[str, str]) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    name, bucket = plants.name, plants.input[0].bucket
    assert {o.action for o in deployed} == {"created"}
    assert [o.resource for o in deployed] == [
        "s3-bucket", "s3-artifact", "launch-template", "batch-compute-environment",
        "batch-job-queue", "batch-job-definition", "lambda-layer", "lambda-function",
        "log-group", "lambda-permission", "s3-notification"]  # the trigger goes live last

    s3 = _client("s3", endpoint)
    s3.head_bucket(Bucket=bucket)
    [entry] = s3.get_bucket_notification_configuration(
        Bucket=bucket)["LambdaFunctionConfigurations"]
    fn_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    assert (entry["Id"], entry["LambdaFunctionArn"], entry["Events"]) == (
        f"supervisor-{name}", fn_arn, ["s3:ObjectCreated:*"])
    [rule] = entry["Filter"]["Key"]["FilterRules"]
    assert (rule["Name"].lower(), rule["Value"]) == ("prefix", "input/")

    lam = _client("lambda", endpoint)
    [statement] = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
    assert statement["Sid"] == f"supervisor-s3-{bucket}"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert json.dumps(statement["Condition"]).count(f"arn:aws:s3:::{bucket}") == 1
    assert ACCOUNT in json.dumps(statement["Condition"])
    [layer] = lam.list_layer_versions(LayerName="supervisor-runtime")["LayerVersions"][:1]
    assert layer["Description"].startswith("supervisor sha256:")
    config = lam.get_function_configuration(FunctionName=name)
    assert config["Handler"] == "supervisor.handler.lambda_handler"
    assert config["Runtime"] == "python3.12"
    assert config["Role"] == plants.iam_role
    assert config["Environment"]["Variables"] == {
        "FUNCTION_CONFIG_PATH": "/var/task/function_config.yaml"}
    assert [x["Arn"] for x in config["Layers"]] == [layer["LayerVersionArn"]]
    logs = _client("logs", endpoint)
    [group] = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    assert group["retentionInDays"] == 7

    batch = _client("batch", endpoint)
    [env] = batch.describe_compute_environments(computeEnvironments=[name])[
        "computeEnvironments"]
    assert (env["type"], env["state"], env["status"]) == ("MANAGED", "ENABLED", "VALID")
    assert env["serviceRole"] == f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBatchServiceRole"
    resources = env["computeResources"]
    assert resources["instanceRole"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/ecsInstanceRole"
    assert (resources["type"], resources["minvCpus"], resources["maxvCpus"],
            resources["desiredvCpus"], resources["instanceTypes"]) == (
        "EC2", 0, 2, 0, ["m3.medium"])
    assert resources["subnets"] == list(plants.batch.compute_resources.subnets)
    assert resources["securityGroupIds"] == list(plants.batch.compute_resources.security_group_ids)
    template_name = plants.batch.compute_resources.launch_template_name
    assert resources["launchTemplate"] == {"launchTemplateName": template_name}
    [queue] = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    assert (queue["priority"], queue["state"]) == (1, "ENABLED")
    assert queue["computeEnvironmentOrder"] == [{"order": 1,
                                                 "computeEnvironment": env["computeEnvironmentArn"]}]
    [definition] = batch.describe_job_definitions(jobDefinitionName=name,
                                                  status="ACTIVE")["jobDefinitions"]
    container = definition["containerProperties"]
    assert container["image"] == "deephdc/deep-oc-plants-classification-tf"
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert container["command"][-1] == "/opt/supervisor/supervisor-batch.pyz"
    assert container["mountPoints"] == [{"sourceVolume": "supervisor",
                                         "containerPath": "/opt/supervisor", "readOnly": True}]
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {
        "VCPU": "1", "MEMORY": "1024"}

    ec2 = _client("ec2", endpoint)
    [version] = ec2.describe_launch_template_versions(
        LaunchTemplateName=template_name)["LaunchTemplateVersions"]
    user_data = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    _, pyz = artifacts
    [artifact] = [o for o in deployed if o.resource == "s3-artifact"]
    key = artifact.name.split("/", 3)[3]
    assert f"s3://{bucket}/{key}" in user_data and "multipart/mixed" in user_data
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == pyz.read_bytes()


def test_a_second_deploy_makes_no_mutating_call(plants: FunctionConfig,
                                                deployed: list[Outcome],
                                                artifacts: tuple[Path, Path],
                                                aws_env: dict[str, str]) -> None:
    layer, pyz = artifacts
    again = Recorder()
    result = deploy(plants, again.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    assert {o.action for o in result.outcomes} == {"unchanged"}
    assert again.calls, "the second deploy read nothing?"
    assert again.mutating() == []


def test_a_changed_setting_updates_only_its_resources(plants: FunctionConfig,
                                                      deployed: list[Outcome],
                                                      artifacts: tuple[Path, Path],
                                                      aws_env: dict[str, str]) -> None:
    layer, pyz = artifacts
    changed = dataclasses.replace(plants, memory=2048,
                                  batch=dataclasses.replace(plants.batch, vcpus=2))
    result = deploy(changed, ClientFactory(), layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    updated = {o.resource: o for o in result.outcomes if o.action != "unchanged"}
    assert set(updated) == {"lambda-function", "batch-job-definition"}
    assert updated["lambda-function"].action == "updated"
    assert "MemorySize" in updated["lambda-function"].detail
    assert updated["batch-job-definition"].detail == "revision 2"
    lam = _client("lambda", aws_env["AWS_ENDPOINT_URL"])
    assert lam.get_function_configuration(FunctionName=plants.name)["MemorySize"] == 2048


def test_a_new_pyz_makes_a_new_launch_template_version(plants: FunctionConfig,
                                                       deployed: list[Outcome],
                                                       artifacts: tuple[Path, Path],
                                                       aws_env: dict[str, str]) -> None:
    layer, pyz = artifacts
    pyz.write_bytes(b"PK new build")
    result = deploy(plants, ClientFactory(), layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    actions = {o.resource: o.action for o in result.outcomes}
    assert actions["s3-artifact"] == "created"
    assert actions["launch-template"] == "updated"
    assert actions["batch-compute-environment"] == "updated"  # infrastructure update
    ec2 = _client("ec2", aws_env["AWS_ENDPOINT_URL"])
    [default] = ec2.describe_launch_template_versions(
        LaunchTemplateName=plants.batch.compute_resources.launch_template_name,
        Versions=["$Default"])["LaunchTemplateVersions"]
    assert default["VersionNumber"] == 2
    [template] = result.plan.all(LaunchTemplateRequest)
    user_data = base64.b64decode(default["LaunchTemplateData"]["UserData"]).decode()
    assert user_data == template.user_data


def test_deploy_keeps_other_notifications_on_the_bucket(plants: FunctionConfig,
                                                        artifacts: tuple[Path, Path],
                                                        recorder: Recorder,
                                                        aws_env: dict[str, str]) -> None:
    s3 = _client("s3", aws_env["AWS_ENDPOINT_URL"])
    bucket = plants.input[0].bucket
    s3.create_bucket(Bucket=bucket)
    other = {"Id": "someone-else", "Events": ["s3:ObjectRemoved:*"],
             "LambdaFunctionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:other",
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "other/"}]}}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [other]})
    layer, pyz = artifacts
    deploy(plants, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    ids = [e["Id"] for e in s3.get_bucket_notification_configuration(
        Bucket=bucket)["LambdaFunctionConfigurations"]]
    assert sorted(ids) == sorted(["someone-else", f"supervisor-{plants.name}"])

    outcomes = remove(plants, recorder.clients, waiting=FAST)
    [entry] = s3.get_bucket_notification_configuration(
        Bucket=bucket)["LambdaFunctionConfigurations"]
    assert entry["Id"] == "someone-else"
    [kept] = [o for o in outcomes if o.resource == "s3-bucket"]
    assert (kept.action, kept.detail) == ("kept", "not created by deploy")


# --- failures before anything is created ------------------------------------------------


def test_missing_subnets_fail_before_anything_is_created(plants: FunctionConfig,
                                                         artifacts: tuple[Path, Path],
                                                         recorder: Recorder,
                                                         aws_env: dict[str, str]) -> None:
    compute = dataclasses.replace(plants.batch.compute_resources, subnets=())
    config = dataclasses.replace(plants, batch=dataclasses.replace(plants.batch,
                                                                   compute_resources=compute))
    layer, pyz = artifacts
    with pytest.raises(ProvisionError, match=r"batch\.compute_resources\.subnets: missing"):
        deploy(config, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    assert recorder.mutating() == []
    _exists_nothing(plants, aws_env)


def test_a_nonexistent_role_fails_before_anything_is_created(plants: FunctionConfig,
                                                             artifacts: tuple[Path, Path],
                                                             recorder: Recorder,
                                                             aws_env: dict[str, str]) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/no-such-role"
    layer, pyz = artifacts
    with pytest.raises(ProvisionError, match=rf"iam\.role: role {role} does not exist"):
        deploy(dataclasses.replace(plants, iam_role=role), recorder.clients, layer_zip=layer,
               batch_pyz=pyz, waiting=FAST)
    assert recorder.calls and recorder.mutating() == []
    _exists_nothing(plants, aws_env)


def test_a_nonexistent_subnet_fails_before_anything_is_created(plants: FunctionConfig,
                                                               artifacts: tuple[Path, Path],
                                                               recorder: Recorder,
                                                               aws_env: dict[str, str]) -> None:
    compute = dataclasses.replace(plants.batch.compute_resources,
                                  subnets=("subnet-00000000000000000",))
    config = dataclasses.replace(plants, batch=dataclasses.replace(plants.batch,
                                                                   compute_resources=compute))
    layer, pyz = artifacts
    with pytest.raises(ProvisionError, match=r"batch\.compute_resources\.subnets: "):
        deploy(config, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    assert recorder.mutating() == []
    _exists_nothing(plants, aws_env)


def test_dry_run_makes_no_call_at_all(plants: FunctionConfig, artifacts: tuple[Path, Path],
                                      recorder: Recorder, aws_env: dict[str, str]) -> None:
    layer, pyz = artifacts
    result = deploy(plants, recorder.clients, layer_zip=layer, batch_pyz=pyz, dry_run=True)
    assert recorder.calls == []
    assert result.dry_run and result.outcomes == () and result.plan.placeholder_account
    assert "<account-id>" in json.dumps(result.to_dict())
    _exists_nothing(plants, aws_env)


# --- remove -------------------------------------------------------------------------------


def test_remove_leaves_nothing_behind_and_twice_is_harmless(plants: FunctionConfig,
                                                            artifacts: tuple[Path, Path],
                                                            recorder: Recorder,
                                                            aws_env: dict[str, str]) -> None:
    layer, pyz = artifacts
    deploy(plants, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    outcomes = remove(plants, recorder.clients, waiting=FAST)
    assert "kept" not in {o.action for o in outcomes}
    assert sorted(set(_names(outcomes, "deleted"))) == sorted([
        "s3-notification", "lambda-permission", "lambda-function", "lambda-layer",
        "log-group", "batch-job-queue", "batch-compute-environment", "batch-job-definition",
        "launch-template", "s3-artifact", "s3-bucket"])
    _exists_nothing(plants, aws_env)
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    batch = _client("batch", endpoint)
    assert batch.describe_job_definitions(jobDefinitionName=plants.name,
                                          status="ACTIVE")["jobDefinitions"] == []
    ec2 = _client("ec2", endpoint)
    template = plants.batch.compute_resources.launch_template_name
    assert template not in [t["LaunchTemplateName"]
                            for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    lam = _client("lambda", endpoint)
    assert [v for v in lam.list_layer_versions(LayerName="supervisor-runtime")["LayerVersions"]
            if v["Description"].startswith("supervisor sha256:")] == []
    logs = _client("logs", endpoint)
    assert logs.describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{plants.name}")["logGroups"] == []

    again = Recorder()
    second = remove(plants, again.clients, waiting=FAST)
    assert {o.action for o in second} == {"unchanged"}
    assert again.mutating() == []


def test_remove_keeps_a_bucket_that_holds_objects(plants: FunctionConfig,
                                                  deployed: list[Outcome],
                                                  recorder: Recorder,
                                                  aws_env: dict[str, str]) -> None:
    s3 = _client("s3", aws_env["AWS_ENDPOINT_URL"])
    bucket = plants.output[0].bucket
    s3.put_object(Bucket=bucket, Key="output/daisy.jpg.json", Body=b"{}")
    outcomes = remove(plants, recorder.clients, waiting=FAST)
    [kept] = [o for o in outcomes if o.resource == "s3-bucket"]
    assert (kept.name, kept.action, kept.detail) == (bucket, "kept", "holds objects")
    assert {o.action for o in outcomes if o.resource != "s3-bucket"} == {"deleted"}
    assert s3.get_bucket_notification_configuration(Bucket=bucket).get(
        "LambdaFunctionConfigurations", []) == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["output/daisy.jpg.json"]  # the .pyz artifact went with the function


def test_remove_keeps_what_another_function_still_uses(plants: FunctionConfig,
                                                       artifacts: tuple[Path, Path],
                                                       recorder: Recorder,
                                                       aws_env: dict[str, str]) -> None:
    """B stages in A's bucket and shares A's launch template and layer: rm A keeps them."""
    from supervisor.config import StoragePath

    layer, pyz = artifacts
    other = f"{plants.name}-b"
    shared = dataclasses.replace(
        plants, name=other, input=(StoragePath("s3", f"{other}/input"),),
        output=(StoragePath("s3", f"{other}/output"),),
        handoff_bucket=plants.input[0].bucket, log_retention_days=None)
    deploy(plants, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    deploy(shared, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)

    first = {o.resource: o for o in remove(plants, recorder.clients, waiting=FAST)}
    assert (first["launch-template"].action, first["launch-template"].detail) == (
        "kept", f"used by compute environment {other}")
    assert first["s3-artifact"].action == "kept"
    assert first["lambda-layer"].action == "kept"
    assert first["lambda-layer"].detail == f"used by {other}"
    assert (first["s3-bucket"].action, first["s3-bucket"].detail) == ("kept", "holds objects")

    second = remove(shared, recorder.clients, waiting=FAST)
    kept = {(o.resource, o.name): o.detail for o in second if o.action == "kept"}
    assert kept == {("s3-bucket", plants.input[0].bucket):
                    f"created by {plants.name}'s deploy"}
    third = {o.resource: o.action for o in remove(plants, recorder.clients, waiting=FAST)}
    assert third["s3-bucket"] == "deleted"
    _exists_nothing(plants, aws_env)
    _exists_nothing(shared, aws_env)


def test_remove_keeps_a_log_group_that_lambda_made_itself(plants: FunctionConfig,
                                                          artifacts: tuple[Path, Path],
                                                          recorder: Recorder,
                                                          aws_env: dict[str, str]) -> None:
    unmanaged = dataclasses.replace(plants, log_retention_days=None)
    deploy(unmanaged, recorder.clients, layer_zip=artifacts[0], batch_pyz=artifacts[1],
           waiting=FAST)
    logs = _client("logs", aws_env["AWS_ENDPOINT_URL"])
    group = f"/aws/lambda/{plants.name}"
    logs.create_log_group(logGroupName=group)  # what Lambda does on the first invocation
    outcomes = {o.resource: o for o in remove(unmanaged, recorder.clients, waiting=FAST)}
    assert outcomes["log-group"].action == "kept"
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] != []


def test_functions_with_scars_default_template_name_get_one_template_each(
        plants: FunctionConfig, artifacts: tuple[Path, Path], recorder: Recorder,
        aws_env: dict[str, str]) -> None:
    """Two functions staging in different buckets: each one's hosts fetch the .pyz from its
    own bucket; naming another function's template is refused before anything is made."""
    from supervisor.config import StoragePath
    from supervisor.provision import ProvisionError

    layer, pyz = artifacts
    compute = dataclasses.replace(plants.batch.compute_resources,
                                  launch_template_name="faas-supervisor")
    first = dataclasses.replace(plants, batch=dataclasses.replace(
        plants.batch, compute_resources=compute))
    other = f"{plants.name}-b"
    second = dataclasses.replace(
        first, name=other, input=(StoragePath("s3", f"{other}/input"),),
        output=(StoragePath("s3", f"{other}/output"),), handoff_bucket=other,
        log_retention_days=None)
    deploy(first, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    deploy(second, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    ec2 = _client("ec2", aws_env["AWS_ENDPOINT_URL"])
    for config in (first, second):
        [version] = ec2.describe_launch_template_versions(
            LaunchTemplateName=f"faas-supervisor-{config.name}", Versions=["$Default"])[
                "LaunchTemplateVersions"]
        data = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
        assert f"s3://{config.handoff_bucket}/" in data

    third_name = f"{plants.name}-c"
    compute = dataclasses.replace(compute, launch_template_name=f"faas-supervisor-{first.name}")
    third = dataclasses.replace(
        second, name=third_name, input=(StoragePath("s3", f"{third_name}/input"),),
        output=(StoragePath("s3", f"{third_name}/output"),), handoff_bucket=third_name,
        batch=dataclasses.replace(second.batch, compute_resources=compute))
    before = len(recorder.mutating())
    with pytest.raises(ProvisionError, match=f"launch template faas-supervisor-{first.name} "
                                             f"installs supervisor-batch.pyz from "
                                             f"s3://{first.handoff_bucket}/ for another"):
        deploy(third, recorder.clients, layer_zip=layer, batch_pyz=pyz, waiting=FAST)
    assert recorder.mutating()[before:] == []
    remove(second, recorder.clients, waiting=FAST)
    remove(first, recorder.clients, waiting=FAST)
    _exists_nothing(first, aws_env)
    _exists_nothing(second, aws_env)
