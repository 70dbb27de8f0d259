"""EC2: the launch template whose user data installs the .pyz on Batch hosts.

A new version is created (from the default one, so other settings a user
added are kept) and made the default only when the user data differs.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Mapping, Optional, Sequence

from .errors import error_code, translated
from .requests import MARKER, LaunchTemplateRequest, Outcome

__all__ = ["ensure_launch_template", "remove_launch_template", "find_launch_template",
           "default_user_data", "all_default_user_data", "template_conflict"]

_NOT_FOUND = {"InvalidLaunchTemplateName.NotFoundException",
              "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFound"}


def find_launch_template(ec2: Any, name: str) -> Optional[Mapping[str, Any]]:
    """The launch template named ``name``, or None."""
    from botocore.exceptions import ClientError

    with translated(f"cannot read launch template {name}"):
        try:
            found = ec2.describe_launch_templates(LaunchTemplateNames=[name])
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise
    templates = found.get("LaunchTemplates", [])
    return templates[0] if templates else None


def _versions(ec2: Any, name: str, which: Optional[Sequence[str]] = None
              ) -> list[Mapping[str, Any]]:
    kwargs: dict[str, Any] = {"LaunchTemplateName": name}
    if which:
        kwargs["Versions"] = list(which)
    with translated(f"cannot read the versions of launch template {name}"):
        answer = ec2.describe_launch_template_versions(**kwargs)
    return list(answer.get("LaunchTemplateVersions", []))


def default_user_data(ec2: Any, name: str) -> Optional[str]:
    """The decoded user data of the template's default version (None: none or unreadable)."""
    versions = _versions(ec2, name, ["$Default"])
    if not versions:
        return None
    encoded = versions[0].get("LaunchTemplateData", {}).get("UserData")
    if not encoded:
        return None
    try:
        return base64.b64decode(str(encoded), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def all_default_user_data(ec2: Any) -> dict[str, str]:
    """Every launch template's name and decoded default user data (those that have one)."""
    names: list[str] = []
    with translated("cannot list launch templates"):
        for page in ec2.get_paginator("describe_launch_templates").paginate():
            names.extend(str(t["LaunchTemplateName"]) for t in page.get("LaunchTemplates", []))
    found = {name: default_user_data(ec2, name) for name in names}
    return {name: data for name, data in found.items() if data is not None}


def _sources(user_data: str) -> set[str]:
    """The buckets the user data's ``aws s3 cp`` reads the .pyz from."""
    return set(re.findall(r"\bs3://([a-z0-9.-]+)/", user_data))


def template_conflict(ec2: Any, request: LaunchTemplateRequest) -> Optional[str]:
    """Why deploying ``request`` would break another function's hosts, or None.

    A template whose user data installs the .pyz from another bucket serves
    another function: replacing it would make that function's hosts fetch
    from this function's bucket, which their instance role may not read.
    """
    if find_launch_template(ec2, request.name) is None:
        return None
    current = default_user_data(ec2, request.name) or ""
    theirs, ours = _sources(current), _sources(request.user_data)
    if not theirs or theirs == ours:
        return None
    return (f"batch.compute_resources.launch_template_name: launch template {request.name} "
            f"installs supervisor-batch.pyz from s3://{sorted(theirs)[0]}/ for another "
            "function; give this function its own template (or leave the default, "
            "faas-supervisor: one template per function)")


def ensure_launch_template(ec2: Any, request: LaunchTemplateRequest) -> Outcome:
    """Create the template, or add a default version when the user data changed."""
    template = find_launch_template(ec2, request.name)
    data = {"UserData": request.user_data_b64}
    if template is None:
        with translated(f"cannot create launch template {request.name}"):
            answer = ec2.create_launch_template(
                LaunchTemplateName=request.name, VersionDescription=request.description,
                LaunchTemplateData=data)
        return Outcome(request.kind, request.name, "created",
                       str(answer["LaunchTemplate"].get("LaunchTemplateId", "")))
    ident = str(template.get("LaunchTemplateId", ""))
    if default_user_data(ec2, request.name) == request.user_data:
        return Outcome(request.kind, request.name, "unchanged", ident)
    with translated(f"cannot update launch template {request.name}"):
        version = ec2.create_launch_template_version(
            LaunchTemplateName=request.name, SourceVersion="$Default",
            VersionDescription=request.description, LaunchTemplateData=data)
        number = str(version["LaunchTemplateVersion"]["VersionNumber"])
        ec2.modify_launch_template(LaunchTemplateName=request.name, DefaultVersion=number)
    return Outcome(request.kind, request.name, "updated", ident, f"default version {number}")


def remove_launch_template(ec2: Any, name: str, used_by: Sequence[str]) -> Outcome:
    """Delete the template if deploy made it and no other compute environment uses it."""
    kind = LaunchTemplateRequest.kind
    template = find_launch_template(ec2, name)
    if template is None:
        return Outcome(kind, name, "unchanged", detail="no such launch template")
    ident = str(template.get("LaunchTemplateId", ""))
    if used_by:
        return Outcome(kind, name, "kept", ident,
                       "used by compute environment " + ", ".join(sorted(used_by)))
    if not any(str(v.get("VersionDescription", "")).startswith(MARKER)
               for v in _versions(ec2, name)):
        return Outcome(kind, name, "kept", ident, "not made by deploy")
    with translated(f"cannot delete launch template {name}"):
        ec2.delete_launch_template(LaunchTemplateName=name)
    return Outcome(kind, name, "deleted", ident)
