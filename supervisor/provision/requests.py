"""Typed resource requests (what a deploy wants to exist), the plan, and outcomes.

Every request is a frozen dataclass naming one AWS resource and the settings
it must have; :class:`Plan` holds them in the order they are applied.
:class:`Outcome` is what applying or removing one resource did. All are plain
values: building them calls no AWS API.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Optional, Sequence, TypeVar, Union

from ..config.fields import plain
from .lambda_options import LambdaOptions

__all__ = [
    "Action", "Outcome", "BucketRequest", "NotificationRequest", "PermissionRequest",
    "LayerRequest", "FunctionRequest", "LogGroupRequest", "ArtifactRequest",
    "LaunchTemplateRequest", "ComputeEnvironmentRequest", "JobQueueRequest",
    "JobDefinitionRequest", "RestApiRequest", "Request", "Plan", "MARKER", "STAGE",
    "endpoint_url",
]

Action = Literal["created", "updated", "unchanged", "deleted", "kept"]

#: Descriptions of what deploy publishes start with this (layer versions, launch
#: template versions), so ``remove`` knows which ones are its own.
MARKER = "supervisor sha256:"


@dataclass(frozen=True)
class Outcome:
    """What applying (or removing) one resource did."""

    resource: str  # the request kind, e.g. "lambda-function"
    name: str
    action: Action
    arn: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """The outcome as a JSON-ready mapping."""
        return {"resource": self.resource, "name": self.name, "action": self.action,
                "arn": self.arn, "detail": self.detail}


@dataclass(frozen=True)
class BucketRequest:
    """An S3 bucket that must exist; created (and tagged as ours) when missing."""

    kind: ClassVar[str] = "s3-bucket"
    name: str
    region: str
    function: str  # recorded in the tag supervisor:function on creation

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"region": self.region, "tags": {"supervisor:function": self.function}}


@dataclass(frozen=True)
class NotificationRequest:
    """One ``LambdaFunctionConfigurations`` entry on a bucket."""

    kind: ClassVar[str] = "s3-notification"
    bucket: str
    id: str
    function_arn: str
    prefix: str  # the S3Key prefix filter: "<key prefix>/" or "" (the whole bucket)
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)

    @property
    def name(self) -> str:
        """``bucket/prefix`` of the notification."""
        return f"{self.bucket}/{self.prefix}"

    def entry(self) -> dict[str, Any]:
        """The entry as ``PutBucketNotificationConfiguration`` takes it."""
        entry: dict[str, Any] = {"Id": self.id, "LambdaFunctionArn": self.function_arn,
                                 "Events": list(self.events)}
        if self.prefix:
            entry["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix",
                                                        "Value": self.prefix}]}}
        return entry

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return self.entry()


@dataclass(frozen=True)
class PermissionRequest:
    """The resource-policy statement that lets S3 (one bucket) invoke the function."""

    kind: ClassVar[str] = "lambda-permission"
    function_name: str
    statement_id: str
    bucket: str
    source_arn: str
    source_account: str
    principal: str = "s3.amazonaws.com"
    action: str = "lambda:InvokeFunction"

    @property
    def name(self) -> str:
        """``function/statement id``."""
        return f"{self.function_name}/{self.statement_id}"

    def add_kwargs(self) -> dict[str, Any]:
        """The ``AddPermission`` arguments."""
        return {"FunctionName": self.function_name, "StatementId": self.statement_id,
                "Action": self.action, "Principal": self.principal,
                "SourceArn": self.source_arn, "SourceAccount": self.source_account}

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return self.add_kwargs()


@dataclass(frozen=True)
class LayerRequest:
    """The supervisor's Lambda layer: a version is published when none matches ``sha256``."""

    kind: ClassVar[str] = "lambda-layer"
    name: str
    zip_path: Path
    sha256: str  # hex digest of the layer zip
    compatible_runtimes: tuple[str, ...]

    @property
    def description(self) -> str:
        """The layer version's Description: the marker and the zip's digest."""
        return f"{MARKER}{self.sha256}"

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"zip": str(self.zip_path), "description": self.description,
                "compatible_runtimes": list(self.compatible_runtimes)}


