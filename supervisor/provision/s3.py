"""S3: buckets, the bucket notification entries, and the .pyz artifact (apply and remove).

Notifications are merged: deploy replaces only the ``LambdaFunctionConfigurations``
entries that are its own (Id ``supervisor-<function>…`` and targeting the
function) and writes every other configuration back as it was.
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

from .errors import ProvisionError, error_code, translated
from .names import NOTIFICATION_PREFIX
from .requests import ArtifactRequest, BucketRequest, NotificationRequest, Outcome

__all__ = [
    "OWNER_TAG", "bucket_status", "ensure_bucket", "ensure_notifications", "ensure_artifact",
    "remove_notifications", "remove_artifacts", "remove_object", "remove_bucket",
]

OWNER_TAG = "supervisor:function"  # on buckets deploy created: which function's deploy
_CONFIG_KEYS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations",
                "EventBridgeConfiguration")
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_FORBIDDEN = {"403", "AccessDenied", "Forbidden", "AllAccessDisabled"}
BucketStatus = Literal["exists", "missing", "forbidden"]


def bucket_status(s3: Any, name: str) -> BucketStatus:
    """Whether ``name`` exists and is reachable, is missing, or is someone else's."""
    from botocore.exceptions import ClientError

    with translated(f"cannot check bucket {name}"):
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING:
                return "missing"
            if code in _FORBIDDEN:
                return "forbidden"
            raise
    return "exists"


def ensure_bucket(s3: Any, request: BucketRequest) -> Outcome:
    """Create the bucket (tagged ``supervisor:function``) when it does not exist."""
    status = bucket_status(s3, request.name)
    arn = f"arn:aws:s3:::{request.name}"
    if status == "exists":
        return Outcome(request.kind, request.name, "unchanged", arn)
    if status == "forbidden":
        raise ProvisionError(f"bucket {request.name} exists but is not accessible (another "
                             "account's, or access denied); choose another bucket name")
    kwargs: dict[str, Any] = {"Bucket": request.name}
    if request.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": request.region}
    with translated(f"cannot create bucket {request.name}"):
        s3.create_bucket(**kwargs)
        s3.put_bucket_tagging(Bucket=request.name, Tagging={"TagSet": [
            {"Key": OWNER_TAG, "Value": request.function}]})
    return Outcome(request.kind, request.name, "created", arn)


def _is_ours(entry: Any, function_name: str) -> bool:
    return (isinstance(entry, dict)
            and str(entry.get("Id", "")).startswith(NOTIFICATION_PREFIX)
            and str(entry.get("LambdaFunctionArn", "")).endswith(f":function:{function_name}"))


def _normal(entry: Any) -> tuple[Any, ...]:
    rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return (entry.get("Id"), entry.get("LambdaFunctionArn"),
            tuple(sorted(entry.get("Events", []))),
            tuple(sorted((str(r.get("Name", "")).lower(), r.get("Value")) for r in rules)))


def _current(s3: Any, bucket: str) -> dict[str, Any]:
    with translated(f"cannot read the notification configuration of bucket {bucket}"):
        answer = s3.get_bucket_notification_configuration(Bucket=bucket)
    return {k: answer[k] for k in _CONFIG_KEYS if k in answer}


def ensure_notifications(s3: Any, bucket: str, requests: Sequence[NotificationRequest],
                         function_name: str) -> Outcome:
    """Make the function's entries on ``bucket`` exactly ``requests``; keep all others."""
    current = _current(s3, bucket)
    lambdas = list(current.get("LambdaFunctionConfigurations", []))
    ours = [e for e in lambdas if _is_ours(e, function_name)]
    desired = [r.entry() for r in requests]
    name = ", ".join(r.name for r in requests)
    if sorted(map(_normal, ours)) == sorted(map(_normal, desired)):
        return Outcome(NotificationRequest.kind, name, "unchanged")
    current["LambdaFunctionConfigurations"] = (
        [e for e in lambdas if not _is_ours(e, function_name)] + desired)
    with translated(f"cannot set the notification of bucket {bucket}"):
        s3.put_bucket_notification_configuration(Bucket=bucket,
                                                 NotificationConfiguration=current)
    return Outcome(NotificationRequest.kind, name, "updated" if ours else "created")


def ensure_artifact(s3: Any, request: ArtifactRequest) -> Outcome:
    """Upload the .pyz unless the object is there with the same digest."""
    from botocore.exceptions import ClientError

    action: Literal["created", "updated"] = "created"
    with translated(f"cannot check {request.name}"):
        try:
            head = s3.head_object(Bucket=request.bucket, Key=request.key)
        except ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchKey", "NotFound"}:
                raise
        else:
            if head.get("Metadata", {}).get("sha256") == request.sha256:
                return Outcome(request.kind, request.name, "unchanged")
            action = "updated"
    try:
        with request.path.open("rb") as body, translated(f"cannot upload {request.name}"):
            s3.put_object(Bucket=request.bucket, Key=request.key, Body=body,
                          Metadata={"sha256": request.sha256},
                          ContentType="application/zip", ServerSideEncryption="AES256")
    except OSError as exc:
        raise ProvisionError(f"cannot read {str(request.path)!r}: "
                             f"{exc.strerror or exc}") from exc
    return Outcome(request.kind, request.name, action)


