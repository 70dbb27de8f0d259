"""Run history (``history.table``) against the moto server's DynamoDB: a record whose
input is like ones that timed out goes to Batch at once, without starting the script."""
from __future__ import annotations

import base64
import json
import os
import re
import socket
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import make_batch_queue

from supervisor.aws import ClientFactory
from supervisor.cli import main
from supervisor.handler import handle
from supervisor.history import HistoryKey, HistoryStore, Observation, history_id
from supervisor.history.bands import size_band
from supervisor.history.runtime import READ_MAX_S
from supervisor.history.store import item_values
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of, object_created_record

pytestmark = pytest.mark.integration

#: Long when the input holds more than 1000 bytes; every start leaves a marker.
SIZED_SCRIPT = """\
touch "$MARKERS/$(basename "$STORAGE_OBJECT_KEY")"
size=$(wc -c < "$INPUT_FILE_PATH")
if [ "$size" -gt 1000 ]; then exec sleep 60; fi
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"
"""

LONG = b"x" * 4000
SHORT = b"y" * 100


class HistoryFunction:
    """A ``lambda-batch`` function with a Batch queue and a history table on moto."""

    def __init__(self, s3: Any, bucket: str, network: dict[str, str], tmp_path: Path,
                 aws_env: dict[str, str]) -> None:
        self.s3, self.bucket, self.tmp_path, self.aws_env = s3, bucket, tmp_path, aws_env
        self.name = f"hist-{uuid.uuid4().hex[:8]}"
        self.network = network
        endpoint = aws_env["AWS_ENDPOINT_URL"]
        make_batch_queue(boto3.client("batch", endpoint_url=endpoint, region_name="us-east-1"),
                         network, self.name)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.table = f"history-{uuid.uuid4().hex[:8]}"
        self.dynamodb.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        (tmp_path / "work").mkdir()

    def config(self, *, script: str = SIZED_SCRIPT, table: Optional[str] = "",
               explore: Optional[float] = 0.0) -> str:
        """The function's YAML; ``table`` None: no history section, "" this test's table."""
        script_path = self.tmp_path / f"script-{uuid.uuid4().hex[:6]}.sh"
        script_path.write_text(script)
        history = ""
        if table is not None:
            history = f"history:\n  table: {table or self.table}\n"
            if explore is not None:
                history += f"  explore_fraction: {explore}\n"
        return textwrap.dedent(f"""\
            name: {self.name}
            execution_mode: lambda-batch
            timeout: 60
            init_script: {script_path}
            container:
              image: busybox
              run_on_host: true
              timeout_threshold: 1
              environment:
                Variables:
                  MARKERS: {self.markers}
            input:
            - {{storage_provider: s3, path: {self.bucket}/input}}
            output:
            - {{storage_provider: s3, path: {self.bucket}/output}}
            batch:
              compute_resources:
                subnets: [{self.network['subnet']}]
                security_group_ids: [{self.network['security_group']}]
            """) + history

    def put(self, name: str, body: bytes) -> dict[str, Any]:
        key = f"input/{name}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        return object_created_record(self.bucket, key, size=head["ContentLength"],
                                     etag=head["ETag"])

    def invoke(self, name: str, body: bytes, config_yaml: str, *, timeout: float = 3.0,
               clients: Optional[ClientFactory] = None) -> dict[str, Any]:
        """Upload ``input/NAME`` and invoke the handler on it; the one record's result."""
        environ = dict(self.aws_env, PATH=os.environ["PATH"],
                       SUPERVISOR_WORK_DIR=str(self.tmp_path / "work"),
                       FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
        context = LocalContext(function_name=self.name, timeout=timeout)
        response = handle(event_of(self.put(name, body)), context, environ=environ,
                          clients=clients or ClientFactory())
        (record,) = json.loads(response["body"])["records"]
        return dict(record)

    def started(self, name: str) -> bool:
        """Whether the script started on ``input/NAME`` in Lambda."""
        return (self.markers / name).exists()


@pytest.fixture
def fn(s3: Any, bucket: str, batch_network: dict[str, str], tmp_path: Path,
       aws_env: dict[str, str]) -> HistoryFunction:
    return HistoryFunction(s3, bucket, batch_network, tmp_path, aws_env)


def items(fn: HistoryFunction) -> list[dict[str, Any]]:
    """The history table's items as plain values."""
    return [item_values(item) for item in fn.dynamodb.scan(TableName=fn.table)["Items"]]


def test_a_short_input_runs_in_lambda_and_its_run_is_recorded(fn: HistoryFunction) -> None:
    record = fn.invoke("short.dat", SHORT, fn.config())

    assert record["status"] == "completed" and fn.started("short.dat")
    (item,) = items(fn)
    assert item["id"].startswith(f"history:{fn.name}:")
    assert item["runs"] == 1 and "wasted_s" not in item  # nothing went on to Batch
    assert item["function"] == fn.name and item["expiration"] > time.time() + 29 * 86400
    counters = [name for name in item if name.startswith("s")]
    assert any(name.startswith(f"s{size_band(len(SHORT))}c") for name in counters), item


def test_a_long_input_like_one_that_timed_out_is_delegated_without_starting(
        fn: HistoryFunction) -> None:
    config = fn.config()
    first = fn.invoke("long-1.dat", LONG, config)
    assert first["status"] == "delegated" and "exceeded the time budget" in first["reason"]
    assert fn.started("long-1.dat")

    record = fn.invoke("long-2.dat", LONG + b"zz", config)

    assert record["status"] == "delegated", record
    assert record["job_id"]
    assert re.fullmatch(r"history: inputs of ~\d(\.\d)? KB took ≥ 1\.\d s here \(1 run\), "
                        r"budget 1\.\d s", record["reason"]), record["reason"]
    assert not fn.started("long-2.dat")  # no Lambda second spent on the script
    short = fn.invoke("short.dat", SHORT, config)  # a small input still runs here
    assert short["status"] == "completed"
    (item,) = items(fn)
    assert item["runs"] == 2 and 1.0 < float(item["wasted_s"]) < 2.5


def test_a_bigger_input_than_one_that_timed_out_is_delegated_too(fn: HistoryFunction) -> None:
    config = fn.config()
    fn.invoke("long-1.dat", LONG, config)

    record = fn.invoke("longer.dat", LONG * 8, config)

    assert record["status"] == "delegated" and not fn.started("longer.dat")
    assert "smaller than this one" in record["reason"]


def test_a_changed_script_starts_a_new_history(fn: HistoryFunction) -> None:
    fn.invoke("long-1.dat", LONG, fn.config())

    changed = fn.config(script=SIZED_SCRIPT + "# faster now\n")
    record = fn.invoke("long-2.dat", LONG, changed)

    assert fn.started("long-2.dat")  # the new script's history is empty: it runs here
    assert "exceeded the time budget" in record["reason"]
    assert len(items(fn)) == 2


def test_exploration_runs_here_what_history_would_delegate(fn: HistoryFunction) -> None:
    fn.invoke("long-1.dat", LONG, fn.config())

    record = fn.invoke("long-2.dat", LONG, fn.config(explore=1.0))

    assert fn.started("long-2.dat")
    assert "exceeded the time budget" in record["reason"]
    (item,) = items(fn)
    assert item["runs"] == 2


def test_concurrent_writers_lose_no_run(fn: HistoryFunction, aws_env: dict[str, str]) -> None:
    clients = ClientFactory()
    store = HistoryStore(fn.table, lambda seconds: clients.bounded("dynamodb", seconds),
                         expires_after_seconds=3600)
    key = HistoryKey(function=fn.name, script="echo", image="busybox", memory=512)
    seen = [Observation(size=5000, seconds=1.5, outcome="completed"),
            Observation(size=5000, seconds=3.0, outcome="timed_out")]

    # The first write creates the item (DynamoDB makes that atomic too; moto does not).
    store.add(history_id(key), key, seen, seconds=8.0)

    def write(_: int) -> None:
        for _ in range(4):
            store.add(history_id(key), key, seen, seconds=8.0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))

    history = store.read(history_id(key), seconds=8.0)
    assert history.runs == 66
    (band,) = history.bands.values()
    assert band.total("c") == 33 and band.total("t") == 33
    assert history.wasted_seconds == pytest.approx(99.0)


