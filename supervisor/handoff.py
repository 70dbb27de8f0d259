"""The hand-off to AWS Batch: the document, its S3 staging, and the SubmitJob request.

A delegated record is described by one JSON document (``Handoff``) written to
S3 under a staging prefix that no function's input path contains; the Batch
job gets only a pointer to it (``SUPERVISOR_HANDOFF=s3://…``) and the request
id, so the SubmitJob request stays small whatever the script or the
configuration weigh.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional

from .config import FunctionConfig
from .errors import DelegationError
from .watchdog import Deadline

__all__ = [
    "SCHEMA_VERSION", "HANDOFF_ENV", "REQUEST_ID_ENV", "Handoff", "job_name",
    "staging_key", "build_submit_request", "check_limits", "write_handoff",
    "read_handoff", "delete_handoff", "submit_job", "parse_s3_uri",
]

SCHEMA_VERSION = 1
HANDOFF_ENV = "SUPERVISOR_HANDOFF"
REQUEST_ID_ENV = "AWS_LAMBDA_REQUEST_ID"

# Batch's documented limits (SubmitJob).
MAX_OVERRIDES_CHARS = 8192
MAX_REQUEST_BYTES = 30 * 1024
MAX_JOB_NAME = 128
MAX_TAG_VALUE = 256

_RETRYABLE = {"ThrottlingException", "TooManyRequestsException", "Throttling",
              "RequestLimitExceeded", "ServiceUnavailable", "ServerException",
              "InternalFailure", "InternalServerError"}


@dataclass(frozen=True)
class Handoff:
    """Everything the Batch side needs to run one record as Lambda would have."""

    record: Mapping[str, Any]  # the raw S3 event record
    function_config: Mapping[str, Any]  # FunctionConfig.raw, unknown keys kept
    script: str
    request_id: str
    function_name: str
    created_at: str  # ISO 8601, UTC
    attempt: int = 1
    reason: str = ""
    version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The document as JSON text (what is written to S3)."""
        doc = {
            "version": self.version, "record": self.record,
            "function_config": self.function_config, "script": self.script,
            "request_id": self.request_id, "function_name": self.function_name,
            "created_at": self.created_at, "attempt": self.attempt, "reason": self.reason,
        }
        doc.update(self.extra)
        return json.dumps(doc, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Handoff":
        """Parse a document written by ``to_json``; unknown keys are kept in ``extra``."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise DelegationError(f"hand-off document is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise DelegationError("hand-off document is not a JSON object")
        version = doc.get("version")
        if version != SCHEMA_VERSION:
            raise DelegationError(
                f"hand-off document version {version!r} is not supported; expected {SCHEMA_VERSION}")
        types: dict[str, type] = {"record": dict, "function_config": dict, "script": str,
                                  "request_id": str, "function_name": str,
                                  "created_at": str, "attempt": int, "reason": str}
        bad = [f"{k} (expected {t.__name__})" for k, t in types.items()
               if not isinstance(doc.get(k), t) or isinstance(doc.get(k), bool)]
        if bad:
            raise DelegationError("hand-off document has missing or invalid fields: "
                                  + ", ".join(bad))
        extra = {k: v for k, v in doc.items() if k not in types and k != "version"}
        return cls(record=doc["record"], function_config=doc["function_config"],
                   script=doc["script"], request_id=doc["request_id"],
                   function_name=doc["function_name"], created_at=doc["created_at"],
                   attempt=doc["attempt"], reason=doc["reason"], version=version, extra=extra)


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds and ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def staging_key(prefix: str, handoff: Handoff, identity: str) -> str:
    """Where the document goes: ``<prefix><function>/<request id>/<hash of identity>.json``.

    ``identity`` tells the event's objects apart (``InputObject.identity``).
    """
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    prefix = prefix.strip("/")
    head = f"{prefix}/" if prefix else ""
    return f"{head}{handoff.function_name}/{handoff.request_id}/{digest}.json"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key); a clear error otherwise."""
    if not uri.startswith("s3://") or "/" not in uri[5:] or uri[5:].startswith("/"):
        raise DelegationError(f"{HANDOFF_ENV}={uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise DelegationError(f"{HANDOFF_ENV}={uri!r} is not an s3://bucket/key URI")
    return bucket, key


def write_handoff(s3: Any, handoff: Handoff, bucket: str, key: str) -> str:
    """Store the document (server-side encrypted: it may hold provider keys); return its URI."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=handoff.to_json().encode("utf-8"),
                      ContentType="application/json", ServerSideEncryption="AES256")
    except (ClientError, BotoCoreError) as exc:
        raise DelegationError(f"cannot write the hand-off to s3://{bucket}/{key}: {exc}") from exc
    return f"s3://{bucket}/{key}"


def read_handoff(s3: Any, uri: str) -> Handoff:
    """Fetch and parse the document a Batch job was pointed at."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise DelegationError(f"cannot read the hand-off {uri}: {exc}") from exc
    return Handoff.from_json(body)


def delete_handoff(s3: Any, uri: str) -> None:
    """Remove a hand-off document (its job succeeded, or it was never submitted): it holds
    the configuration, secrets included."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise DelegationError(f"cannot delete the hand-off {uri}: {exc}") from exc


_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def job_name(function_name: str, key: str) -> str:
    """A Batch job name from the function and the object key: ``[A-Za-z0-9_-]``, ≤ 128."""
    base = key.rstrip("/").rsplit("/", 1)[-1] or "object"
    name = _NAME_BAD.sub("_", f"{function_name}-{base}").strip("_-")
    if not name or not name[0].isalnum():
        name = f"job-{name}"
    return name[:MAX_JOB_NAME].rstrip("_-") or "job"


_TAG_BAD = re.compile(r"[^\w\s+=.:/@-]")


def _tag(value: str) -> str:
    return _TAG_BAD.sub("_", value)[:MAX_TAG_VALUE]


def unique_job_name(function_name: str, key: str, token: str) -> str:
    """:func:`job_name` ending in ``-<token>``: one name per hand-off, so a SubmitJob whose
    answer was lost can be looked up by name instead of sent again."""
    tail = f"-{token}"
    return job_name(function_name, key)[:MAX_JOB_NAME - len(tail)].rstrip("_-") + tail


def build_submit_request(config: FunctionConfig, *, handoff_uri: str, request_id: str,
                         bucket: str, key: str, token: str) -> dict[str, Any]:
    """The SubmitJob request for one delegated record (pure; limits checked); ``token``
    (``[a-z0-9]``) makes the job's name and its ``supervisor:handoff`` tag unique."""
    environment = [{"name": HANDOFF_ENV, "value": handoff_uri},
                   {"name": REQUEST_ID_ENV, "value": request_id}]
    request: dict[str, Any] = {
        "jobName": unique_job_name(config.name, key, token),
        "jobQueue": config.job_queue_name,
        "jobDefinition": config.job_definition_name,
        "tags": {"supervisor:function": _tag(config.name),
                 "supervisor:request-id": _tag(request_id),
                 "supervisor:object": _tag(f"{bucket}/{key}"),
                 "supervisor:handoff": token},
        "propagateTags": True,
    }
    overrides = {"environment": environment}
    if config.batch.multi_node_parallel.enabled:
        request["nodeOverrides"] = {"nodePropertyOverrides": [
            {"targetNodes": "0:", "containerOverrides": overrides}]}
    else:
        request["containerOverrides"] = overrides
    if config.batch.retry_attempts is not None:
        request["retryStrategy"] = {"attempts": config.batch.retry_attempts}
    if config.batch.job_timeout is not None:
        request["timeout"] = {"attemptDurationSeconds": config.batch.job_timeout}
    check_limits(request)
    return request


def check_limits(request: Mapping[str, Any]) -> None:
    """Fail before calling AWS when a request breaks Batch's size limits."""
    overrides = request.get("containerOverrides") or request.get("nodeOverrides") or {}
    size = len(json.dumps(overrides))
    if size > MAX_OVERRIDES_CHARS:
        raise DelegationError(f"SubmitJob overrides are {size} characters; Batch allows "
                              f"{MAX_OVERRIDES_CHARS}")
    total = len(json.dumps(request).encode("utf-8"))
    if total > MAX_REQUEST_BYTES:
        raise DelegationError(f"SubmitJob request is {total} bytes; Batch allows "
                              f"{MAX_REQUEST_BYTES}")
    name = str(request.get("jobName", ""))
    if not name or len(name) > MAX_JOB_NAME or _NAME_BAD.search(name):
        raise DelegationError(f"job name {name!r} is not 1-{MAX_JOB_NAME} characters of "
                              "[A-Za-z0-9_-]")


_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "Throttling",
              "RequestLimitExceeded"}
"""Errors that say the request was refused before it took effect: safe to send again."""


def find_job(batch: Any, queue: str, name: str) -> Optional[str]:
    """The id of the job named ``name`` in ``queue``, if one was submitted (any state)."""
    answer = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    for job in answer.get("jobSummaryList") or ():
        if job.get("jobName") == name and job.get("jobId"):
            return str(job["jobId"])
    return None


def _last_look(batch: Any, request: Mapping[str, Any]) -> Optional[str]:
    """The job, if the call whose answer was lost made it; None when that cannot be told."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return find_job(batch, str(request["jobQueue"]), str(request["jobName"]))
    except (ClientError, BotoCoreError):
        return None


def submit_job(batch: Any, request: Mapping[str, Any], *, deadline: Deadline,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep, max_attempts: int = 8) -> str:
    """Submit the job exactly once: retry throttling and 5xx with backoff while time remains.

    SubmitJob has no client token, so after an error whose outcome is unknown (a lost
    answer, a connection cut, a 5xx) the job is looked up by its unique name first and
    only sent again when it is not there. At most ``max_attempts`` calls; a retry is made
    only when the deadline leaves room for its pause, and when it does not after an
    unknown outcome, the job is looked up one last time. Returns the job id.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    delay = 0.1
    attempt = 0
    unknown = False  # a previous call may have taken effect
    while True:
        attempt += 1
        try:
            if unknown:
                found = find_job(batch, str(request["jobQueue"]), str(request["jobName"]))
                if found is not None:
                    return found
            answer = batch.submit_job(**request)
            return str(answer["jobId"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code not in _RETRYABLE and status < 500:
                raise DelegationError(f"SubmitJob to queue {request.get('jobQueue')!r} "
                                      f"failed: {code}: {exc}") from exc
            unknown = unknown or code not in _THROTTLED
            error: Exception = exc
        except BotoCoreError as exc:
            unknown = True
            error = exc
        pause = delay * (1 + random.random())
        remaining = deadline.remaining(clock)
        if attempt >= max_attempts or (remaining is not None and remaining < pause):
            found = _last_look(batch, request) if unknown else None
            if found is not None:
                return found
            raise DelegationError(f"SubmitJob failed {attempt} time(s) and the time budget ran "
                                  f"out: {error}") from error
        sleep(pause)
        delay = min(delay * 2, 2.0)
