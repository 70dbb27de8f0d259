"""The local Lambda runtime: one invocation in this process, as the Python runtime runs it.

:class:`supervisor.local.lambda_executor.LambdaExecutor` starts one process
per invocation, by file path (see below), with the event JSON on stdin::

    python .../supervisor/local/lambda_worker.py --request-id ID --timeout SECONDS \\
        --result FILE --ready-fd FD

cwd is ``LAMBDA_TASK_ROOT``, the environment is the function's Lambda
environment, ``PYTHONPATH`` is ``LAMBDA_TASK_ROOT`` then the layers' dirs.
The worker then does what the managed runtime does:

1. **init**: imports the module named by ``_HANDLER`` (``path/module.function``)
   with :mod:`importlib`, from that ``sys.path``;
2. writes ``ready <time.monotonic()>`` to ``--ready-fd``: the invocation's
   clock starts there (init time is not part of the function's timeout, as
   on Lambda; ``CLOCK_MONOTONIC`` is the same clock in every process);
3. **invoke**: calls ``handler(event, context)`` with a
   :class:`~supervisor.local.context.LocalContext` whose deadline is that
   moment plus ``--timeout``;
4. writes the result to ``--result`` (atomically) as JSON:
   ``{"ok": true, "response": ...}`` or ``{"ok": false, "errorType": ...,
   "errorMessage": ..., "stackTrace": [...]}``, and exits 0.

stdout and stderr are the invocation's log (the executor captures them);
nothing but the handler's output and the runtime's error lines goes there.
The executor enforces the deadline: it kills this process and everything it
started, hard, as Lambda does.

**Run by path, stdlib only.** The function's code brings its own
``supervisor`` package (the supervisor layer), as on AWS, where the runtime
lives apart in ``/var/runtime``. Started as ``-m supervisor.local.lambda_worker``
this module would be looked up in the function's ``sys.path`` and could
shadow, or be shadowed by, the layer's copy; run by path it removes its own
directory from ``sys.path`` and imports nothing from ``supervisor`` before the
handler. The context class is loaded from ``context.py`` beside this file
under a private module name for the same reason.
"""
from __future__ import annotations

import os
import sys

# Run by path, sys.path[0] is this package's directory: drop it before any other import,
# so nothing here can shadow a module of the stdlib or of the function.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    del sys.path[0]

import argparse
import importlib
import importlib.util
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

__all__ = ["main", "READY"]

READY = "ready"
_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"


def _context_class() -> Any:
    """``LocalContext`` from ``context.py`` beside this file, under a private name."""
    name = "_supervisor_local_runtime_context"
    path = Path(_HERE, "context.py")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module.LocalContext


def _write_result(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as JSON to ``path`` via a temporary name and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document), encoding="utf-8")
    os.replace(tmp, path)


def _error(error_type: str, message: str, exc: Optional[BaseException] = None
           ) -> dict[str, Any]:
    stack = traceback.format_tb(exc.__traceback__) if exc is not None else []
    return {"ok": False, "errorType": error_type, "errorMessage": message,
            "stackTrace": [line.rstrip("\n") for line in stack]}


def _report(document: dict[str, Any]) -> None:
    """The runtime's log line for an error, as Lambda prints it."""
    print(f"[ERROR] {document['errorType']}: {document['errorMessage']}", file=sys.stderr)
    for line in document.get("stackTrace", []):
        print(line, file=sys.stderr)


def _load_handler(name: str) -> tuple[Optional[Callable[..., Any]], Optional[dict[str, Any]]]:
    """The handler function named ``module.function`` (``dir/module.function`` too)."""
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError:
        return None, _error("Runtime.MalformedHandlerName",
                            f"Bad handler '{name}': not enough values to unpack")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _error("Runtime.ImportModuleError",
                            f"Unable to import module '{module_name}': {exc}", exc)
    except Exception as exc:  # the module's own init code failed
        return None, _error("Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError)
                            else type(exc).__name__,
                            f"Unable to import module '{module_name}': {exc}", exc)
    function = getattr(module, function_name, None)
    if not callable(function):
        return None, _error("Runtime.HandlerNotFound",
                            f"Handler '{function_name}' missing on module '{module_name}'")
    return function, None


class _RequestIdFilter(logging.Filter):
    """Adds ``aws_request_id`` to every record, as the runtime's log handler does."""

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _configure_logging(request_id: str) -> None:
    """The runtime's root log handler: tab-separated lines with the request id, UTC."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(_LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter(request_id))
    logging.getLogger().addHandler(handler)


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lambda_worker", description=__doc__)
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--timeout", type=float, required=True, help="seconds")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    return parser.parse_args(argv)


def _ready(fd: int) -> float:
    """Tell the executor the invoke phase starts now; returns that monotonic time."""
    started = time.monotonic()
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(f"{READY} {started!r}\n")
    return started


def main(argv: Optional[Sequence[str]] = None, environ: Optional[dict[str, str]] = None
         ) -> int:
    """Run one invocation; 0 once a result is written, 1 when none could be."""
    args = _parse(argv)
    env = dict(os.environ) if environ is None else environ
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(line_buffering=True)  # a hard kill must not lose buffered lines
    _configure_logging(args.request_id)
    try:
        event = json.loads(sys.stdin.read() or "null")
    except ValueError as exc:
        document = _error("Runtime.UnmarshalError", f"the event is not JSON: {exc}")
        _report(document)
        _write_result(args.result, document)
        return 0
    handler, failure = _load_handler(env.get("_HANDLER", ""))
    started = _ready(args.ready_fd)
    if handler is None:
        assert failure is not None
        _report(failure)
        _write_result(args.result, failure)
        return 0
    context = _context_class()(
        function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", ""), timeout=args.timeout,
        memory_limit_in_mb=int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128),
        region=env.get("AWS_REGION", "us-east-1"), aws_request_id=args.request_id,
        started=started)
    try:
        response = handler(event, context)
    except Exception as exc:  # the handler raised: an invocation error, as on Lambda
        document = _error(type(exc).__name__, str(exc), exc)
    else:
        try:
            json.dumps(response)
        except (TypeError, ValueError) as exc:
            document = _error("Runtime.MarshalError",
                              f"Unable to marshal response: {exc}", exc)
        else:
            document = {"ok": True, "response": response}
    if not document["ok"]:
        _report(document)
    _write_result(args.result, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