def remove_notifications(s3: Any, bucket: str, function_name: str) -> Outcome:
    """Remove the function's entries from ``bucket``'s notifications; keep the others."""
    name = f"{bucket}/*"
    status = bucket_status(s3, bucket)
    if status == "missing":
        return Outcome(NotificationRequest.kind, name, "unchanged", detail="no such bucket")
    if status == "forbidden":
        return Outcome(NotificationRequest.kind, name, "kept", detail="bucket not accessible")
    current = _current(s3, bucket)
    lambdas = list(current.get("LambdaFunctionConfigurations", []))
    kept = [e for e in lambdas if not _is_ours(e, function_name)]
    if len(kept) == len(lambdas):
        return Outcome(NotificationRequest.kind, name, "unchanged", detail="none of ours")
    if kept:
        current["LambdaFunctionConfigurations"] = kept
    else:
        current.pop("LambdaFunctionConfigurations", None)
    with translated(f"cannot update the notification of bucket {bucket}"):
        s3.put_bucket_notification_configuration(Bucket=bucket,
                                                 NotificationConfiguration=current)
    return Outcome(NotificationRequest.kind, name, "deleted",
                   detail=f"{len(lambdas) - len(kept)} entries of {function_name}")


def remove_artifacts(s3: Any, bucket: str, prefix: str,
                     used_by: Callable[[str], list[str]]) -> list[Outcome]:
    """Delete the .pyz objects deploy uploaded under ``prefix``.

    ``used_by(uri)`` names what still needs an object (launch templates of
    other functions sharing the staging bucket); such objects are kept.
    """
    if not bucket or bucket_status(s3, bucket) != "exists":
        return []
    keys: list[str] = []
    with translated(f"cannot list s3://{bucket}/{prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", [])
                        if o["Key"][len(prefix):].startswith("supervisor-batch-")
                        and o["Key"].endswith(".pyz"))
    outcomes: list[Outcome] = []
    for key in keys:
        uri = f"s3://{bucket}/{key}"
        users = used_by(uri)
        if users:
            outcomes.append(Outcome(ArtifactRequest.kind, uri, "kept",
                                    detail="used by launch template " + ", ".join(users)))
            continue
        with translated(f"cannot delete {uri}"):
            s3.delete_object(Bucket=bucket, Key=key)
        outcomes.append(Outcome(ArtifactRequest.kind, uri, "deleted"))
    return outcomes


def _owner(s3: Any, bucket: str) -> str:
    from botocore.exceptions import ClientError

    with translated(f"cannot read the tags of bucket {bucket}"):
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
        except ClientError as exc:
            if error_code(exc) in {"NoSuchTagSet", "NoSuchTagSetError"}:
                return ""
            raise
    return next((str(t.get("Value")) for t in tags if t.get("Key") == OWNER_TAG), "")


def remove_object(s3: Any, bucket: str, key: str, kind: str) -> list[Outcome]:
    """Delete one object deploy put (the package in the deployment bucket), if it is there."""
    if not bucket or bucket_status(s3, bucket) != "exists":
        return []
    uri = f"s3://{bucket}/{key}"
    with translated(f"cannot delete {uri}"):
        s3.delete_object(Bucket=bucket, Key=key)
    return [Outcome(kind, uri, "deleted")]


def remove_bucket(s3: Any, bucket: str, function_name: str) -> Outcome:
    """Delete ``bucket`` if this function's deploy created it and it is empty; else keep it."""
    kind, arn = BucketRequest.kind, f"arn:aws:s3:::{bucket}"
    status = bucket_status(s3, bucket)
    if status == "missing":
        return Outcome(kind, bucket, "unchanged", detail="no such bucket")
    if status == "forbidden":
        return Outcome(kind, bucket, "kept", arn, "not accessible")
    owner = _owner(s3, bucket)
    if owner != function_name:
        reason = f"created by {owner}'s deploy" if owner else "not created by deploy"
        return Outcome(kind, bucket, "kept", arn, reason)
    with translated(f"cannot list bucket {bucket}"):
        listing = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    if listing.get("Versions") or listing.get("DeleteMarkers"):
        return Outcome(kind, bucket, "kept", arn, "holds objects")
    others = _current(s3, bucket)
    if any(others.get(k) for k in _CONFIG_KEYS) or "EventBridgeConfiguration" in others:
        return Outcome(kind, bucket, "kept", arn, "other notifications use it")
    with translated(f"cannot delete bucket {bucket}"):
        s3.delete_bucket(Bucket=bucket)
    return Outcome(kind, bucket, "deleted", arn)
