"""Faults injected between the supervisor and AWS (a proxy in front of the moto server), and
what the user is promised under each: nothing lost, nothing duplicated, nothing partial, one
line. The handler runs in this process (and ``supervisor-batch`` as a process) with
``AWS_ENDPOINT_URL`` pointing at the proxy; assertions read moto directly.

With ``FAULT_FIGURES=<file.json>`` set, each test adds what it measured (requests seen,
retries, seconds to answer against the deadline) to that file (docs/RELIABILITY.md).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from conftest import ROOT
from support.faultproxy import Fault, FaultProxy, Seen
from test_batch_entry_s3 import batch_env, keys, run_batch, stage_handoff
from test_delegation import QUICK_SCRIPT, Function, run_batch_entry

from supervisor.s3event import event_of

pytestmark = pytest.mark.integration

FIGURES: dict[str, Any] = {}

TWO_OUTPUTS = """\
set -eu
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/a.txt"
sha256sum "$INPUT_FILE_PATH" | cut -d' ' -f1 > "$TMP_OUTPUT_DIR/b.txt"
"""
ONE_OUTPUT = """\
set -eu
sha256sum "$INPUT_FILE_PATH" | cut -d' ' -f1 > "$TMP_OUTPUT_DIR/b.txt"
"""
DATA = b"a line of the input object\n" * 2000  # 54 kB: one GET, one part per output


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    target = os.environ.get("FAULT_FIGURES")
    if target and FIGURES:
        path = Path(target)
        known = json.loads(path.read_text()) if path.exists() else {}
        known.update(FIGURES)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")


def figure(request: pytest.FixtureRequest, **values: Any) -> None:
    """Keep what this test measured (see the module docstring)."""
    FIGURES[request.node.name] = values


@pytest.fixture
def proxy(moto_endpoint: str, aws_env: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy; every client made in this process from now on goes through it."""
    with FaultProxy(moto_endpoint) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server


@pytest.fixture
def fn(s3: Any, bucket: str, batch_network: dict[str, str], tmp_path: Path,
       aws_env: dict[str, str]) -> Function:
    return Function(s3, bucket, batch_network, tmp_path, aws_env)


def proxied(env: dict[str, str], proxy: FaultProxy) -> dict[str, str]:
    """``env`` for a process that runs this tree's code and reaches AWS through the proxy."""
    return dict(env, AWS_ENDPOINT_URL=proxy.url, PYTHONPATH=str(ROOT))


def one_line(text: Any) -> bool:
    """A non-empty string with no line break or other control character."""
    return isinstance(text, str) and bool(text) and not any(
        ord(c) < 32 or ord(c) == 127 for c in text)


def open_uploads(fn: Function) -> list[str]:
    listing = fn.s3.list_multipart_uploads(Bucket=fn.bucket)
    return sorted(u["Key"] for u in listing.get("Uploads", []))


def body_of(fn: Function, key: str) -> bytes:
    return bytes(fn.s3.get_object(Bucket=fn.bucket, Key=key)["Body"].read())


def answered(proxy: FaultProxy, op: str) -> list[Seen]:
    return proxy.seen(op, where=lambda s: s.status is not None and s.status < 300)


# --------------------------------------------------------------------------- the data path

TRANSIENT = [
    ("GetObject", Fault.server_error(), ONE_OUTPUT),
    ("PutObject", Fault.slow_down(), ONE_OUTPUT),
    ("PutObject", Fault.drop(), ONE_OUTPUT),
    ("CreateMultipartUpload", Fault.server_error(), TWO_OUTPUTS),
    ("CreateMultipartUpload", Fault.drop(), TWO_OUTPUTS),
    ("UploadPart", Fault.slow_down(), TWO_OUTPUTS),
    ("UploadPart", Fault.drop(), TWO_OUTPUTS),
    ("CompleteMultipartUpload", Fault.server_error(), TWO_OUTPUTS),
    ("CompleteMultipartUpload", Fault.drop(), TWO_OUTPUTS),
]


