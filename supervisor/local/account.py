"""What a fresh local endpoint needs before a real deploy can run against it.

An FDL written for AWS names an IAM role, subnets and security groups of the
user's account. Locally those do not exist: ``prepare_account`` creates a VPC,
a subnet and a security group and the roles the functions name (same names,
the endpoint's account), and ``localize`` points each function at them. The
deploy that follows is the real one, with its read-only preflight.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Sequence

from ..aws import ClientFactory
from ..config import FunctionConfig

__all__ = ["LocalAccount", "prepare_account", "localize"]

_TRUST = {
    "lambda": "lambda.amazonaws.com",
    "batch": "batch.amazonaws.com",
    "ec2": "ec2.amazonaws.com",
}


@dataclass(frozen=True)
class LocalAccount:
    """The endpoint's account and the network its Batch compute environments use."""

    account_id: str
    subnet: str
    security_group: str


def _split_role(arn: str) -> tuple[str, str]:
    """(path, name) of ``arn:aws:iam::ACCOUNT:role/path/Name`` (or instance-profile/)."""
    resource = arn.split(":", 5)[-1]  # a bare name (Batch accepts them) is its own resource
    parts = resource.split("/")[1:] if "/" in resource else [resource]
    path = "/" + "/".join(parts[:-1]) + "/" if len(parts) > 1 else "/"
    return path, parts[-1]


def _ensure_role(iam: Any, arn: str, service: str) -> None:
    path, name = _split_role(arn)
    document = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": _TRUST[service]},
        "Action": "sts:AssumeRole"}]})
    try:
        iam.get_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=document)


def _ensure_instance_profile(iam: Any, arn: str) -> None:
    path, name = _split_role(arn)
    try:
        iam.get_instance_profile(InstanceProfileName=name)
        return
    except iam.exceptions.NoSuchEntityException:
        pass
    _ensure_role(iam, f"arn:aws:iam::0:role/{name}", "ec2")
    iam.create_instance_profile(InstanceProfileName=name, Path=path)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)


def prepare_account(clients: ClientFactory, configs: Sequence[FunctionConfig]) -> LocalAccount:
    """Create the network and the roles ``configs`` name in the local endpoint."""
    account_id = str(clients.client("sts").get_caller_identity()["Account"])
    ec2 = clients.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="supervisor-local", VpcId=vpc,
                                      Description="supervisor local mode")["GroupId"]
    iam = clients.client("iam")
    for config in configs:
        local = localize(config, LocalAccount(account_id, subnet, group))
        if local.iam_role:
            _ensure_role(iam, local.iam_role, "lambda")
        if local.execution_mode != "lambda":
            _ensure_role(iam, local.batch.service_role.format(account_id=account_id), "batch")
            _ensure_instance_profile(
                iam, local.batch.compute_resources.instance_role.format(account_id=account_id))
    return LocalAccount(account_id=account_id, subnet=subnet, security_group=group)


def localize(config: FunctionConfig, account: LocalAccount) -> FunctionConfig:
    """``config`` with its role in the local account and Batch on the local network."""
    role = config.iam_role or f"arn:aws:iam::{account.account_id}:role/supervisor-local"
    path, name = _split_role(role)
    compute = dataclasses.replace(config.batch.compute_resources, subnets=(account.subnet,),
                                  security_group_ids=(account.security_group,))
    return dataclasses.replace(
        config, iam_role=f"arn:aws:iam::{account.account_id}:role{path}{name}",
        batch=dataclasses.replace(config.batch, compute_resources=compute))
