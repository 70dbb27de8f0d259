"""``supervisor invoke``: send a function the S3 event of an object already in S3,
or an HTTP request through its REST API (``--api``).

The event is the one S3 sends (one ``Records`` entry, URL-encoded key, the
object's size, ETag and version id from ``HeadObject``). A synchronous
invoke prints the function's answer (the records table of a supervisor
response, else the raw payload) and the decoded log tail on stderr; it
exits 1 when the function failed or answered a status code of 400 or more.
``--async`` queues the event (``InvocationType=Event``), as S3 does.

With ``--api`` the request body is ``--data`` or ``--data-file``, posted to the
API's endpoint (``--async``: with ``X-Amz-Invocation-Type: Event``). An
endpoint that is not AWS's own (a local or emulated one) has no
``execute-api`` host: the request then goes to the function the API
integrates as the event API Gateway would send (:mod:`supervisor.gateway`).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from botocore.exceptions import ClientError

from ..s3event import event_of, object_created_record
from .args import Subparsers, add_command
from .context import Context
from .errors import CliError, error_code
from .output import Column, seconds, table

__all__ = ["register", "run_invoke", "invoke_with", "build_event", "records_of",
           "answer_text", "failure"]

EXAMPLES = """
  supervisor invoke -n scar-plants -b scar-plants -k input/daisy.jpg
  supervisor invoke -n scar-plants -b scar-plants -k "input/my photo.jpg" --async
  supervisor invoke -n darknet --api --data-file ./dog.jpg
"""
RECORD_COLUMNS: tuple[Column, ...] = (
    ("object", "object"), ("status", "status"), ("exit_code", "exit"),
    ("duration_text", "duration"), ("job_id", "batch job"), ("uploaded", "uploaded"))


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``invoke``."""
    parser = add_command(
        subparsers, "invoke", common=common, func=run_invoke, examples=EXAMPLES,
        summary="invoke a function with the S3 event of an existing object, or through "
                "its REST API",
        description="Build the S3 event S3 would send for an object that exists "
                    "(HeadObject: size, ETag, version id) and invoke the function with it: "
                    "synchronously (prints the answer and the log tail) or with --async. "
                    "With --api, send a request body through the function's REST API "
                    "instead (deployed from api_gateway in its definition).")
    parser.add_argument("-n", "--name", required=True, help="the Lambda function")
    parser.add_argument("-b", "--bucket", help="the object's bucket")
    parser.add_argument("-k", "--key", help="the object's key (as stored)")
    parser.add_argument("--api", action="store_true",
                        help="send the request through the function's REST API")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--data", metavar="TEXT", help="with --api: the request body")
    body.add_argument("--data-file", type=Path, metavar="PATH",
                      help="with --api: a file whose content is the request body")
    parser.add_argument("--async", dest="asynchronous", action="store_true",
                        help="queue the event (InvocationType Event) and return at once")


def build_event(bucket: str, key: str, head: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The S3 ``ObjectCreated:Put`` event of the object ``head`` describes."""
    return event_of(object_created_record(
        bucket, key, size=int(head.get("ContentLength", 0)), etag=str(head.get("ETag", "")),
        version_id=head.get("VersionId") or None, region=region))


def _decode(payload: bytes) -> Any:
    text = payload.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def records_of(answer: Any) -> Optional[list[dict[str, Any]]]:
    """The records of a supervisor response (its body is JSON), or None for anything else."""
    if not isinstance(answer, dict) or not isinstance(answer.get("body"), str):
        return None
    try:
        body = json.loads(answer["body"])
    except ValueError:
        return None
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return None
    return [r for r in records if isinstance(r, dict)]


def answer_text(answer: Any) -> str:
    """The function's answer for people: a table of the supervisor's records, or the payload."""
    records = records_of(answer)
    if records is None:
        return answer if isinstance(answer, str) else json.dumps(answer, indent=2)
    rows = [dict(r, object=f"s3://{r.get('bucket')}/{r.get('key')}",
                 duration_text=seconds(r.get("duration"))) for r in records]
    return f"statusCode {answer.get('statusCode')}\n{table(rows, RECORD_COLUMNS)}"


def failure(function_error: Optional[str], answer: Any) -> Optional[str]:
    """What went wrong, in one line, or None: a function error, or a status code >= 400."""
    if function_error:
        detail = answer.get("errorMessage") if isinstance(answer, dict) else answer
        return f"the function failed ({function_error}): {detail}"
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if isinstance(status, int) and status >= 400:
        failed = [f"s3://{r.get('bucket')}/{r.get('key')}: {r.get('error') or r.get('status')}"
                  for r in records_of(answer) or [] if r.get("status") == "failed"]
        return f"the function answered statusCode {status}" + (
            f" ({'; '.join(failed)})" if failed else "")
    return None


def run_invoke(args: argparse.Namespace, ctx: Context) -> int:
    """HeadObject, build the event, Invoke; print the answer (``--api``: through the API)."""
    if args.api:
        if args.bucket or args.key:
            raise CliError("--api sends a request body (--data or --data-file), not an "
                           "object's event: drop -b/-k")
        from .invoke_api import run_api_invoke

        return run_api_invoke(args, ctx)
    if not (args.bucket and args.key):
        raise CliError("invoke needs -b BUCKET and -k KEY (an object's S3 event), or --api "
                       "with --data/--data-file")
    if args.data is not None or args.data_file is not None:
        raise CliError("--data and --data-file go with --api")
    s3 = ctx.clients.s3()
    uri = f"s3://{args.bucket}/{args.key}"
    try:
        head = s3.head_object(Bucket=args.bucket, Key=args.key)
    except ClientError as exc:  # say which object, not "An error occurred (404)"
        code = error_code(exc)
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise CliError(f"{uri}: no such object") from exc
        raise
    lam = ctx.clients.invoker()
    event = build_event(args.bucket, args.key, head, lam.meta.region_name or "us-east-1")
    return invoke_with(ctx, lam, args.name, event, asynchronous=args.asynchronous,
                       result={"function": args.name, "object": uri}, what=uri)


def invoke_with(ctx: Context, lam: Any, function: str, event: Mapping[str, Any], *,
                asynchronous: bool, result: dict[str, Any], what: str) -> int:
    """Invoke ``function`` with ``event`` and print the answer; ``result`` is the JSON
    output's start and ``what`` names the request in the ``--async`` line."""
    kind = "Event" if asynchronous else "RequestResponse"
    response = lam.invoke(FunctionName=function, InvocationType=kind,
                          LogType="None" if asynchronous else "Tail",
                          Payload=json.dumps(event).encode("utf-8"))
    request_id = response.get("ResponseMetadata", {}).get("RequestId", "")
    result.update(invocation_type=kind, status_code=response.get("StatusCode"),
                  request_id=request_id)
    if asynchronous:
        ctx.emit(result, lambda: f"queued {what} for {function} (request id {request_id})")
        return 0
    answer = _decode(response["Payload"].read())
    tail = _log_tail(response.get("LogResult"))
    result.update(function_error=response.get("FunctionError"), payload=answer, log_tail=tail)
    if tail and not ctx.json:
        ctx.stderr.write(tail if tail.endswith("\n") else tail + "\n")
    ctx.emit(result, lambda: answer_text(answer))
    problem = failure(response.get("FunctionError"), answer)
    if problem:
        raise CliError(problem)
    return 0


def _log_tail(encoded: Optional[str]) -> str:
    if not encoded:
        return ""
    try:
        return base64.b64decode(encoded).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