@pytest.mark.parametrize("op,fault,script", TRANSIENT,
                         ids=[f"{op}-{f.kind}{f.status or ''}" for op, f, _ in TRANSIENT])
def test_a_transient_fault_on_a_data_call_is_retried_and_the_record_completes(
        fn: Function, proxy: FaultProxy, op: str, fault: Fault, script: str,
        request: pytest.FixtureRequest) -> None:
    proxy.add(fault, op=op, nth={1})
    started = time.monotonic()
    response, body = fn.invoke(event_of(fn.put(body=DATA)), fn.config(mode="lambda",
                                                                      script=script))
    (record,) = body["records"]

    assert response["statusCode"] == 200 and record["status"] == "completed", record
    expected = ["output/a.txt", "output/b.txt"] if script == TWO_OUTPUTS else ["output/b.txt"]
    assert fn.outputs() == expected  # each exactly once
    assert sorted(u.split("/", 3)[3] for u in record["uploaded"]) == expected
    assert body_of(fn, "output/b.txt").decode().strip() == hashlib.sha256(DATA).hexdigest()
    if script == TWO_OUTPUTS:
        assert body_of(fn, "output/a.txt") == DATA
    calls = 2 if script == TWO_OUTPUTS and op != "GetObject" else 1
    assert proxy.count(op) == calls + 1  # the faulted one, sent again
    assert len(proxy.seen(op, where=lambda s: s.fault is not None)) == 1
    orphans = open_uploads(fn)
    # A CreateMultipartUpload whose answer was lost leaves its upload open (invisible; the
    # bucket's AbortIncompleteMultipartUpload rule removes it): that is all that is left.
    assert len(orphans) == (1 if (op, fault.kind) == ("CreateMultipartUpload", "drop") else 0)
    figure(request, requests=len(proxy.seen()), sent=proxy.count(op), orphan_uploads=len(orphans),
           seconds=round(time.monotonic() - started, 2))


def test_a_resent_commit_answered_no_such_upload_is_known_made_and_every_output_stays(
        fn: Function, proxy: FaultProxy) -> None:
    # The first CompleteMultipartUpload of b took effect and its answer was lost; the one
    # botocore sends again finds no upload (as S3 may answer it).
    b_txt = r"/output/b\.txt$"
    proxy.add(Fault.drop(), op="CompleteMultipartUpload", path=b_txt, nth={1})
    proxy.add(Fault.error(404, "NoSuchUpload"), op="CompleteMultipartUpload", path=b_txt,
              nth={2})
    _, body = fn.invoke(event_of(fn.put(body=DATA)),
                        fn.config(mode="lambda", script=TWO_OUTPUTS))
    (record,) = body["records"]

    assert record["status"] == "completed", record
    assert fn.outputs() == ["output/a.txt", "output/b.txt"]
    assert body_of(fn, "output/a.txt") == DATA


@pytest.mark.parametrize("size", [200_000, 9 * 1024 * 1024], ids=["one-get", "ranged"])
def test_a_body_cut_in_the_middle_of_the_download_is_retried_and_the_input_is_intact(
        fn: Function, proxy: FaultProxy, size: int, request: pytest.FixtureRequest) -> None:
    data = random.Random(size).randbytes(size)
    proxy.add(Fault.cut(0.5), op="GetObject", nth={1})
    _, body = fn.invoke(event_of(fn.put("input/data.bin", data)),
                        fn.config(mode="lambda", script=ONE_OUTPUT))
    (record,) = body["records"]

    assert record["status"] == "completed", record
    assert body_of(fn, "output/b.txt").decode().strip() == hashlib.sha256(data).hexdigest()
    gets = proxy.seen("GetObject")
    assert gets[0].fault == "cut" and gets[0].sent < gets[0].length
    if size < 8 * 1024 * 1024:  # the one GET is sent again, pinned to what it first read
        assert len(gets) == 2 and "if-match" in gets[1].headers
    figure(request, gets=len(gets), cut_after=gets[0].sent, of=gets[0].length)


PERMANENT = [("UploadPart", Fault.error(403, "AccessDenied")),
             ("UploadPart", Fault.server_error()),
             ("CompleteMultipartUpload", Fault.error(403, "AccessDenied"))]


