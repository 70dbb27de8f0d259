"""Hand one record to AWS Batch: stage the document, submit the job, once per object."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional, cast

from .aws import ClientFactory
from .config import FunctionConfig, to_mapping
from .errors import DelegationError, HandoffInProgress
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

__all__ = ["Delegated", "Delegator", "HandoffInProgress"]

log = logging.getLogger("supervisor.delegate")

DEFAULT_IDEMPOTENCY_SECONDS = 24 * 60 * 60


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

    def delegate(self, obj: InputObject, reason: str) -> Delegated:
        """Hand ``obj`` to Batch; returns the job id (the first one, for a duplicate)."""
        if not self._config.idempotency_table:
            return self._submit(obj, reason)
        submitted: list[Delegated] = []

        def once(item: dict[str, Any]) -> dict[str, Any]:
            done = self._submit(obj, reason)
            submitted.append(done)
            return {"job_id": done.job_id, "handoff_uri": done.handoff_uri}

        stored = self._guard()(once=once, item={"identity": obj.identity})
        if submitted:
            return submitted[0]
        log.info("duplicate event: the object was already handed off",
                 extra={"job_id": stored["job_id"], "identity": obj.identity})
        return Delegated(job_id=str(stored["job_id"]),
                         handoff_uri=str(stored["handoff_uri"]), duplicate=True)

    def _guard(self) -> Callable[..., dict[str, Any]]:
        if self._idempotent is None:
            self._idempotent = _idempotent_call(self._config, self._clients, self._context)
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
        write_handoff(self._clients.s3(), handoff, bucket, key)
        try:
            job_id = submit_job(self._clients.client("batch"), request, deadline=self._deadline)
        except DelegationError:
            # A hand-off that failed for good leaves no document behind (it holds the
            # configuration): best effort, the error that matters is the submit's.
            try:
                delete_handoff(self._clients.s3(), uri)
            except DelegationError:
                log.warning("could not remove the hand-off document", extra={"handoff": uri})
            raise
        log.info("handed off to AWS Batch", extra={
            "job_id": job_id, "job_queue": request["jobQueue"], "handoff": uri,
            "reason": reason,
            "logs_command": f"supervisor logs -n {config.name} --job-id {job_id}"})
        return Delegated(job_id=job_id, handoff_uri=uri)


def _idempotent_call(config: FunctionConfig, clients: ClientFactory,
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
                                     boto3_client=clients.client("dynamodb"))
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
