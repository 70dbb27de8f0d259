"""Hand one record to AWS Batch: stage the document, submit the job, once per object.

Every call of the hand-off (S3, DynamoDB, Batch) goes through a :class:`TimedClient`: its
timeouts come from the time left before the hand-off's deadline, so a slow or silent
service makes the hand-off fail in time instead of outlasting the invocation.
"""
from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Optional, cast

from .aws import ClientFactory
from .config import FunctionConfig, to_mapping
from .errors import DelegationError, HandoffInProgress, error_code
from .events import InputObject
from .handoff import (
    Handoff,
    build_submit_request,
    delete_handoff,
    now_iso,
    staging_key,
    submit_job,
    write_handoff,
)
from .watchdog import Deadline

__all__ = ["Delegated", "Delegator", "HandoffInProgress", "TimedClient"]

log = logging.getLogger("supervisor.delegate")

DEFAULT_IDEMPOTENCY_SECONDS = 24 * 60 * 60

# A call gets half the time left, so one that hangs leaves time for what follows it (the
# look-up of a SubmitJob whose answer was lost, the clean-up); at least a quarter second,
# paid for by the margin the hand-off's deadline keeps before Lambda's own.
_CALL_SHARE = 0.5
_MIN_CALL_S = 0.25
_CALL_ATTEMPTS = 5
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "SlowDown",
                        "RequestLimitExceeded", "TooManyRequestsException",
                        "ProvisionedThroughputExceededException", "RequestThrottled"})
# The hand-off's S3 calls: the same document to the same key, safe to send again.
_S3_IDEMPOTENT = frozenset({"put_object", "get_object", "delete_object"})


