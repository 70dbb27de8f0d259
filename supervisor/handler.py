"""The Lambda entry point: ``supervisor.handler.lambda_handler``.

This is the one error boundary on the Lambda side: every record of the event
ends as ``completed``, ``delegated``, ``failed`` or ``skipped`` in the
response, whatever goes wrong with it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from . import config as config_mod
from . import records
from .aws import ClientFactory
from .config import FunctionConfig
from .container.spec import ContainerSettings, ContainerSpec, spec_for
from .direct import DirectInvocation, direct_invocation
from .errors import EventError, HandoffInProgress, ScriptTimeout, SupervisorError, describe
from .events import InputObject, event_mapping, parse_each
from .pipeline import Job, run_job
from .plan import delegate_reason
from .result import RecordResult, build_response, response_headers
from .script import resolve_script
from .watchdog import Deadline

if TYPE_CHECKING:
    from .delegate import Delegator
    from .history import RunHistory

__all__ = ["lambda_handler", "handle", "WORK_DIR_ENV"]

WORK_DIR_ENV = "SUPERVISOR_WORK_DIR"
SERVICE = "supervisor"
# The hand-off itself must finish before Lambda kills the invocation.
HANDOFF_MARGIN_S = 1.0
# Writing the run history (after the response is built) leaves this much to return it.
HISTORY_MARGIN_S = 0.1

script_log = logging.getLogger("supervisor.script")


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry: process every S3 record of ``event``; see ``handle``."""
    return handle(event, context, environ=dict(os.environ), clients=process_clients())


@functools.lru_cache(maxsize=1)
def process_clients() -> ClientFactory:
    """The process's client factory: clients are reused across warm invocations."""
    return ClientFactory()


@functools.lru_cache(maxsize=1)
def _logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service=SERVICE)


