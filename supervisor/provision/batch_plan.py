"""Pure builders of the Batch requests: compute environment, job queue, job definition.

The job container runs ``python3 /opt/supervisor/supervisor-batch.pyz``: the
host directory ``/opt/supervisor`` (filled by the launch template's user
data) is mounted read-only, because Batch cannot override an image's
ENTRYPOINT and the user's image does not carry the supervisor.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Optional

from ..config import FunctionConfig
from .errors import ProvisionError
from .names import Names
from .requests import ComputeEnvironmentRequest, JobDefinitionRequest, JobQueueRequest
from .userdata import HOST_DIR, HOST_PYZ

__all__ = [
    "MAX_JOB_DEFINITION_BYTES", "SHA_TAG", "PYTHON_CHECK", "JOB_COMMAND", "VOLUME", "fill_account",
    "compute_environment_request", "job_queue_request", "container_properties",
    "job_definition_request", "check_job_definition_size", "raw_batch",
]

MAX_JOB_DEFINITION_BYTES = 24 * 1024  # RegisterJobDefinition's request limit
SHA_TAG = "supervisor:sha256"  # digest of the definition, on every revision deploy registers
PYTHON_CHECK = (
    'command -v python3 >/dev/null 2>&1 || { echo "supervisor-batch: the job image'
    ' (container.image) has no python3 on its PATH; supervisor-batch needs Python 3.9 or'
    ' newer in the image" >&2; exit 127; }; exec python3 "$1"')
"""The job's shell: an image without ``python3`` fails with one line saying so."""
JOB_COMMAND = ("/bin/sh", "-c", PYTHON_CHECK, "supervisor-batch", HOST_PYZ)
VOLUME = "supervisor"
_ALLOCATION = {"EC2": "BEST_FIT_PROGRESSIVE", "SPOT": "SPOT_CAPACITY_OPTIMIZED"}


def fill_account(value: str, account_id: str) -> str:
    """``value`` with ``{account_id}`` replaced."""
    return value.replace("{account_id}", account_id)


def raw_batch(config: FunctionConfig) -> Mapping[str, Any]:
    """The raw ``batch`` mapping of the configuration (for keys the typed config lacks)."""
    section = config.raw.get("batch")
    return section if isinstance(section, Mapping) else {}


def compute_environment_request(config: FunctionConfig, names: Names,
                                account_id: str) -> ComputeEnvironmentRequest:
    """The compute environment of the ``batch`` block, ``{account_id}`` filled in.

    MANAGED environments get ``BEST_FIT_PROGRESSIVE`` (EC2) or
    ``SPOT_CAPACITY_OPTIMIZED`` (SPOT) allocation unless
    ``batch.compute_resources.allocation_strategy`` says otherwise: both allow
    the in-place (infrastructure) updates deploy makes when the launch
    template changes.
    """
    batch, compute = config.batch, config.batch.compute_resources
    resources: Optional[dict[str, Any]] = None
    if batch.type == "MANAGED":
        raw_compute = raw_batch(config).get("compute_resources")
        strategy = raw_compute.get("allocation_strategy") if isinstance(raw_compute,
                                                                         Mapping) else None
        resources = {
            "type": compute.type,
            "allocationStrategy": (strategy if isinstance(strategy, str) and strategy
                                   else _ALLOCATION.get(compute.type, "BEST_FIT_PROGRESSIVE")),
            "minvCpus": compute.min_v_cpus,
            "maxvCpus": compute.max_v_cpus,
            "desiredvCpus": compute.desired_v_cpus,
            "instanceTypes": list(compute.instance_types),
            "subnets": list(compute.subnets),
            "securityGroupIds": list(compute.security_group_ids),
            "instanceRole": fill_account(compute.instance_role, account_id),
            "launchTemplate": {"launchTemplateName": names.launch_template},
        }
    return ComputeEnvironmentRequest(
        name=names.compute_environment, type=batch.type, state=batch.state,
        service_role=fill_account(batch.service_role, account_id),
        compute_resources=resources)


def job_queue_request(config: FunctionConfig, names: Names) -> JobQueueRequest:
    """The job queue (priority 1) in front of the function's compute environment."""
    return JobQueueRequest(name=names.job_queue, compute_environment=names.compute_environment,
                           state=config.batch.state)


def container_properties(config: FunctionConfig, account_id: str) -> dict[str, Any]:
    """The job container: the user's image running the supervisor from the host."""
    batch = config.batch
    requirements = [{"type": "VCPU", "value": str(batch.vcpus)},
                    {"type": "MEMORY", "value": str(batch.memory)}]
    if batch.enable_gpu:
        requirements.append({"type": "GPU", "value": "1"})
    properties: dict[str, Any] = {
        "image": config.container.image,
        "command": list(JOB_COMMAND),
        "resourceRequirements": requirements,
        "environment": [{"name": k, "value": v} for k, v in sorted(batch.environment.items())],
        "volumes": [{"name": VOLUME, "host": {"sourcePath": HOST_DIR}}],
        "mountPoints": [{"sourceVolume": VOLUME, "containerPath": HOST_DIR, "readOnly": True}],
    }
    job_role = raw_batch(config).get("job_role")
    if isinstance(job_role, str) and job_role.strip():
        properties["jobRoleArn"] = fill_account(job_role.strip(), account_id)
    return properties


def job_definition_request(config: FunctionConfig, names: Names,
                           account_id: str) -> JobDefinitionRequest:
    """The job definition (container, or multinode when ``multi_node_parallel.enabled``).

    Its digest goes in the tag :data:`SHA_TAG`, so a later deploy registers a
    new revision only when the definition changed. Raises ``ProvisionError``
    when it is larger than Batch's 24 KiB.
    """
    batch = config.batch
    container = container_properties(config, account_id)
    body: dict[str, Any] = {"jobDefinitionName": names.job_definition}
    nodes = batch.multi_node_parallel
    if nodes.enabled:
        body["type"] = "multinode"
        body["nodeProperties"] = {
            "numNodes": nodes.number_nodes,
            "mainNode": nodes.main_node_index,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        }
    else:
        body["type"] = "container"
        body["containerProperties"] = container
    if batch.retry_attempts is not None:
        body["retryStrategy"] = {"attempts": batch.retry_attempts}
    if batch.job_timeout is not None:
        body["timeout"] = {"attemptDurationSeconds": batch.job_timeout}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True,
                                       separators=(",", ":")).encode("utf-8")).hexdigest()
    body["tags"] = {SHA_TAG: digest}
    check_job_definition_size(body)
    return JobDefinitionRequest(name=names.job_definition, definition=body, sha256=digest)


def check_job_definition_size(definition: Mapping[str, Any]) -> int:
    """The serialized size of a ``RegisterJobDefinition`` request; error above 24 KiB."""
    size = len(json.dumps(definition, separators=(",", ":")).encode("utf-8"))
    if size > MAX_JOB_DEFINITION_BYTES:
        raise ProvisionError(
            f"job definition {definition.get('jobDefinitionName')!r} is {size} bytes; Batch "
            f"allows {MAX_JOB_DEFINITION_BYTES} (shorten batch.environment)")
    return size