@dataclass(frozen=True)
class FunctionRequest:
    """The Lambda function: its deployment zip and configuration (layers added at apply)."""

    kind: ClassVar[str] = "lambda-function"
    name: str
    runtime: str
    handler: str
    role: str
    memory: int
    timeout: int
    ephemeral_storage: int
    environment: Mapping[str, str]
    description: str
    code: bytes = field(repr=False)
    extra_layers: tuple[str, ...] = ()
    options: LambdaOptions = LambdaOptions()
    code_location: Mapping[str, str] = field(default_factory=dict)  # S3Bucket/S3Key, or {}

    @property
    def code_sha256(self) -> str:
        """Lambda's ``CodeSha256`` of the zip: base64 of its SHA-256."""
        return base64.b64encode(hashlib.sha256(self.code).digest()).decode("ascii")

    def configuration(self, layer_arns: Sequence[str]) -> dict[str, Any]:
        """The function's configuration as ``UpdateFunctionConfiguration`` takes it."""
        if isinstance(layer_arns, str):
            raise TypeError("layer_arns is a list of ARNs, not one string")
        layers = list(layer_arns) + list(self.extra_layers)
        return {
            "FunctionName": self.name,
            "Runtime": self.runtime,
            "Handler": self.handler,
            "Role": self.role,
            "MemorySize": self.memory,
            "Timeout": self.timeout,
            "EphemeralStorage": {"Size": self.ephemeral_storage},
            "Environment": {"Variables": dict(self.environment)},
            "Description": self.description,
            "Layers": layers,
            "VpcConfig": self.options.vpc_config(),
            "FileSystemConfigs": self.options.file_system_configs(),
        }

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready (the layer ARN is known only at apply)."""
        settings = self.configuration(["<supervisor layer version>"])
        settings.pop("FunctionName")
        settings["Architectures"] = [self.options.architecture]
        settings["CodeSha256"] = self.code_sha256
        settings["CodeSize"] = len(self.code)
        if self.code_location:
            settings["Code"] = dict(self.code_location)
        return settings


@dataclass(frozen=True)
class LogGroupRequest:
    """The function's CloudWatch log group with a retention."""

    kind: ClassVar[str] = "log-group"
    name: str
    retention_days: int

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"retentionInDays": self.retention_days}


@dataclass(frozen=True)
class ArtifactRequest:
    """``supervisor-batch.pyz`` in the staging bucket, under a content-addressed key."""

    kind: ClassVar[str] = "s3-artifact"
    bucket: str
    key: str
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"source": str(self.path), "sha256": self.sha256}


@dataclass(frozen=True)
class LaunchTemplateRequest:
    """The EC2 launch template whose user data puts the .pyz on every Batch host."""

    kind: ClassVar[str] = "launch-template"
    name: str
    user_data: str  # the MIME multipart document, plain text

    @property
    def user_data_sha256(self) -> str:
        """Hex SHA-256 of the user data."""
        return hashlib.sha256(self.user_data.encode("utf-8")).hexdigest()

    @property
    def description(self) -> str:
        """The version description: the marker and the user data's digest."""
        return f"{MARKER}{self.user_data_sha256}"

    @property
    def user_data_b64(self) -> str:
        """The user data as EC2 takes it (base64)."""
        return base64.b64encode(self.user_data.encode("utf-8")).decode("ascii")

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"description": self.description, "user_data": self.user_data}


@dataclass(frozen=True)
class ComputeEnvironmentRequest:
    """The Batch compute environment (``computeResources`` is None when UNMANAGED)."""

    kind: ClassVar[str] = "batch-compute-environment"
    name: str
    type: str
    state: str
    service_role: str
    compute_resources: Optional[Mapping[str, Any]]

    def create_kwargs(self) -> dict[str, Any]:
        """The ``CreateComputeEnvironment`` arguments."""
        kwargs: dict[str, Any] = {"computeEnvironmentName": self.name, "type": self.type,
                                  "state": self.state, "serviceRole": self.service_role}
        if self.compute_resources is not None:
            kwargs["computeResources"] = plain(self.compute_resources)
        return kwargs

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        kwargs = self.create_kwargs()
        kwargs.pop("computeEnvironmentName")
        return kwargs