@dataclass(frozen=True)
class TimedClient:
    """The client of ``service`` for the hand-off: each call's timeouts come from the time
    left before ``deadline`` (half of it, at least 0.25 s; see ``ClientFactory.bounded``)
    and it is sent once, then again while time is left only when that is safe: after a
    throttle (refused: it did nothing) when ``resend_throttled``, and after any transient
    error (a 5xx, a broken or timed-out connection) for the operations in ``idempotent``.

    Without a deadline it is the process's ordinary client. It exposes operations and
    ``exceptions`` only: no ``meta``, so nothing can add event handlers to a client the
    process keeps (powertools' idempotency adds one each time it is set up: one more per
    warm hand-off, run on every request).
    """

    clients: ClientFactory
    service: str
    deadline: Deadline
    idempotent: AbstractSet[str] = frozenset()
    resend_throttled: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "meta":
            raise AttributeError(name)
        if name == "exceptions":
            return self._client().exceptions
        return functools.partial(self._call, name)

    def _client(self) -> Any:
        remaining = self.deadline.remaining(self.clock)
        if remaining is None:
            return self.clients.client(self.service)
        return self.clients.bounded(self.service, max(_MIN_CALL_S, remaining * _CALL_SHARE))

    def _call(self, name: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.deadline.at is None:
            return getattr(self._client(), name)(**kwargs)
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                return getattr(self._client(), name)(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                pause = delay * (1 + random.random())
                left = self.deadline.remaining(self.clock) or 0.0
                if (attempt >= _CALL_ATTEMPTS or not self._may_resend(name, exc)
                        or left < pause + _MIN_CALL_S):
                    raise
            self.sleep(pause)
            delay *= 2

    def _may_resend(self, name: str, exc: Exception) -> bool:
        from botocore.exceptions import ClientError, HTTPClientError

        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code in _THROTTLED:
                return self.resend_throttled
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            return status >= 500 and name in self.idempotent
        # ConnectionError and the timeouts are HTTPClientErrors: the call's fate is unknown.
        return isinstance(exc, HTTPClientError) and name in self.idempotent


@dataclass(frozen=True)
class Delegated:
    """A record handed to Batch: the job id, and whether this call submitted it."""

    job_id: str
    handoff_uri: str
    duplicate: bool = False  # True when an earlier invocation already submitted it


class Delegator:
    """Hands records of one invocation to Batch, with idempotency when configured.

    With ``config.idempotency_table`` set, each record goes through powertools'
    ``idempotent_function`` keyed on the object's identity (bucket, key and
    version id, or sequencer): a duplicate S3 event or an async retry gets the
    first job id back and submits nothing.
    """

    def __init__(self, config: FunctionConfig, *, script: str, request_id: str,
                 clients: ClientFactory, deadline: Deadline,
                 lambda_context: Optional[Any] = None) -> None:
        self._config = config
        self._script = script
        self._request_id = request_id
        self._clients = clients
        self._deadline = deadline
        self._context = lambda_context
        self._idempotent: Optional[Callable[..., dict[str, Any]]] = None
        self._s3 = TimedClient(clients, "s3", deadline, idempotent=_S3_IDEMPOTENT)
        # SubmitJob is retried by submit_job itself, which looks a job up before resending.
        self._batch = TimedClient(clients, "batch", deadline, resend_throttled=False)

    def delegate(self, obj: InputObject, reason: str) -> Delegated:
        """Hand ``obj`` to Batch; returns the job id (the first one, for a duplicate)."""
        if not self._config.idempotency_table:
            return self._submit(obj, reason)
        submitted: list[Delegated] = []

        def once(item: dict[str, Any]) -> dict[str, Any]:
            done = self._submit(obj, reason)
            submitted.append(done)
            return {"job_id": done.job_id, "handoff_uri": done.handoff_uri}

        try:
            stored = self._guard()(once=once, item={"identity": obj.identity})
        except HandoffInProgress:
            raise
        except DelegationError as exc:
            if not submitted:
                raise
            # The job was submitted but its idempotency record could not be marked done:
            # the job stands (failing the record would have Lambda retry it, and the
            # retry, its record in progress, submit a second job).
            log.warning("handed off, but the idempotency record was not updated",
                        extra={"job_id": submitted[0].job_id, "error": str(exc)})
            return submitted[0]
        if submitted:
            return submitted[0]
        log.info("duplicate event: the object was already handed off",
                 extra={"job_id": stored["job_id"], "identity": obj.identity})
        return Delegated(job_id=str(stored["job_id"]),
                         handoff_uri=str(stored["handoff_uri"]), duplicate=True)

    def _guard(self) -> Callable[..., dict[str, Any]]:
        if self._idempotent is None:
            self._idempotent = _idempotent_call(
                self._config, TimedClient(self._clients, "dynamodb", self._deadline),
                self._context)
        return self._idempotent

    def _submit(self, obj: InputObject, reason: str) -> Delegated:
        config = self._config
        bucket = config.handoff_bucket or (config.input[0].bucket if config.input else obj.bucket)
        handoff = Handoff(record=dict(obj.record), function_config=to_mapping(config),
                          script=self._script, request_id=self._request_id,
                          function_name=config.name, created_at=now_iso(), reason=reason)
        key = staging_key(config.handoff_prefix, handoff, obj.identity)
        uri = f"s3://{bucket}/{key}"
        request = build_submit_request(config, handoff_uri=uri, request_id=self._request_id,
                                       bucket=obj.bucket, key=obj.key,
                                       token=uuid.uuid4().hex[:12])
        write_handoff(self._s3, handoff, bucket, key)
        try:
            job_id = submit_job(self._batch, request, deadline=self._deadline)
        except DelegationError:
            # A hand-off that failed for good leaves no document behind (it holds the
            # configuration): best effort, the error that matters is the submit's.
            try:
                delete_handoff(self._s3, uri)
            except DelegationError:
                log.warning("could not remove the hand-off document", extra={"handoff": uri})
            raise
        log.info("handed off to AWS Batch", extra={
            "job_id": job_id, "job_queue": request["jobQueue"], "handoff": uri,
            "reason": reason,
            "logs_command": f"supervisor logs -n {config.name} --job-id {job_id}"})
        return Delegated(job_id=job_id, handoff_uri=uri)


def _idempotent_call(config: FunctionConfig, dynamodb: Any,
                     context: Optional[Any]) -> Callable[..., dict[str, Any]]:
    """Wrap a call in powertools' idempotency over the configured DynamoDB table."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
    )

    assert config.idempotency_table
    store = DynamoDBPersistenceLayer(table_name=config.idempotency_table,
                                     boto3_client=dynamodb)
    settings = IdempotencyConfig(event_key_jmespath="identity",
                                 raise_on_no_idempotency_key=True,
                                 expires_after_seconds=config.idempotency_expires_after)
    if context is not None:
        settings.register_lambda_context(context)

    def run_once(*, once: Callable[[dict[str, Any]], dict[str, Any]],
                 item: dict[str, Any]) -> dict[str, Any]:
        return once(item)

    guarded = cast(Callable[..., dict[str, Any]], idempotent_function(
        run_once, data_keyword_argument="item", persistence_store=store, config=settings,
        key_prefix=f"supervisor:{config.name}"))

    def call(*, once: Callable[[dict[str, Any]], dict[str, Any]],
             item: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(guarded(once=once, item=item))
        except IdempotencyAlreadyInProgressError as exc:
            raise HandoffInProgress(f"another invocation is handing off {item['identity']} "
                                  "right now; it is not submitted twice") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise DelegationError(f"idempotency table {config.idempotency_table!r} "
                                  f"failed: {exc}") from exc

    return call
