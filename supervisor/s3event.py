"""S3 notification events exactly as S3 sends them: for objects of the local endpoint, for
``supervisor invoke``, and for a request body a ``batch`` function stages for its job."""
from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import quote_plus

__all__ = ["object_created_record", "event_of"]

_counter = itertools.count()


def _sequencer() -> str:
    """A growing hexadecimal sequencer, like S3's (orders events of one key)."""
    return f"{time.time_ns():016X}{next(_counter) % 256:02X}"


def object_created_record(bucket: str, key: str, *, size: int, etag: str = "",
                          version_id: Optional[str] = None, region: str = "us-east-1",
                          event_name: str = "ObjectCreated:Put",
                          sequencer: Optional[str] = None,
                          origin: str = "LOCAL") -> dict[str, Any]:
    """One ``Records`` entry for an object creation (eventVersion 2.1, URL-encoded key);
    ``origin`` names who made it where S3 names the requester."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size,
                           "eTag": etag.strip('"'), "sequencer": sequencer or _sequencer()}
    if version_id:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now,
        "eventName": event_name,
        "userIdentity": {"principalId": f"AWS:{origin}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": origin, "x-amz-id-2": origin},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": f"supervisor-{origin.lower()}",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": origin},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def event_of(*records: dict[str, Any]) -> dict[str, Any]:
    """An S3 notification event holding ``records``."""
    return {"Records": list(records)}
