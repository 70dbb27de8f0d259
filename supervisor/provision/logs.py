"""CloudWatch Logs: the function's log group with a retention (apply and remove)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .errors import translated
from .requests import LogGroupRequest, Outcome

__all__ = ["ensure_log_group", "remove_log_group"]


def _find(logs: Any, name: str) -> Optional[Mapping[str, Any]]:
    with translated(f"cannot read log group {name}"):
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
            for group in page.get("logGroups", []):
                if group.get("logGroupName") == name:
                    found: Mapping[str, Any] = group
                    return found
    return None


def ensure_log_group(logs: Any, request: LogGroupRequest) -> Outcome:
    """Create the log group, or set its retention when it differs."""
    group = _find(logs, request.name)
    if group is None:
        with translated(f"cannot create log group {request.name}"):
            logs.create_log_group(logGroupName=request.name)
            logs.put_retention_policy(logGroupName=request.name,
                                      retentionInDays=request.retention_days)
        return Outcome(request.kind, request.name, "created")
    arn = str(group.get("arn", ""))
    if group.get("retentionInDays") == request.retention_days:
        return Outcome(request.kind, request.name, "unchanged", arn)
    with translated(f"cannot set the retention of log group {request.name}"):
        logs.put_retention_policy(logGroupName=request.name,
                                  retentionInDays=request.retention_days)
    return Outcome(request.kind, request.name, "updated", arn,
                   f"retention {request.retention_days} days")


def remove_log_group(logs: Any, name: str, *, owned: bool = True) -> Outcome:
    """Delete the function's log group when deploy made it (``owned``: a retention was
    configured); one Lambda made itself is kept, with the function's history in it."""
    group = _find(logs, name)
    if group is None:
        return Outcome(LogGroupRequest.kind, name, "unchanged", detail="no such log group")
    if not owned:
        return Outcome(LogGroupRequest.kind, name, "kept", str(group.get("arn", "")),
                       "made by Lambda, not by deploy (no log retention configured)")
    with translated(f"cannot delete log group {name}"):
        logs.delete_log_group(logGroupName=name)
    return Outcome(LogGroupRequest.kind, name, "deleted", str(group.get("arn", "")))
