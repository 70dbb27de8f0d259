"""The function's network, file systems and architecture, from SCAR's FDL keys (pure).

SCAR passes a function's ``vpc`` as Lambda's ``VpcConfig`` and its
``file_system`` as ``FileSystemConfigs``, and ``architectures`` as
``Architectures``; so does deploy, after checking their shapes, so a typo is
one line before any AWS call instead of a ``ValidationException`` halfway
through a deploy.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..config import FunctionConfig

__all__ = ["LambdaOptions", "lambda_options", "ARCHITECTURES"]

ARCHITECTURES = ("x86_64", "arm64")
_MOUNT_PATH = re.compile(r"/mnt/[A-Za-z0-9._-]{1,160}")
_MAX_FILE_SYSTEMS = 1  # Lambda mounts at most one file system per function


@dataclass(frozen=True)
class LambdaOptions:
    """What ``CreateFunction`` takes besides the basics: all empty means Lambda's defaults."""

    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    file_systems: tuple[tuple[str, str], ...] = ()  # (access point ARN, local mount path)
    architecture: str = "x86_64"

    def vpc_config(self) -> dict[str, Any]:
        """``VpcConfig``: empty lists take a function out of its VPC."""
        return {"SubnetIds": list(self.subnet_ids),
                "SecurityGroupIds": list(self.security_group_ids)}

    def file_system_configs(self) -> list[dict[str, str]]:
        """``FileSystemConfigs``."""
        return [{"Arn": arn, "LocalMountPath": path} for arn, path in self.file_systems]


def _strings(value: Any) -> Optional[tuple[str, ...]]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _vpc(value: Any, problems: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value in (None, {}):
        return (), ()
    allowed = {"SubnetIds", "SecurityGroupIds", "Ipv6AllowedForDualStack"}
    if not isinstance(value, Mapping) or not set(value) <= allowed:
        problems.append("vpc: must be a mapping of SubnetIds and SecurityGroupIds (lists of "
                        "ids), as Lambda's VpcConfig")
        return (), ()
    subnets = _strings(value.get("SubnetIds"))
    groups = _strings(value.get("SecurityGroupIds"))
    if subnets is None or groups is None:
        problems.append("vpc: SubnetIds and SecurityGroupIds must each be a non-empty list "
                        "of ids")
        return (), ()
    return subnets, groups


def _file_systems(value: Any, in_vpc: bool,
                  problems: list[str]) -> tuple[tuple[str, str], ...]:
    if value in (None, []):
        return ()
    entries = value if isinstance(value, list) else [value]
    found: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        arn = entry.get("Arn") if isinstance(entry, Mapping) else None
        path = entry.get("LocalMountPath") if isinstance(entry, Mapping) else None
        if not (isinstance(arn, str) and arn.startswith("arn:")
                and ":elasticfilesystem:" in arn and ":access-point/" in arn):
            problems.append(f"file_system[{i}].Arn: must be an EFS access point ARN "
                            "(arn:aws:elasticfilesystem:<region>:<account>:access-point/…)")
            continue
        if not (isinstance(path, str) and _MOUNT_PATH.fullmatch(path)):
            problems.append(f"file_system[{i}].LocalMountPath: must be /mnt/<name>")
            continue
        found.append((arn, path))
    if len(entries) > _MAX_FILE_SYSTEMS:
        problems.append(f"file_system: {len(entries)} file systems; Lambda mounts at most "
                        f"{_MAX_FILE_SYSTEMS}")
    if found and not in_vpc:
        problems.append("file_system: an EFS mount needs the function in the file system's "
                        "VPC: set vpc.SubnetIds and vpc.SecurityGroupIds")
    return tuple(found)


def _architecture(value: Any, containers: bool, problems: list[str]) -> str:
    if value in (None, []):
        return "x86_64"
    names = _strings(value)
    if names is None or len(names) != 1 or names[0] not in ARCHITECTURES:
        problems.append(f"architectures: {value!r}; must be one of {', '.join(ARCHITECTURES)} "
                        "(a list of one, as Lambda takes it)")
        return "x86_64"
    if names[0] != "x86_64" and containers:
        problems.append(f"architectures: {names[0]} cannot run container.image on Lambda: "
                        "the udocker layer's engine binaries are x86_64 (use x86_64, or "
                        "container.run_on_host: true)")
    return names[0]


def lambda_options(config: FunctionConfig, containers: bool,
                   problems: list[str]) -> LambdaOptions:
    """The options of ``config``'s ``vpc``, ``file_system`` and ``architectures`` keys.

    ``containers``: whether the function runs an image on Lambda (it then
    needs the x86_64 udocker layer). What is wrong is appended to ``problems``.
    """
    subnets, groups = _vpc(config.raw.get("vpc"), problems)
    file_systems = _file_systems(config.raw.get("file_system"), bool(subnets), problems)
    architecture = _architecture(config.raw.get("architectures"), containers, problems)
    return LambdaOptions(subnet_ids=subnets, security_group_ids=groups,
                         file_systems=file_systems, architecture=architecture)
