"""Preflight: read-only checks that a plan can be applied, before anything is created."""
from __future__ import annotations

from ..aws import ClientFactory
from .batch import compute_environment_conflicts, describe_compute_environment
from .ec2 import template_conflict
from .errors import ProvisionError
from .iam import instance_profile_problem, network_problems, role_problem
from .requests import (
    BucketRequest,
    ComputeEnvironmentRequest,
    FunctionRequest,
    LaunchTemplateRequest,
    Plan,
)
from .s3 import bucket_status

__all__ = ["preflight"]


def preflight(plan: Plan, clients: ClientFactory) -> None:
    """Raise ``ProvisionError`` listing every problem found with Describe/Get/Head calls only.

    Checks: the function's role, and its VPC's subnets and groups, exist; for
    Batch, the service role, the instance profile, the subnets and security
    groups exist, an existing compute environment can be updated in place and
    the launch template does not install another bucket's .pyz; no bucket
    belongs to someone else.
    """
    problems: list[str] = []
    iam = clients.client("iam")
    function = plan.one(FunctionRequest)
    if function is not None:
        problem = role_problem(iam, function.role, "iam.role", plan.account_id)
        if problem:
            problems.append(problem)
        options = function.options
        if options.subnet_ids:
            problems.extend(network_problems(
                clients.client("ec2"), options.subnet_ids, options.security_group_ids,
                ("vpc.SubnetIds", "vpc.SecurityGroupIds")))
    env = plan.one(ComputeEnvironmentRequest)
    if env is not None:
        problem = role_problem(iam, env.service_role, "batch.service_role", plan.account_id)
        if problem:
            problems.append(problem)
        resources = env.compute_resources
        if resources is not None:
            problem = instance_profile_problem(
                iam, str(resources["instanceRole"]), "batch.compute_resources.instance_role",
                plan.account_id)
            if problem:
                problems.append(problem)
            problems.extend(network_problems(clients.client("ec2"), resources["subnets"],
                                             resources["securityGroupIds"]))
        current = describe_compute_environment(clients.client("batch"), env.name)
        if current is not None:
            conflicts = compute_environment_conflicts(current, env)
            if conflicts:
                problems.append(f"compute environment {env.name} exists with settings Batch "
                                f"cannot change in place ({'; '.join(conflicts)}); run rm for "
                                "this function, then deploy")
    template = plan.one(LaunchTemplateRequest)
    if template is not None:
        problem = template_conflict(clients.client("ec2"), template)
        if problem:
            problems.append(problem)
    s3 = clients.client("s3")
    for bucket in plan.all(BucketRequest):
        if bucket_status(s3, bucket.name) == "forbidden":
            problems.append(f"bucket {bucket.name} exists but is not accessible (another "
                            "account's, or access denied)")
    if problems:
        raise ProvisionError("; ".join(problems))