@pytest.mark.parametrize("op,fault", PERMANENT,
                         ids=[f"{op}-{f.status}" for op, f in PERMANENT])
def test_an_output_that_fails_for_good_leaves_no_output_visible_and_says_so_in_one_line(
        fn: Function, proxy: FaultProxy, op: str, fault: Fault,
        request: pytest.FixtureRequest) -> None:
    proxy.add(fault, op=op, path=r"/output/b\.txt$")  # every time
    response, body = fn.invoke(event_of(fn.put(body=DATA)),
                               fn.config(mode="lambda", script=TWO_OUTPUTS))
    (record,) = body["records"]

    assert response["statusCode"] == 500 and record["status"] == "failed"
    assert one_line(record["error"]) and "output/b.txt" in record["error"]
    assert fn.outputs() == [] and open_uploads(fn) == []  # nothing partial, nothing left
    if op == "CompleteMultipartUpload":  # a.txt was committed, then removed
        assert "the 1 already committed were removed" in record["error"]
        assert proxy.seen("DeleteObject", where=lambda s: s.path.endswith("/output/a.txt"))
    else:
        assert record["error"].endswith("none was made visible")
    sent = len(proxy.seen(op, where=lambda s: s.path.endswith("/output/b.txt")))
    assert sent == (6 if fault.status >= 500 else 1)  # botocore's attempts for a 5xx
    figure(request, attempts=sent, error=record["error"])


# --------------------------------------------------------------------------- the hand-off

def test_a_dropped_submit_job_answer_makes_exactly_one_job_which_runs(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str], tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    proxy.add(Fault.drop(), op="SubmitJob", nth={1})
    _, body = fn.invoke(event_of(fn.put(body=b"from s3")),
                        fn.config(mode="batch", script=QUICK_SCRIPT), request_id="req-drop")
    (record,) = body["records"]

    assert record["status"] == "delegated", record
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]  # one job, not two
    assert proxy.count("SubmitJob") == 1 and proxy.count("ListJobs") >= 1  # looked up
    done = run_batch_entry(proxied(dict(aws_env, **fn.job_environment(record["job_id"])),
                                   proxy), tmp_path)
    assert done.returncode == 0, done.stderr
    assert fn.outputs() == ["output/res/out.txt"]
    assert body_of(fn, "output/res/out.txt") == b"batch req-drop from s3\n"
    figure(request, submit_job=proxy.count("SubmitJob"), list_jobs=proxy.count("ListJobs"))


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.throttled()],
                         ids=["500", "throttled"])
def test_a_submit_job_refused_before_it_took_effect_is_sent_again_into_one_job(
        fn: Function, proxy: FaultProxy, fault: Fault, request: pytest.FixtureRequest) -> None:
    proxy.add(fault, op="SubmitJob", nth={1})
    _, body = fn.invoke(event_of(fn.put()), fn.config(mode="batch", script=QUICK_SCRIPT))
    (record,) = body["records"]

    assert record["status"] == "delegated", record
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]
    assert proxy.count("SubmitJob") == 2
    # A 5xx may have taken effect: the job is looked up before it is sent again; a throttle
    # did nothing.
    assert proxy.count("ListJobs") == (1 if fault.status >= 500 else 0)
    figure(request, submit_job=2, list_jobs=proxy.count("ListJobs"))


@pytest.mark.parametrize("fault", [Fault.slow_down(), Fault.drop()], ids=["503", "drop"])
def test_a_transient_fault_writing_the_hand_off_document_is_retried(
        fn: Function, proxy: FaultProxy, fault: Fault) -> None:
    proxy.add(fault, op="PutObject", path="/supervisor-handoff/", nth={1})
    _, body = fn.invoke(event_of(fn.put()), fn.config(mode="batch", script=QUICK_SCRIPT))
    (record,) = body["records"]

    assert record["status"] == "delegated", record
    assert len(fn.jobs()) == 1 and len(fn.outputs("supervisor-handoff/")) == 1
    assert proxy.count("PutObject") == 2


