"""The names of everything deploy makes for one function (pure; shared by deploy and rm)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import FunctionConfig

__all__ = ["Names", "names_of", "DEFAULT_LAYER_NAME", "NOTIFICATION_PREFIX",
           "partition_of", "function_arn", "bucket_arn", "deployment_bucket",
           "launch_template_name", "DEFAULT_LAUNCH_TEMPLATE"]

DEFAULT_LAYER_NAME = "supervisor-runtime"
#: SCAR's default ``launch_template_name``: it names one template per function here
#: (``faas-supervisor-<function>``), since the user data names the function's own bucket.
DEFAULT_LAUNCH_TEMPLATE = "faas-supervisor"
NOTIFICATION_PREFIX = "supervisor-"
_STATEMENT_BAD = re.compile(r"[^A-Za-z0-9_-]")


def partition_of(region: str) -> str:
    """The ARN partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def function_arn(region: str, account_id: str, name: str) -> str:
    """The unqualified ARN of a Lambda function."""
    return f"arn:{partition_of(region)}:lambda:{region}:{account_id}:function:{name}"


def bucket_arn(region: str, bucket: str) -> str:
    """The ARN of an S3 bucket."""
    return f"arn:{partition_of(region)}:s3:::{bucket}"


@dataclass(frozen=True)
class Names:
    """Resource names derived from one function's configuration."""

    function: str
    layer: str
    udocker_layer: str  # "<layer>-udocker": udocker and its engine files
    log_group: str
    notification_id: str
    compute_environment: str
    job_queue: str
    job_definition: str
    launch_template: str
    staging_bucket: str  # "" when the function has no input bucket
    artifact_prefix: str  # "<handoff prefix>artifacts/"
    buckets: tuple[str, ...]  # every bucket on the default provider "s3", in config order
    input_buckets: tuple[str, ...]
    deployment_bucket: str = ""  # SCAR's deployment.bucket: the code goes there, then Lambda
    code_key: str = ""  # the deployment package's key in it

    def code_location(self) -> dict[str, str]:
        """``S3Bucket``/``S3Key`` of the package, or {} when it is sent in the request."""
        if not self.deployment_bucket:
            return {}
        return {"S3Bucket": self.deployment_bucket, "S3Key": self.code_key}

    def statement_id(self, bucket: str) -> str:
        """The Lambda permission statement id for S3 notifications of ``bucket``."""
        return f"{NOTIFICATION_PREFIX}s3-{_STATEMENT_BAD.sub('-', bucket)}"[:100]

    def entry_id(self, index: int) -> str:
        """The Id of the ``index``-th notification entry of this function on one bucket."""
        base = self.notification_id
        return base if index == 0 else f"{base}-{index + 1}"


def names_of(config: FunctionConfig, layer_name: str = DEFAULT_LAYER_NAME) -> Names:
    """The names deploy uses for ``config``'s resources."""
    own = [p for p in (*config.input, *config.output) if p.storage_provider == "s3"]
    staging = config.handoff_bucket or ""
    buckets = list(dict.fromkeys(p.bucket for p in own))
    ships_image = bool(config.container.image_file) and \
        not str(config.container.image_file).startswith("s3://")
    if (config.delegates or ships_image) and staging and staging not in buckets:
        buckets.append(staging)
    deployment = deployment_bucket(config)
    if deployment and deployment not in buckets:
        buckets.append(deployment)
    inputs = tuple(dict.fromkeys(p.bucket for p in config.input
                                 if p.storage_provider == "s3"))
    return Names(
        function=config.name,
        layer=layer_name,
        udocker_layer=f"{layer_name}-udocker",
        log_group=f"/aws/lambda/{config.name}",
        notification_id=f"{NOTIFICATION_PREFIX}{config.name}",
        compute_environment=config.name,
        job_queue=config.job_queue_name,
        job_definition=config.job_definition_name,
        launch_template=launch_template_name(config),
        staging_bucket=staging,
        artifact_prefix=f"{config.handoff_prefix}artifacts/",
        buckets=tuple(buckets),
        input_buckets=inputs,
        deployment_bucket=deployment,
        code_key=f"supervisor-code/{config.name}.zip" if deployment else "",
    )


def launch_template_name(config: FunctionConfig) -> str:
    """The launch template of ``config``'s Batch hosts: the one it names, or with SCAR's
    default name, ``faas-supervisor-<function>`` (EC2 allows 128 characters)."""
    name = config.batch.compute_resources.launch_template_name
    if name != DEFAULT_LAUNCH_TEMPLATE:
        return name
    return f"{name}-{config.name}"[:128]


def deployment_bucket(config: FunctionConfig) -> str:
    """SCAR's ``deployment.bucket`` of ``config`` ("" without one; checked by the plan)."""
    section = config.raw.get("deployment")
    bucket = section.get("bucket") if isinstance(section, dict) else None
    return bucket.strip() if isinstance(bucket, str) else ""
