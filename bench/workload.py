"""What the contenders are asked to do: events, configurations, scripts (pure)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import quote_plus

__all__ = ["COPY_SCRIPT", "MANY_SCRIPT", "SLEEP_SCRIPT", "MANY_FILES", "s3_event",
           "config_yaml", "b64"]

#: One output: the input, copied (1 KiB, or the big object).
COPY_SCRIPT = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'

MANY_FILES = 200
#: ``MANY_FILES`` small outputs, each holding its number.
MANY_SCRIPT = f"""\
i=0
while [ $i -lt {MANY_FILES} ]; do
  echo "$i" > "$TMP_OUTPUT_DIR/f$i.txt"
  i=$((i + 1))
done
"""

#: Runs past any short deadline; ``exec`` so that killing the one process stops it.
SLEEP_SCRIPT = "exec sleep 60\n"


def b64(text: str) -> str:
    """Base64 of UTF-8 text, as SCAR passes ``SCRIPT`` and ``FUNCTION_CONFIG``."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def s3_event(bucket: str, key: str, size: int, etag: str = "") -> dict[str, Any]:
    """The S3 notification S3 sends for one ``ObjectCreated:Put``."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": now, "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:BENCH"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "BENCH", "x-amz-id-2": "BENCH"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "BENCH"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": size,
                          "eTag": etag.strip('"'), "sequencer": "0055AED6DCD90281E5"}},
    }]}


def config_yaml(*, name: str, bucket: str, prefix: str, mode: str = "lambda",
                init_script: Optional[str] = None, threshold: int = 10, timeout: int = 300,
                network: Optional[dict[str, str]] = None, image: str = "busybox",
                run_on_host: bool = True, execmode: Optional[str] = None) -> str:
    """The function's ``lambda`` section (with ``batch`` beside it), block YAML as SCAR writes.

    Input ``bucket/prefix/in``, one output ``bucket/prefix/out``. The keys are
    those both runtimes read: faas-supervisor needs ``container.timeout_threshold``
    and ``batch.multi_node_parallel.enabled``. ``container.run_on_host`` (only this
    project reads it) keeps the script on the host in Lambda, as the peer's
    container-image runtime runs it; the container rows set it false to run the
    script in ``image``, in udocker execution mode ``execmode``.
    """
    lines = [f"name: {name}", f"execution_mode: {mode}", f"timeout: {timeout}",
             "log_level: INFO"]
    if init_script:
        lines.append(f"init_script: {json.dumps(init_script)}")
    lines += ["container:", f"  image: {json.dumps(image)}", f"  timeout_threshold: {threshold}",
              f"  run_on_host: {'true' if run_on_host else 'false'}"]
    if execmode:
        lines.append(f"  execmode: {execmode}")
    lines += ["input:", f"- storage_provider: s3\n  path: {bucket}/{prefix}/in",
              "output:", f"- storage_provider: s3\n  path: {bucket}/{prefix}/out",
              "batch:", "  multi_node_parallel:", "    enabled: false"]
    if network:
        lines += ["  compute_resources:", f"    subnets: [{network['subnet']}]",
                  f"    security_group_ids: [{network['security_group']}]"]
    return "\n".join(lines) + "\n"
