"""Resolving a Batch job into local processes, as Batch would: env, command, volumes, nodes."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from supervisor.local.batch_resolve import (
    EXIT_REASON,
    IMAGE_FILE_ENV,
    JobSpec,
    JobSpecError,
    LocalHost,
    base_env,
    image_file_for,
    known_job_ids,
    launches,
    max_attempts,
    node_containers,
    node_overrides_for,
    overrides_from_describe,
    parse_target_nodes,
    should_retry,
    spec_from_describe,
    timeout_seconds,
)

JOB_ID = "0b7a1c9e-job"
DEF_ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/fn:3"
QUEUE = {"jobQueueName": "fn-queue",
         "jobQueueArn": "arn:aws:batch:us-east-1:123456789012:job-queue/fn-queue",
         "computeEnvironmentOrder": [
             {"order": 2, "computeEnvironment":
                 "arn:aws:batch:us-east-1:123456789012:compute-environment/second"},
             {"order": 1, "computeEnvironment":
                 "arn:aws:batch:us-east-1:123456789012:compute-environment/first-ce"}]}
SUPERVISOR_CONTAINER: dict[str, Any] = {
    "image": "busybox",
    "command": ["python3", "/opt/supervisor/supervisor-batch.pyz"],
    "environment": [{"name": "SHARED", "value": "definition"},
                    {"name": "DEF_ONLY", "value": "definition"},
                    {"name": "AWS_BATCH_JOB_ID", "value": "user-cannot-set-this"}],
    "volumes": [{"name": "supervisor", "host": {"sourcePath": "/opt/supervisor"}}],
    "mountPoints": [{"sourceVolume": "supervisor", "containerPath": "/opt/supervisor",
                     "readOnly": True}],
}


def container_spec(container: Optional[dict[str, Any]] = None, **changes: Any) -> JobSpec:
    fields: dict[str, Any] = dict(
        job_id=JOB_ID, name="fn-data", queue="fn-queue", compute_environment="first-ce",
        definition_arn=DEF_ARN, kind="container",
        container=SUPERVISOR_CONTAINER if container is None else container,
        container_overrides={"environment": [{"name": "SHARED", "value": "override"},
                                             {"name": "SUPERVISOR_HANDOFF",
                                              "value": "s3://b/k.json"}]})
    fields.update(changes)
    return JobSpec(**fields)


def host(tmp_path: Path, **changes: Any) -> LocalHost:
    fields: dict[str, Any] = dict(
        base_env={"PATH": "/usr/bin:/bin", "HOME": "/home/me", "SHARED": "base",
                  "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
        host_paths={"/opt/supervisor": tmp_path / "pyz-dir"})
    fields.update(changes)
    return LocalHost(**fields)


def only(spec: JobSpec, tmp_path: Path, attempt: int = 1, **kwargs: Any) -> Any:
    (launch,) = launches(spec, attempt=attempt, host=kwargs.pop("local", host(tmp_path)),
                         scratch_root=tmp_path / "attempt", **kwargs)
    return launch


def multinode_spec(**changes: Any) -> JobSpec:
    main = {"image": "busybox", "command": ["/bin/sh", "-c", "main"]}
    child = {"image": "busybox", "command": ["/bin/sh", "-c", "child"]}
    fields: dict[str, Any] = dict(
        job_id=JOB_ID, name="mnp", queue="fn-queue", compute_environment="first-ce",
        definition_arn=DEF_ARN, kind="multinode",
        node_properties={"numNodes": 3, "mainNode": 1, "nodeRangeProperties": [
            {"targetNodes": "1", "container": main},
            {"targetNodes": "0", "container": child},
            {"targetNodes": "2:", "container": child}]})
    fields.update(changes)
    return JobSpec(**fields)


# ------------------------------------------------------------------ environment

def test_env_is_base_then_definition_then_overrides_then_batch_variables(tmp_path: Path) -> None:
    env = only(container_spec(), tmp_path, attempt=2).env

    assert env["SHARED"] == "override"
    assert env["DEF_ONLY"] == "definition"
    assert env["SUPERVISOR_HANDOFF"] == "s3://b/k.json"
    assert env["PATH"] == "/usr/bin:/bin" and env["HOME"] == "/home/me"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["AWS_BATCH_JOB_ID"] == JOB_ID  # the definition cannot set Batch's names
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "2"
    assert env["AWS_BATCH_JQ_NAME"] == "fn-queue"
    assert env["AWS_BATCH_CE_NAME"] == "first-ce"
    assert not any(k.startswith("AWS_BATCH_JOB_NODE") or k.endswith("ARRAY_INDEX") for k in env)
    assert IMAGE_FILE_ENV not in env


def test_base_env_takes_only_path_home_lang_from_the_host() -> None:
    environ = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "AWS_PROFILE": "prod",
               "SECRET": "x", "AWS_ACCESS_KEY_ID": "real"}
    endpoint = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "local"}

    assert base_env(environ, endpoint) == {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8",
                                           "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
                                           "AWS_ACCESS_KEY_ID": "local"}


def test_array_child_gets_its_index_size_and_child_job_id(tmp_path: Path) -> None:
    env = only(container_spec(array_size=4), tmp_path, array_index=3).env

    assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == "3"
    assert env["AWS_BATCH_JOB_ARRAY_SIZE"] == "4"
    assert env["AWS_BATCH_JOB_ID"] == f"{JOB_ID}:3"


def test_mapped_image_sets_the_image_archive_variable(tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    launch = only(container_spec(), tmp_path,
                  local=host(tmp_path, image_files={"docker.io/library/busybox:latest": archive}))

    assert launch.image == "busybox"
    assert launch.image_file == archive
    assert launch.env[IMAGE_FILE_ENV] == str(archive)


def test_image_names_match_up_to_registry_and_latest_tag() -> None:
    files = {"busybox": Path("a.tar"), "user/tool:1.2": Path("b.tar")}

    assert image_file_for("busybox:latest", files) == Path("a.tar")
    assert image_file_for("docker.io/user/tool:1.2", files) == Path("b.tar")
    assert image_file_for("user/tool:1.3", files) is None


# ------------------------------------------------------------------ command and volumes

def test_command_is_the_definitions_with_mounted_paths_rewritten(tmp_path: Path) -> None:
    launch = only(container_spec(), tmp_path)

    assert launch.argv == ("python3", str(tmp_path / "pyz-dir" / "supervisor-batch.pyz"))


def test_executables_map_argv0_to_a_local_program(tmp_path: Path) -> None:
    launch = only(container_spec(), tmp_path,
                  local=host(tmp_path, executables={"python3": "/venv/bin/python"}))

    assert launch.argv[0] == "/venv/bin/python"


def test_override_command_wins_and_parameters_are_substituted(tmp_path: Path) -> None:
    spec = container_spec(
        container_overrides={"command": ["/bin/sh", "-c", "echo Ref::word",
                                         "/opt/supervisor/extra", "/opt/supervisorx"]},
        parameters={"word": "hello", "wordy": "no"})

    assert only(spec, tmp_path).argv == (
        "/bin/sh", "-c", "echo hello", str(tmp_path / "pyz-dir" / "extra"), "/opt/supervisorx")


def test_unmapped_host_volume_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match=r"sourcePath /opt/supervisor.*host_paths"):
        only(container_spec(), tmp_path, local=host(tmp_path, host_paths={}))


def test_mount_of_an_undeclared_volume_is_an_error(tmp_path: Path) -> None:
    container = dict(SUPERVISOR_CONTAINER, volumes=[])
    with pytest.raises(JobSpecError, match="does not declare"):
        only(container_spec(container), tmp_path)


def test_volume_without_host_path_is_a_scratch_dir(tmp_path: Path) -> None:
    container = {"image": "busybox", "command": ["/bin/ls", "/scratch/x"],
                 "volumes": [{"name": "work"}],
                 "mountPoints": [{"sourceVolume": "work", "containerPath": "/scratch"}]}
    launch = only(container_spec(container), tmp_path)

    scratch = tmp_path / "attempt" / "volumes" / "work"
    assert launch.scratch == (scratch,)
    assert launch.argv == ("/bin/ls", str(scratch / "x"))


def test_no_command_anywhere_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="no command"):
        only(container_spec({"image": "busybox", "command": []}), tmp_path)


# ------------------------------------------------------------------ multi-node

def test_multinode_main_node_first_with_node_variables(tmp_path: Path) -> None:
    planned = launches(multinode_spec(), attempt=1, host=LocalHost(),
                       scratch_root=tmp_path)

    assert [p.node_index for p in planned] == [1, 0, 2]
    main, *children = planned
    assert main.argv[-1] == "main" and all(c.argv[-1] == "child" for c in children)
    for launch in planned:
        assert launch.env["AWS_BATCH_JOB_NODE_INDEX"] == str(launch.node_index)
        assert launch.env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "1"
        assert launch.env["AWS_BATCH_JOB_NUM_NODES"] == "3"
        assert launch.env["AWS_BATCH_JOB_ID"] == f"{JOB_ID}#{launch.node_index}"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main.env
    assert all(c.env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"
               for c in children)


def test_node_overrides_reach_the_targeted_nodes(tmp_path: Path) -> None:
    spec = multinode_spec(node_overrides={"nodePropertyOverrides": [
        {"targetNodes": "0:", "containerOverrides": {
            "environment": [{"name": "SUPERVISOR_HANDOFF", "value": "s3://b/k"}]}},
        {"targetNodes": "2", "containerOverrides": {"command": ["/bin/true"]}}]})
    planned = {p.node_index: p for p in launches(spec, attempt=1, host=LocalHost(),
                                                 scratch_root=tmp_path)}

    assert all(p.env["SUPERVISOR_HANDOFF"] == "s3://b/k" for p in planned.values())
    assert planned[2].argv == ("/bin/true",)
    assert planned[0].argv[-1] == "child"


@pytest.mark.parametrize("target,expected", [("0:", [0, 1, 2, 3]), ("1:2", [1, 2]),
                                             (":1", [0, 1]), ("3", [3]), ("2:", [2, 3])])
def test_target_node_ranges(target: str, expected: list[int]) -> None:
    assert list(parse_target_nodes(target, 4)) == expected


@pytest.mark.parametrize("target", ["4", "3:1", "x:", "0:9"])
def test_bad_target_node_ranges(target: str) -> None:
    with pytest.raises(JobSpecError, match="targetNodes"):
        parse_target_nodes(target, 4)


def test_each_node_gets_the_container_of_its_range() -> None:
    a, b = {"image": "a"}, {"image": "b"}
    props = {"numNodes": 4, "nodeRangeProperties": [{"targetNodes": "0", "container": a},
                                                    {"targetNodes": "1:", "container": b}]}

    assert node_containers(props) == {0: a, 1: b, 2: b, 3: b}


def test_node_ranges_with_gap_or_overlap_are_errors() -> None:
    gap = {"numNodes": 3, "nodeRangeProperties": [{"targetNodes": "0", "container": {}}]}
    overlap = {"numNodes": 2, "nodeRangeProperties": [{"targetNodes": "0:", "container": {}},
                                                      {"targetNodes": "1", "container": {}}]}
    with pytest.raises(JobSpecError, match="in no"):
        node_containers(gap)
    with pytest.raises(JobSpecError, match="more than one"):
        node_containers(overlap)


def test_node_overrides_for_merges_matching_ranges_in_order() -> None:
    overrides = {"nodePropertyOverrides": [
        {"targetNodes": "0:", "containerOverrides": {"environment": [
            {"name": "A", "value": "1"}, {"name": "B", "value": "1"}]}},
        {"targetNodes": "1", "containerOverrides": {"environment": [
            {"name": "B", "value": "2"}]}}]}

    assert node_overrides_for(overrides, 1, 2) == {
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    assert node_overrides_for(overrides, 0, 2)["environment"][1] == {"name": "B", "value": "1"}


# ------------------------------------------------------------------ from moto's answers

def moto_job(**changes: Any) -> dict[str, Any]:
    """DescribeJobs as moto 5 answers it (overrides merged, AWS_BATCH_JOB_ID per call)."""
    job: dict[str, Any] = {
        "jobId": JOB_ID, "jobName": "fn-data", "jobQueue": QUEUE["jobQueueArn"],
        "jobDefinition": DEF_ARN, "status": "SUCCEEDED", "createdAt": 1_700_000_000_500,
        "parameters": {},
        "container": {"command": ["python3", "/opt/supervisor/supervisor-batch.pyz"],
                      "environment": [{"name": "SHARED", "value": "override"},
                                      {"name": "DEF_ONLY", "value": "definition"},
                                      {"name": "AWS_BATCH_JOB_ID", "value": JOB_ID},
                                      {"name": "AWS_BATCH_JOB_ID", "value": JOB_ID}]}}
    job.update(changes)
    return job


def moto_definition(**changes: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"jobDefinitionArn": DEF_ARN, "jobDefinitionName": "fn",
                                  "type": "container",
                                  "containerProperties": SUPERVISOR_CONTAINER,
                                  "retryStrategy": {"attempts": 3},
                                  "timeout": {"attemptDurationSeconds": 600}}
    definition.update(changes)
    return definition


def test_spec_from_describe_recomputes_overrides_without_batch_variables(
        tmp_path: Path) -> None:
    spec = spec_from_describe(moto_job(), moto_definition(), QUEUE)

    assert spec.overrides_from == "DescribeJobs"
    assert spec.queue == "fn-queue"
    assert spec.compute_environment == "first-ce"  # lowest order, not first listed
    assert spec.created == pytest.approx(1_700_000_000.5)
    assert "command" not in spec.container_overrides  # same as the definition's
    env = only(spec, tmp_path).env
    assert env["SHARED"] == "override" and env["DEF_ONLY"] == "definition"
    assert env["AWS_BATCH_JOB_ID"] == JOB_ID
    assert max_attempts(spec) == 3
    assert timeout_seconds(spec) == 600


def test_overrides_from_describe_keeps_a_changed_command() -> None:
    job = moto_job(container={"command": ["/bin/true"], "environment": []})

    assert overrides_from_describe(job, SUPERVISOR_CONTAINER) == {"command": ["/bin/true"]}


def test_submit_request_wins_over_describe_and_definition() -> None:
    request = {"jobName": "fn-data", "containerOverrides": {"environment": [
        {"name": "SUPERVISOR_HANDOFF", "value": "s3://b/k"}]},
        "retryStrategy": {"attempts": 5}, "timeout": {"attemptDurationSeconds": 7}}
    spec = spec_from_describe(moto_job(timeout={"attemptDurationSeconds": 9}),
                              moto_definition(), QUEUE, request)

    assert spec.overrides_from == "SubmitJob"
    assert spec.container_overrides == request["containerOverrides"]
    assert max_attempts(spec) == 5
    assert timeout_seconds(spec) == 7


def test_submitted_timeout_kept_by_moto_wins_over_the_definitions() -> None:
    spec = spec_from_describe(moto_job(timeout={"attemptDurationSeconds": 9}),
                              moto_definition(), QUEUE)

    assert timeout_seconds(spec) == 9


def test_multinode_properties_come_from_describe_jobs_when_the_definition_lacks_them() -> None:
    nodes = {"numNodes": 2, "mainNode": 0,
             "nodeRangeProperties": [{"targetNodes": "0:", "container": SUPERVISOR_CONTAINER}]}
    spec = spec_from_describe(moto_job(nodeProperties=nodes, container={}),
                              {"jobDefinitionArn": DEF_ARN, "type": "multinode"}, QUEUE)

    assert spec.kind == "multinode"
    assert spec.node_properties == nodes
    assert max_attempts(spec) == 1 and timeout_seconds(spec) is None


@pytest.mark.parametrize("value,expected", [(None, 1), (0, 1), (3, 3), (11, 10), ("x", 1)])
def test_attempts_are_clamped_to_1_to_10(value: Any, expected: int) -> None:
    strategy = {} if value is None else {"attempts": value}
    assert max_attempts(container_spec(retry_strategy=strategy)) == expected


def test_evaluate_on_exit_first_match_decides_and_no_match_retries() -> None:
    strategy = {"attempts": 3, "evaluateOnExit": [
        {"onExitCode": "3*", "action": "exit"},
        {"onStatusReason": "Essential*", "onExitCode": "1", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"}]}

    assert not should_retry(strategy, exit_code=34, status_reason=EXIT_REASON)
    assert should_retry(strategy, exit_code=1, status_reason=EXIT_REASON)
    assert not should_retry(strategy, exit_code=2, status_reason=EXIT_REASON)
    assert should_retry({"attempts": 3}, exit_code=2, status_reason=EXIT_REASON)


def test_array_children_and_nodes_are_not_jobs_of_their_own() -> None:
    assert known_job_ids(["a", "a:0", "a#1", "b"]) == ["a", "b"]
