"""One fresh process measuring a contender's Lambda handler in-process.

``python lambda_child.py CONTENDER SPEC.json OUT.json``, run with the contender's
own interpreter (the peer's venv for ``peer``). It times the cold import of the
handler module first, before anything else is imported, then invokes the handler
once per event of the spec (the first invocation is the cold one) with a Lambda
context whose deadline is real, and writes the timings and the responses. The
spec's optional ``environ`` list holds, per event, variables set in this process
before that invocation (the container rows switch ``FUNCTION_CONFIG`` between
two functions this way; the handler reads the environment on every invocation).

Only the stdlib is imported here; the contender brings boto3.
"""
import importlib
import sys
import time

_MODULES = {"ours": "supervisor.handler",
            "peer": "faassupervisor.faas.aws_lambda.function_handler",
            "floor": "floor"}
CONTENDER = sys.argv[1]
_BOTO3_IMPORT = None
if CONTENDER not in _MODULES:
    raise SystemExit(f"unknown contender {CONTENDER!r}")
if CONTENDER == "floor":
    import os.path

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_T0 = time.perf_counter()
if CONTENDER == "floor":
    import boto3  # noqa: F401  the floor's import row is ``import boto3`` alone

    _BOTO3_IMPORT = time.perf_counter() - _T0
HANDLER = importlib.import_module(_MODULES[CONTENDER]).lambda_handler
IMPORT_SECONDS = time.perf_counter() - _T0

import json  # noqa: E402  after the timed import, on purpose
import os  # noqa: E402
import uuid  # noqa: E402


class Context:
    """The Lambda context: a real deadline, and a record of who asked for the time left."""

    def __init__(self, function_name: str, timeout: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"2024/01/01/[$LATEST]{self.aws_request_id.replace('-', '')}"
        self.timeout = timeout
        self.started = time.monotonic()
        self.calls: list[list[float]] = []

    def get_remaining_time_in_millis(self) -> int:
        now = time.monotonic()
        left = max(0, int((self.timeout - (now - self.started)) * 1000))
        self.calls.append([now, left])
        return left


def _main() -> None:
    with open(sys.argv[2], encoding="utf-8") as handle:
        spec = json.load(handle)
    invocations = []
    settings = spec.get("environ") or [{} for _ in spec["events"]]
    if len(settings) != len(spec["events"]):
        raise SystemExit("the spec's environ list does not match its events")
    for event, variables in zip(spec["events"], settings):
        os.environ.update(variables)
        context = Context(spec["function_name"], float(spec["timeout"]))
        start = time.perf_counter()
        response = HANDLER(event, context)
        seconds = time.perf_counter() - start
        invocations.append({"seconds": seconds, "end": time.monotonic(),
                            "remaining_calls": context.calls,
                            "response": json.loads(json.dumps(response, default=str))})
    result = {"import_seconds": IMPORT_SECONDS, "boto3_import_seconds": _BOTO3_IMPORT,
              "invocations": invocations}
    with open(sys.argv[3], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


_main()
