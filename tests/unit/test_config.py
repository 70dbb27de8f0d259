"""Function configuration: parsing, validation, sources and the YAML round trip."""
from __future__ import annotations

import base64
import copy
import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from supervisor.config import (
    BatchConfig,
    ComputeResources,
    FunctionConfig,
    MultiNodeParallel,
    S3Provider,
    StoragePath,
    from_fdl,
    load,
    parse,
    to_mapping,
    to_yaml,
)
from supervisor.errors import ConfigError

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
ACCESS = "AKIAIOSFODNN7EXAMPLE"

PLANTS_FDL = """\
functions:
  aws:
  - lambda:
      name: scar-plants
      execution_mode: batch
      init_script: bootstrap-plants.sh
      memory: 1024
      container:
        image: deephdc/deep-oc-plants-classification-tf
      input:
      - storage_provider: s3
        path: /scar-plants/input/
      output:
      - storage_provider: s3
        path: scar-plants/output
    batch:
      compute_resources:
        security_group_ids:
        - sg-0123456789abcdef0
        subnets:
        - subnet-0123456789abcdef0
        - subnet-0fedcba9876543210
"""

MRBAYES_FDL = """\
functions:
  scar-mrbayes:
    image: grycap/mrbayes
    init_script: bootstrap-mrbayes.sh
    memory: 1024
    s3:
      input_bucket: scar-mrbayes
    environment:
      Variables:
        ITERATIONS: 1000
"""


def base() -> dict[str, Any]:
    """A valid flat (Lambda-side) configuration in lambda-batch mode."""
    return {
        "name": "fn",
        "execution_mode": "lambda-batch",
        "container": {"image": "busybox"},
        "input": [{"storage_provider": "s3", "path": "bucket/in"}],
        "output": [{"storage_provider": "s3", "path": "bucket/out"}],
        "batch": {"compute_resources": {"security_group_ids": ["sg-1"],
                                        "subnets": ["subnet-1"]}},
    }


