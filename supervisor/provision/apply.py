"""Apply a plan idempotently: create what is missing, update what differs, nothing else.

A resource that already matches its request costs only Describe/Get/List/Head
calls, so a deploy that changes nothing makes no mutating call.
"""
from __future__ import annotations

from ..aws import ClientFactory
from .apigw import ensure_rest_api
from .batch import ensure_compute_environment, ensure_job_definition, ensure_job_queue
from .ec2 import ensure_launch_template
from .lambda_fn import ensure_function, ensure_layer, ensure_permission
from .logs import ensure_log_group
from .requests import (
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
    RestApiRequest,
)
from .s3 import ensure_artifact, ensure_bucket, ensure_notifications
from .waiting import DEFAULT_WAITING, Waiting

__all__ = ["apply"]


def apply(plan: Plan, clients: ClientFactory, *, waiting: Waiting = DEFAULT_WAITING) -> list[Outcome]:
    """Bring AWS to ``plan``, in order; one outcome per resource.

    Run :func:`~supervisor.provision.preflight.preflight` first: apply stops
    at the first failure, leaving what it already made in place (a later
    deploy picks up from there).
    """
    outcomes: list[Outcome] = []
    s3 = clients.client("s3")
    lam = clients.client("lambda")
    for bucket in plan.all(BucketRequest):
        outcomes.append(ensure_bucket(s3, bucket))

    # What the function hands work to comes first, the trigger last: an object that
    # arrives while a deploy runs never finds a function without its queue.
    for artifact in plan.all(ArtifactRequest):  # the .pyz, a shipped image archive
        outcomes.append(ensure_artifact(s3, artifact))
    template_changed = False
    template = plan.one(LaunchTemplateRequest)
    if template is not None:
        outcome = ensure_launch_template(clients.client("ec2"), template)
        template_changed = outcome.action in ("created", "updated")  # a CE must pick it up
        outcomes.append(outcome)
    env = plan.one(ComputeEnvironmentRequest)
    if env is not None:
        batch = clients.client("batch")
        outcome, env_arn = ensure_compute_environment(batch, env, waiting, template_changed)
        outcomes.append(outcome)
        queue = plan.one(JobQueueRequest)
        if queue is not None:
            outcomes.append(ensure_job_queue(batch, queue, env_arn, waiting))
    definition = plan.one(JobDefinitionRequest)
    if definition is not None:
        outcomes.append(ensure_job_definition(clients.client("batch"), definition))

    layer_arns: list[str] = []
    for layer in plan.all(LayerRequest):  # the supervisor's, then udocker's
        outcome, layer_arn = ensure_layer(lam, layer)
        outcomes.append(outcome)
        layer_arns.append(layer_arn)
    function = plan.one(FunctionRequest)
    if function is not None:
        outcomes.append(ensure_function(lam, function, layer_arns, waiting, s3))
    log_group = plan.one(LogGroupRequest)
    if log_group is not None:
        outcomes.append(ensure_log_group(clients.client("logs"), log_group))
    for permission in plan.all(PermissionRequest):
        outcomes.append(ensure_permission(lam, permission))
    api = plan.one(RestApiRequest)
    if api is not None:  # after the function: the grant names it
        outcomes.append(ensure_rest_api(clients.client("apigateway"), lam, api))
    by_bucket: dict[str, list[NotificationRequest]] = {}
    for notification in plan.all(NotificationRequest):
        by_bucket.setdefault(notification.bucket, []).append(notification)
    for bucket_name, entries in by_bucket.items():
        outcomes.append(ensure_notifications(s3, bucket_name, entries, plan.function))
    return outcomes