def handle(event: Mapping[str, Any], context: Any, *, environ: Mapping[str, str],
           clients: ClientFactory, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Process one invocation; returns the Lambda response of the contract."""
    logger = _logger()
    request_id = str(getattr(context, "aws_request_id", "") or uuid.uuid4())
    logger.append_keys(request_id=request_id)
    headers = response_headers(request_id, str(getattr(context, "log_group_name", None) or ""),
                               str(getattr(context, "log_stream_name", None) or ""))
    remaining_ms = _remaining_ms(context)
    metrics = _Metrics(environ)
    try:
        try:
            event = event_mapping(event)
            direct = direct_invocation(event)
            objects, bad_records = parse_each(event) if direct is None else ([], [])
        except EventError as exc:
            logger.error("not a usable S3 event", extra={"error": str(exc)})
            metrics.count("Failures")
            return build_response([], error=records.one_line(str(exc)), status_code=400,
                                  headers=headers)
        try:
            config = config_mod.load(environ)
            script = resolve_script(event, config)
            container = spec_for(config.container, ContainerSettings.from_environ(environ),
                                 on_lambda=True)
        except SupervisorError as exc:  # the configuration or the script: every record fails
            logger.error("cannot process the event", extra={"error": str(exc)})
            results = [records.skipped(o) if not o.is_create else records.failed(o, str(exc))
                       for o in objects]
            results += [records.malformed(record, bad) for record, bad in bad_records]
            if direct is not None:
                results.append(records.failed(None, str(exc)))
            metrics.count("Failures")
            return build_response(results, error=records.one_line(str(exc)), headers=headers)
        if config.log_level:
            logger.setLevel(config.log_level)
        run = _Invocation(config=config, script=script, container=container,
                          request_id=request_id,
                          environ=environ, clients=clients.with_providers(config.storage_providers),
                          remaining_ms=remaining_ms, context=context, clock=clock)
        if direct is not None:
            results = [run.process(None, direct=direct, event_json=json.dumps(event))]
        else:
            results = [run.process(obj) for obj in objects]
        results += [records.malformed(record, exc) for record, exc in bad_records]
        for result in results:
            metrics.record(result)
        response = build_response(results, headers=headers)
        run.record_history()
        logger.info("invocation done", extra={"status_code": response["statusCode"],
                                              "records": len(results)})
        return response
    finally:
        metrics.flush()
        logger.remove_keys(["request_id"])


class _Invocation:
    """The per-invocation state: config, script, deadlines, the delegator."""

    def __init__(self, *, config: FunctionConfig, script: str,
                 container: Optional[ContainerSpec], request_id: str,
                 environ: Mapping[str, str], clients: ClientFactory,
                 remaining_ms: Optional[int], context: Any,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.script = script
        self.request_id = request_id
        self.environ = environ
        self.clients = clients
        self.clock = clock
        threshold = float(config.container.timeout_threshold)
        # The kill must leave most of the threshold to the hand-off: a script that ignores
        # SIGTERM gets a quarter of it (at most 2 s) before SIGKILL.
        self.grace = min(2.0, max(0.1, threshold / 4))
        if remaining_ms is None:
            self.deadline = Deadline.none()
            handoff_deadline = Deadline.none()
        else:
            self.deadline = Deadline.from_remaining_ms(remaining_ms, threshold, clock)
            handoff_deadline = Deadline.from_remaining_ms(remaining_ms, HANDOFF_MARGIN_S, clock)
        self.work_base = Path(environ.get(WORK_DIR_ENV) or tempfile.gettempdir())
        self.container = container
        self._handoff_deadline = handoff_deadline
        self._context = context if remaining_ms is not None else None
        self._delegator: Optional[Delegator] = None
        self._history: Optional[RunHistory] = None
        if config.history.table and config.execution_mode == "lambda-batch" \
                and remaining_ms is not None:
            from .history import RunHistory  # imported only when history is configured

            self._history = RunHistory.of(
                config, script=script, memory=_memory(context, config), clients=clients,
                budget=self.deadline, clock=clock,
                write_by=Deadline.from_remaining_ms(remaining_ms, HISTORY_MARGIN_S, clock))

    def process(self, obj: Optional[InputObject], *, direct: Optional[DirectInvocation] = None,
                event_json: str = "{}") -> RecordResult:
        """One record (or a direct invocation, ``obj`` None), with its own error boundary:
        it always ends in a result."""
        logger = _logger()
        logger.append_keys(bucket=obj.bucket if obj else "", key=obj.key if obj else "")

        def logged(exc: BaseException) -> None:
            if isinstance(exc, SupervisorError):
                logger.error("record failed", extra={"error": describe(exc)})
            else:
                logger.exception("internal error")

        try:
            result, _ = records.run_record(obj, lambda: self._run(obj, direct, event_json),
                                           on_error=logged, clock=self.clock)
            return result
        finally:
            logger.remove_keys(["bucket", "key"])

    def _run(self, obj: Optional[InputObject], direct: Optional[DirectInvocation],
             event_json: str) -> RecordResult:
        """Run in Lambda, or hand off: early, or when the time budget runs out."""
        start = self.clock()
        mode = self.config.execution_mode
        if obj is None and mode == "batch":
            if direct is None or direct.kind != "api-gateway":
                return records.failed(None, "{}, script and cmd_args run in Lambda; "
                                            "execution_mode batch hands S3 objects (and API "
                                            "requests' bodies) to Batch: invoke it with an "
                                            "S3 event, or use lambda or lambda-batch")
            from .staged_request import stage_request

            staged = stage_request(self.clients.s3(), self.config, self.request_id, direct)
            return self._delegate(staged, "execution_mode is batch (the request's body is "
                                          "the job's input)", start)
        reason = delegate_reason(
            mode, object_size=obj.size if obj else 0,
            free_bytes=shutil.disk_usage(self.work_base).free,
            budget=self.deadline.remaining(self.clock),
            threshold=float(self.config.container.timeout_threshold))
        if reason is None and obj is not None and self._history is not None:
            reason = self._history.reason_to_delegate(obj)
        try:
            if reason is not None and obj is not None:
                return self._delegate(obj, reason, start)
            try:
                result = run_job(Job(obj=obj, config=self.config, script=self.script,
                                     request_id=self.request_id, execution_service="lambda",
                                     deadline=self.deadline, container=self.container,
                                     grace=self.grace, direct=direct, event_json=event_json),
                                 clients=self.clients, base_env=self.environ,
                                 work_base=self.work_base, on_line=_log_script_line,
                                 clock=self.clock)
                if self._history is not None and obj is not None:
                    self._history.note(obj, result.duration, "completed"
                                       if result.status == "completed" else "failed")
                return result
            except ScriptTimeout as exc:
                if self._history is not None and obj is not None:
                    self._history.note(obj, self.clock() - start, "timed_out")
                if mode == "lambda-batch" and obj is not None:
                    _logger().warning("time budget exceeded, handing off",
                                      extra={"error": str(exc)})
                    return dataclasses.replace(self._delegate(obj, str(exc), start),
                                               exit_code=exc.exit_code,
                                               output_tail=exc.output_tail)
                return dataclasses.replace(
                    records.failed(obj, f"exceeded the time budget: {exc}",
                                   self.clock() - start),
                    exit_code=exc.exit_code, output_tail=exc.output_tail)
        except HandoffInProgress as exc:  # only a hand-off raises it: obj is an S3 object
            # Failed, not skipped: if that other invocation dies before it submits, a 200
            # here would drop the object for good; a 500 has Lambda retry it, and the retry
            # finds the hand-off done (the same job) or makes it.
            assert obj is not None
            return records.failed(obj, f"{exc}; failed so that Lambda retries it",
                                  self.clock() - start)

    def record_history(self) -> None:
        """Write the runs of this invocation to the run history (when it is kept)."""
        if self._history is not None:
            self._history.flush()

    def _delegate(self, obj: InputObject, reason: str, start: float) -> RecordResult:
        if self._delegator is None:  # imported on first use: lambda mode never pays for it
            from .delegate import Delegator

            self._delegator = Delegator(self.config, script=self.script,
                                        request_id=self.request_id, clients=self.clients,
                                        deadline=self._handoff_deadline,
                                        lambda_context=self._context)
        done = self._delegator.delegate(obj, reason)
        return RecordResult(bucket=obj.bucket, key=obj.key, status="delegated",
                            duration=self.clock() - start, job_id=done.job_id, reason=reason,
                            extra={"handoff": done.handoff_uri, "duplicate": done.duplicate})


def _memory(context: Any, config: FunctionConfig) -> int:
    """The function's memory size in MB: the context's, else the configuration's."""
    memory = getattr(context, "memory_limit_in_mb", None)
    try:
        return int(memory) if memory is not None else config.memory
    except (TypeError, ValueError):
        return config.memory


def _remaining_ms(context: Any) -> Optional[int]:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return int(getter()) if callable(getter) else None


def _log_script_line(line: str) -> None:
    script_log.info(line)


class _Metrics:
    """CloudWatch metrics (EMF) for one invocation: counts by outcome and duration."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        from aws_lambda_powertools import Metrics

        self._metrics = Metrics(namespace=environ.get("POWERTOOLS_METRICS_NAMESPACE",
                                                      "Supervisor"), service=SERVICE)
        self.count("Invocations")

    def count(self, name: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def record(self, result: RecordResult) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.count({"completed": "Completed", "delegated": "Delegated",
                    "failed": "Failures", "skipped": "Skipped"}[result.status])
        self._metrics.add_metric(name="Duration", unit=MetricUnit.Seconds,
                                 value=round(result.duration, 3))

    def flush(self) -> None:
        self._metrics.flush_metrics()
