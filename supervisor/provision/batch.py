"""AWS Batch: compute environment, job queue, job definition (apply and remove).

Apply waits until the compute environment and the queue are ``VALID``
(``INVALID`` is an error with Batch's ``statusReason``). A compute
environment is updated in place for state, service role, vCPU bounds,
instance types, subnets, security groups, instance role and launch template
(an infrastructure update, which needs a ``*_PROGRESSIVE``/``SPOT_*``
allocation strategy); a change of ``type`` or allocation strategy cannot be
made in place and is reported as an error: remove the function first.
A job definition revision is registered only when the digest in its
``supervisor:sha256`` tag differs from the latest ACTIVE revision's.
Remove goes in the order Batch requires: disable and delete the queue, then
disable and delete the compute environment, then deregister the definitions.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from .batch_plan import SHA_TAG
from .errors import ProvisionError, translated
from .requests import ComputeEnvironmentRequest, JobDefinitionRequest, JobQueueRequest, Outcome
from .waiting import Waiting, wait_until

__all__ = [
    "describe_compute_environment", "describe_job_queue", "active_job_definitions",
    "compute_environment_conflicts", "compute_environment_updates",
    "ensure_compute_environment", "ensure_job_queue", "ensure_job_definition",
    "remove_job_queue", "remove_compute_environment", "remove_job_definitions",
    "compute_environments_using_template",
]

_SETTLING = {"CREATING", "UPDATING"}
_UNORDERED = ("instanceTypes", "subnets", "securityGroupIds")


def describe_compute_environment(batch: Any, name: str) -> Optional[Mapping[str, Any]]:
    """The compute environment named ``name``, or None."""
    with translated(f"cannot read compute environment {name}"):
        found = batch.describe_compute_environments(computeEnvironments=[name])
    envs = [e for e in found.get("computeEnvironments", [])
            if e.get("computeEnvironmentName") == name and e.get("status") != "DELETED"]
    return envs[0] if envs else None


def describe_job_queue(batch: Any, name: str) -> Optional[Mapping[str, Any]]:
    """The job queue named ``name``, or None."""
    with translated(f"cannot read job queue {name}"):
        found = batch.describe_job_queues(jobQueues=[name])
    queues = [q for q in found.get("jobQueues", [])
              if q.get("jobQueueName") == name and q.get("status") != "DELETED"]
    return queues[0] if queues else None


def active_job_definitions(batch: Any, name: str) -> list[Mapping[str, Any]]:
    """Every ACTIVE revision of the job definition ``name``, newest first."""
    found: list[Mapping[str, Any]] = []
    with translated(f"cannot read job definition {name}"):
        pages = batch.get_paginator("describe_job_definitions").paginate(
            jobDefinitionName=name, status="ACTIVE")
        for page in pages:
            found.extend(d for d in page.get("jobDefinitions", [])
                         if d.get("jobDefinitionName") == name and d.get("status") == "ACTIVE")
    return sorted(found, key=lambda d: int(d.get("revision", 0)), reverse=True)


def compute_environment_conflicts(current: Mapping[str, Any],
                                  request: ComputeEnvironmentRequest) -> list[str]:
    """The settings that differ and that Batch cannot change in place."""
    conflicts = []
    if current.get("type") != request.type:
        conflicts.append(f"type {current.get('type')} -> {request.type}")
    have = current.get("computeResources") or {}
    want = request.compute_resources or {}
    for key in ("type", "allocationStrategy"):
        if want and have.get(key, "BEST_FIT" if key == "allocationStrategy" else None) \
                != want.get(key):
            conflicts.append(f"computeResources.{key} {have.get(key)} -> {want.get(key)}")
    return conflicts


def _template_name(resources: Mapping[str, Any]) -> Optional[str]:
    spec = resources.get("launchTemplate") or {}
    return spec.get("launchTemplateName") if isinstance(spec, Mapping) else None


def compute_environment_updates(current: Mapping[str, Any], request: ComputeEnvironmentRequest,
                                template_changed: bool = False) -> dict[str, Any]:
    """The ``UpdateComputeEnvironment`` arguments that bring ``current`` to ``request``.

    Empty when nothing differs (``desiredvCpus`` is Batch's to scale and is
    changed only to stay within the new bounds). ``template_changed`` asks
    for an infrastructure update so new hosts use the template's new version.
    """
    updates: dict[str, Any] = {}
    if current.get("state") != request.state:
        updates["state"] = request.state
    if current.get("serviceRole") != request.service_role:
        updates["serviceRole"] = request.service_role
    want = request.compute_resources
    if want is None:
        return updates
    have = current.get("computeResources") or {}
    resources: dict[str, Any] = {}
    for key in ("minvCpus", "maxvCpus", "instanceRole"):
        if have.get(key) != want.get(key):
            resources[key] = want[key]
    for key in _UNORDERED:
        if sorted(have.get(key) or []) != sorted(want.get(key) or []):
            resources[key] = list(want[key])
    if template_changed or _template_name(have) != _template_name(want):
        resources["launchTemplate"] = dict(want["launchTemplate"], version="$Default")
    if resources:
        desired = int(have.get("desiredvCpus", want["desiredvCpus"]))
        clamped = min(max(desired, int(want["minvCpus"])), int(want["maxvCpus"]))
        if clamped != desired:
            resources["desiredvCpus"] = clamped
        updates["computeResources"] = resources
    return updates


def _valid(describe: Callable[[], Optional[Mapping[str, Any]]], what: str,
           waiting: Waiting) -> Mapping[str, Any]:
    def check() -> Optional[Mapping[str, Any]]:
        current = describe()
        if current is None:
            raise ProvisionError(f"{what} disappeared while deploying")
        status = current.get("status")
        if status == "INVALID":
            raise ProvisionError(f"{what} is INVALID: {current.get('statusReason', '')}")
        if status in _SETTLING:
            return None
        if status != "VALID":
            raise ProvisionError(f"{what} is {status}: {current.get('statusReason', '')}")
        return current

    return wait_until(check, f"{what} to be VALID", waiting)


def ensure_compute_environment(batch: Any, request: ComputeEnvironmentRequest, waiting: Waiting,
                               template_changed: bool = False) -> tuple[Outcome, str]:
    """Create or update the compute environment and wait until it is VALID.

    Returns the outcome and the compute environment's ARN.
    """
    what = f"compute environment {request.name}"

    def describe() -> Optional[Mapping[str, Any]]:
        return describe_compute_environment(batch, request.name)

    current = describe()
    if current is None:
        with translated(f"cannot create {what}"):
            batch.create_compute_environment(**request.create_kwargs())
        env = _valid(describe, what, waiting)
        arn = str(env["computeEnvironmentArn"])
        return Outcome(request.kind, request.name, "created", arn), arn
    conflicts = compute_environment_conflicts(current, request)
    if conflicts:
        raise ProvisionError(f"{what} exists with settings Batch cannot change in place "
                             f"({'; '.join(conflicts)}); run rm for this function, then deploy")
    updates = compute_environment_updates(current, request, template_changed)
    if not updates:
        env = _valid(describe, what, waiting)
        arn = str(env["computeEnvironmentArn"])
        return Outcome(request.kind, request.name, "unchanged", arn), arn
    _settle(describe, f"{what} to settle", waiting)  # INVALID is what an update may fix
    with translated(f"cannot update {what}"):
        batch.update_compute_environment(computeEnvironment=request.name, **updates)
    env = _valid(describe, what, waiting)
    arn = str(env["computeEnvironmentArn"])
    fields = sorted(set(updates) - {"computeResources"}
                    | set(updates.get("computeResources", {})))
    return Outcome(request.kind, request.name, "updated", arn, ", ".join(fields)), arn


def _env_name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def ensure_job_queue(batch: Any, request: JobQueueRequest, compute_environment_arn: str,
                     waiting: Waiting) -> Outcome:
    """Create or update the job queue (one compute environment, order 1); wait until VALID."""
    what = f"job queue {request.name}"
    order = [{"order": 1, "computeEnvironment": compute_environment_arn}]

    def describe() -> Optional[Mapping[str, Any]]:
        return describe_job_queue(batch, request.name)

    current = describe()
    if current is None:
        with translated(f"cannot create {what}"):
            batch.create_job_queue(jobQueueName=request.name, state=request.state,
                                   priority=request.priority, computeEnvironmentOrder=order)
        queue = _valid(describe, what, waiting)
        return Outcome(request.kind, request.name, "created", str(queue["jobQueueArn"]))
    updates: dict[str, Any] = {}
    if current.get("state") != request.state:
        updates["state"] = request.state
    if int(current.get("priority", 0)) != request.priority:
        updates["priority"] = request.priority
    envs = [_env_name(str(o.get("computeEnvironment", ""))) for o in
            sorted(current.get("computeEnvironmentOrder", []), key=lambda o: int(o["order"]))]
    if envs != [request.compute_environment]:
        updates["computeEnvironmentOrder"] = order
    if not updates:
        queue = _valid(describe, what, waiting)
        return Outcome(request.kind, request.name, "unchanged", str(queue["jobQueueArn"]))
    _settle(describe, f"{what} to settle", waiting)  # INVALID is what an update may fix
    with translated(f"cannot update {what}"):
        batch.update_job_queue(jobQueue=request.name, **updates)
    queue = _valid(describe, what, waiting)
    return Outcome(request.kind, request.name, "updated", str(queue["jobQueueArn"]),
                   ", ".join(sorted(updates)))


def ensure_job_definition(batch: Any, request: JobDefinitionRequest) -> Outcome:
    """Register a revision unless the latest ACTIVE one has the same digest."""
    active = active_job_definitions(batch, request.name)
    if active and (active[0].get("tags") or {}).get(SHA_TAG) == request.sha256:
        return Outcome(request.kind, request.name, "unchanged",
                       str(active[0].get("jobDefinitionArn", "")))
    with translated(f"cannot register job definition {request.name}"):
        answer = batch.register_job_definition(**request.definition)
    return Outcome(request.kind, request.name, "updated" if active else "created",
                   str(answer.get("jobDefinitionArn", "")), f"revision {answer.get('revision')}")


def _settle(describe: Callable[[], Optional[Mapping[str, Any]]], what: str,
            waiting: Waiting, state: Optional[str] = None) -> Optional[Mapping[str, Any]]:
    """Wait until ``describe`` shows no change in progress (and ``state``); None: gone."""
    def check() -> Optional[tuple[Optional[Mapping[str, Any]]]]:
        current = describe()
        if current is None:
            return (None,)
        if current.get("status") in _SETTLING or current.get("status") == "DELETING":
            return None
        if state is not None and current.get("state") != state:
            return None
        return (current,)

    return wait_until(check, what, waiting)[0]


def remove_job_queue(batch: Any, name: str, waiting: Waiting) -> Outcome:
    """Disable the queue, wait, delete it, and wait until it is gone."""
    kind = JobQueueRequest.kind

    def describe() -> Optional[Mapping[str, Any]]:
        return describe_job_queue(batch, name)

    current = _settle(describe, f"job queue {name} to settle", waiting)
    if current is None:
        return Outcome(kind, name, "unchanged", detail="no such job queue")
    arn = str(current.get("jobQueueArn", ""))
    _disable_then_delete(
        f"job queue {name}", current, describe,
        disable=lambda: batch.update_job_queue(jobQueue=name, state="DISABLED"),
        delete=lambda: batch.delete_job_queue(jobQueue=name), waiting=waiting)
    return Outcome(kind, name, "deleted", arn)


def _disable_then_delete(what: str, current: Mapping[str, Any],
                         describe: Callable[[], Optional[Mapping[str, Any]]], *,
                         disable: Callable[[], Any], delete: Callable[[], Any],
                         waiting: Waiting) -> None:
    """Batch's order for removing a queue or an environment: disable, wait, delete, wait."""
    if current.get("state") != "DISABLED":
        with translated(f"cannot disable {what}"):
            disable()
        _settle(describe, f"{what} to be disabled", waiting, "DISABLED")
    with translated(f"cannot delete {what}"):
        delete()
    wait_until(lambda: True if describe() is None else None, f"{what} to be deleted", waiting)


