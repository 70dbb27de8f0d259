"""The configuration's typed values: frozen dataclasses with SCAR's defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Union

ExecutionMode = Literal["lambda", "lambda-batch", "batch"]
EXECUTION_MODES: tuple[str, ...] = ("lambda", "lambda-batch", "batch")


def folders_overlap(a: str, b: str) -> bool:
    """Whether two ``bucket/prefix`` folders share keys (one is, or is inside, the other)."""
    a_dir, b_dir = a.strip("/") + "/", b.strip("/") + "/"
    return a_dir.startswith(b_dir) or b_dir.startswith(a_dir)


@dataclass(frozen=True)
class StoragePath:
    """One input or output path: ``bucket/prefix`` on a storage provider."""

    storage_provider: str  # "s3", "s3.<id>" or "minio.<id>"
    path: str  # "bucket" or "bucket/some/prefix", no leading/trailing slash
    prefix: tuple[str, ...] = ()  # outputs only: relative-path prefixes, any of
    suffix: tuple[str, ...] = ()  # outputs only: relative-path suffixes, any of

    def overlaps(self, other: "StoragePath") -> bool:
        """Whether keys written under one path land under the other (same provider)."""
        return self.storage_provider == other.storage_provider and \
            folders_overlap(self.path, other.path)

    @property
    def bucket(self) -> str:
        """The bucket name: the first segment of ``path``."""
        return self.path.split("/", 1)[0]

    @property
    def key_prefix(self) -> str:
        """The key prefix inside the bucket ('' when the path is a bare bucket)."""
        parts = self.path.split("/", 1)
        return parts[1] if len(parts) == 2 else ""


SecretService = Literal["secretsmanager", "ssm"]


@dataclass(frozen=True)
class SecretRef:
    """A credential kept in AWS Secrets Manager or SSM Parameter Store, read at run time.

    ``name`` is what the service's read call takes (a secret's name or ARN, a
    parameter's name or ARN); ``key`` picks one field of a JSON value. ``text``
    is the ARN string it was written as (``None``: the mapping form), so it is
    written back out as it came. A reference holds no secret.
    """

    service: SecretService
    name: str
    key: Optional[str] = None
    version_stage: Optional[str] = None  # secretsmanager only
    version_id: Optional[str] = None  # secretsmanager only
    text: Optional[str] = None

    @property
    def region(self) -> Optional[str]:
        """The region named by an ARN (``None``: the caller's own region)."""
        parts = self.name.split(":")
        if not self.name.startswith("arn:") or len(parts) < 5:
            return None
        return parts[3] or None

    def describe(self) -> str:
        """The reference in words, for messages (never the value)."""
        what = (f"Secrets Manager secret {self.name!r}" if self.service == "secretsmanager"
                else f"SSM parameter {self.name!r}")
        for label, value in (("key", self.key), ("version_stage", self.version_stage),
                             ("version_id", self.version_id)):
            if value is not None:
                what += f" {label} {value!r}"
        return what


Credential = Union[str, SecretRef]
"""A provider's ``access_key`` or ``secret_key``: the key itself, or where to read it."""


@dataclass(frozen=True)
class S3Provider:
    """A named ``storage_providers.s3.<id>`` entry with its own credentials."""

    id: str
    access_key: Optional[Credential] = None
    secret_key: Optional[Credential] = None
    region: Optional[str] = None
    endpoint: Optional[str] = None

    def __repr__(self) -> str:  # never show the secret (a reference may be shown)
        refs = "".join(f", {name}={value!r}" for name, value in (
            ("access_key", self.access_key), ("secret_key", self.secret_key))
            if isinstance(value, SecretRef))
        return (f"S3Provider(id={self.id!r}, region={self.region!r}, "
                f"endpoint={self.endpoint!r}{refs})")

    @property
    def references(self) -> bool:
        """Whether a credential is read from Secrets Manager or Parameter Store."""
        return isinstance(self.access_key, SecretRef) or isinstance(self.secret_key, SecretRef)


@dataclass(frozen=True)
class ContainerConfig:
    """``lambda.container``: the image and the script's environment."""

    image: str = ""
    image_file: Optional[str] = None
    timeout_threshold: int = 10
    environment: Mapping[str, str] = field(default_factory=dict)
    pass_aws_credentials: bool = False
    run_on_host: bool = False  # on Lambda, run the script on the host; the image is for Batch
    execmode: str = "auto"  # udocker execution mode: auto (P1 if ptrace works, else F1), P*, F*
    insecure_registry: bool = False  # allow plain HTTP to a registry not on loopback


@dataclass(frozen=True)
class ComputeResources:
    """``batch.compute_resources`` with SCAR's defaults."""

    type: str = "EC2"
    desired_v_cpus: int = 0
    min_v_cpus: int = 0
    max_v_cpus: int = 2
    instance_types: tuple[str, ...] = ("m3.medium",)
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    launch_template_name: str = "faas-supervisor"
    instance_role: str = "arn:aws:iam::{account_id}:instance-profile/ecsInstanceRole"


@dataclass(frozen=True)
class MultiNodeParallel:
    """``batch.multi_node_parallel``."""

    enabled: bool = False
    number_nodes: int = 10
    main_node_index: int = 0


@dataclass(frozen=True)
class BatchConfig:
    """The ``batch`` block beside ``lambda``, with SCAR's ``scar.cfg`` defaults."""

    vcpus: int = 1
    memory: int = 1024
    enable_gpu: bool = False
    state: str = "ENABLED"
    type: str = "MANAGED"
    compute_resources: ComputeResources = field(default_factory=ComputeResources)
    service_role: str = "arn:aws:iam::{account_id}:role/service-role/AWSBatchServiceRole"
    multi_node_parallel: MultiNodeParallel = field(default_factory=MultiNodeParallel)
    environment: Mapping[str, str] = field(default_factory=dict)
    job_queue: Optional[str] = None  # default: the function name
    job_definition: Optional[str] = None  # default: the function name
    retry_attempts: Optional[int] = None  # batch.retry_attempts -> retryStrategy.attempts
    job_timeout: Optional[int] = None  # batch.timeout (seconds) -> timeout.attemptDurationSeconds


@dataclass(frozen=True)
class HistoryConfig:
    """``history``: the DynamoDB table of what each Lambda run cost (``lambda-batch``)."""

    table: Optional[str] = None  # None: no run history
    expires_after_seconds: int = 30 * 24 * 60 * 60  # what was learned is kept this long
    explore_fraction: float = 0.02  # records history would delegate that still run here


@dataclass(frozen=True)
class FunctionConfig:
    """One function's configuration: the ``lambda`` section plus its siblings.

    ``raw`` is the merged mapping it was parsed from (unknown keys kept), so a
    configuration can be written back out (hand-off, deploy) without loss.
    """

    name: str
    execution_mode: ExecutionMode = "lambda"
    memory: int = 512
    timeout: int = 300
    init_script: Optional[str] = None  # absolute path once loaded from a file
    container: ContainerConfig = field(default_factory=ContainerConfig)
    input: tuple[StoragePath, ...] = ()
    output: tuple[StoragePath, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)  # the Lambda function's own
    storage_providers: Mapping[str, S3Provider] = field(default_factory=dict)
    batch: BatchConfig = field(default_factory=BatchConfig)
    iam_role: Optional[str] = None
    log_level: str = "INFO"
    log_retention_days: Optional[int] = None  # cloudwatch.log_retention_policy_in_days
    idempotency_table: Optional[str] = None  # idempotency.table
    idempotency_expires_after: int = 86400  # idempotency.expires_after_seconds
    handoff_bucket: Optional[str] = None  # handoff.bucket, default: first input bucket
    handoff_prefix: str = "supervisor-handoff/"  # handoff.prefix
    history: HistoryConfig = field(default_factory=HistoryConfig)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def delegates(self) -> bool:
        """Whether records may be handed to AWS Batch (``lambda-batch`` or ``batch``)."""
        return self.execution_mode != "lambda"

    @property
    def job_queue_name(self) -> str:
        """The Batch job queue: ``batch.job_queue``, else the function name."""
        return self.batch.job_queue or self.name

    @property
    def job_definition_name(self) -> str:
        """The Batch job definition: ``batch.job_definition``, else the function name."""
        return self.batch.job_definition or self.name
