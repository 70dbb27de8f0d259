"""The hand-off document, the SubmitJob request (pure) and SubmitJob retries."""
from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from supervisor.config import parse
from supervisor.errors import DelegationError
from supervisor.handoff import (
    HANDOFF_ENV,
    MAX_REQUEST_BYTES,
    REQUEST_ID_ENV,
    Handoff,
    build_submit_request,
    check_limits,
    job_name,
    parse_s3_uri,
    staging_key,
    submit_job,
)
from supervisor.plan import delegate_reason
from supervisor.watchdog import Deadline

RECORD = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
          "s3": {"bucket": {"name": "in"}, "object": {"key": "a+b.txt", "sequencer": "0A1"}}}


def config(**batch: Any) -> Any:
    return parse({"name": "plants", "execution_mode": "batch", "container": {"image": "img"},
                  "input": [{"path": "in/input"}], "output": [{"path": "in/output"}],
                  "batch": dict({"compute_resources": {"subnets": ["s-1"],
                                                       "security_group_ids": ["sg-1"]}},
                                **batch)}, check_files=False)


def handoff(**overrides: Any) -> Handoff:
    fields: dict[str, Any] = dict(record=RECORD, function_config={"name": "plants", "x": [1]},
                                  script="echo ñ\n", request_id="req-1", function_name="plants",
                                  created_at="2026-11-22T10:00:00.000Z", attempt=2,
                                  reason="execution_mode is batch")
    fields.update(overrides)
    return Handoff(**fields)


def test_handoff_round_trips_exactly_through_json() -> None:
    doc = handoff()
    assert Handoff.from_json(doc.to_json()) == doc
    assert Handoff.from_json(doc.to_json().encode()) == doc
    assert json.loads(doc.to_json())["version"] == 1