def _queues_using(batch: Any, env_name: str) -> list[str]:
    users: list[str] = []
    with translated("cannot list job queues"):
        for page in batch.get_paginator("describe_job_queues").paginate():
            for queue in page.get("jobQueues", []):
                if queue.get("status") == "DELETED":
                    continue
                if any(_env_name(str(o.get("computeEnvironment", ""))) == env_name
                       for o in queue.get("computeEnvironmentOrder", [])):
                    users.append(str(queue.get("jobQueueName")))
    return users


def remove_compute_environment(batch: Any, name: str, waiting: Waiting) -> Outcome:
    """Disable the compute environment, wait, delete it, and wait until it is gone.

    Kept (not deleted) when another job queue still uses it.
    """
    kind = ComputeEnvironmentRequest.kind

    def describe() -> Optional[Mapping[str, Any]]:
        return describe_compute_environment(batch, name)

    current = _settle(describe, f"compute environment {name} to settle", waiting)
    if current is None:
        return Outcome(kind, name, "unchanged", detail="no such compute environment")
    arn = str(current.get("computeEnvironmentArn", ""))
    users = _queues_using(batch, name)
    if users:
        return Outcome(kind, name, "kept", arn, "used by job queue " + ", ".join(users))
    _disable_then_delete(
        f"compute environment {name}", current, describe,
        disable=lambda: batch.update_compute_environment(computeEnvironment=name,
                                                         state="DISABLED"),
        delete=lambda: batch.delete_compute_environment(computeEnvironment=name),
        waiting=waiting)
    return Outcome(kind, name, "deleted", arn)


def remove_job_definitions(batch: Any, name: str) -> list[Outcome]:
    """Deregister every ACTIVE revision of the job definition."""
    kind = JobDefinitionRequest.kind
    active = active_job_definitions(batch, name)
    if not active:
        return [Outcome(kind, name, "unchanged", detail="no active revision")]
    outcomes = []
    for definition in active:
        arn = str(definition.get("jobDefinitionArn", ""))
        with translated(f"cannot deregister job definition {arn}"):
            batch.deregister_job_definition(jobDefinition=arn)
        outcomes.append(Outcome(kind, f"{name}:{definition.get('revision')}", "deleted", arn))
    return outcomes


def compute_environments_using_template(batch: Any, template: str,
                                        except_name: str) -> list[str]:
    """Names of the other compute environments whose launch template is ``template``."""
    users: list[str] = []
    with translated("cannot list compute environments"):
        for page in batch.get_paginator("describe_compute_environments").paginate():
            for env in page.get("computeEnvironments", []):
                name = str(env.get("computeEnvironmentName"))
                if name != except_name and env.get("status") != "DELETED" and \
                        _template_name(env.get("computeResources") or {}) == template:
                    users.append(name)
    return users
