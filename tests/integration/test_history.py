"""Run history (``history.table``) against the moto server's DynamoDB: a record whose
input is like ones that timed out goes to Batch at once, without starting the script."""
from __future__ import annotations

import base64
import json
import os
import textwrap
import uuid
from pathlib import Path
from typing import Any, Optional

import boto3
import pytest
from conftest import make_batch_queue

from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.local.s3event import event_of, object_created_record

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


@pytest.mark.xfail(strict=True, reason="today every lambda-batch record starts in Lambda")
def test_a_long_input_like_two_that_timed_out_is_delegated_without_starting(
        fn: HistoryFunction) -> None:
    config = fn.config()
    for name in ("long-1.dat", "long-2.dat"):
        record = fn.invoke(name, LONG, config)
        assert record["status"] == "delegated" and "exceeded the time budget" in record["reason"]
        assert fn.started(name)

    record = fn.invoke("long-3.dat", LONG + b"zz", config)

    assert record["status"] == "delegated", record
    assert record["reason"].startswith("history: inputs of ~"), record["reason"]
    assert "budget" in record["reason"]
    assert not fn.started("long-3.dat")  # no Lambda second spent on the script
