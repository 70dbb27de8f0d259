"""Fuzzed events and configurations through the real handler (fixed seeds, bounded counts):
whatever comes in, the answer keeps the response contract and every error is one line.

The event fuzz mutates S3 events (fields removed, replaced by other types, odd keys, SQS
and SNS envelopes), direct invocations and API Gateway requests; the config fuzz mutates a
working function configuration. Scripts and commands come from a fixed, harmless set.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import random
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from conftest import load_event, put
from test_faults import one_line

from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of

pytestmark = pytest.mark.integration

EVENTS = 200
CONFIGS = 100
STATUSES = {"completed", "delegated", "failed", "skipped"}
HEADERS = {"amz-lambda-request-id", "amz-log-group-name", "amz-log-stream-name"}
SCRIPT = 'echo fuzz > "$TMP_OUTPUT_DIR/out.txt"\n'


def check_answer(answer: Any) -> dict[str, Any]:
    """The response contract; returns the body."""
    assert isinstance(answer, dict)
    assert set(answer) == {"statusCode", "headers", "body", "isBase64Encoded"}, answer
    assert answer["statusCode"] in (200, 400, 500) and answer["isBase64Encoded"] is False
    assert set(answer["headers"]) == HEADERS
    assert all(isinstance(v, str) for v in answer["headers"].values())
    answer["body"].encode("utf-8")  # the answer can be sent as it is
    body = json.loads(answer["body"])
    assert isinstance(body["records"], list) and isinstance(body["request_id"], str)
    if "error" in body:
        assert one_line(body["error"]), body["error"]
    failed = "error" in body
    for record in body["records"]:
        assert record["status"] in STATUSES, record
        assert isinstance(record["bucket"], str) and isinstance(record["key"], str)
        assert record["exit_code"] is None or isinstance(record["exit_code"], int)
        assert isinstance(record["duration"], (int, float)) and record["duration"] >= 0
        assert isinstance(record["uploaded"], list)
        assert all(isinstance(u, str) and u.startswith("s3://") for u in record["uploaded"])
        assert record["job_id"] is None or isinstance(record["job_id"], str)
        assert isinstance(record["output_tail"], str)
        if record["status"] == "failed":
            failed = True
            assert one_line(record.get("error")), record
            assert "internal error" not in record["error"], record
        for name in ("reason",):
            if record.get(name) is not None:
                assert one_line(record[name]), record
    expected = 400 if answer["statusCode"] == 400 else (500 if failed else 200)
    assert answer["statusCode"] == expected, body
    return dict(body)


# --------------------------------------------------------------------------- generators

JUNK: list[Any] = [None, 0, -1, 2 ** 70, 1.5, True, "", "x" * 3000, [], {}, [1, "a"],
                   {"k": "v"}, "line\nbreak", "nul\x00", "lone\udc80", "\x1b[31mred",
                   "%ZZ%", "a+b%20c", "../../etc/passwd", "ünï/cødé", "/", " "]
SCRIPTS = [base64.b64encode(b"echo from-event\n").decode(), base64.b64encode(b"exit 3\n").decode(),
           "not base64!", "", 5, None, base64.b64encode(b"\xff\xfe").decode()]
CMD_ARGS: list[Any] = [["echo", "hi"], ["true"], ["/nonexistent/cmd"], [], "echo hi",
                       ["echo", 5], [None], ["echo", "x" * 2000], {"a": 1}]


def pick(rng: random.Random, values: list[Any]) -> Any:
    return copy.deepcopy(rng.choice(values))


def mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with a few fields removed, replaced by junk, or added."""
    if isinstance(value, dict) and value and depth < 6:
        value = dict(value)
        for _ in range(rng.randint(1, 2)):
            key = rng.choice(sorted(value))
            roll = rng.random()
            if roll < 0.2:
                value.pop(key)
            elif roll < 0.5:
                value[key] = pick(rng, JUNK)
            else:
                value[key] = mutate(rng, value[key], depth + 1)
            if not value:
                break
        if rng.random() < 0.1:
            value[rng.choice(["extra", "Records", "script", "cmd_args", ""])] = pick(rng, JUNK)
        return value
    if isinstance(value, list) and value and depth < 6:
        value = list(value)
        index = rng.randrange(len(value))
        value[index] = mutate(rng, value[index], depth + 1) if rng.random() < 0.7 \
            else pick(rng, JUNK)
        if rng.random() < 0.2:
            value.append(copy.deepcopy(value[0]))
        return value
    return pick(rng, JUNK) if rng.random() < 0.8 else value


KEYS = ["input/missing.txt", "input/a+b.txt", "input/%E2%9C%93.txt", "input/", "input/../x",
        "input/%00", "input/" + "k" * 1100, "other/data.txt", ""]
BUCKETS = ["no-such-bucket-fuzz", "UPPER_case", "ab", "a" * 70]