def idempotency_table(aws_env: dict[str, str]) -> str:
    name = f"idem-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                 region_name="us-east-1").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return name


HANGS = [("document", {"op": "PutObject", "path": "/supervisor-handoff/"}),
         ("idempotency", {"op": "PutItem"}),
         ("submit", {"op": "SubmitJob"})]


@pytest.mark.parametrize("what,match", HANGS, ids=[what for what, _ in HANGS])
def test_a_hand_off_call_that_never_answers_fails_the_record_before_the_deadline(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str], what: str,
        match: dict[str, str], request: pytest.FixtureRequest) -> None:
    extra = f"idempotency: {{table: {idempotency_table(aws_env)}}}\n"
    proxy.add(Fault.hang(), **match)
    started = time.monotonic()
    response, body = fn.invoke(event_of(fn.put()),
                               fn.config(mode="batch", script=QUICK_SCRIPT, extra=extra),
                               timeout=2.5)
    took = time.monotonic() - started
    (record,) = body["records"]

    assert fn.left_ms > 0, f"answered {took:.1f} s into a 2.5 s invocation"
    assert response["statusCode"] == 500 and record["status"] == "failed", record
    assert one_line(record["error"])
    assert fn.jobs() == [] and fn.outputs("supervisor-handoff/") == []
    hung = proxy.seen(match["op"])
    figure(request, seconds=round(took, 2), deadline=2.5, left_ms=fn.left_ms,
           calls=len(hung), error=record["error"])


def test_a_submit_job_answered_too_late_is_found_and_makes_one_job(
        fn: Function, proxy: FaultProxy, request: pytest.FixtureRequest) -> None:
    proxy.add(Fault.delay(60, took_effect=True), op="SubmitJob", nth={1})
    started = time.monotonic()
    _, body = fn.invoke(event_of(fn.put()), fn.config(mode="batch", script=QUICK_SCRIPT),
                        timeout=2.5)
    took = time.monotonic() - started
    (record,) = body["records"]

    assert fn.left_ms > 0, f"answered {took:.1f} s into a 2.5 s invocation"
    assert record["status"] == "delegated", record
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]
    figure(request, seconds=round(took, 2), deadline=2.5, left_ms=fn.left_ms,
           submit_job=proxy.count("SubmitJob"), list_jobs=proxy.count("ListJobs"))


def test_a_throttled_idempotency_write_is_sent_again_within_the_time_left(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str]) -> None:
    extra = f"idempotency: {{table: {idempotency_table(aws_env)}}}\n"
    proxy.add(Fault.throttled(), op="PutItem", nth={1})
    _, body = fn.invoke(event_of(fn.put()),
                        fn.config(mode="batch", script=QUICK_SCRIPT, extra=extra))
    (record,) = body["records"]

    assert record["status"] == "delegated", record
    assert len(fn.jobs()) == 1 and proxy.count("PutItem") == 2


def test_a_lost_idempotency_write_fails_the_record_so_that_its_retry_makes_the_one_job(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str],
        request: pytest.FixtureRequest) -> None:
    # The conditional PutItem took effect, its answer was lost. Sent again, it would find
    # its own record "in progress" and the record would be skipped with a 200: Lambda would
    # not retry it and no job would ever run.
    extra = f"idempotency: {{table: {idempotency_table(aws_env)}}}\n"
    config = fn.config(mode="batch", script=QUICK_SCRIPT, extra=extra)
    event = event_of(fn.put())
    proxy.add(Fault.drop(), op="PutItem", nth={1})
    started = time.monotonic()
    first, body = fn.invoke(event, config, timeout=1.5, request_id="req-1")
    (record,) = body["records"]
    assert first["statusCode"] == 500 and record["status"] == "failed", record
    assert one_line(record["error"]) and fn.jobs() == []

    time.sleep(max(0.0, started + 1.8 - time.monotonic()))  # the in-progress mark expires
    again, body = fn.invoke(event, config, request_id="req-1")  # Lambda's retry
    (record,) = body["records"]
    assert record["status"] == "delegated" and record["duplicate"] is False, record
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]
    figure(request, put_item=proxy.count("PutItem"))


