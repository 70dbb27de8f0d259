"""Lambda: the supervisor layer, the function, and S3's invoke permission (apply and remove).

The layer version's Description carries ``supervisor sha256:<hex of the zip>``:
the latest version is reused when it matches, and ``remove`` deletes only
versions carrying the marker that no other function uses. The function's code
is updated only when ``CodeSha256`` differs, its configuration only when a
compared field differs.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from .errors import ProvisionError, error_code, translated
from .names import NOTIFICATION_PREFIX
from .requests import MARKER, FunctionRequest, LayerRequest, Outcome, PermissionRequest
from .waiting import Waiting, wait_until

__all__ = [
    "ensure_layer", "ensure_function", "ensure_permission", "function_configuration",
    "configuration_diff", "function_statements", "remove_permissions", "remove_function",
    "remove_layer_versions",

]

_NOT_FOUND = {"ResourceNotFoundException", "404"}


def _layer_versions(lam: Any, name: str) -> list[Mapping[str, Any]]:
    versions: list[Mapping[str, Any]] = []
    with translated(f"cannot list the versions of layer {name}"):
        for page in lam.get_paginator("list_layer_versions").paginate(LayerName=name):
            versions.extend(page.get("LayerVersions", []))
    return sorted(versions, key=lambda v: int(v.get("Version", 0)), reverse=True)


def ensure_layer(lam: Any, request: LayerRequest) -> tuple[Outcome, str]:
    """Reuse the latest layer version when its digest matches, else publish one.

    Returns the outcome and the layer version ARN.
    """
    versions = _layer_versions(lam, request.name)
    if versions and versions[0].get("Description") == request.description:
        arn = str(versions[0]["LayerVersionArn"])
        return Outcome(request.kind, request.name, "unchanged", arn), arn
    try:
        content = request.zip_path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"cannot read the layer zip {str(request.zip_path)!r}: "
                             f"{exc.strerror or exc}") from exc
    with translated(f"cannot publish layer {request.name}"):
        answer = lam.publish_layer_version(
            LayerName=request.name, Description=request.description,
            Content={"ZipFile": content},
            CompatibleRuntimes=list(request.compatible_runtimes))
    arn = str(answer["LayerVersionArn"])
    return Outcome(request.kind, request.name, "created", arn,
                   f"version {answer.get('Version')}"), arn


def function_configuration(lam: Any, name: str) -> Optional[Mapping[str, Any]]:
    """The function's configuration, or None when it does not exist."""
    from botocore.exceptions import ClientError

    with translated(f"cannot read function {name}"):
        try:
            answer: Mapping[str, Any] = lam.get_function_configuration(FunctionName=name)
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise
    return answer


def configuration_diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """The names of the configuration fields that differ (empty: nothing to update)."""
    def layers(config: Mapping[str, Any]) -> list[str]:
        return [str(x["Arn"]) if isinstance(x, Mapping) else str(x)
                for x in config.get("Layers") or []]

    differ = [key for key in ("Runtime", "Handler", "Role", "MemorySize", "Timeout",
                              "Description")
              if current.get(key) != desired.get(key)]
    if (current.get("EphemeralStorage") or {}).get("Size", 512) != \
            desired["EphemeralStorage"]["Size"]:
        differ.append("EphemeralStorage")
    if (current.get("Environment") or {}).get("Variables", {}) != \
            desired["Environment"]["Variables"]:
        differ.append("Environment")
    if layers(current) != layers(desired):
        differ.append("Layers")
    vpc, wanted = current.get("VpcConfig") or {}, desired["VpcConfig"]
    if any(sorted(vpc.get(k) or []) != sorted(wanted[k])
           for k in ("SubnetIds", "SecurityGroupIds")):
        differ.append("VpcConfig")
    if list(current.get("FileSystemConfigs") or []) != desired["FileSystemConfigs"]:
        differ.append("FileSystemConfigs")
    return differ