def test_an_expired_item_is_read_as_none_and_replaced(fn: HistoryFunction) -> None:
    clients = ClientFactory()
    clock = [1_000_000.0]
    store = HistoryStore(fn.table, lambda seconds: clients.bounded("dynamodb", seconds),
                         expires_after_seconds=60, now=lambda: clock[0])
    key = HistoryKey(function=fn.name, script="echo")
    store.add(history_id(key), key, [Observation(10, 9.0, "timed_out")], seconds=8.0)
    assert store.read(history_id(key), seconds=8.0).runs == 1

    clock[0] += 61  # past the TTL; DynamoDB has not deleted it yet
    assert store.read(history_id(key), seconds=8.0).runs == 0
    store.add(history_id(key), key, [Observation(10, 0.5, "completed")], seconds=8.0)

    history = store.read(history_id(key), seconds=8.0)
    assert history.runs == 1 and history.wasted_seconds == 0
    assert [band.total("t") for band in history.bands.values()] == [0]


class FailingHistory(ClientFactory):
    """Real clients, except DynamoDB: its calls fail with ``code``, or go to ``endpoint``."""

    def __init__(self, *, code: str = "", endpoint: str = "") -> None:
        super().__init__()
        self.code, self.endpoint = code, endpoint
        self.asked: list[float] = []

    def with_providers(self, providers: Any) -> "FailingHistory":
        return self  # the function names no other provider

    def bounded(self, service: str, seconds: float) -> Any:
        if service != "dynamodb":
            return super().bounded(service, seconds)
        self.asked.append(seconds)
        if self.endpoint:
            return ClientFactory(endpoint_url=self.endpoint).bounded(service, seconds)
        code = self.code

        class Refusing:
            def __getattr__(self, name: str) -> Any:
                def call(**kwargs: Any) -> Any:
                    raise ClientError({"Error": {"Code": code, "Message": "slow down"}}, name)
                return call

        return Refusing()


