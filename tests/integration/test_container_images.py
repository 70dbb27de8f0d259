"""`container.image` pulled from a registry and run by the Lambda handler, over the moto server.

The registry is Debian's docker-registry on loopback, filled with skopeo; the
images are built here from busybox (PRoot, P1) and from the host's own glibc
binaries (Fakechroot, F1). Each test has its own udocker dir, so "cold" and
"warm" are what a Lambda sandbox would see.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import FAKE_AWS_ENV, ROOT, make_batch_queue, put

from supervisor.aws import ClientFactory
from supervisor.container import prepare as prepare_mod
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.local.image import build_busybox_image, build_glibc_image, build_layered_image
from supervisor.s3event import event_of

pytestmark = [pytest.mark.integration, pytest.mark.container,
              pytest.mark.skipif(not Path("/usr/bin/proot").is_file(),
                                 reason="needs proot: apt-get install proot")]

MARKER = "/etc/supervisor-image-marker"
SCRIPT = f"""\
set -u
cat {MARKER} > "$TMP_OUTPUT_DIR/marker.txt" 2>&1 || echo no-marker > "$TMP_OUTPUT_DIR/marker.txt"
if [ -e "$HOST_MARKER" ]; then echo host-visible; else echo host-hidden; fi \\
    > "$TMP_OUTPUT_DIR/host.txt"
command -v python3 > "$TMP_OUTPUT_DIR/python.txt" || echo none > "$TMP_OUTPUT_DIR/python.txt"
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/upper.txt"
echo "ran in $EXECUTION_SERVICE"
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("images")
    return {
        "v1": build_busybox_image(base / "v1.tar", files={MARKER: b"image-v1\n"}),
        "v2": build_busybox_image(base / "v2.tar", files={MARKER: b"image-v2\n"}),
        "glibc": build_glibc_image(base / "glibc.tar", files={MARKER: b"image-glibc\n"}),
    }


@pytest.fixture
def host_marker() -> Iterator[Path]:
    path = Path.home() / f".supervisor-host-marker-{uuid.uuid4().hex}"
    path.write_text("on the host\n")
    yield path
    path.unlink(missing_ok=True)


class Lambda:
    """One function and one sandbox (udocker dir) invoked through the real handler."""

    def __init__(self, s3: Any, bucket: str, tmp_path: Path, aws_env: dict[str, str],
                 host_marker: Path) -> None:
        self.s3, self.bucket, self.tmp_path = s3, bucket, tmp_path
        self.environ = dict(aws_env, PATH=os.environ["PATH"], HOME=str(Path.home()),
                            SUPERVISOR_WORK_DIR=str(tmp_path / "work"),
                            SUPERVISOR_UDOCKER_DIR=str(tmp_path / "udocker"))
        (tmp_path / "work").mkdir()
        self.host_marker = host_marker
        (tmp_path / "script.sh").write_text(SCRIPT)

    def config(self, image: str, *, mode: str = "lambda", extra: str = "") -> str:
        return textwrap.dedent(f"""\
            name: fn-image
            execution_mode: {mode}
            timeout: 120
            init_script: {self.tmp_path / 'script.sh'}
            container:
              image: "{image}"
              timeout_threshold: 2
              environment:
                Variables:
                  HOST_MARKER: {self.host_marker}
            input:
            - {{storage_provider: s3, path: {self.bucket}/input}}
            output:
            - {{storage_provider: s3, path: {self.bucket}/output}}
            """) + extra

    def invoke(self, config_yaml: str, *, key: str = "input/a.txt",
               timeout: float = 120, event: Any = None) -> dict[str, Any]:
        if event is None:
            event = event_of(put(self.s3, self.bucket, key, b"hello image\n"))
        environ = dict(self.environ,
                       FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
        response = handle(event, LocalContext(function_name="fn-image", timeout=timeout),
                          environ=environ, clients=ClientFactory())
        (record,) = json.loads(response["body"])["records"]
        return record

    def output(self, name: str) -> str:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"output/{name}")["Body"].read()
        return body.decode()

    def outputs(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="output/")
        return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture
def fn(s3: Any, bucket: str, tmp_path: Path, aws_env: dict[str, str],
       host_marker: Path) -> Iterator[Lambda]:
    yield Lambda(s3, bucket, tmp_path, aws_env, host_marker)
    prepare_mod._ready_cache.clear()


