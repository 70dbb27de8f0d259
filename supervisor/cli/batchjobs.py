"""AWS Batch jobs for ``status`` and ``logs``: the states, and a queue's jobs in one state."""
from __future__ import annotations

from typing import Any

__all__ = ["JOB_STATES", "FINAL_JOB_STATES", "list_jobs"]

JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED",
              "FAILED")
FINAL_JOB_STATES = ("SUCCEEDED", "FAILED")


def list_jobs(batch: Any, queue: str, state: str, most: int) -> list[dict[str, Any]]:
    """The summaries of at most ``most`` jobs of ``queue`` in ``state`` (``ListJobs``)."""
    pages = batch.get_paginator("list_jobs").paginate(
        jobQueue=queue, jobStatus=state, PaginationConfig={"MaxItems": most})
    return [summary for page in pages for summary in page.get("jobSummaryList", [])]
