"""Provisioning: the AWS resources a function needs (``supervisor deploy`` / ``rm``).

::

    FunctionConfig ──build_plan──▶ Plan (typed requests; pure, no AWS calls)
                   ──preflight──▶  read-only checks (role, subnets, ...), nothing created
                   ──apply──────▶  [Outcome]  created | updated | unchanged
    FunctionConfig ──remove─────▶  [Outcome]  deleted | unchanged | kept

``deploy`` runs the three steps (or, with ``dry_run=True``, only builds the
plan with a placeholder account id and calls nothing). Modules: ``plan``,
``batch_plan``, ``package``, ``userdata``, ``names`` and ``requests`` are pure;
``s3``, ``lambda_fn``, ``logs``, ``ec2``, ``batch`` and ``iam`` talk to one
service each; ``apply``, ``preflight``, ``deploy`` and ``remove`` orchestrate.
Every error is a :class:`ProvisionError` (a ``SupervisorError``).
"""
from __future__ import annotations

from .apply import apply
from .batch_plan import MAX_JOB_DEFINITION_BYTES, check_job_definition_size
from .deploy import Deployment, caller_account, deploy
from .errors import ProvisionError
from .names import DEFAULT_LAYER_NAME, Names, names_of
from .package import deployment_zip
from .plan import (
                   DEFAULT_BATCH_PYZ,
                   DEFAULT_LAYER_ZIP,
                   DEFAULT_RUNTIME,
                   DEFAULT_UDOCKER_LAYER_ZIP,
                   HANDLER,
                   PLACEHOLDER_ACCOUNT_ID,
                   build_plan,
                   check_config,
)
from .preflight import preflight
from .remove import remove
from .requests import (
                   Action,
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
                   Outcome,
                   PermissionRequest,
                   Plan,
                   Request,
                   RestApiRequest,
)
from .userdata import batch_user_data
from .waiting import Waiting

__all__ = [
    "deploy", "Deployment", "remove", "build_plan", "check_config", "preflight", "apply",
    "caller_account", "names_of", "Names", "deployment_zip", "batch_user_data",
    "check_job_definition_size", "Waiting", "ProvisionError",
    "Plan", "Request", "Outcome", "Action",
    "BucketRequest", "NotificationRequest", "PermissionRequest", "LayerRequest",
    "FunctionRequest", "LogGroupRequest", "ArtifactRequest", "LaunchTemplateRequest",
    "ComputeEnvironmentRequest", "JobQueueRequest", "JobDefinitionRequest", "RestApiRequest",
    "DEFAULT_LAYER_NAME", "DEFAULT_LAYER_ZIP", "DEFAULT_BATCH_PYZ", "DEFAULT_UDOCKER_LAYER_ZIP", "DEFAULT_RUNTIME",
    "HANDLER", "PLACEHOLDER_ACCOUNT_ID", "MAX_JOB_DEFINITION_BYTES",
]