def test_lambda_mode_runs_the_script_inside_the_pulled_image_and_warm_pulls_nothing(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/bb-{uuid.uuid4().hex[:8]}"
    registry.push(images["v1"], name, "v1")
    config = fn.config(f"{registry.host}/{name}:v1")
    registry.reset_counts()
    record = fn.invoke(config)
    assert record["status"] == "completed", record
    assert fn.output("marker.txt") == "image-v1\n"  # the image's file...
    assert fn.output("host.txt") == "host-hidden\n"  # ...and not the host's
    assert fn.output("python.txt") == "none\n"  # not the supervisor's python3 either
    assert fn.output("upper.txt") == "HELLO IMAGE\n"
    cold_blobs = registry.requests("blob", name)
    assert cold_blobs == 2  # the config and the one layer

    registry.reset_counts()
    again = fn.invoke(config, key="input/b.txt")
    assert again["status"] == "completed", again
    assert registry.requests("blob", name) == 0  # warm: nothing pulled again
    assert registry.requests("manifest", name) == 1  # one request resolves the tag


def test_cmd_args_run_in_the_image(fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/args-{uuid.uuid4().hex[:8]}"
    registry.push(images["v1"], name, "v1")
    record = fn.invoke(fn.config(f"{registry.host}/{name}:v1"),
                       event={"cmd_args": ["cat", MARKER]})
    assert record["status"] == "completed", record
    assert record["output_tail"].strip() == "image-v1"  # the image's file, not the script's run


def test_a_moved_tag_is_pulled_again_and_a_digest_needs_no_request(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/moving-{uuid.uuid4().hex[:8]}"
    registry.push(images["v1"], name, "stable")
    config = fn.config(f"{registry.host}/{name}:stable")
    assert fn.invoke(config)["status"] == "completed"
    assert fn.output("marker.txt") == "image-v1\n"

    digest = registry.push(images["v2"], name, "stable")  # the tag moves
    registry.reset_counts()
    assert fn.invoke(config, key="input/b.txt")["status"] == "completed"
    assert fn.output("marker.txt") == "image-v2\n"
    assert registry.requests("blob", name) >= 1

    pinned = fn.config(f"{registry.host}/{name}@{digest}")
    registry.reset_counts()
    assert fn.invoke(pinned, key="input/c.txt")["status"] == "completed"
    assert fn.output("marker.txt") == "image-v2\n"
    assert registry.requests("manifest", name) == 0 and registry.requests("blob", name) == 0


def test_an_unknown_image_is_a_one_line_failure_and_the_script_never_starts(
        fn: Lambda, registry: Any) -> None:
    image = f"{registry.host}/tests/nothing-here:v1"
    record = fn.invoke(fn.config(image))
    assert record["status"] == "failed"
    assert image in record["error"] and "not found" in record["error"]
    assert "\n" not in record["error"]
    assert not record.get("output_tail") and fn.outputs() == []


def test_a_stopped_registry_fails_the_record_in_lambda_batch_too(
        fn: Lambda, registry: Any) -> None:
    image = f"{registry.host}/tests/any:v1"
    registry.stop()
    try:
        record = fn.invoke(fn.config(image, mode="lambda-batch"))
    finally:
        registry.start()
    assert record["status"] == "failed"  # Batch would pull the same image: no hand-off
    assert image in record["error"] and "connection refused" in record["error"]
    assert "\n" not in record["error"] and fn.outputs() == []


def test_a_pull_longer_than_the_budget_fails_in_lambda_mode_and_stays_cached(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/slow-{uuid.uuid4().hex[:8]}"
    registry.push(images["glibc"], name, "v1")
    config = fn.config(f"{registry.host}/{name}:v1", extra="")
    record = fn.invoke(config, timeout=2.3)  # a 0.3 s budget: no pull and create fits
    assert record["status"] == "failed", record
    assert "time budget" in record["error"] and fn.outputs() == []
    held = list((fn.tmp_path / "udocker" / "layers").glob("sha256:*"))
    registry.reset_counts()
    assert fn.invoke(config, key="input/b.txt")["status"] == "completed"
    assert registry.requests("blob", name) == 2 - len(held)  # what was had is not fetched again


def test_lambda_batch_hands_off_a_record_whose_pull_does_not_fit_the_budget(
        fn: Lambda, registry: Any, images: dict[str, Path], batch_network: dict[str, str],
        aws_env: dict[str, str]) -> None:
    import boto3

    batch = boto3.client("batch", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                         region_name="us-east-1")
    queue = f"q-{uuid.uuid4().hex[:8]}"
    make_batch_queue(batch, batch_network, queue)
    name = f"tests/handoff-{uuid.uuid4().hex[:8]}"
    big = build_layered_image(fn.tmp_path / "big.tar", layer_bytes=[32 << 20] * 4)
    registry.push(big, name, "v1")
    config = fn.config(f"{registry.host}/{name}:v1", mode="lambda-batch",
                       extra=f"batch: {{job_queue: {queue}, job_definition: {queue}}}\n"
                       ).replace("timeout_threshold: 2", "timeout_threshold: 1")
    # A 1.2 s budget: enough to start, not to pull, unpack and set up 128 MiB.
    record = fn.invoke(config, timeout=2.2)
    assert record["status"] == "delegated", record
    assert "pulling the container image" in record["reason"] or \
        "preparing the container image" in record["reason"], record["reason"]
    assert fn.outputs() == []  # the script never ran here
    (job,) = batch.describe_jobs(jobs=[record["job_id"]])["jobs"]
    assert job["jobQueue"].endswith(queue)


def test_a_bad_reference_is_a_config_error_naming_the_field(fn: Lambda) -> None:
    record = fn.invoke(fn.config("Not A Reference"))
    assert record["status"] == "failed"
    assert "container.image" in record["error"] and "\n" not in record["error"]


def test_run_on_host_keeps_the_image_for_batch_and_runs_on_the_host(fn: Lambda) -> None:
    record = fn.invoke(fn.config("127.0.0.1:1/never/pulled:v1",
                                 extra="").replace("  timeout_threshold: 2",
                                                   "  timeout_threshold: 2\n  run_on_host: true"))
    assert record["status"] == "completed", record
    assert fn.output("host.txt") == "host-visible\n"


# --- Fakechroot (F1) where ptrace is forbidden, as on AWS Lambda ---------------------------

NOPTRACE = ROOT / "tests" / "support" / "noptrace.py"

HANDLER_PROGRAM = """\
import base64, json, os, sys
from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of, object_created_record
bucket, key, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
event = event_of(object_created_record(bucket, key, size=size, etag="x"))
response = handle(event, LocalContext(function_name="fn-image", timeout=120),
                  environ=dict(os.environ), clients=ClientFactory())
print(json.dumps(json.loads(response["body"])["records"][0]))
"""


def run_handler_without_ptrace(fn: Lambda, config_yaml: str, key: str) -> dict[str, Any]:
    body = b"hello image\n"
    fn.s3.put_object(Bucket=fn.bucket, Key=key, Body=body)
    env = dict(fn.environ, PYTHONPATH=str(ROOT),
               FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
    env.update(FAKE_AWS_ENV)
    done = subprocess.run([sys.executable, str(NOPTRACE), sys.executable, "-c", HANDLER_PROGRAM,
                           fn.bucket, key, str(len(body))], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not Path("/usr/lib/x86_64-linux-gnu/fakechroot/libfakechroot.so").is_file(),
                    reason="needs libfakechroot: apt-get install fakechroot")
def test_without_ptrace_auto_picks_fakechroot_which_confines_a_glibc_image(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/glibc-{uuid.uuid4().hex[:8]}"
    registry.push(images["glibc"], name, "v1")
    record = run_handler_without_ptrace(fn, fn.config(f"{registry.host}/{name}:v1"),
                                        "input/f1.txt")
    assert record["status"] == "completed", record
    assert fn.output("marker.txt") == "image-glibc\n"
    assert fn.output("host.txt") == "host-hidden\n"
    assert fn.output("upper.txt") == "HELLO IMAGE\n"
    marker = json.loads(next((fn.tmp_path / "udocker" / "supervisor").glob("*.F1.json"))
                        .read_text())
    assert marker["execmode"] == "F1"
    assert "/lib64/ld-linux-x86-64.so.2" in " ".join(json.loads(marker["template"])["argv"])


def test_without_ptrace_proot_is_refused_with_one_line(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/bb-{uuid.uuid4().hex[:8]}"
    registry.push(images["v1"], name, "v1")
    config = fn.config(f"{registry.host}/{name}:v1").replace(
        "  timeout_threshold: 2", "  timeout_threshold: 2\n  execmode: P1")
    record = run_handler_without_ptrace(fn, config, "input/p1.txt")
    assert record["status"] == "failed"
    assert "needs ptrace" in record["error"] and "\n" not in record["error"]


def test_without_ptrace_a_static_image_is_refused_not_run_on_the_host(
        fn: Lambda, registry: Any, images: dict[str, Path]) -> None:
    name = f"tests/static-{uuid.uuid4().hex[:8]}"
    registry.push(images["v1"], name, "v1")  # busybox-static
    record = run_handler_without_ptrace(fn, fn.config(f"{registry.host}/{name}:v1"),
                                        "input/st.txt")
    assert record["status"] == "failed"
    assert "statically linked" in record["error"] and "\n" not in record["error"]
    assert fn.outputs() == []
