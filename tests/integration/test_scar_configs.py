"""The configurations SCAR generates run unchanged: through the handler and supervisor-batch.

Fixtures in ``tests/fixtures/scar``: SCAR's ``function_config.yaml`` for a ``lambda``, a
``lambda-batch`` and a ``batch`` function (no Batch networking, SCAR's own plumbing keys
kept). The image is a tiny busybox one on a loopback registry.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import ROOT, make_batch_queue, put

from supervisor.aws import ClientFactory
from supervisor.container import prepare as prepare_mod
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.local.image import build_busybox_image
from supervisor.s3event import event_of

pytestmark = [pytest.mark.integration, pytest.mark.container,
              pytest.mark.skipif(not Path("/usr/bin/proot").is_file(),
                                 reason="needs proot: apt-get install proot")]

FIXTURES = ROOT / "tests" / "fixtures" / "scar"
SCRIPT = """\
echo "$GREETING on $EXECUTION_SERVICE" > "$TMP_OUTPUT_DIR/greeting.txt"
cat /etc/scar-image > "$TMP_OUTPUT_DIR/image.txt"
key=$(printf '%s' "$EVENT" | grep -o '"key": "[^"]*"' | head -1)
echo "$key" > "$TMP_OUTPUT_DIR/event-key.txt"
"""


@pytest.fixture(scope="module")
def image(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = build_busybox_image(tmp_path_factory.mktemp("scar") / "img.tar",
                                  files={"/etc/scar-image": b"scar image\n"})
    registry.push(archive, "scar/cowsay", "latest")
    return f"{registry.host}/scar/cowsay"


def scar_config(mode: str, *, name: str, image: str, bucket: str) -> dict[str, Any]:
    text = (FIXTURES / f"{mode}.json").read_text()
    return dict(json.loads(text.replace("NAME", name).replace("IMAGE", image)
                           .replace("BUCKET", bucket)))


def environ(config: dict[str, Any], task_root: Path, aws_env: dict[str, str],
            tmp_path: Path) -> dict[str, str]:
    (task_root / "script.sh").write_text(SCRIPT)
    (tmp_path / "work").mkdir(exist_ok=True)
    return dict(aws_env, PATH=os.environ["PATH"], HOME=str(Path.home()),
                LAMBDA_TASK_ROOT=str(task_root), SUPERVISOR_WORK_DIR=str(tmp_path / "work"),
                SUPERVISOR_UDOCKER_DIR=str(tmp_path / "udocker"),
                FUNCTION_CONFIG=base64.b64encode(json.dumps(config).encode()).decode())


def output(s3: Any, bucket: str, name: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=f"output/{name}")["Body"].read().decode())


@pytest.mark.parametrize("mode", ["lambda", "lambda-batch"])
def test_scars_lambda_configs_run_through_the_handler_in_the_image(
        mode: str, s3: Any, bucket: str, image: str, aws_env: dict[str, str],
        tmp_path: Path) -> None:
    config = scar_config(mode, name=f"scar-{mode}", image=image, bucket=bucket)
    env = environ(config, tmp_path, aws_env, tmp_path)
    event = event_of(put(s3, bucket, "input/photo.jpg", b"jpeg"))
    response = handle(event, LocalContext(function_name=config["name"], timeout=120),
                      environ=env, clients=ClientFactory())
    (record,) = json.loads(response["body"])["records"]
    prepare_mod._ready_cache.clear()
    assert record["status"] == "completed", record
    assert output(s3, bucket, "greeting.txt") == "hello from scar on lambda\n"
    assert output(s3, bucket, "image.txt") == "scar image\n"
    assert output(s3, bucket, "event-key.txt") == '"key": "input/photo.jpg"\n'


def test_scars_batch_config_is_handed_off_and_runs_in_scars_form_on_batch(
        s3: Any, bucket: str, image: str, aws_env: dict[str, str], tmp_path: Path,
        batch_network: dict[str, str]) -> None:
    name = f"scar-batch-{uuid.uuid4().hex[:8]}"
    batch = boto3.client("batch", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                         region_name="us-east-1")
    make_batch_queue(batch, batch_network, name)  # SCAR names them after the function
    config = scar_config("batch", name=name, image=image, bucket=bucket)
    env = environ(config, tmp_path, aws_env, tmp_path)
    record_in = put(s3, bucket, "input/photo.jpg", b"jpeg")
    response = handle(event_of(record_in), LocalContext(function_name=name, timeout=60),
                      environ=env, clients=ClientFactory())
    (record,) = json.loads(response["body"])["records"]
    assert record["status"] == "delegated" and record["job_id"], record

    # the job in SCAR's own form: EVENT, FUNCTION_CONFIG and SCRIPT, as SCAR's jobs get them
    job_env = dict(env, EVENT=json.dumps(event_of(record_in)),
                   SCRIPT=base64.b64encode(SCRIPT.encode()).decode(),
                   SUPERVISOR_JOB_IMAGE=image, AWS_BATCH_JOB_ID="job-1",
                   PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "supervisor.batch_entry"], env=job_env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert output(s3, bucket, "greeting.txt") == "hello from scar on batch\n"
    assert output(s3, bucket, "image.txt") == "scar image\n"