def plausible(rng: random.Random, event: dict[str, Any], bucket: str) -> dict[str, Any]:
    """``event``'s one record with well-typed but odd values: another key or bucket, a
    size that lies, a version that does not exist, another event name."""
    record = copy.deepcopy(event["Records"][0])
    obj = record["s3"]["object"]
    for _ in range(rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.4:
            obj["key"] = rng.choice(KEYS)
        elif roll < 0.55:
            record["s3"]["bucket"]["name"] = rng.choice(BUCKETS + [bucket])
        elif roll < 0.7:
            obj["size"] = rng.choice([0, 1, 10 ** 12, 9 * 1024 * 1024])
        elif roll < 0.85:
            obj["versionId"] = rng.choice(["null", "v1", "3HL4kqtJlcpXroDTDmJ"])
        else:
            record["eventName"] = rng.choice(["ObjectRemoved:Delete", "ObjectCreated:Copy",
                                              "s3:TestEvent", "ObjectCreated:"])
    return {"Records": [record] * rng.randint(1, 2)}


def envelope(rng: random.Random, event: dict[str, Any]) -> Any:
    """``event`` as it is, or inside an SQS or SNS envelope (maybe broken)."""
    roll = rng.random()
    if roll < 0.6:
        return event
    text = json.dumps(event)
    if roll < 0.8:
        wrapped: Any = {"Records": [{"eventSource": "aws:sqs", "body": text}]}
    else:
        wrapped = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": text}}]}
    return mutate(rng, wrapped) if rng.random() < 0.3 else wrapped


def fuzz_event(rng: random.Random, good: dict[str, Any], bucket: str) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return envelope(rng, mutate(rng, copy.deepcopy(good)))
    if roll < 0.55:
        return envelope(rng, plausible(rng, good, bucket))
    if roll < 0.65:
        return envelope(rng, copy.deepcopy(good))
    if roll < 0.75:
        return {"script": pick(rng, SCRIPTS)} if rng.random() < 0.5 else \
            {"cmd_args": pick(rng, CMD_ARGS)}
    if roll < 0.85:
        return {"httpMethod": rng.choice(["POST", "GET", 5]), "body": pick(rng, JUNK + ["hi"]),
                "isBase64Encoded": rng.choice([True, False, "yes"])}
    if roll < 0.9:
        return dict(good, script=pick(rng, SCRIPTS))
    return pick(rng, JUNK + ["{}", '{"Records": 5}', "not json", b"\xff"])


def fuzz_config(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    choices: dict[str, Callable[[], Any]] = {
        "execution_mode": lambda: rng.choice(["lambda", "lambda-batch", "batch", "batch",
                                              "", "LAMBDA", 3, None]),
        "timeout": lambda: rng.choice([-1, 0, 1, 30, 60, 901, "x", 1.5, None]),
        "init_script": lambda: rng.choice([base["init_script"], "/nonexistent.sh", "", 5]),
        "name": lambda: pick(rng, JUNK + ["fn-ok"]),
        "log_level": lambda: rng.choice(["DEBUG", "loud", 5]),
    }
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.4:
            name = rng.choice(sorted(choices))
            config[name] = choices[name]()
        elif roll < 0.8:
            name = rng.choice(["container", "input", "output", "batch", "storage_providers",
                               "idempotency"])
            config[name] = mutate(rng, config.get(name, {"table": "t"}))
        else:
            config[rng.choice(["unknown_key", "history", "handoff"])] = pick(rng, JUNK)
    config.setdefault("container", {})
    if isinstance(config["container"], dict):
        config["container"]["run_on_host"] = True  # no image is ever pulled
    return config


# --------------------------------------------------------------------------- the tests

@pytest.fixture
def base_config(s3: Any, bucket: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "script.sh"
    script.write_text(SCRIPT)
    return {"name": "fn-fuzz", "execution_mode": "lambda", "timeout": 60,
            "init_script": str(script),
            "container": {"image": "busybox", "run_on_host": True, "timeout_threshold": 2,
                          "environment": {"Variables": {"GREETING": "hi"}}},
            "input": [{"storage_provider": "s3", "path": f"{bucket}/input"}],
            "output": [{"storage_provider": "s3", "path": f"{bucket}/output"}]}


Case = Callable[[int], tuple[Any, dict[str, Any]]]


def run_cases(count: int, case: Case, aws_env: dict[str, str], tmp_path: Path) -> None:
    """``count`` invocations of what ``case(i)`` gives (event, config) in one warm sandbox;
    each answer checked, and the statuses seen must include completed and failed (the
    fuzz reached past the parsing)."""
    work = tmp_path / "work"
    work.mkdir()
    clients = ClientFactory()
    statuses: set[str] = set()
    for i in range(count):
        event, config = case(i)
        text = yaml.safe_dump(config, allow_unicode=True)
        environ = dict(aws_env, PATH=os.environ["PATH"], SUPERVISOR_WORK_DIR=str(work),
                       FUNCTION_CONFIG=base64.b64encode(text.encode("utf-8")).decode())
        body = check_answer(handle(event, LocalContext(function_name="fn-fuzz", timeout=30),
                                   environ=environ, clients=clients))
        statuses.update(record["status"] for record in body["records"])
    assert list(work.iterdir()) == []  # no run left anything behind
    assert statuses >= {"completed", "failed"}, statuses


def test_fuzzed_events_get_answers_that_keep_the_contract(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path,
        base_config: dict[str, Any]) -> None:
    good = event_of(put(s3, bucket, "input/data file.txt", b"fuzz input"))
    rng = random.Random(20240514)
    run_cases(EVENTS, lambda i: (fuzz_event(rng, good, bucket), base_config), aws_env,
              tmp_path)


def test_fuzzed_configurations_get_answers_that_keep_the_contract(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path,
        base_config: dict[str, Any]) -> None:
    events = [event_of(put(s3, bucket, "input/data.txt", b"fuzz input")),
              load_event("s3_delete"), {}]
    rng = random.Random(20240515)
    run_cases(CONFIGS, lambda i: (events[i % len(events)], fuzz_config(rng, base_config)),
              aws_env, tmp_path)