def _architecture(config: Mapping[str, Any]) -> str:
    return str((config.get("Architectures") or ["x86_64"])[0])


def _settled(lam: Any, name: str, waiting: Waiting) -> Mapping[str, Any]:
    def check() -> Optional[Mapping[str, Any]]:
        config = function_configuration(lam, name)
        if config is None:
            raise ProvisionError(f"function {name} disappeared while deploying")
        if config.get("State") == "Failed":
            raise ProvisionError(f"function {name} failed: {config.get('StateReason', '')}")
        if config.get("LastUpdateStatus") == "Failed":
            raise ProvisionError(f"function {name} update failed: "
                                 f"{config.get('LastUpdateStatusReason', '')}")
        if config.get("State") == "Pending" or config.get("LastUpdateStatus") == "InProgress":
            return None
        return config

    return wait_until(check, f"function {name} to be ready", waiting)


def _code(s3: Any, request: FunctionRequest) -> dict[str, Any]:
    """Where Lambda takes the code from: the request itself, or the deployment bucket
    (the package is put there first)."""
    location = dict(request.code_location)
    if not location:
        return {"ZipFile": request.code}
    with translated(f"cannot put the code of {request.name} in "
                    f"s3://{location['S3Bucket']}/{location['S3Key']}"):
        s3.put_object(Bucket=location["S3Bucket"], Key=location["S3Key"], Body=request.code)
    return location


def ensure_function(lam: Any, request: FunctionRequest, layer_arns: Sequence[str],
                    waiting: Waiting, s3: Any = None) -> Outcome:
    """Create the function, or update its code and configuration where they differ.

    ``s3`` puts the package in the deployment bucket when the request names one.
    """
    desired = request.configuration(layer_arns)
    current = function_configuration(lam, request.name)
    if current is None:
        code = _code(s3, request)
        with translated(f"cannot create function {request.name}"):
            answer = lam.create_function(**desired, Code=code,
                                         Architectures=[request.options.architecture],
                                         PackageType="Zip", Publish=False)
        _settled(lam, request.name, waiting)
        return Outcome(request.kind, request.name, "created", str(answer["FunctionArn"]))
    arn = str(current.get("FunctionArn", ""))
    changed: list[str] = []
    architecture = request.options.architecture
    if current.get("CodeSha256") != request.code_sha256 or \
            _architecture(current) != architecture:
        current = _settled(lam, request.name, waiting)
        code = _code(s3, request)
        with translated(f"cannot update the code of function {request.name}"):
            lam.update_function_code(FunctionName=request.name, **code,
                                     Architectures=[architecture])
        changed.append("code" if _architecture(current) == architecture
                       else f"code ({architecture})")
        current = _settled(lam, request.name, waiting)
    differ = configuration_diff(current, desired)
    if differ:
        if not changed:
            _settled(lam, request.name, waiting)
        with translated(f"cannot update the configuration of function {request.name}"):
            lam.update_function_configuration(**desired)
        changed.extend(differ)
        _settled(lam, request.name, waiting)
    if not changed:
        return Outcome(request.kind, request.name, "unchanged", arn)
    return Outcome(request.kind, request.name, "updated", arn, ", ".join(changed))


def function_statements(lam: Any, name: str) -> list[Mapping[str, Any]]:
    """The statements of the function's resource policy (empty: none, or no function)."""
    from botocore.exceptions import ClientError

    with translated(f"cannot read the policy of function {name}"):
        try:
            policy = lam.get_policy(FunctionName=name)["Policy"]
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return []
            raise
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    return [s for s in statements if isinstance(s, Mapping)]


