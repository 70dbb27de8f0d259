"""An API request to a ``batch`` function: its body staged in S3 as the job's input.

Batch jobs are handed S3 objects, so a request that reaches a ``batch`` function
through its REST API is put at ``<handoff prefix>requests/<request id>/<name>`` in the
staging bucket (outside every input path: it starts no function) and handed off as
an upload of that object would be. The job then finds the body as its input file,
named as the request named it. The object stays for the job's retries; a lifecycle
rule on the prefix can expire it.
"""
from __future__ import annotations

from typing import Any

from .config import FunctionConfig
from .direct import DirectInvocation
from .errors import DelegationError, translated
from .events import InputObject, parse
from .s3event import event_of, object_created_record

__all__ = ["stage_request", "REQUESTS_FOLDER"]

REQUESTS_FOLDER = "requests/"


def stage_request(s3: Any, config: FunctionConfig, request_id: str,
                  request: DirectInvocation) -> InputObject:
    """Put the request's body in the staging bucket; the object, as its upload's record."""
    bucket = config.handoff_bucket
    if not bucket:
        raise DelegationError("an API request to a batch function needs a staging bucket "
                              "(handoff.bucket, or an input on storage_provider s3)")
    body = request.body or b""
    key = f"{config.handoff_prefix}{REQUESTS_FOLDER}{request_id}/{request.body_name}"
    with translated(f"cannot stage the request body at s3://{bucket}/{key}", DelegationError):
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body)
    record = object_created_record(bucket, key, size=len(body),
                                   etag=str(answer.get("ETag", "")),
                                   version_id=answer.get("VersionId") or None,
                                   origin="SUPERVISOR")
    [obj] = parse(event_of(record))
    return obj
