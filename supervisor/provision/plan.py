"""Build the plan: the typed resource requests one function needs (pure, no AWS calls).

``build_plan`` reads only local files (the init script, the layer zip, the
.pyz) and takes the account id and region as values. Everything it can see
is wrong with the configuration for a deploy is reported at once, in one
``ProvisionError``, before any AWS call.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Optional

from ..config import FunctionConfig, StoragePath
from .apigw import api_gateway_request
from .batch_plan import (
    compute_environment_request,
    fill_account,
    job_definition_request,
    job_queue_request,
)
from .errors import ProvisionError
from .lambda_options import lambda_options
from .names import (
    DEFAULT_LAYER_NAME,
    Names,
    bucket_arn,
    deployment_bucket,
    function_arn,
    names_of,
)
from .package import CONFIG_NAME, TASK_ROOT, deployment_zip, file_sha256
from .requests import (
    ArtifactRequest,
    BucketRequest,
    FunctionRequest,
    LaunchTemplateRequest,
    LayerRequest,
    LogGroupRequest,
    NotificationRequest,
    PermissionRequest,
    Plan,
    Request,
)
from .script_check import syntax_problem
from .userdata import batch_user_data

__all__ = [
    "PLACEHOLDER_ACCOUNT_ID", "DEFAULT_RUNTIME", "HANDLER", "DEFAULT_EPHEMERAL_STORAGE",
    "DEFAULT_LAYER_ZIP", "DEFAULT_BATCH_PYZ", "CONFIG_PATH_ENV", "build_plan",
    "check_config", "notification_prefix", "artifact_key",
]

#: The account id of a dry-run plan: deploy makes no call, not even STS.
PLACEHOLDER_ACCOUNT_ID = "<account-id>"
DEFAULT_RUNTIME = "python3.12"
HANDLER = "supervisor.handler.lambda_handler"
DEFAULT_EPHEMERAL_STORAGE = 512  # MB of /tmp
DEFAULT_LAYER_ZIP = Path("dist/supervisor-layer.zip")
DEFAULT_BATCH_PYZ = Path("dist/supervisor-batch.pyz")
DEFAULT_UDOCKER_LAYER_ZIP = Path("dist/udocker-layer.zip")
BUILD_HINT = ("build it with supervisor build -o DIR (deploy and local build it when no path "
              "is given)")
CONFIG_PATH_ENV = "FUNCTION_CONFIG_PATH"
LAMBDA_ENV_LIMIT = 4096  # bytes, all keys and values
MAX_LAYERS = 5
MAX_DIRECT_UPLOAD = 50 * 1024 * 1024  # bytes: a zip sent in the request itself

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}|\{account_id\}):role/[\w+=,.@/-]+")
_RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


def notification_prefix(path: StoragePath) -> str:
    """The S3Key prefix filter of an input path: ``"<key prefix>/"``, or "" for a bucket."""
    return f"{path.key_prefix}/" if path.key_prefix else ""


def artifact_key(names: Names, sha256: str) -> str:
    """Where deploy puts the .pyz: ``<handoff prefix>artifacts/supervisor-batch-<sha16>.pyz``."""
    return f"{names.artifact_prefix}supervisor-batch-{sha256[:16]}.pyz"


def _raw_text(config: FunctionConfig, key: str) -> Any:
    return config.raw.get(key)


def _runtime(config: FunctionConfig, problems: list[str]) -> str:
    value = _raw_text(config, "runtime")
    if value is None:
        return DEFAULT_RUNTIME
    if isinstance(value, str) and re.fullmatch(r"python3\.\d+", value.strip()):
        return value.strip()
    problems.append(f"runtime: {value!r} is not a Python runtime; must be python3.N "
                    f"(default {DEFAULT_RUNTIME})")
    return DEFAULT_RUNTIME


def _ephemeral_storage(config: FunctionConfig, problems: list[str]) -> int:
    value = _raw_text(config, "ephemeral_storage")
    if value is None:
        return DEFAULT_EPHEMERAL_STORAGE
    if isinstance(value, int) and not isinstance(value, bool) and 512 <= value <= 10240:
        return value
    problems.append(f"ephemeral_storage: {value!r} is not an integer from 512 to 10240 (MB)")
    return DEFAULT_EPHEMERAL_STORAGE


def _extra_layers(config: FunctionConfig, problems: list[str]) -> tuple[str, ...]:
    value = _raw_text(config, "layers")
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) and v.startswith("arn:")
                                       for v in value):
        if len(value) + 1 > MAX_LAYERS:
            problems.append(f"layers: {len(value)} layers and the supervisor's are more than "
                            f"Lambda's {MAX_LAYERS}")
        return tuple(value)
    problems.append("layers: must be a list of layer version ARNs")
    return ()


def _environment(config: FunctionConfig, problems: list[str]) -> dict[str, str]:
    env = dict(config.environment)
    reserved = sorted(k for k in env if k in _RESERVED_ENV or k == CONFIG_PATH_ENV)
    if reserved:
        problems.append(f"environment: {', '.join(reserved)} are set by Lambda or deploy; "
                        "remove them from environment.Variables")
    env[CONFIG_PATH_ENV] = f"{TASK_ROOT}/{CONFIG_NAME}"
    size = sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in env.items())
    if size > LAMBDA_ENV_LIMIT:
        problems.append(f"environment: the function's variables take {size} bytes with "
                        f"{CONFIG_PATH_ENV}; Lambda allows {LAMBDA_ENV_LIMIT}")
    return env


def check_config(config: FunctionConfig) -> list[str]:
    """What makes ``config`` undeployable, one line each (empty: deployable).

    Re-checks defensively what config parsing already enforces for Batch
    modes (subnets, security groups, an image).
    """
    problems: list[str] = []
    if not config.iam_role:
        problems.append("iam.role: missing; deploy needs the ARN of the Lambda function's "
                        "execution role (iam: {role: arn:aws:iam::<account>:role/<name>})")
    elif not _ROLE_ARN.fullmatch(config.iam_role):
        problems.append(f"iam.role: {config.iam_role!r} is not an IAM role ARN; must be "
                        "arn:aws:iam::<account>:role/<name>")
    if isinstance(config.raw.get("deployment"), dict) and \
            "bucket" in config.raw["deployment"] and \
            not _BUCKET.fullmatch(deployment_bucket(config)):
        problems.append(f"deployment.bucket: {config.raw['deployment']['bucket']!r} is not "
                        "an S3 bucket name")
    for i, path in enumerate(config.input):
        if path.storage_provider != "s3":
            problems.append(f"input[{i}].storage_provider: {path.storage_provider} cannot "
                            "notify the function; S3 notifications to Lambda need an input "
                            "on storage_provider s3 (the function's own account)")
    if config.delegates:
        compute = config.batch.compute_resources
        mode = config.execution_mode
        if not config.container.image.strip():
            problems.append(f"container.image: missing; execution_mode {mode} runs the "
                            "image on AWS Batch")
        if not compute.subnets:
            problems.append(f"batch.compute_resources.subnets: missing; execution_mode "
                            f"{mode} needs at least one subnet")
        if not compute.security_group_ids:
            problems.append(f"batch.compute_resources.security_group_ids: missing; "
                            f"execution_mode {mode} needs at least one security group")
        if compute.type.startswith("FARGATE"):
            problems.append(f"batch.compute_resources.type: {compute.type} is not supported; "
                            "jobs read supervisor-batch.pyz from the host, which Fargate "
                            "does not have: use EC2 or SPOT")
        if config.batch.multi_node_parallel.enabled and compute.type == "SPOT":
            problems.append("batch.multi_node_parallel: multi-node jobs cannot run on a SPOT "
                            "compute environment; use compute_resources.type EC2")
        if config.batch.multi_node_parallel.enabled and config.batch.type == "UNMANAGED":
            problems.append("batch.multi_node_parallel: multi-node jobs cannot run on an "
                            "UNMANAGED compute environment; use batch.type MANAGED")
        if not config.handoff_bucket:
            problems.append("handoff.bucket: missing; a Batch mode needs a staging bucket "
                            "(set handoff.bucket or an input path)")
    return problems


def _file_problem(path: Path, what: str, hint: str) -> Optional[str]:
    if path.is_file():
        return None
    return f"{what}: {str(path)!r} does not exist; {hint}"


def build_plan(config: FunctionConfig, *, account_id: str, region: str,
               layer_zip: Path = DEFAULT_LAYER_ZIP, batch_pyz: Optional[Path] = None,
               layer_name: str = DEFAULT_LAYER_NAME,
               udocker_layer_zip: Path = DEFAULT_UDOCKER_LAYER_ZIP,
               placeholder_account: bool = False) -> Plan:
    """The resources ``config`` needs, in apply order.

    ``account_id`` fills ``{account_id}`` and the ARNs; ``batch_pyz`` is
    needed for ``lambda-batch`` and ``batch`` (default
    ``dist/supervisor-batch.pyz``). Raises ``ProvisionError`` listing every
    problem found before any AWS call.
    """
    problems = check_config(config)
    if config.init_script:
        problem = syntax_problem(Path(config.init_script))
        if problem:
            problems.append(problem)
    runtime = _runtime(config, problems)
    ephemeral = _ephemeral_storage(config, problems)
    extra_layers = _extra_layers(config, problems)
    environment = _environment(config, problems)
    image_file = config.container.image_file
    if image_file and not image_file.startswith("s3://"):
        if not (config.handoff_bucket or ""):
            problems.append("container.image_file: shipping a local image archive needs a "
                            "staging bucket (handoff.bucket, or an input on storage_provider s3)")
        missing = _file_problem(Path(image_file), "container.image_file",
                                "a docker save archive")
        if missing:
            problems.append(missing)
    missing = _file_problem(layer_zip, "layer zip", BUILD_HINT)
    if missing:
        problems.append(missing)
    elif layer_zip.stat().st_size > MAX_DIRECT_UPLOAD:
        problems.append(f"layer zip: {str(layer_zip)!r} is {layer_zip.stat().st_size} bytes; "
                        f"a direct upload allows {MAX_DIRECT_UPLOAD}")
    containers = runs_containers_on_lambda(config)
    options = lambda_options(config, containers, problems)
    fn_arn = function_arn(region, account_id, config.name)
    api = api_gateway_request(config.raw.get("api_gateway"), config.name, fn_arn, region,
                              account_id, problems)
    if containers:
        missing = _file_problem(udocker_layer_zip, "udocker layer zip",
                                f"{BUILD_HINT} (the function runs its script "
                                "in container.image on Lambda)")
        if missing:
            problems.append(missing)
    pyz = batch_pyz if batch_pyz is not None else DEFAULT_BATCH_PYZ
    if config.delegates:
        missing = _file_problem(pyz, "supervisor-batch.pyz", BUILD_HINT)
        if missing:
            problems.append(missing)
    if problems:
        raise ProvisionError("; ".join(problems))

    names = names_of(config, layer_name)
    shipped, image_artifact = _shipped_image(config, names)
    requests: list[Request] = [BucketRequest(name=b, region=region, function=config.name)
                               for b in names.buckets]
    requests.append(LayerRequest(name=names.layer, zip_path=layer_zip,
                                 sha256=file_sha256(layer_zip),
                                 compatible_runtimes=(runtime,)))
    if containers:
        requests.append(LayerRequest(name=names.udocker_layer, zip_path=udocker_layer_zip,
                                     sha256=file_sha256(udocker_layer_zip),
                                     compatible_runtimes=(runtime,)))
    if image_artifact is not None:
        requests.append(image_artifact)
    description = _raw_text(config, "description")
    requests.append(FunctionRequest(
        name=config.name, runtime=runtime, handler=HANDLER,
        role=fill_account(config.iam_role or "", account_id), memory=config.memory,
        timeout=config.timeout, ephemeral_storage=ephemeral, environment=environment,
        description=(description[:256] if isinstance(description, str)
                     else f"supervisor: {config.container.image}"[:256]),
        code=deployment_zip(shipped), extra_layers=extra_layers, options=options,
        code_location=names.code_location()))
    if config.log_retention_days is not None:
        requests.append(LogGroupRequest(name=names.log_group,
                                        retention_days=config.log_retention_days))
    if api is not None:
        requests.append(api)
    requests.extend(_notification_requests(config, names, fn_arn, account_id, region))
    if config.delegates:
        requests.extend(_batch_requests(config, names, pyz, account_id, region))
    return Plan(function=config.name, account_id=account_id, region=region,
                requests=tuple(requests), placeholder_account=placeholder_account)


def runs_containers_on_lambda(config: FunctionConfig) -> bool:
    """Whether the Lambda side runs the script in an image (and so needs the udocker layer)."""
    container = config.container
    return (config.execution_mode != "batch" and not container.run_on_host
            and bool(container.image.strip() or container.image_file))


def image_key(names: Names, sha256: str) -> str:
    """Where deploy puts a local image archive: ``<handoff prefix>artifacts/image-<sha16>.tar``."""
    return f"{names.artifact_prefix}image-{sha256[:16]}.tar"


def _shipped_image(config: FunctionConfig,
                   names: Names) -> tuple[FunctionConfig, Optional[ArtifactRequest]]:
    """A local ``container.image_file`` goes to the staging bucket; the deployed
    configuration names it there (``s3://…``), not by the deployer's path."""
    local = config.container.image_file
    if not local or local.startswith("s3://"):
        return config, None
    path = Path(local)
    sha = file_sha256(path)
    artifact = ArtifactRequest(bucket=names.staging_bucket, key=image_key(names, sha),
                               path=path, sha256=sha)
    container = dataclasses.replace(config.container, image_file=artifact.name)
    return dataclasses.replace(config, container=container), artifact


def _notification_requests(config: FunctionConfig, names: Names, fn_arn: str,
                           account_id: str, region: str) -> list[Request]:
    permissions: list[Request] = []
    notifications: list[Request] = []
    seen: dict[str, list[str]] = {}
    for path in config.input:
        prefixes = seen.setdefault(path.bucket, [])
        prefix = notification_prefix(path)
        if prefix in prefixes:
            continue
        if not prefixes:
            permissions.append(PermissionRequest(
                function_name=config.name, statement_id=names.statement_id(path.bucket),
                bucket=path.bucket, source_arn=bucket_arn(region, path.bucket),
                source_account=account_id))
        notifications.append(NotificationRequest(
            bucket=path.bucket, id=names.entry_id(len(prefixes)), function_arn=fn_arn,
            prefix=prefix))
        prefixes.append(prefix)
    return permissions + notifications


def _batch_requests(config: FunctionConfig, names: Names, pyz: Path, account_id: str,
                    region: str) -> list[Request]:
    out: list[Request] = []
    managed = config.batch.type == "MANAGED"
    sha = file_sha256(pyz)
    artifact = ArtifactRequest(bucket=names.staging_bucket, key=artifact_key(names, sha),
                               path=pyz, sha256=sha)
    out.append(artifact)
    if managed:
        out.append(LaunchTemplateRequest(
            name=names.launch_template,
            user_data=batch_user_data(bucket=artifact.bucket, key=artifact.key, sha256=sha,
                                      region=region)))
    out.append(compute_environment_request(config, names, account_id))
    out.append(job_queue_request(config, names))
    out.append(job_definition_request(config, names, account_id))
    return out