@dataclass(frozen=True)
class JobQueueRequest:
    """The Batch job queue feeding the compute environment."""

    kind: ClassVar[str] = "batch-job-queue"
    name: str
    compute_environment: str  # its name
    state: str
    priority: int = 1

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"state": self.state, "priority": self.priority,
                "computeEnvironmentOrder": [{"order": 1,
                                             "computeEnvironment": self.compute_environment}]}


@dataclass(frozen=True)
class JobDefinitionRequest:
    """The Batch job definition; ``definition`` is the ``RegisterJobDefinition`` arguments."""

    kind: ClassVar[str] = "batch-job-definition"
    name: str
    definition: Mapping[str, Any]
    sha256: str  # of the canonical JSON of ``definition``, kept in a tag

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        body = plain(self.definition)
        body.pop("jobDefinitionName", None)
        return dict(body)


#: The REST API stage SCAR deploys to.
STAGE = "scar"


def endpoint_url(api_id: str, region: str, stage: str = STAGE) -> str:
    """SCAR's endpoint of a REST API:
    ``https://<id>.execute-api.<region>.amazonaws.com/<stage>/launch``."""
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}/launch"


@dataclass(frozen=True)
class RestApiRequest:
    """The REST API that lets HTTP requests invoke the function (``api_gateway.name``)."""

    kind: ClassVar[str] = "api-gateway"
    tag: ClassVar[str] = "supervisor:function"  # how deploy, rm and invoke find the API
    name: str
    function_name: str
    function_arn: str
    region: str
    account_id: str
    stage: str = STAGE

    @property
    def integration_uri(self) -> str:
        """The ``AWS_PROXY`` integration's URI: Lambda's Invoke of the function."""
        return (f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/"
                f"{self.function_arn}/invocations")

    def source_arn(self, api_id: str) -> str:
        """What the function's invoke permission is limited to: any method of this API."""
        return f"arn:aws:execute-api:{self.region}:{self.account_id}:{api_id}/*"

    def fields(self) -> dict[str, Any]:
        """The request's settings, JSON-ready."""
        return {"stage": self.stage, "resource": "/{proxy+}", "method": "ANY",
                "integration": {"type": "AWS_PROXY", "uri": self.integration_uri},
                "tags": {self.tag: self.function_name},
                "endpoint": endpoint_url("<api-id>", self.region, self.stage)}


Request = Union[BucketRequest, NotificationRequest, PermissionRequest, LayerRequest,
                FunctionRequest, LogGroupRequest, ArtifactRequest, LaunchTemplateRequest,
                ComputeEnvironmentRequest, JobQueueRequest, JobDefinitionRequest,
                RestApiRequest]

R = TypeVar("R", BucketRequest, NotificationRequest, PermissionRequest, LayerRequest,
            FunctionRequest, LogGroupRequest, ArtifactRequest, LaunchTemplateRequest,
            ComputeEnvironmentRequest, JobQueueRequest, JobDefinitionRequest, RestApiRequest)


@dataclass(frozen=True)
class Plan:
    """The resources one function needs, in the order they are applied.

    ``placeholder_account`` is true for a dry run: ``account_id`` is then
    :data:`~supervisor.provision.plan.PLACEHOLDER_ACCOUNT_ID`, not the caller's.
    """

    function: str
    account_id: str
    region: str
    requests: tuple[Request, ...]
    placeholder_account: bool = False

    def all(self, kind: type[R]) -> list[R]:
        """The requests of one type, in plan order."""
        return [r for r in self.requests if isinstance(r, kind)]

    def one(self, kind: type[R]) -> Optional[R]:
        """The request of one type, or None when the plan has none."""
        found = self.all(kind)
        return found[0] if found else None

    def summary(self) -> list[dict[str, Any]]:
        """One JSON-ready row per request: kind, name and settings (for a dry run)."""
        return [{"resource": r.kind, "name": r.name, "settings": r.fields()}
                for r in self.requests]