def test_handoff_keeps_unknown_fields_from_a_newer_writer() -> None:
    text = json.dumps(dict(json.loads(handoff().to_json()), trace="abc"))
    doc = Handoff.from_json(text)
    assert doc.extra == {"trace": "abc"}
    assert json.loads(doc.to_json())["trace"] == "abc"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=2), "version 2 is not supported"),
    (lambda d: d.pop("script"), "script (expected str)"),
    (lambda d: d.update(attempt=True), "attempt (expected int)"),
    (lambda d: d.update(record=[]), "record (expected dict)"),
])
def test_invalid_handoff_documents_are_clear_errors(mutate: Any, message: str) -> None:
    doc = json.loads(handoff().to_json())
    mutate(doc)
    with pytest.raises(DelegationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Handoff.from_json(json.dumps(doc))


def test_handoff_that_is_not_json_is_a_clear_error() -> None:
    with pytest.raises(DelegationError, match="not JSON"):
        Handoff.from_json("{nope")


def test_staging_key_is_under_the_prefix_and_differs_per_object() -> None:
    key = staging_key("supervisor-handoff/", handoff(), "in/a b.txt#seq=0A1")
    assert key.startswith("supervisor-handoff/plants/req-1/") and key.endswith(".json")
    assert staging_key("supervisor-handoff/", handoff(), "in/c.txt#seq=0A2") != key
    assert staging_key("", handoff(), "in/a b.txt#seq=0A1").startswith("plants/req-1/")


@pytest.mark.parametrize("uri", ["s3://b", "http://b/k", "s3:///k", "s3://b/", ""])
def test_bad_handoff_uris_are_rejected(uri: str) -> None:
    with pytest.raises(DelegationError, match="not an s3://bucket/key URI"):
        parse_s3_uri(uri)


def test_parse_s3_uri_splits_bucket_and_key() -> None:
    assert parse_s3_uri("s3://b/a/b c.json") == ("b", "a/b c.json")


@pytest.mark.parametrize("function, key, expected", [
    ("plants", "input/daisy.jpg", "plants-daisy_jpg"),
    ("plants", "input/my photo ñ+1.jpg", "plants-my_photo_1_jpg"),
    ("plants", "input/dir/", "plants-dir"),
    ("_x", "..", "x"),
])
def test_job_name_is_reduced_to_batch_characters(function: str, key: str,
                                                 expected: str) -> None:
    assert job_name(function, key) == expected


def test_job_name_is_at_most_128_characters_and_starts_alphanumeric() -> None:
    name = job_name("f" * 100, "k" * 200 + ".txt")
    assert len(name) == 128 and name[0].isalnum()
    assert job_name("-", "-")[0].isalnum()


def test_submit_request_carries_only_the_pointer_and_the_request_id() -> None:
    request = build_submit_request(config(), handoff_uri="s3://in/h.json", request_id="req-1",
                                   bucket="in", key="input/a.txt", token="t0k3n")
    assert request["jobQueue"] == "plants" and request["jobDefinition"] == "plants"
    assert request["containerOverrides"] == {"environment": [
        {"name": HANDOFF_ENV, "value": "s3://in/h.json"},
        {"name": REQUEST_ID_ENV, "value": "req-1"}]}
    assert request["tags"] == {"supervisor:function": "plants", "supervisor:request-id": "req-1",
                               "supervisor:object": "in/input/a.txt",
                               "supervisor:handoff": "t0k3n"}
    assert request["jobName"] == "plants-a_txt-t0k3n"  # unique per hand-off
    assert "retryStrategy" not in request and "timeout" not in request
    assert "nodeOverrides" not in request


def test_submit_request_uses_configured_queue_definition_retries_and_timeout() -> None:
    request = build_submit_request(
        config(job_queue="q1", job_definition="d1", retry_attempts=3, timeout=600),
        handoff_uri="s3://in/h.json", request_id="r", bucket="in", key="k",
        token="t0k3n")
    assert (request["jobQueue"], request["jobDefinition"]) == ("q1", "d1")
    assert request["retryStrategy"] == {"attempts": 3}
    assert request["timeout"] == {"attemptDurationSeconds": 600}


def test_multi_node_request_overrides_every_node() -> None:
    request = build_submit_request(
        config(multi_node_parallel={"enabled": True, "number_nodes": 3, "main_node_index": 0}),
        handoff_uri="s3://in/h.json", request_id="r", bucket="in", key="k",
        token="t0k3n")
    assert "containerOverrides" not in request
    (node,) = request["nodeOverrides"]["nodePropertyOverrides"]
    assert node["targetNodes"] == "0:"
    assert node["containerOverrides"]["environment"][0]["name"] == HANDOFF_ENV


def test_tag_values_are_sanitised_and_capped() -> None:
    request = build_submit_request(config(), handoff_uri="s3://in/h", request_id="r",
                                   bucket="in", key="x" * 300 + "#?", token="t0k3n")
    value = request["tags"]["supervisor:object"]
    assert len(value) == 256 and "#" not in value


def test_limits_are_checked_before_calling_aws() -> None:
    base = {"jobName": "ok", "jobQueue": "q", "jobDefinition": "d"}
    with pytest.raises(DelegationError, match="overrides are .* characters; Batch allows 8192"):
        check_limits(dict(base, containerOverrides={"environment": [
            {"name": "X", "value": "v" * 9000}]}))
    with pytest.raises(DelegationError, match=f"Batch allows {MAX_REQUEST_BYTES}"):
        check_limits(dict(base, tags={f"k{i}": "v" * 200 for i in range(200)}))
    with pytest.raises(DelegationError, match="job name"):
        check_limits(dict(base, jobName="bad name"))
    check_limits(base)


class FakeBatch:
    """Answers SubmitJob from a script of outcomes: an exception, a job id, or ("lost", id):
    the job is made but the answer never arrives. ListJobs finds what was made."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.jobs: dict[str, str] = {}  # name -> id

    def submit_job(self, **request: Any) -> dict[str, str]:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, tuple):
            self.jobs[request.get("jobName", "")] = outcome[1]
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url="http://batch")
        if isinstance(outcome, Exception):
            raise outcome
        self.jobs[request.get("jobName", "")] = outcome
        return {"jobId": outcome}

    def list_jobs(self, *, jobQueue: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
        (name,) = filters[0]["values"]
        found = [{"jobName": name, "jobId": self.jobs[name]}] if name in self.jobs else []
        return {"jobSummaryList": found}


def error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "SubmitJob")


def test_submit_retries_throttling_and_5xx_then_succeeds() -> None:
    batch = FakeBatch(error("TooManyRequestsException", 429), error("ServerException", 500),
                      "job-1")
    pauses: list[float] = []
    job = submit_job(batch, {"jobQueue": "q", "jobName": "n"}, deadline=Deadline.none(),
                     sleep=pauses.append)
    assert job == "job-1" and batch.calls == 3
    assert len(pauses) == 2 and 0 < pauses[0] < pauses[1] * 2


def test_a_lost_answer_is_looked_up_not_sent_again() -> None:
    batch = FakeBatch(("lost", "job-7"), "job-8")
    job = submit_job(batch, {"jobQueue": "q", "jobName": "fn-a-t0k3n"},
                     deadline=Deadline.none(), sleep=lambda _: None)
    assert job == "job-7" and batch.calls == 1  # found by its unique name: no second job


def test_a_5xx_is_looked_up_then_sent_again_when_it_did_not_take_effect() -> None:
    batch = FakeBatch(error("ServerException", 500), "job-9")
    job = submit_job(batch, {"jobQueue": "q", "jobName": "fn-a-t0k3n"},
                     deadline=Deadline.none(), sleep=lambda _: None)
    assert job == "job-9" and batch.calls == 2


def test_submit_does_not_retry_a_client_error() -> None:
    batch = FakeBatch(error("ClientException", 400), "never")
    with pytest.raises(DelegationError, match="ClientException"):
        submit_job(batch, {"jobQueue": "q"}, deadline=Deadline.none(), sleep=lambda _: None)
    assert batch.calls == 1


def test_submit_gives_up_when_the_deadline_leaves_no_room() -> None:
    now = [100.0]
    batch = FakeBatch(*[error("ThrottlingException", 400)] * 10)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    deadline = Deadline.after(0.5, clock=lambda: now[0])
    with pytest.raises(DelegationError, match="time budget ran out"):
        submit_job(batch, {"jobQueue": "q"}, deadline=deadline, clock=lambda: now[0],
                   sleep=sleep)
    assert 1 < batch.calls < 10 and now[0] <= 100.5


def test_submit_stops_after_max_attempts_without_a_deadline() -> None:
    batch = FakeBatch(*[error("ThrottlingException", 400)] * 10)
    with pytest.raises(DelegationError, match="failed 3 time"):
        submit_job(batch, {"jobQueue": "q"}, deadline=Deadline.none(), sleep=lambda _: None,
                   max_attempts=3)
    assert batch.calls == 3


@pytest.mark.parametrize("mode, size, free, budget, expected", [
    ("lambda", 10**12, 1, 0.0, None),
    ("batch", 1, 10, 100.0, "execution_mode is batch"),
    ("lambda-batch", 1, 10, 100.0, None),
    ("lambda-batch", 11, 10, 100.0, "larger than the free space"),
    ("lambda-batch", 1, 10, 4.0, "below the threshold"),
    ("lambda-batch", 1, 10, None, None),
])
def test_delegate_reason(mode: str, size: int, free: int, budget: Any,
                         expected: Any) -> None:
    reason = delegate_reason(mode, object_size=size, free_bytes=free, budget=budget,
                             threshold=5.0)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
