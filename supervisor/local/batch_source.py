"""What the embedded endpoint knows about Batch jobs, read over its API.

Jobs are found on the job queues (DescribeJobQueues, then ListJobs for every
status: moto moves its jobs through its own states, which mean nothing here)
and described with DescribeJobs; the definition is the revision the job names
(DescribeJobDefinitions by ARN; a multi-node job's ``nodeProperties`` come
from DescribeJobs, moto leaves them out of the definition). The SubmitJob
request, when a :class:`~supervisor.local.batch_tap.SubmitJobTap` or the
caller has it, completes what moto dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Iterator, Mapping, Optional, Sequence

from ..errors import EndpointError
from .batch_resolve import JobSpec, known_job_ids, spec_from_describe

__all__ = ["BatchSource", "EndpointError", "Described", "JOB_STATUSES"]

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED",
                "FAILED")
_DESCRIBE_CHUNK = 100  # DescribeJobs takes at most 100 ids



@dataclass
class Described:
    """The outcome of describing some job ids."""

    specs: list[JobSpec] = field(default_factory=list)
    unrunnable: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # ids the endpoint does not know


class BatchSource:
    """Reads job queues, jobs and job definitions from a Batch client.

    ``queues`` limits discovery to those queue names (None: every queue).
    """

    def __init__(self, batch: Any, *, queues: Optional[Collection[str]] = None) -> None:
        self._batch = batch
        self._queues = None if queues is None else frozenset(queues)
        self._definitions: dict[str, dict[str, Any]] = {}  # revisions never change

    def queues(self) -> dict[str, dict[str, Any]]:
        """DescribeJobQueues, by queue name (every queue)."""
        return {str(q.get("jobQueueName", "")): q
                for q in self._pages("describe_job_queues", "jobQueues")}

    def listed_ids(self, queues: Collection[str]) -> list[str]:
        """Every job id on the watched ones of ``queues``, whatever moto's status.

        Array children (``id:N``) and nodes (``id#N``) are left out: the
        executor makes its own.
        """
        ids: dict[str, None] = {}
        for queue in sorted(queues):
            if self._queues is not None and queue not in self._queues:
                continue
            for status in JOB_STATUSES:
                for job in self._pages("list_jobs", "jobSummaryList", jobQueue=queue,
                                       jobStatus=status):
                    ids[str(job["jobId"])] = None
        return known_job_ids(ids)

    def describe(self, job_ids: Sequence[str], queues: Mapping[str, Mapping[str, Any]],
                 requests: Mapping[str, Mapping[str, Any]]) -> Described:
        """Specs of ``job_ids``; ``requests`` are SubmitJob requests by job id, when known."""
        result = Described()
        jobs: dict[str, dict[str, Any]] = {}
        for start in range(0, len(job_ids), _DESCRIBE_CHUNK):
            answer = self._call("describe_jobs", jobs=list(job_ids[start:start + _DESCRIBE_CHUNK]))
            for job in answer.get("jobs") or ():
                jobs[str(job["jobId"])] = job
        result.missing = [i for i in job_ids if i not in jobs]
        self._load_definitions({str(j.get("jobDefinition", "")) for j in jobs.values()})
        for job_id, job in jobs.items():
            queue_name = str(job.get("jobQueue", "")).rsplit("/", 1)[-1]
            queue = queues.get(queue_name)
            if queue is None:
                result.unrunnable[job_id] = (job, f"job queue {queue_name!r} not found")
                continue
            definition = self._definitions.get(str(job.get("jobDefinition", "")))
            if definition is None:
                result.unrunnable[job_id] = (
                    job, f"job definition {job.get('jobDefinition')!r} not found")
                continue
            result.specs.append(spec_from_describe(job, definition, queue,
                                                   requests.get(job_id)))
        return result

    def _load_definitions(self, arns: Collection[str]) -> None:
        wanted = sorted(a for a in arns if a and a not in self._definitions)
        for start in range(0, len(wanted), _DESCRIBE_CHUNK):
            for found in self._pages("describe_job_definitions", "jobDefinitions",
                                     jobDefinitions=wanted[start:start + _DESCRIBE_CHUNK]):
                self._definitions[str(found.get("jobDefinitionArn"))] = found

    def _pages(self, method: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: Optional[str] = None
        while True:
            answer = self._call(method, **kwargs, **({"nextToken": token} if token else {}))
            yield from answer.get(key) or ()
            token = answer.get("nextToken")
            if not token:
                return

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = getattr(self._batch, method)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise EndpointError(f"Batch {method} failed: {exc}") from exc
        return answer
