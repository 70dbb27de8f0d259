"""What happened to one input object, and the Lambda response built from them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

__all__ = ["RecordResult", "Status", "build_response", "response_headers"]

Status = Literal["completed", "delegated", "failed", "skipped"]


@dataclass(frozen=True)
class RecordResult:
    """The outcome of one S3 record (contract: the Lambda response body)."""

    bucket: str
    key: str
    status: Status
    exit_code: Optional[int] = None
    duration: float = 0.0
    uploaded: tuple[str, ...] = ()
    job_id: Optional[str] = None
    output_tail: str = ""
    error: Optional[str] = None
    reason: Optional[str] = None  # why a record was delegated or skipped
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record's entry in the response body."""
        out: dict[str, Any] = {
            "bucket": self.bucket,
            "key": self.key,
            "status": self.status,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "uploaded": list(self.uploaded),
            "job_id": self.job_id,
            "output_tail": self.output_tail,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.reason is not None:
            out["reason"] = self.reason
        out.update(self.extra)
        return out


def response_headers(request_id: str, log_group: str, log_stream: str) -> dict[str, str]:
    """The response headers of the contract."""
    return {"amz-lambda-request-id": request_id, "amz-log-group-name": log_group,
            "amz-log-stream-name": log_stream}


def build_response(results: Sequence[RecordResult], *, headers: Mapping[str, str],
                   error: Optional[str] = None,
                   status_code: Optional[int] = None) -> dict[str, Any]:
    """The Lambda response (contract): statusCode, headers and a JSON body.

    The status code is 500 when any record failed or ``error`` is set, so a
    failed invocation is visible to callers and monitoring; 200 otherwise.
    """
    failed = error is not None or any(r.status == "failed" for r in results)
    body: dict[str, Any] = {"request_id": headers.get("amz-lambda-request-id", ""),
                            "records": [r.to_dict() for r in results]}
    if error is not None:
        body["error"] = error
    return {
        "statusCode": status_code if status_code is not None else (500 if failed else 200),
        "headers": dict(headers),
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,  # the body is JSON text (SCAR's CLI prints it as is)
    }
