"""The AWS Batch job's entry point: ``supervisor-batch`` (``python -m supervisor.batch_entry``).

It does on Batch what the Lambda handler does on Lambda: download the input
object, run the user's script on it with the same environment (but
``EXECUTION_SERVICE=batch`` and no deadline), and upload what it wrote.

Input, first found wins:

1. ``SUPERVISOR_HANDOFF=s3://bucket/key``: the hand-off document the Lambda
   side wrote when it delegated the record (S3 record, function config,
   script, original request id).
2. SCAR's form: the S3 event in ``EVENT`` (or, when ``EVENT`` is not set, on
   stdin), the function configuration in ``FUNCTION_CONFIG`` (base64 YAML; or
   ``FUNCTION_CONFIG_PATH``, ``/var/task/function_config.yaml``), the script
   in ``SCRIPT`` (base64; else the event's ``script`` field, else the
   configuration's ``init_script`` file). Every object-creation record is
   processed, in order; other records are skipped. The request id is
   ``AWS_LAMBDA_REQUEST_ID`` / ``REQUEST_ID``, else ``AWS_BATCH_JOB_ID``.

Other settings: ``SUPERVISOR_SCRIPT_TIMEOUT`` (seconds per record; default
none), ``SUPERVISOR_WORK_DIR`` (default: the system temp dir),
``SUPERVISOR_DEBUG=1`` (tracebacks on stderr). In a multi-node job
(``AWS_BATCH_JOB_NODE_INDEX`` and ``AWS_BATCH_JOB_MAIN_NODE_INDEX``) every
node downloads the input and runs the script; only the main node uploads.

Output: JSON log lines on stderr (one per phase, each script output line, and
a final ``job done``); one JSON line ``{"records": [...], ...}`` on stdout.

Exit codes (**contract**; with several records, the first non-zero one):

====  ==============================================================
code  meaning
====  ==============================================================
0     the script exited 0 and every output was uploaded
1-255 the script's own exit code (nothing was uploaded)
128+N the script was killed by signal N (``supervisor-batch`` itself
      stopped by signal N: the same)
124   the script ran past ``SUPERVISOR_SCRIPT_TIMEOUT`` and was killed
126   the script could not be written or started
66    the input could not be read: the hand-off document or the object
74    an output could not be uploaded
78    bad arguments, environment, configuration or event
70    an internal error of the supervisor
====  ==============================================================

Every non-zero exit ends stderr with one plain line ``supervisor-batch: <reason>``
(for a script failure: which object, and the script's exit code).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any, Mapping, NoReturn, Optional, Sequence, TextIO

from .. import __version__, records
from ..aws import ClientFactory
from ..config import FunctionConfig
from ..container.spec import (
    ContainerSettings,
    ContainerSpec,
    choose_execmode,
)
from ..errors import (
    ConfigError,
    DelegationError,
)
from ..events import InputObject
from ..handoff import HANDOFF_ENV, delete_handoff
from ..jsonlog import JsonLogging, install
from ..pipeline import Job, run_job
from ..result import RecordResult
from .exit_codes import (
    EX_CONFIG,
    EX_OK,
    Terminated,
    exit_code_for,
    reason_for,
)
from .inputs import Work, resolve
from .settings import (
    DEBUG_ENV,
    IMAGE_ENV,
    JOB_ID_ENV,
    LOGGER,
    PROG,
    Settings,
    read_settings,
)

__all__ = ["main", "console_main"]

log = logging.getLogger("supervisor.batch")
script_log = logging.getLogger("supervisor.script")

def _job_container(settings: Settings, config: FunctionConfig,
                   environ: Mapping[str, str]) -> Optional[ContainerSpec]:
    """On Batch the job already runs in its image; an archive or image the local Batch
    executor names (``SUPERVISOR_JOB_IMAGE_FILE``, ``SUPERVISOR_JOB_IMAGE``) stands for it."""
    if settings.image_file is None and settings.image is None:
        return None
    container = ContainerSettings.from_environ(environ)
    execmode = choose_execmode(config.container.execmode, container)
    if settings.image_file is not None:
        return ContainerSpec(image=str(settings.image_file), settings=container,
                             image_file=settings.image_file, execmode=execmode)
    return ContainerSpec(image=environ.get(IMAGE_ENV, ""), settings=container,
                         reference=settings.image, execmode=execmode,
                         insecure=config.container.insecure_registry)


def _process(obj: InputObject, work: Work, settings: Settings, clients: ClientFactory,
             environ: Mapping[str, str], logging_setup: JsonLogging) -> tuple[RecordResult, int]:
    """One record, its own error boundary: a failure is a failed result and its exit code."""
    if not obj.is_create:
        log.info("record skipped", extra={"bucket": obj.bucket, "key": obj.key,
                                          "event_name": obj.event_name})

    def step() -> RecordResult:
        job = Job(obj=obj, config=work.config, script=work.script,
                  request_id=work.request_id, execution_service="batch",
                  deadline=settings.deadline(), upload=settings.upload,
                  container=_job_container(settings, work.config, environ))
        return run_job(job, clients=clients, base_env=environ,
                       work_base=settings.work_base, on_line=_log_script_line)

    def logged(exc: BaseException) -> None:
        log.error("record failed", exc_info=settings.debug,
                  extra={"error": reason_for(exc), "exit_code": exit_code_for(exc)})

    logging_setup.bind(bucket=obj.bucket, key=obj.key)
    try:
        result, raised = records.run_record(obj, step, on_error=logged)
    finally:
        logging_setup.bind(bucket=None, key=None)
    if raised is not None:
        return result, exit_code_for(raised)
    if settings.node_index is not None:
        result = dataclasses.replace(result, extra={
            **result.extra, "node_index": settings.node_index, "main_node": settings.upload})
    return result, exit_code_for(result)


def _log_script_line(line: str) -> None:
    script_log.info(line)


def _forget_handoff(environ: Mapping[str, str], settings: Settings,
                    clients: ClientFactory) -> None:
    """Delete a succeeded job's hand-off document (a failed one is kept for Batch's retry).

    Not in a multi-node job: another node may not have read it yet.
    """
    uri = environ.get(HANDOFF_ENV, "").strip()
    if not uri or settings.node_index is not None:
        return
    try:
        delete_handoff(clients.s3(), uri)
    except DelegationError as exc:  # the job succeeded: a leftover document is no failure
        log.warning("hand-off document left in place", extra={"error": str(exc)})
    else:
        log.info("hand-off document deleted", extra={"handoff": uri})


def _run(environ: Mapping[str, str], stdin: Optional[TextIO],
         clients: Optional[ClientFactory], logging_setup: JsonLogging) -> int:
    start = time.monotonic()
    results: list[RecordResult] = []
    codes: list[int] = []
    failure: Optional[BaseException] = None
    request_id: Optional[str] = None
    debug = environ.get(DEBUG_ENV, "") == "1"
    try:
        settings = read_settings(environ)
        factory = clients if clients is not None else ClientFactory()
        work = resolve(environ, stdin, factory)
        request_id = work.request_id
        level_ok = logging_setup.set_level(work.config.log_level or "INFO")
        logging_setup.bind(request_id=work.request_id, function=work.config.name,
                           job_id=environ.get(JOB_ID_ENV), node_index=settings.node_index)
        if not level_ok:
            log.warning("unknown log_level; using INFO", extra={"log_level": work.config.log_level})
        log.info("job start", extra={
            "source": work.source, "attempt": work.attempt, "records": len(work.objects),
            "upload": settings.upload, "timeout": settings.timeout})
        factory = factory.with_providers(work.config.storage_providers)
        for obj in work.objects:
            result, code = _process(obj, work, settings, factory, environ, logging_setup)
            results.append(result)
            codes.append(code)
    except (Exception, Terminated, KeyboardInterrupt) as exc:
        failure = exc
        codes.append(exit_code_for(exc))
    code = next((c for c in codes if c != EX_OK), EX_OK)
    if code == EX_OK and failure is None:
        _forget_handoff(environ, settings, factory)
    uploaded = [uri for r in results for uri in r.uploaded]
    if results or request_id is not None:
        log.info("job done", extra={
            "status": "completed" if code == EX_OK else "failed", "exit_code": code,
            "duration": round(time.monotonic() - start, 3), "uploaded": uploaded,
            "records": len(results)})
    logging_setup.handler.flush()
    _write_summary(results, code, request_id, failure)
    if code != EX_OK:
        if failure is not None and debug:
            traceback.print_exception(type(failure), failure, failure.__traceback__,
                                      file=sys.stderr)
        _say(_final_reason(results, codes, failure))
    return code


def _final_reason(results: Sequence[RecordResult], codes: Sequence[int],
                  failure: Optional[BaseException]) -> str:
    """The reason for the exit code: that of the first record that gave it."""
    for result, code in zip(results, codes):
        if code != EX_OK:
            what = result.error or f"script exited with code {result.exit_code}"
            return f"s3://{result.bucket}/{result.key}: {what}"
    return reason_for(failure) if failure is not None else "failed"


def _write_summary(results: Sequence[RecordResult], code: int, request_id: Optional[str],
                   failure: Optional[BaseException]) -> None:
    summary: dict[str, Any] = {"records": [r.to_dict() for r in results], "exit_code": code,
                               "request_id": request_id}
    if failure is not None:
        summary["error"] = reason_for(failure)
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _say(reason: str) -> None:
    sys.stderr.write(f"{PROG}: {reason}\n")
    sys.stderr.flush()


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are a ``ConfigError`` (exit 78, one line), not exit 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError([f"arguments: {message}"])


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    body = doc.split("\n\n", 1)[1] if "\n\n" in doc else doc
    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one delegated supervisor job on AWS Batch: download the S3 "
                    "object, run the user's script on it, upload its outputs.",
        epilog=body.replace("``", "").replace("**", ""))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None,
         stdin: Optional[TextIO] = None, *, clients: Optional[ClientFactory] = None) -> int:
    """Run the job described by ``environ`` (default: this process's); return the exit code.

    The environment is read here and only here; ``clients`` defaults to a
    ``ClientFactory`` over boto3's own resolution (``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, the job role). Nothing is written to ``os.environ``.
    """
    env = dict(os.environ) if environ is None else dict(environ)
    try:
        _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EX_OK
    except ConfigError as exc:
        _say(reason_for(exc))
        return EX_CONFIG
    with install(LOGGER, stream=sys.stderr) as logging_setup:
        return _run(env, stdin, clients, logging_setup)


def console_main() -> None:
    """The ``supervisor-batch`` console script: SIGTERM stops the script cleanly, then exit."""
    previous = _trap_signals()
    try:
        code = main()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise SystemExit(code)


def _trap_signals() -> dict[int, Any]:
    """Turn SIGTERM into ``Terminated`` so the script's group is killed and cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: Optional[FrameType]) -> None:
        signal.signal(signum, signal.SIG_IGN)  # let the cleanup finish
        raise Terminated(signum)

    return {signal.SIGTERM: signal.signal(signal.SIGTERM, stop)}


