"""IAM and EC2 read-only checks: the roles, instance profile, subnets and groups exist."""
from __future__ import annotations

import re
from typing import Any, Optional, Sequence

from ..errors import aws_message
from .errors import error_code, translated

__all__ = ["role_problem", "instance_profile_problem", "network_problems"]

_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):(role|instance-profile)/(?:[\w+=,.@-]+/)*"
                  r"([\w+=,.@-]+)")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


def _split(arn: str) -> Optional[tuple[str, str, str]]:
    match = _ARN.fullmatch(arn)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def role_problem(iam: Any, arn: str, field: str, account_id: str) -> Optional[str]:
    """Why the role ``arn`` cannot be used (None: it exists, or it cannot be checked).

    A role of another account, or one the caller may not read, is not checked.
    """
    from botocore.exceptions import ClientError

    parts = _split(arn)
    if parts is None or parts[1] != "role":
        return f"{field}: {arn!r} is not an IAM role ARN"
    if parts[0] != account_id:
        return None
    with translated(f"cannot check {field} {arn}"):
        try:
            iam.get_role(RoleName=parts[2])
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return f"{field}: role {arn} does not exist"
            if code in _DENIED:
                return None
            raise
    return None


def instance_profile_problem(iam: Any, value: str, field: str,
                             account_id: str) -> Optional[str]:
    """Why the instance profile (ARN or name) cannot be used (None: exists or uncheckable)."""
    from botocore.exceptions import ClientError

    parts = _split(value)
    if parts is None:
        name = value.rsplit("/", 1)[-1]
    else:
        account, kind, name = parts
        if kind != "instance-profile":
            return f"{field}: {value!r} is not an instance profile ARN"
        if account != account_id:
            return None
    with translated(f"cannot check {field} {value}"):
        try:
            iam.get_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return f"{field}: instance profile {value} does not exist"
            if code in _DENIED:
                return None
            raise
    return None


def network_problems(ec2: Any, subnets: Sequence[str], security_groups: Sequence[str],
                     fields: tuple[str, str] = ("batch.compute_resources.subnets",
                                                "batch.compute_resources.security_group_ids"),
                     ) -> list[str]:
    """Subnets and security groups that do not exist (one line per call that failed).

    ``fields`` names where the subnets and the groups were configured.
    """
    from botocore.exceptions import ClientError

    problems: list[str] = []
    checks = ((fields[0], "describe_subnets", "SubnetIds", subnets, "InvalidSubnet"),
              (fields[1], "describe_security_groups", "GroupIds", security_groups,
               "InvalidGroup"))
    for field, operation, param, ids, missing in checks:
        if not ids:
            continue
        with translated(f"cannot check {field}"):
            try:
                getattr(ec2, operation)(**{param: list(ids)})
            except ClientError as exc:
                if not error_code(exc).startswith(missing):
                    raise
                problems.append(f"{field}: {aws_message(exc)}")
    return problems