def problems_of(data: dict[str, Any], **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse(data, **kwargs)
    return info.value.problems


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------- FDL files

def test_plants_fdl_list_form_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-plants.sh").write_text("#!/bin/sh\n")
    fdl = tmp_path / "scar-plants.yaml"
    fdl.write_text(PLANTS_FDL)

    [config] = from_fdl(fdl)

    assert config.name == "scar-plants"
    assert config.execution_mode == "batch"
    assert config.init_script == str(tmp_path / "bootstrap-plants.sh")
    assert config.memory == 1024
    assert config.container.image == "deephdc/deep-oc-plants-classification-tf"
    assert config.input == (StoragePath("s3", "scar-plants/input"),)
    assert config.output == (StoragePath("s3", "scar-plants/output"),)
    assert config.input[0].bucket == "scar-plants"
    assert config.input[0].key_prefix == "input"
    assert config.batch.compute_resources.security_group_ids == ("sg-0123456789abcdef0",)
    assert config.batch.compute_resources.subnets == ("subnet-0123456789abcdef0",
                                                      "subnet-0fedcba9876543210")
    assert config.handoff_bucket == "scar-plants"
    assert config.handoff_prefix == "supervisor-handoff/"
    assert config.job_queue_name == "scar-plants"
    assert config.job_definition_name == "scar-plants"
    assert config.delegates


def test_fdl_path_given_as_string_is_read_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-plants.sh").write_text("#!/bin/sh\n")
    (tmp_path / "fdl.yaml").write_text(PLANTS_FDL)
    [config] = from_fdl(str(tmp_path / "fdl.yaml"))
    assert config.init_script == str(tmp_path / "bootstrap-plants.sh")


def test_fdl_text_resolves_init_script_against_cwd(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bootstrap-plants.sh").write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    [config] = from_fdl(PLANTS_FDL)
    assert config.init_script == str(tmp_path / "bootstrap-plants.sh")


def test_older_mapping_form_uses_input_and_output_folders(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-mrbayes.sh").write_text("#!/bin/sh\n")
    (tmp_path / "mrbayes.yaml").write_text(MRBAYES_FDL)

    [config] = from_fdl(tmp_path / "mrbayes.yaml")

    assert config.name == "scar-mrbayes"
    assert config.execution_mode == "lambda"
    assert config.memory == 1024
    assert config.container.image == "grycap/mrbayes"
    assert config.init_script == str(tmp_path / "bootstrap-mrbayes.sh")
    assert config.input == (StoragePath("s3", "scar-mrbayes/scar-mrbayes/input"),)
    assert config.output == (StoragePath("s3", "scar-mrbayes/scar-mrbayes/output"),)
    assert config.container.environment == {"ITERATIONS": "1000"}


def test_older_form_accepts_a_plain_environment_mapping_and_output_bucket() -> None:
    [config] = from_fdl("""
functions:
  old:
    image: busybox
    s3: {input_bucket: in-bucket, output_bucket: out-bucket}
    environment: {MODE: fast}
""")
    assert config.input == (StoragePath("s3", "in-bucket/old/input"),)
    assert config.output == (StoragePath("s3", "out-bucket/old/output"),)
    assert config.container.environment == {"MODE": "fast"}


def test_the_older_form_lays_out_folders_as_scar_does_so_two_steps_chain() -> None:
    first, second = from_fdl("""
functions:
  step-one:
    image: busybox
    s3: {input_bucket: work}
  step-two:
    image: busybox
    s3: {input_bucket: work/step-one/output, output_bucket: results/final}
""")
    assert first.input == (StoragePath("s3", "work/step-one/input"),)
    assert first.output == (StoragePath("s3", "work/step-one/output"),)
    assert second.input == first.output  # the first one's outputs start the second
    assert second.output == (StoragePath("s3", "results/final"),)


def test_top_level_storage_providers_are_merged_into_each_function() -> None:
    configs = from_fdl(f"""
storage_providers:
  s3:
    other:
      access_key: {ACCESS}
      secret_key: {SECRET}
      region: eu-west-1
functions:
  aws:
  - lambda:
      name: one
      container: {{image: busybox}}
      input: [{{storage_provider: s3.other, path: b1}}]
      output: [{{storage_provider: s3, path: b1}}]
  - lambda:
      name: two
      container: {{image: busybox}}
      output: [{{storage_provider: s3.other, path: b2/out}}]
""", check_files=False)
    assert [c.name for c in configs] == ["one", "two"]
    for config in configs:
        assert config.storage_providers == {
            "other": S3Provider("other", ACCESS, SECRET, "eu-west-1", None)}
        assert config.raw["storage_providers"]["s3"]["other"]["region"] == "eu-west-1"


def test_fdl_name_selects_one_function_and_ignores_the_others_problems() -> None:
    text = """
functions:
  aws:
  - lambda: {name: good, container: {image: busybox}}
  - lambda: {name: bad, memory: 1}
"""
    [config] = from_fdl(text, "good")
    assert config.name == "good"
    with pytest.raises(ConfigError) as info:
        from_fdl(text)
    assert info.value.problems == (
        "functions.aws[1].lambda.memory: 1 is out of range; "
        "must be an integer from 128 to 10240 (MB)",
    )


def test_fdl_unknown_name_lists_the_defined_ones() -> None:
    with pytest.raises(ConfigError) as info:
        from_fdl("functions: {aws: [{lambda: {name: a, container: {image: x}}},"
                 " {lambda: {name: b, container: {image: x}}}]}", "c")
    assert str(info.value) == "functions: no function named 'c'; defined: a, b"


def test_fdl_duplicate_names_are_a_problem() -> None:
    with pytest.raises(ConfigError) as info:
        from_fdl("functions: {aws: [{lambda: {name: a, container: {image: x}}},"
                 " {lambda: {name: a, container: {image: y}}}]}")
    assert info.value.problems[0].startswith("functions.aws[1].lambda.name: 'a' is also")


def test_fdl_error_paths_name_the_entry_and_section() -> None:
    with pytest.raises(ConfigError) as info:
        from_fdl("""
functions:
  aws:
  - lambda:
      name: first
      execution_mode: fast
      container: {image: busybox}
  - lambda:
      name: second
      memory: big
      execution_mode: batch
      container: {image: busybox}
    batch:
      vcpus: 0
""")
    problems = info.value.problems
    assert "functions.aws[0].lambda.execution_mode: 'fast' is not one of lambda, " \
           "lambda-batch, batch" in problems
    assert "functions.aws[1].lambda.memory: 'big' is not an integer; must be an integer " \
           "from 128 to 10240 (MB)" in problems
    assert any(p.startswith("functions.aws[1].batch.vcpus: 0 is out of range") for p in problems)
    assert not any("subnets" in p for p in problems)  # needed to deploy, not to run


@pytest.mark.parametrize("text, expected", [
    ("- a\n- b\n", "FDL text: the document is a list, not a mapping"),
    ("other: 1\n", "functions: missing"),
    ("functions: [1]\n", "functions: a list is not a mapping"),
    ("functions: {aws: []}\n", "functions: no functions defined"),
    ("functions: {aws: [3]}\n", "functions.aws[0]: 3 is not a mapping"),
    ("no-such-file.yaml", "'no-such-file.yaml': no such FDL file"),
    ("functions: {aws: [\n", "FDL text: invalid YAML"),
])
def test_fdl_shape_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_fdl(text)
    assert str(info.value).startswith(expected)


def test_fdl_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        from_fdl(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- defaults, raw

def test_batch_defaults_are_scars() -> None:
    config = parse({"name": "fn", "container": {"image": "busybox"}})
    assert config.execution_mode == "lambda"
    assert (config.memory, config.timeout, config.log_level) == (512, 300, "INFO")
    assert config.container.timeout_threshold == 10
    assert config.container.pass_aws_credentials is False
    assert config.batch == BatchConfig(
        vcpus=1, memory=1024, enable_gpu=False, state="ENABLED", type="MANAGED",
        compute_resources=ComputeResources(
            type="EC2", desired_v_cpus=0, min_v_cpus=0, max_v_cpus=2,
            instance_types=("m3.medium",), subnets=(), security_group_ids=(),
            launch_template_name="faas-supervisor",
            instance_role="arn:aws:iam::{account_id}:instance-profile/ecsInstanceRole"),
        service_role="arn:aws:iam::{account_id}:role/service-role/AWSBatchServiceRole",
        multi_node_parallel=MultiNodeParallel(enabled=False, number_nodes=10,
                                              main_node_index=0),
        environment={}, job_queue=None, job_definition=None,
        retry_attempts=None, job_timeout=None)


def test_batch_settings_are_read() -> None:
    data = base()
    data["batch"].update(vcpus=4, memory=8192, enable_gpu=True, job_queue="q",
                         job_definition="d", retry_attempts=3, timeout=3600,
                         multi_node_parallel={"enabled": True, "number_nodes": 3,
                                              "main_node_index": 2},
                         environment={"Variables": {"THREADS": 4}})
    data["batch"]["compute_resources"].update(type="SPOT", max_v_cpus=16,
                                              instance_types=["c5.large"])
    batch = parse(data).batch
    assert (batch.vcpus, batch.memory, batch.enable_gpu) == (4, 8192, True)
    assert (batch.job_queue, batch.job_definition) == ("q", "d")
    assert (batch.retry_attempts, batch.job_timeout) == (3, 3600)
    assert batch.multi_node_parallel == MultiNodeParallel(True, 3, 2)
    assert batch.environment == {"THREADS": "4"}
    assert batch.compute_resources.type == "SPOT"
    assert batch.compute_resources.max_v_cpus == 16
    assert batch.compute_resources.instance_types == ("c5.large",)


def test_other_sibling_sections_are_read() -> None:
    data = base()
    data.update(iam={"role": "arn:aws:iam::1:role/r"},
                cloudwatch={"log_retention_policy_in_days": 30},
                idempotency={"table": "supervisor-idem"},
                handoff={"bucket": "staging", "prefix": "/jobs"},
                log_level="debug",
                environment={"Variables": {"LOG": "1"}})
    config = parse(data)
    assert config.iam_role == "arn:aws:iam::1:role/r"
    assert config.log_retention_days == 30
    assert config.idempotency_table == "supervisor-idem"
    assert (config.handoff_bucket, config.handoff_prefix) == ("staging", "jobs/")
    assert config.log_level == "DEBUG"
    assert config.environment == {"LOG": "1"}


def test_unknown_keys_are_kept_in_raw() -> None:
    data = base()
    data["description"] = "kept"
    data["container"]["future"] = {"x": [1, 2]}
    data["batch"]["compute_resources"]["spot_iam_fleet_role"] = "r"
    data["tags"] = {"owner": "me"}
    config = parse(data)
    assert config.raw["description"] == "kept"
    assert config.raw["container"]["future"] == {"x": [1, 2]}
    assert config.raw["batch"]["compute_resources"]["spot_iam_fleet_role"] == "r"
    assert config.raw["tags"] == {"owner": "me"}
    assert isinstance(config.raw["tags"], dict)
    data["tags"]["owner"] = "changed"
    assert config.raw["tags"] == {"owner": "me"}  # a deep copy


def test_fdl_entry_is_merged_into_the_flat_form() -> None:
    entry = {"lambda": {"name": "fn", "container": {"image": "busybox"}, "extra": 1},
             "batch": {"vcpus": 2}, "iam": {"role": "r"}}
    config = parse(entry)
    assert config.batch.vcpus == 2
    assert config.iam_role == "r"
    assert "lambda" not in config.raw
    assert config.raw["extra"] == 1
    assert config.raw["batch"] == {"vcpus": 2}


def test_environment_scalars_become_strings() -> None:
    data = base()
    data["container"]["environment"] = {"Variables": {"N": 3, "ON": True, "OFF": False,
                                                      "RATE": 0.5, "S": "x"}}
    config = parse(data)
    assert config.container.environment == {"N": "3", "ON": "true", "OFF": "false",
                                            "RATE": "0.5", "S": "x"}


def test_storage_paths_are_stripped_and_provider_defaults_to_s3() -> None:
    data = base()
    data["input"] = [{"path": "/bucket/in/"}]
    data["output"] = [{"path": "bucket/out/", "prefix": ["result"], "suffix": [".png", ".txt"]}]
    config = parse(data)
    assert config.input == (StoragePath("s3", "bucket/in"),)
    assert config.output == (StoragePath("s3", "bucket/out", ("result",), (".png", ".txt")),)


def test_named_s3_provider_in_scar_nested_auth_form() -> None:
    data = base()
    data["storage_providers"] = {"s3": {"mine": {"auth": {"access_key": ACCESS,
                                                          "secret_key": SECRET},
                                                 "region": "eu-west-1",
                                                 "endpoint": "http://127.0.0.1:9000"}},
                                 "onedata": {"ignored": {"endpoint": "x"}}}
    data["output"] = [{"storage_provider": "s3.mine", "path": "bucket/out"}]
    config = parse(data)
    assert config.storage_providers == {
        "mine": S3Provider("mine", ACCESS, SECRET, "eu-west-1", "http://127.0.0.1:9000")}
    assert config.output[0].storage_provider == "s3.mine"


def test_init_script_resolution(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo\n")
    data = base()
    data["init_script"] = "run.sh"
    config = parse(data, base_dir=tmp_path)
    assert config.init_script == str(tmp_path / "run.sh")
    assert config.raw["init_script"] == str(tmp_path / "run.sh")
    data["init_script"] = "missing.sh"
    assert parse(data, base_dir=tmp_path, check_files=False).init_script == \
        str(tmp_path / "missing.sh")


def test_blank_optional_strings_mean_unset_as_scar_writes_them() -> None:
    data = base()
    data.update(init_script="", iam={"role": ""}, idempotency={"table": ""},
                handoff={"bucket": ""})
    data["batch"].update(job_queue="", job_definition="")
    config = parse(data)
    assert (config.init_script, config.iam_role, config.idempotency_table) == (None, None, None)
    assert (config.batch.job_queue, config.handoff_bucket) == (None, "bucket")


def test_job_names_come_from_batch_section_when_given() -> None:
    data = base()
    data["batch"].update(job_queue="shared-queue", job_definition="fn-def")
    config = parse(data)
    assert (config.job_queue_name, config.job_definition_name) == ("shared-queue", "fn-def")


def test_lambda_mode_needs_no_batch_network_nor_handoff_folder() -> None:
    config = parse({"name": "fn", "container": {"image": "busybox"},
                    "input": [{"path": "whole-bucket"}],
                    "output": [{"path": "other-bucket"}]})
    assert not config.delegates
    assert config.handoff_bucket == "whole-bucket"


# --------------------------------------------------------------------------- validation

Mutation = Callable[[dict[str, Any]], None]


def _set(*keys: Any, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return mutate


def _delete(*keys: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return mutate


RULES: list[tuple[str, Mutation, str]] = [
    ("memory-type", _set("memory", value="big"),
     "memory: 'big' is not an integer; must be an integer from 128 to 10240 (MB)"),
    ("memory-bool", _set("memory", value=True), "memory: True is not an integer"),
    ("memory-low", _set("memory", value=64), "memory: 64 is out of range"),
    ("memory-high", _set("memory", value=10241), "memory: 10241 is out of range"),
    ("timeout-low", _set("timeout", value=0), "timeout: 0 is out of range; must be an "
     "integer from 1 to 900 (seconds)"),
    ("timeout-high", _set("timeout", value=901), "timeout: 901 is out of range"),
    ("name-missing", _delete("name"), "name: missing; must be 1-64 letters"),
    ("name-empty", _set("name", value=""), "name: missing"),
    ("name-type", _set("name", value=12), "name: 12 is not a string"),
    ("name-chars", _set("name", value="my fn"), "name: 'my fn' is not a valid function name"),
    ("name-long", _set("name", value="x" * 65), "name: 'xxxx"),
    ("mode", _set("execution_mode", value="fast"),
     "execution_mode: 'fast' is not one of lambda, lambda-batch, batch"),
    ("threshold-negative", _set("container", "timeout_threshold", value=-1),
     "container.timeout_threshold: -1 is out of range"),
    ("threshold-vs-timeout", _set("timeout", value=10),
     "container.timeout_threshold: 10 is not less than timeout 10"),
    ("bad-image", _set("container", "image", value="Busy Box"),
     "container.image: 'Busy Box' is not a Docker image reference"),
    ("bad-execmode", _set("container", "execmode", value="R1"),
     "container.execmode: 'R1' is not one of auto, P1, P2, F1, F2, F3, F4"),
    ("bad-image-uri", _set("container", "image_file", value="s3://Bad_Bucket"),
     "container.image_file: 's3://Bad_Bucket' is not an S3 object URI"),
    ("image-type", _set("container", "image", value=["x"]),
     "container.image: a list is not a string"),
    ("container-type", _set("container", value="busybox"),
     "container: 'busybox' is not a mapping"),
    ("output-no-path", _set("output", value=[{"storage_provider": "s3"}]),
     "output[0].path: missing"),
    ("output-slash-path", _set("output", value=[{"path": "/"}]), "output[0].path: missing"),
    ("input-no-path", _set("input", value=[{"storage_provider": "s3"}]),
     "input[0].path: missing"),
    ("input-empty-path", _set("input", value=[{"path": ""}]), "input[0].path: missing"),
    ("input-path-type", _set("input", value=[{"path": 5}]), "input[0].path: 5 is not a string"),
    ("input-not-list", _set("input", value="bucket/in"), "input: 'bucket/in' is not a list"),
    ("input-entry-type", _set("input", value=["bucket/in"]),
     "input[0]: 'bucket/in' is not a mapping"),
    ("provider-kind", _set("output", value=[{"storage_provider": "minio", "path": "b/o"}]),
     "output[0].storage_provider: 'minio' is not defined; must be s3, s3.<id> or minio.<id>"),
    ("provider-undefined", _set("input", value=[{"storage_provider": "s3.nope", "path": "b"}]),
     "input[0].storage_provider: 's3.nope' is not defined"),
    ("subnet-empty", _set("batch", "compute_resources", "subnets", value=[""]),
     "batch.compute_resources.subnets[0]: '' is not a non-empty string"),
    ("subnets-not-list", _set("batch", "compute_resources", "subnets", value="subnet-1"),
     "batch.compute_resources.subnets: 'subnet-1' is not a list"),
    ("loop-equal", _set("output", value=[{"path": "bucket/in"}]),
     "input[0].path: 'bucket/in' overlaps output[0].path 'bucket/in'"),
    ("loop-output-inside", _set("output", value=[{"path": "bucket/in/results"}]),
     "input[0].path: 'bucket/in' overlaps output[0].path 'bucket/in/results'"),
    ("loop-output-around", _set("output", value=[{"path": "bucket"}]),
     "input[0].path: 'bucket/in' overlaps output[0].path 'bucket'"),
    ("vcpus", _set("batch", "vcpus", value=0), "batch.vcpus: 0 is out of range"),
    ("batch-memory", _set("batch", "memory", value=0), "batch.memory: 0 is out of range"),
    ("nodes", _set("batch", "multi_node_parallel", value={"enabled": True, "number_nodes": 1}),
     "batch.multi_node_parallel.number_nodes: 1 is less than 2"),
    ("main-node", _set("batch", "multi_node_parallel",
                       value={"enabled": True, "number_nodes": 2, "main_node_index": 2}),
     "batch.multi_node_parallel.main_node_index: 2 is outside 0..1"),
    ("main-node-negative", _set("batch", "multi_node_parallel",
                                value={"enabled": True, "main_node_index": -1}),
     "batch.multi_node_parallel.main_node_index: -1 is outside 0..9"),
    ("retries-low", _set("batch", "retry_attempts", value=0),
     "batch.retry_attempts: 0 is out of range; must be an integer from 1 to 10"),
    ("retries-high", _set("batch", "retry_attempts", value=11),
     "batch.retry_attempts: 11 is out of range"),
    ("batch-timeout", _set("batch", "timeout", value=59), "batch.timeout: 59 is out of range"),
    ("handoff-prefix-empty", _set("handoff", "prefix", value="/"),
     "handoff.prefix: is empty"),
    ("handoff-in-input-bucket", _set("input", value=[{"path": "bucket"}]),
     "handoff.prefix: the hand-off folder s3://bucket/supervisor-handoff/ is inside input "
     "path 'bucket' (input[0])"),
    ("handoff-in-input-folder", _set("handoff", value={"prefix": "in/staging"}),
     "handoff.prefix: the hand-off folder s3://bucket/in/staging/ is inside input path"),
    ("handoff-bucket-slash", _set("handoff", "bucket", value="b/x"),
     "handoff.bucket: 'b/x' is not a bucket name"),
    ("gpu-string", _set("batch", "enable_gpu", value="yes"),
     "batch.enable_gpu: 'yes' is not a boolean; must be true or false"),
    ("mnp-enabled-int", _set("batch", "multi_node_parallel", "enabled", value=1),
     "batch.multi_node_parallel.enabled: 1 is not a boolean"),
    ("pass-creds", _set("container", "pass_aws_credentials", value="false"),
     "container.pass_aws_credentials: 'false' is not a boolean"),
    ("env-list", _set("container", "environment", value={"Variables": {"A": [1]}}),
     "container.environment.Variables.A: a list is not a string, number or boolean"),
    ("env-null", _set("environment", value={"Variables": {"A": None}}),
     "environment.Variables.A: null is not a string, number or boolean"),
    ("env-not-mapping", _set("batch", "environment", value={"Variables": ["A=1"]}),
     "batch.environment.Variables: a list is not a mapping"),
    ("batch-state", _set("batch", "state", value="ON"), "batch.state: 'ON' is not one of"),
    ("cr-type", _set("batch", "compute_resources", "type", value="ec2"),
     "batch.compute_resources.type: 'ec2' is not one of EC2, SPOT, FARGATE, FARGATE_SPOT"),
    ("cr-min-max", _set("batch", "compute_resources", "min_v_cpus", value=4),
     "batch.compute_resources.min_v_cpus: 4 is more than max_v_cpus 2"),
    ("job-queue", _set("batch", "job_queue", value="a queue"),
     "batch.job_queue: 'a queue' is not a valid name"),
    ("log-level", _set("log_level", value="LOUD"), "log_level: 'LOUD' is not one of DEBUG"),
    ("retention", _set("cloudwatch", "log_retention_policy_in_days", value=2),
     "cloudwatch.log_retention_policy_in_days: 2 is not a CloudWatch retention"),
    ("iam-type", _set("iam", value="role"), "iam: 'role' is not a mapping"),
    ("table", _set("idempotency", "table", value="x"),
     "idempotency.table: 'x' is not a DynamoDB table name"),
    ("lambda-not-mapping", _set("lambda", value=None), "lambda: null is not a mapping"),
    ("env-size", _set("environment", value={"Variables": {"BIG": "x" * 5000}}),
     "environment: the variables take 5003 bytes; Lambda allows 4096 bytes in all"),
]


@pytest.mark.parametrize("mutate, expected", [(m, e) for _, m, e in RULES],
                         ids=[rule_id for rule_id, _, _ in RULES])
def test_each_rule_names_the_field_path(mutate: Mutation, expected: str) -> None:
    data = base()
    parse(copy.deepcopy(data))  # the base is valid
    mutate(data)
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_the_runtime_accepts_what_only_provisioning_needs_left_out() -> None:
    """SCAR's generated configs: no networking for Batch, no image for a host run."""
    data = base()
    del data["batch"]["compute_resources"]["security_group_ids"]
    data["batch"]["compute_resources"]["subnets"] = []
    config = parse(data)
    assert config.batch.compute_resources.subnets == ()
    data["container"] = {"run_on_host": True}
    assert parse(data).container.image == "" and parse(data).container.run_on_host


def test_path_prefix_is_used_for_flat_data() -> None:
    data = base()
    data["memory"] = "big"
    data["batch"]["vcpus"] = 0
    problems = problems_of(data, path="functions.aws[3]")
    assert problems[0].startswith("functions.aws[3].memory: 'big'")
    assert problems[1].startswith("functions.aws[3].batch.vcpus: 0")


def test_missing_init_script_is_a_problem_only_when_checking_files(tmp_path: Path) -> None:
    data = base()
    data["init_script"] = "absent.sh"
    problems = problems_of(data, base_dir=tmp_path)
    assert problems == (f"init_script: {str(tmp_path / 'absent.sh')!r} does not exist or is "
                        "not a file; must name an existing shell script (relative paths are "
                        "resolved against the configuration file's directory)",)
    parse(data, base_dir=tmp_path, check_files=False)


def test_all_problems_are_reported_at_once() -> None:
    data = base()
    data.update(memory="big", timeout=0, execution_mode="fast")
    data["output"] = [{"storage_provider": "s3"}]
    data["batch"]["retry_attempts"] = 11
    with pytest.raises(ConfigError) as info:
        parse(data)
    fields = [p.split(":", 1)[0] for p in info.value.problems]
    assert fields == ["execution_mode", "memory", "timeout", "output[0].path",
                      "batch.retry_attempts"]
    assert str(info.value) == "; ".join(info.value.problems)


def test_unknown_keys_are_never_a_problem() -> None:
    data = base()
    data.update(anything={"goes": [1]}, runtime="image", layers=["a"])
    data["container"]["other"] = True
    data["input"][0]["filter"] = "x"
    assert parse(data).name == "fn"


def test_handoff_in_another_functions_input_is_a_problem() -> None:
    with pytest.raises(ConfigError) as info:
        from_fdl("""
functions:
  aws:
  - lambda:
      name: first
      execution_mode: batch
      container: {image: busybox}
      input: [{path: b1/in}]
    batch: {compute_resources: {subnets: [s], security_group_ids: [g]}}
    handoff: {bucket: b2}
  - lambda:
      name: second
      container: {image: busybox}
      input: [{path: b2}]
""")
    assert info.value.problems[0].startswith(
        "functions.aws[0].handoff.prefix: the hand-off folder s3://b2/supervisor-handoff/ is "
        "inside input path 'b2' of second (functions.aws[1])")


# --------------------------------------------------------------------------- secrets

def test_secrets_never_appear_in_errors_or_repr() -> None:
    data = base()
    data["storage_providers"] = {"s3": {"p": {"access_key": ACCESS, "secret_key": SECRET}}}
    data["output"] = [{"storage_provider": "s3.p", "path": "bucket/out"}]
    config = parse(data)
    assert SECRET not in repr(config) and ACCESS not in repr(config)
    assert SECRET not in str(config) and ACCESS not in str(config)

    data["memory"] = "big"
    data["storage_providers"]["s3"]["p"]["region"] = 5
    data["storage_providers"]["s3"]["q"] = {"secret_key": SECRET, "endpoint": SECRET}
    data["storage_providers"]["s3"]["r"] = {"access_key": [ACCESS], "auth": SECRET}
    with pytest.raises(ConfigError) as info:
        parse(data)
    message = str(info.value)
    assert "storage_providers.s3.p.region: an integer is not a string" in message
    assert "storage_providers.s3.q: only one of access_key and secret_key is set" in message
    assert "storage_providers.s3.q.endpoint: is not an http(s) URL" in message
    assert "storage_providers.s3.r.access_key: a list is not a string" in message
    assert "storage_providers.s3.r.auth: a string is not a mapping" in message
    assert SECRET not in message and ACCESS not in message
    assert SECRET not in repr(info.value) and ACCESS not in repr(info.value)


# --------------------------------------------------------------------------- load

FLAT_YAML = """\
name: from-{source}
container: {{image: busybox}}
init_script: script.sh
"""


def test_load_from_function_config_base64(tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("echo\n")
    config = load({"FUNCTION_CONFIG": b64(FLAT_YAML.format(source="env")),
                   "LAMBDA_TASK_ROOT": str(tmp_path)}, default_path=tmp_path / "none")
    assert config.name == "from-env"
    assert config.init_script == str(tmp_path / "script.sh")


def test_load_from_function_config_plain_yaml_and_json(tmp_path: Path) -> None:
    env = {"FUNCTION_CONFIG": FLAT_YAML.format(source="text")}
    config = load(env, default_path=tmp_path / "none", check_files=False)
    assert config.name == "from-text"
    assert config.init_script == "/var/task/script.sh"
    as_json = json.dumps({"name": "from-json", "container": {"image": "busybox"}}, indent="\t")
    assert load({"FUNCTION_CONFIG": as_json}, default_path=tmp_path / "none").name == "from-json"


def test_load_from_function_config_path(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "script.sh").write_text("echo\n")
    (tmp_path / "conf" / "fn.yaml").write_text(FLAT_YAML.format(source="path"))
    config = load({"FUNCTION_CONFIG_PATH": str(tmp_path / "conf" / "fn.yaml")},
                  default_path=tmp_path / "none")
    assert config.name == "from-path"
    assert config.init_script == str(tmp_path / "conf" / "script.sh")


def test_load_from_default_path(tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("echo\n")
    (tmp_path / "function_config.yaml").write_text(FLAT_YAML.format(source="default"))
    config = load({}, default_path=tmp_path / "function_config.yaml")
    assert config.name == "from-default"
    assert config.init_script == str(tmp_path / "script.sh")


def test_load_precedence_env_then_path_then_default(tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("echo\n")
    named = tmp_path / "named.yaml"
    named.write_text(FLAT_YAML.format(source="path"))
    default = tmp_path / "default.yaml"
    default.write_text(FLAT_YAML.format(source="default"))
    env = {"FUNCTION_CONFIG": b64(FLAT_YAML.format(source="env")),
           "FUNCTION_CONFIG_PATH": str(named), "LAMBDA_TASK_ROOT": str(tmp_path)}
    assert load(env, default_path=default).name == "from-env"
    env["FUNCTION_CONFIG"] = ""
    assert load(env, default_path=default).name == "from-path"
    del env["FUNCTION_CONFIG_PATH"]
    assert load(env, default_path=default).name == "from-default"


def test_load_with_no_source_names_all_three(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load({}, default_path=tmp_path / "function_config.yaml")
    message = str(info.value)
    assert "FUNCTION_CONFIG " in message and "FUNCTION_CONFIG_PATH" in message
    assert str(tmp_path / "function_config.yaml") in message


def test_load_named_file_must_exist(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(FLAT_YAML.format(source="default"))
    with pytest.raises(ConfigError, match="FUNCTION_CONFIG_PATH=.*cannot read"):
        load({"FUNCTION_CONFIG_PATH": str(tmp_path / "typo.yaml")},
             default_path=tmp_path / "default.yaml")


@pytest.mark.parametrize("value, expected", [
    (b64("name: [unclosed\n"), "FUNCTION_CONFIG (base64): invalid YAML: "),
    ("name: [unclosed\n", "FUNCTION_CONFIG (not base64, read as YAML text): invalid YAML: "),
    ("%%%not-base64%%%", "FUNCTION_CONFIG (not base64, read as YAML text): "),
    (b64("- a list\n"), "FUNCTION_CONFIG (base64): the document is a list, not a mapping"),
])
def test_load_bad_function_config_is_one_line_naming_the_source(value: str,
                                                                 expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"FUNCTION_CONFIG": value}, default_path=Path("/nonexistent/x.yaml"))
    assert len(info.value.problems) == 1
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(expected)


def test_load_bad_yaml_file_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: fn\ncontainer: {image: busybox\n")
    with pytest.raises(ConfigError) as info:
        load({"FUNCTION_CONFIG_PATH": str(bad)})
    assert str(info.value).startswith(f"FUNCTION_CONFIG_PATH={bad}: invalid YAML: ")
    assert "line 3" in str(info.value)


def test_load_accepts_an_fdl_entry_and_a_whole_fdl(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-plants.sh").write_text("#!/bin/sh\n")
    entry = yaml.safe_load(PLANTS_FDL)["functions"]["aws"][0]
    config = load({"FUNCTION_CONFIG": b64(yaml.safe_dump(entry)),
                   "LAMBDA_TASK_ROOT": str(tmp_path)})
    assert config.name == "scar-plants"
    whole = tmp_path / "fdl.yaml"
    whole.write_text(PLANTS_FDL)
    assert load({"FUNCTION_CONFIG_PATH": str(whole)}).name == "scar-plants"


def test_load_invalid_config_raises_with_field_paths() -> None:
    with pytest.raises(ConfigError) as info:
        load({"FUNCTION_CONFIG": b64("name: fn\nmemory: 1\n")})
    assert info.value.problems[0].startswith("memory: 1 is out of range")


# --------------------------------------------------------------------------- to_yaml

def test_to_yaml_round_trips_the_plants_function(tmp_path: Path) -> None:
    (tmp_path / "bootstrap-plants.sh").write_text("#!/bin/sh\n")
    (tmp_path / "fdl.yaml").write_text(PLANTS_FDL)
    [config] = from_fdl(tmp_path / "fdl.yaml")
    text = to_yaml(config)
    document = yaml.safe_load(text)
    assert document["init_script"] == str(tmp_path / "bootstrap-plants.sh")
    assert "lambda" not in document
    assert parse(document, check_files=False) == config


def test_to_yaml_round_trips_every_field_and_keeps_unknown_keys() -> None:
    data = base()
    data.update(memory=2048, timeout=600, log_level="warning", init_script="/opt/s.sh",
                environment={"Variables": {"N": 1}}, note="kept",
                iam={"role": "r", "boundary": "kept"},
                cloudwatch={"log_retention_policy_in_days": 7},
                idempotency={"table": "idem"}, handoff={"bucket": "stage", "prefix": "h"})
    data["storage_providers"] = {"s3": {"p": {"auth": {"access_key": ACCESS,
                                                       "secret_key": SECRET},
                                              "region": "r1", "verify": False}}}
    data["output"] = [{"storage_provider": "s3.p", "path": "bucket/out",
                       "prefix": ["a"], "suffix": [".x"], "extra": 1}]
    data["container"].update(image_file="/img.tar", timeout_threshold=20,
                             pass_aws_credentials=True,
                             environment={"Variables": {"ON": True}})
    data["batch"].update(vcpus=2, enable_gpu=True, retry_attempts=2, timeout=120,
                         multi_node_parallel={"enabled": True, "number_nodes": 4},
                         environment={"Variables": {"X": "y"}})
    config = parse(data, check_files=False)
    document = yaml.safe_load(to_yaml(config))
    again = parse(document, check_files=False)
    assert again == config
    assert document["note"] == "kept"
    assert document["iam"]["boundary"] == "kept"
    assert document["output"][0]["extra"] == 1
    assert document["storage_providers"]["s3"]["p"]["verify"] is False


def test_to_yaml_writes_a_replaced_value_not_the_stale_raw() -> None:
    data = base()
    data["container"]["environment"] = {"Variables": {"KEEP": "1", "DROP": "2"}}
    config = parse(data)
    changed = dataclasses.replace(
        config, execution_mode="lambda", memory=1024,
        container=dataclasses.replace(config.container, environment={"KEEP": "1"}))
    document = yaml.safe_load(to_yaml(changed))
    assert document["execution_mode"] == "lambda"
    assert document["memory"] == 1024
    assert document["container"]["environment"]["Variables"] == {"KEEP": "1"}
    assert parse(document) == changed


def test_to_yaml_of_a_config_built_in_code() -> None:
    config = FunctionConfig(name="direct", container=dataclasses.replace(
        FunctionConfig(name="x").container, image="busybox"),
        input=(StoragePath("s3", "b/in"),), handoff_bucket="b")
    assert config.raw == {}
    assert parse(yaml.safe_load(to_yaml(config))) == config


def test_to_mapping_is_json_ready_and_round_trips() -> None:
    data = base()
    data["container"]["environment"] = {"Variables": {"N": 1}}
    config = parse(data)
    mapping = to_mapping(config)
    assert mapping["container"]["environment"]["Variables"] == {"N": "1"}
    assert parse(json.loads(json.dumps(mapping))) == config


def test_a_json_configuration_is_read_without_importing_pyyaml() -> None:
    import subprocess
    import sys

    code = textwrap.dedent("""\
        import base64, json, sys
        from supervisor.config import load, to_json, parse
        doc = {"name": "fn", "container": {"image": "busybox"},
               "input": [{"path": "b/in"}], "output": [{"path": "b/out"}]}
        text = to_json(parse(doc, check_files=False))
        config = load({"FUNCTION_CONFIG": base64.b64encode(text.encode()).decode()},
                      check_files=False)
        print(config.name, config.output[0].path, "yaml" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["fn", "b/out", "False"]


def test_to_json_round_trips_like_to_yaml() -> None:
    from supervisor.config import to_json

    config = parse(base(), check_files=False)
    assert parse(json.loads(to_json(config)), check_files=False) == config
    assert parse(yaml.safe_load(to_json(config)), check_files=False) == config


def test_a_delegating_function_reading_another_provider_needs_its_own_handoff_bucket() -> None:
    data = base()
    data.update(execution_mode="batch", batch={"compute_resources": {
        "subnets": ["s-1"], "security_group_ids": ["sg-1"]}})
    data["storage_providers"] = {"s3": {"minio": {"endpoint": "http://minio:9000"}}}
    data["input"] = [{"storage_provider": "s3.minio", "path": "data/in"}]
    with pytest.raises(ConfigError) as err:
        parse(data, check_files=False)
    assert any(p.startswith("handoff.bucket: missing, and the first input is on storage "
                            "provider s3.minio") for p in err.value.problems)
    data["handoff"] = {"bucket": "my-staging"}
    assert parse(data, check_files=False).handoff_bucket == "my-staging"


def test_execution_mode_and_log_level_from_the_environment_win_as_in_faas_supervisor(
        tmp_path: Path) -> None:
    flat = json.dumps({"name": "fn", "execution_mode": "lambda"})
    entry = json.dumps({"lambda": {"name": "fn", "log_level": "INFO"}})
    none = tmp_path / "none"
    assert load({"FUNCTION_CONFIG": flat}, default_path=none).execution_mode == "lambda"
    overridden = load({"FUNCTION_CONFIG": flat, "EXECUTION_MODE": "batch"}, default_path=none)
    assert overridden.execution_mode == "batch" and overridden.delegates
    assert load({"FUNCTION_CONFIG": entry, "EXECUTION_MODE": "lambda-batch",
                 "LOG_LEVEL": "DEBUG"}, default_path=none).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="execution_mode: 'fast' is not one of"):
        load({"FUNCTION_CONFIG": flat, "EXECUTION_MODE": "fast"}, default_path=none)


def test_scar_cfg_defaults_lie_under_each_function_and_the_definition_wins(
        tmp_path: Path) -> None:
    from supervisor.config.scarcfg import default_path, read_defaults

    cfg = tmp_path / "scar.cfg"
    cfg.write_text(json.dumps({"aws": {
        "iam": {"role": "arn:aws:iam::123456789012:role/from-cfg"},
        "lambda": {"memory": 2048, "runtime": "python3.7", "layers": ["x"]},
        "batch": {"compute_resources": {"subnets": ["subnet-cfg"], "max_v_cpus": 8}}}}))
    defaults = read_defaults(cfg)
    assert "runtime" not in defaults.sections["lambda"]  # SCAR's plumbing is not taken
    one, old = from_fdl(
        "functions:\n  aws:\n  - lambda: {name: one, memory: 1024}\n"
        "    batch: {compute_resources: {max_v_cpus: 4}}\n", defaults=defaults) + from_fdl(
        "functions:\n  old-one: {image: busybox, s3: {input_bucket: b}}\n", defaults=defaults)
    assert one.iam_role == old.iam_role == "arn:aws:iam::123456789012:role/from-cfg"
    assert (one.memory, old.memory) == (1024, 2048)
    assert one.batch.compute_resources.subnets == ("subnet-cfg",)
    assert one.batch.compute_resources.max_v_cpus == 4
    assert one.raw["_defaults_taken"]["keys"] == [
        "batch.compute_resources.subnets", "iam.role"]
    assert default_path({"SCAR_CONFIG_FOLDER": "/x"}) == Path("/x/scar.cfg")
    assert default_path({"HOME": "/h"}) == Path("/h/.scar/scar.cfg")
    assert not read_defaults(tmp_path / "absent.cfg")
    (tmp_path / "bad.cfg").write_text("[1, 2]")
    with pytest.raises(ConfigError):
        read_defaults(tmp_path / "bad.cfg")


def test_storage_provider_ids_with_dots_are_accepted_as_scar_writes_them() -> None:
    [config] = from_fdl("""
functions:
  aws:
  - lambda:
      name: dotted
      container: {image: busybox}
      input: [{storage_provider: s3, path: in}]
      output: [{storage_provider: s3.my.store, path: out/x}]
storage_providers:
  s3:
    my.store: {region: eu-west-1}
""")
    assert config.output[0].storage_provider == "s3.my.store"
    assert config.storage_providers["my.store"].region == "eu-west-1"
    from supervisor.aws import ClientFactory

    client = ClientFactory(providers=config.storage_providers).s3("s3.my.store")
    assert client.meta.region_name == "eu-west-1"


def test_minio_providers_are_s3_compatible_endpoints() -> None:
    [config] = from_fdl("""
functions:
  aws:
  - lambda:
      name: to-minio
      container: {image: busybox}
      input: [{storage_provider: s3, path: in}]
      output: [{storage_provider: minio.lab, path: results/x}]
storage_providers:
  minio:
    lab: {endpoint: "http://127.0.0.1:9000", access_key: AK, secret_key: SK, region: us-east-1}
""")
    assert config.output[0].storage_provider == "minio.lab"
    provider = config.storage_providers["minio.lab"]
    assert (provider.endpoint, provider.access_key) == ("http://127.0.0.1:9000", "AK")
    assert "SK" not in repr(provider)
    from supervisor.aws import ClientFactory

    client = ClientFactory(providers=config.storage_providers).s3("minio.lab")
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match="minio.lab.endpoint: missing"):
        from_fdl("functions: {aws: [{lambda: {name: f, output: [{storage_provider: minio.lab,"
                 " path: b}]}}]}\nstorage_providers: {minio: {lab: {access_key: a, "
                 "secret_key: b}}}\n")


ALIAS_BOMB = """\
name: fn
container: {image: busybox}
unknown:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("text, words", [
    (ALIAS_BOMB, "once its YAML aliases are expanded"),
    ("name: fn\nx: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64 levels"),
    ('{"name": "fn", "x": ' + "[" * 100000 + "]" * 100000 + "}", "nested more than 64 levels"),
    ('{"name": "fn", "x": ' + "[" * 100 + "]" * 100 + "}", "nested more than 64 levels"),
])
def test_a_configuration_too_large_or_too_deep_is_refused_at_once(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:  # (the alias bomb: at once, not after minutes)
        load({"FUNCTION_CONFIG": text}, default_path=Path("/nonexistent"))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_lambda_batch_needs_a_threshold_that_leaves_time_to_hand_off() -> None:
    data = base()
    data["execution_mode"] = "lambda-batch"
    data["container"]["timeout_threshold"] = 0
    assert any(p.startswith("container.timeout_threshold: 0 leaves no time to hand off")
               for p in problems_of(data))
    data["execution_mode"] = "lambda"
    parse(data)  # nothing is handed off in lambda mode: 0 is fine there


def test_a_warm_invocation_reuses_the_parsed_configuration_until_its_source_changes(
        tmp_path: Path) -> None:
    from supervisor.config import load

    (tmp_path / "s.sh").write_text("true\n")
    inline = base64.b64encode(b"name: cached\ninit_script: s.sh\n").decode()
    env = {"FUNCTION_CONFIG": inline, "LAMBDA_TASK_ROOT": str(tmp_path)}
    first = load(env)
    assert load(dict(env)) is first
    assert load(dict(env, EXECUTION_MODE="lambda-batch")).execution_mode == "lambda-batch"
    other = base64.b64encode(b"name: other\ninit_script: s.sh\n").decode()
    assert load(dict(env, FUNCTION_CONFIG=other)).name == "other"

    file = tmp_path / "function_config.yaml"
    file.write_text("name: from-file\ninit_script: s.sh\n")
    by_path = {"FUNCTION_CONFIG_PATH": str(file)}
    assert load(by_path).name == "from-file"
    file.write_text("name: edited-file\ninit_script: s.sh\n")  # same size class, new content
    assert load(by_path).name == "edited-file"