def assert_as_without_history(fn: HistoryFunction, config: str, clients: ClientFactory
                              ) -> None:
    for name in ("long-1.dat", "long-2.dat"):
        record = fn.invoke(name, LONG, config, clients=clients)
        assert record["status"] == "delegated" and "exceeded the time budget" in record["reason"]
        assert fn.started(name)
    record = fn.invoke("short.dat", SHORT, config, clients=clients)
    assert record["status"] == "completed"


def test_a_missing_history_table_is_no_history(fn: HistoryFunction) -> None:
    assert_as_without_history(fn, fn.config(table="no-such-table"), ClientFactory())


def test_a_throttled_history_table_is_no_history(fn: HistoryFunction) -> None:
    clients = FailingHistory(code="ProvisionedThroughputExceededException")
    fn.invoke("long-0.dat", LONG, fn.config(), clients=ClientFactory())  # history says long

    assert_as_without_history(fn, fn.config(), clients)
    assert clients.asked  # it was asked, and said no


def test_a_silent_history_table_costs_a_small_share_of_the_budget(
        fn: HistoryFunction) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        clients = FailingHistory(endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        record = fn.invoke("short.dat", SHORT, fn.config(), clients=clients, timeout=6.0)
        took = time.monotonic() - started

    assert record["status"] == "completed"
    assert clients.asked and max(clients.asked) <= READ_MAX_S
    # the read gave up after its client timeout (0.25 s), the write after its own (1 s)
    assert took < 3.5, took


def test_without_a_history_table_nothing_is_read_or_written(fn: HistoryFunction) -> None:
    clients = FailingHistory(code="AccessDeniedException")
    record = fn.invoke("long-1.dat", LONG, fn.config(table=None), clients=clients)

    assert record["status"] == "delegated" and not clients.asked


def test_status_shows_the_wasted_lambda_seconds_and_what_was_learned(
        fn: HistoryFunction, aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
        ) -> None:
    config = fn.config()
    fn.invoke("long-1.dat", LONG, config)
    fn.invoke("long-2.dat", LONG, config)  # delegated at once: no Lambda run to count
    fn.invoke("short.dat", SHORT, config)
    args = ["status", "-n", fn.name, "--history-table", fn.table,
            "--endpoint-url", aws_env["AWS_ENDPOINT_URL"], "--region", "us-east-1"]
    capsys.readouterr()

    assert main([*args, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)["history"]
    (item,) = view["items"]
    assert (view["runs"], item["runs"]) == (2, 2)
    assert 1.0 < view["wasted_s"] < 2.5 and view["wasted_s"] < view["lambda_s"]
    bands = {band["band"]: band for band in item["bands"]}
    long_band, short_band = bands[size_band(len(LONG))], bands[size_band(len(SHORT))]
    assert (long_band["timed_out"], long_band["completed"]) == (1, 0)
    assert 1.0 < long_band["timed_out_after_s"] <= view["wasted_s"]
    assert (short_band["completed"], short_band["typical_s"] < 1.0) == (1, True)

    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"run history in {fn.table}: 2 Lambda runs" in out
    assert "wasted on records that timed out and ended on Batch" in out
    assert "~3.9 KB" in out and "≥ 1." in out


def test_status_of_a_missing_history_table_says_so(
        fn: HistoryFunction, aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
        ) -> None:
    capsys.readouterr()
    assert main(["status", "-n", fn.name, "--history-table", "no-such-table",
                 "--endpoint-url", aws_env["AWS_ENDPOINT_URL"], "--region", "us-east-1"]) == 0
    assert "no run-history table no-such-table" in capsys.readouterr().out