def test_a_duplicate_that_arrives_while_the_hand_off_is_in_progress_fails_to_be_retried(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str]) -> None:
    # S3 delivers the object twice at once; the first invocation's SubmitJob is slow. The
    # second finds the hand-off in progress: a 200 "skipped" would lose the object if the
    # first died; a 500 has Lambda retry it, and the retry gets the one job.
    import threading

    extra = f"idempotency: {{table: {idempotency_table(aws_env)}}}\n"
    config = fn.config(mode="batch", script=QUICK_SCRIPT, extra=extra)
    event = event_of(fn.put())
    proxy.add(Fault.delay(1.5), op="SubmitJob", nth={1})
    answers: dict[str, dict[str, Any]] = {}
    first = threading.Thread(target=lambda: answers.update(
        first=fn.invoke(event, config, request_id="req-1")[1]))
    first.start()
    time.sleep(0.7)  # the first has marked the hand-off and is waiting for SubmitJob
    response, body = fn.invoke(event, config, request_id="req-2")
    first.join()
    (record,) = body["records"]
    assert response["statusCode"] == 500 and record["status"] == "failed", record
    assert "failed so that Lambda retries it" in record["error"] and one_line(record["error"])
    assert answers["first"]["records"][0]["status"] == "delegated"

    _, retried = fn.invoke(event, config, request_id="req-2")  # Lambda's retry
    (again,) = retried["records"]
    assert again["status"] == "delegated" and again["duplicate"] is True
    assert [j["jobId"] for j in fn.jobs()] == [again["job_id"]]


def test_a_failed_idempotency_update_keeps_the_submitted_job_and_a_duplicate_adds_none(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str]) -> None:
    extra = f"idempotency: {{table: {idempotency_table(aws_env)}}}\n"
    config = fn.config(mode="batch", script=QUICK_SCRIPT, extra=extra)
    event = event_of(fn.put())
    proxy.add(Fault.server_error(), op="UpdateItem")
    first, body = fn.invoke(event, config)
    (record,) = body["records"]
    # Failing the record would have Lambda retry it, and the retry submit a second job.
    assert first["statusCode"] == 200 and record["status"] == "delegated", record

    # A duplicate delivery meanwhile finds the record in progress: it is failed, to be
    # retried (never skipped: had the first invocation died, that would lose the object),
    # and submits nothing.
    response, body = fn.invoke(event, config)
    assert response["statusCode"] == 500 and body["records"][0]["status"] == "failed"
    assert [j["jobId"] for j in fn.jobs()] == [record["job_id"]]


# --------------------------------------------------------------------------- the deadline

@pytest.mark.parametrize("size", [4 * 1024 * 1024, 9 * 1024 * 1024], ids=["one-get", "ranged"])
def test_a_download_that_outlasts_the_budget_is_cancelled(
        fn: Function, proxy: FaultProxy, size: int, request: pytest.FixtureRequest) -> None:
    proxy.add(Fault.trickle(16 * 1024, 0.1), op="GetObject")  # 160 kB/s: 25 s or more
    before = set(threading.enumerate())
    _, body = fn.invoke(event_of(fn.put("input/big.bin", bytes(size))),
                        fn.config(mode="lambda", script=ONE_OUTPUT, threshold=1), timeout=2)
    answered_at = time.monotonic()
    (record,) = body["records"]
    assert record["status"] == "failed" and "stage-in" in record["error"], record
    assert fn.left_ms > 0

    # The transfer stops: each GET ends with the client gone, its body far from all sent.
    for get in proxy.seen("GetObject"):
        proxy.wait_for(lambda s, get=get: s is get and s.ended is not None, timeout=10)
        assert get.client_gone and get.sent < get.length
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)
        assert not thread.is_alive(), thread.name
    figure(request, stopped_after=round(time.monotonic() - answered_at, 2),
           sent=[g.sent for g in proxy.seen("GetObject")], of=size)