def _conditions(statement: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for block in (statement.get("Condition") or {}).values():
        if isinstance(block, Mapping):
            flat.update({str(k).lower(): str(v) for k, v in block.items()})
    return flat


def _matches(statement: Mapping[str, Any], request: PermissionRequest) -> bool:
    principal = statement.get("Principal")
    service = principal.get("Service") if isinstance(principal, Mapping) else principal
    conditions = _conditions(statement)
    return (service == request.principal and statement.get("Action") == request.action
            and conditions.get("aws:sourcearn") == request.source_arn
            and conditions.get("aws:sourceaccount") == request.source_account)


def ensure_permission(lam: Any, request: PermissionRequest) -> Outcome:
    """Let S3 invoke the function for notifications of one bucket (replace a stale grant)."""
    found = next((s for s in function_statements(lam, request.function_name)
                  if s.get("Sid") == request.statement_id), None)
    if found is not None and _matches(found, request):
        return Outcome(request.kind, request.name, "unchanged")
    with translated(f"cannot grant S3 bucket {request.bucket} to invoke "
                    f"{request.function_name}"):
        if found is not None:
            lam.remove_permission(FunctionName=request.function_name,
                                  StatementId=request.statement_id)
        lam.add_permission(**request.add_kwargs())
    return Outcome(request.kind, request.name, "updated" if found is not None else "created")


def remove_permissions(lam: Any, function_name: str) -> list[Outcome]:
    """Remove the S3 invoke grants deploy added (statement ids ``supervisor-s3-…``)."""
    kind = PermissionRequest.kind
    if function_configuration(lam, function_name) is None:
        return [Outcome(kind, f"{function_name}/*", "unchanged", detail="no such function")]
    ours = [str(s["Sid"]) for s in function_statements(lam, function_name)
            if str(s.get("Sid", "")).startswith(f"{NOTIFICATION_PREFIX}s3-")]
    if not ours:
        return [Outcome(kind, f"{function_name}/*", "unchanged", detail="none of ours")]
    for sid in ours:
        with translated(f"cannot remove permission {sid} of {function_name}"):
            lam.remove_permission(FunctionName=function_name, StatementId=sid)
    return [Outcome(kind, f"{function_name}/{sid}", "deleted") for sid in ours]


def remove_function(lam: Any, function_name: str) -> Outcome:
    """Delete the function."""
    current = function_configuration(lam, function_name)
    if current is None:
        return Outcome(FunctionRequest.kind, function_name, "unchanged",
                       detail="no such function")
    with translated(f"cannot delete function {function_name}"):
        lam.delete_function(FunctionName=function_name)
    return Outcome(FunctionRequest.kind, function_name, "deleted",
                   str(current.get("FunctionArn", "")))


def _layers_in_use(lam: Any, except_function: str) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    with translated("cannot list functions"):
        for page in lam.get_paginator("list_functions").paginate():
            for fn in page.get("Functions", []):
                if fn.get("FunctionName") == except_function:
                    continue
                for layer in fn.get("Layers") or []:
                    users.setdefault(str(layer.get("Arn")), []).append(str(fn["FunctionName"]))
    return users


def remove_layer_versions(lam: Any, layer_name: str, function_name: str) -> list[Outcome]:
    """Delete the layer versions deploy published, except those other functions use."""
    kind = LayerRequest.kind
    ours = [v for v in _layer_versions(lam, layer_name)
            if str(v.get("Description", "")).startswith(MARKER)]
    if not ours:
        return [Outcome(kind, layer_name, "unchanged", detail="no versions of ours")]
    users = _layers_in_use(lam, function_name)
    outcomes: list[Outcome] = []
    for version in ours:
        arn = str(version["LayerVersionArn"])
        name = f"{layer_name}:{version['Version']}"
        if arn in users:
            outcomes.append(Outcome(kind, name, "kept", arn,
                                    "used by " + ", ".join(sorted(users[arn]))))
            continue
        with translated(f"cannot delete layer version {name}"):
            lam.delete_layer_version(LayerName=layer_name,
                                     VersionNumber=int(version["Version"]))
        outcomes.append(Outcome(kind, name, "deleted", arn))
    return outcomes