# (operation, script, mode, invocation timeout, threshold): a 1 s budget for stage-in, the
# script and stage-out; lambda-batch needs a budget of at least its threshold.
STAGE_OUT_HANGS = [("UploadPart", TWO_OUTPUTS, "lambda", 2, 1),
                   ("UploadPart", TWO_OUTPUTS, "lambda-batch", 4.5, 2),
                   ("PutObject", ONE_OUTPUT, "lambda", 2, 1),
                   ("CompleteMultipartUpload", TWO_OUTPUTS, "lambda", 2, 1)]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("op,script,mode,timeout,threshold", STAGE_OUT_HANGS,
                         ids=[f"{op}-{mode}" for op, _, mode, _, _ in STAGE_OUT_HANGS])
def test_an_upload_that_never_answers_is_given_up_before_the_deadline(
        fn: Function, proxy: FaultProxy, op: str, script: str, mode: str, timeout: float,
        threshold: int, request: pytest.FixtureRequest) -> None:
    proxy.add(Fault.hang(), op=op, path=r"/output/b\.txt$")
    started = time.monotonic()
    response, body = fn.invoke(event_of(fn.put(body=DATA)),
                               fn.config(mode=mode, script=script, threshold=threshold),
                               timeout=timeout)
    took = time.monotonic() - started
    (record,) = body["records"]

    assert fn.left_ms > 0, f"answered {took:.1f} s into a {timeout} s invocation"
    if mode == "lambda-batch":
        assert record["status"] == "delegated", record
        assert "stage-out exceeded the time budget" in record["reason"]
        assert len(fn.jobs()) == 1
    else:
        assert record["status"] == "failed" and one_line(record["error"]), record
        assert "stage-out" in record["error"] and "time budget" in record["error"]
    if op == "CompleteMultipartUpload":  # the commit's window: the answer names it
        assert fn.outputs() in ([], ["output/a.txt"])
        assert "1 of 2 were visible by then" in record["error"]
    else:
        assert fn.outputs() == []
    figure(request, seconds=round(took, 2), deadline=timeout, left_ms=fn.left_ms,
           visible=fn.outputs())


HANDLER = """\
import json, os, sys
from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.local.context import LocalContext
event = json.load(sys.stdin)
answer = handle(event, LocalContext(function_name="fn", timeout=60), environ=dict(os.environ),
                clients=ClientFactory())
print(json.dumps(answer))
"""
THREE_OUTPUTS = 'for n in a b c; do echo "$n" > "$TMP_OUTPUT_DIR/$n.txt"; done\n'


def test_a_handler_killed_mid_upload_leaves_no_output_visible(
        fn: Function, proxy: FaultProxy, aws_env: dict[str, str], tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    config = fn.config(mode="lambda", script=THREE_OUTPUTS)
    proxy.add(Fault.hang(), op="UploadPart", nth={3})
    env = proxied(dict(aws_env, PATH=os.environ["PATH"],
                       SUPERVISOR_WORK_DIR=str(tmp_path / "work"),
                       FUNCTION_CONFIG=base64.b64encode(config.encode()).decode()), proxy)
    log = tmp_path / "handler.log"
    with log.open("wb") as sink:
        handler = subprocess.Popen([sys.executable, "-c", HANDLER], env=env, cwd=tmp_path,
                                   stdin=subprocess.PIPE, stdout=sink, stderr=sink,
                                   start_new_session=True)
    try:
        assert handler.stdin is not None
        handler.stdin.write(json.dumps(event_of(fn.put())).encode())
        handler.stdin.close()
        try:
            proxy.wait_for(lambda s: s.op == "UploadPart" and s.fault == "hang", timeout=30)
        except TimeoutError:
            raise AssertionError(log.read_text()[-2000:]) from None
        end = time.monotonic() + 10
        while len(answered(proxy, "UploadPart")) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert len(answered(proxy, "UploadPart")) == 2  # two outputs are up, one is not
    finally:
        os.killpg(handler.pid, signal.SIGKILL)  # as Lambda does at its deadline
        handler.wait()

    assert fn.outputs() == []  # not one of the three is visible
    left = open_uploads(fn)
    assert left == ["output/a.txt", "output/b.txt", "output/c.txt"]  # open: the lifecycle rule
    figure(request, open_uploads=len(left), parts_up=2)


# --------------------------------------------------------------------------- supervisor-batch

def test_supervisor_batch_rides_out_transient_faults_and_uploads_once(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path,
        proxy: FaultProxy) -> None:
    uri = stage_handoff(s3, bucket)
    proxy.add(Fault.slow_down(), op="GetObject", path="/supervisor-handoff/", nth={1})
    proxy.add(Fault.cut(0.5), op="GetObject", path="/input/", nth={1})
    proxy.add(Fault.drop(), op="PutObject", path="/output/", nth={1})
    run = run_batch(proxied(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri), proxy),
                    tmp_path)

    assert run.code == 0, run.stderr_lines
    assert keys(s3, bucket, "output/") == ["output/out/result.txt"]
    assert keys(s3, bucket, "supervisor-handoff/") == []  # done: the document is removed
    assert [s.fault for s in proxy.seen("GetObject")][:2] == ["error", None]
    assert proxy.count("PutObject") == 2


def test_supervisor_batch_with_an_output_refused_exits_74_in_one_line_with_nothing_visible(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path,
        proxy: FaultProxy) -> None:
    uri = stage_handoff(s3, bucket)
    proxy.add(Fault.error(403, "AccessDenied"), op="PutObject", path="/output/")
    run = run_batch(proxied(batch_env(aws_env, tmp_path, SUPERVISOR_HANDOFF=uri), proxy),
                    tmp_path)

    assert run.code == 74
    last = run.stderr_lines[-1]
    assert last.startswith("supervisor-batch: ") and "access denied" in last, last
    assert keys(s3, bucket, "output/") == []
    assert keys(s3, bucket, "supervisor-handoff/") != []  # kept for Batch's retry


# --------------------------------------------------------------------------- a small disk

@pytest.fixture
def small_work_dir(fn: Function) -> Iterator[Path]:
    """The function's work dir on a 1 MiB tmpfs (skipped where mount is not permitted)."""
    work = fn.tmp_path / "work"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs",
                              str(work)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'not permitted'}")
    try:
        yield work
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


def test_an_input_larger_than_the_work_dir_fails_in_one_line_and_leaves_nothing(
        fn: Function, small_work_dir: Path) -> None:
    response, body = fn.invoke(event_of(fn.put("input/big.bin", bytes(2 * 1024 * 1024))),
                               fn.config(mode="lambda", script=ONE_OUTPUT))
    (record,) = body["records"]

    assert record["status"] == "failed" and one_line(record["error"]), record
    assert "no space left on device" in record["error"]
    assert list(small_work_dir.iterdir()) == [] and fn.outputs() == []


def test_lambda_batch_hands_off_an_input_larger_than_the_work_dir_at_once(
        fn: Function, small_work_dir: Path) -> None:
    _, body = fn.invoke(event_of(fn.put("input/big.bin", bytes(2 * 1024 * 1024))),
                        fn.config(mode="lambda-batch", script=ONE_OUTPUT))
    (record,) = body["records"]

    assert record["status"] == "delegated" and "free space" in record["reason"], record
    assert len(fn.jobs()) == 1 and list(small_work_dir.iterdir()) == []


def test_a_script_that_fills_the_work_dir_fails_and_uploads_nothing(
        fn: Function, small_work_dir: Path) -> None:
    script = ('set -e\necho partial > "$TMP_OUTPUT_DIR/a.txt"\n'
              'head -c 2000000 /dev/zero > "$TMP_OUTPUT_DIR/b.bin"\n')
    _, body = fn.invoke(event_of(fn.put()), fn.config(mode="lambda", script=script))
    (record,) = body["records"]

    assert record["status"] == "failed" and record["exit_code"] != 0, record
    assert "No space left on device" in record["output_tail"]
    assert fn.outputs() == [] and list(small_work_dir.iterdir()) == []
