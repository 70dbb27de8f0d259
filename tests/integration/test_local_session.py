"""Local mode end to end: the demo's workflow, retries on Batch, idempotency, loops."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import Built

from supervisor.cli import main
from supervisor.config import from_fdl
from supervisor.errors import ConfigError
from supervisor.local.image import build_busybox_image
from supervisor.local.session import LocalCloud, run_local
from supervisor.s3event import event_of, object_created_record

pytestmark = [pytest.mark.integration, pytest.mark.container,
              pytest.mark.skipif(not (Path("/usr/bin/proot").is_file()
                                      and Path("/bin/busybox").is_file()),
                                 reason="needs proot and busybox-static (build.sh installs them)")]

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of examples/demo with its busybox image archive built."""
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("busybox.tar"))
    build_busybox_image(copy / "busybox.tar")
    return copy


def say(lines: list[str]) -> Any:
    return lines.append


def test_demo_workflow_runs_lambda_then_lambda_batch_then_batch_in_containers(
        demo: Path, built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    progress: list[str] = []
    state = tmp_path / "state"
    report = run_local(demo / "workflow.yaml", [demo / "sample.txt"], timeout=None,
                       state_dir=state, progress=say(progress), layer_zip=built.layer,
                       batch_pyz=built.pyz, max_wait=240)

    assert report.ok, report.rows
    assert [(r["function"], r["mode"], r["ran_on"], r["status"], r["job_state"])
            for r in report.rows] == [
        ("demo-prepare", "lambda", "lambda", "completed", None),
        ("demo-count", "lambda-batch", "batch", "completed", "SUCCEEDED"),
        ("demo-report", "batch", "batch", "completed", "SUCCEEDED")]
    assert report.rows[0]["outputs"] == ["s3://demo/prepared/sample.txt"]
    assert report.rows[1]["outputs"] == ["s3://demo/counted/sample.words"]
    assert report.rows[2]["outputs"] == ["s3://demo/reports/sample.report.txt"]
    assert any("exceeded the time budget" in line for line in progress)

    session = report.session_dir
    assert session is not None and session.parent == state / "sessions"
    outputs = session / "outputs" / "demo"
    text = (demo / "sample.txt").read_text()
    assert (outputs / "prepared" / "sample.txt").read_text() == text.upper()
    assert (outputs / "counted" / "sample.words").read_text().strip() == str(len(text.split()))
    report_text = (outputs / "reports" / "sample.report.txt").read_text()
    assert "ran on:  batch, in BusyBox" in report_text  # the script ran in the image

    # deploy shipped the image archive to the staging prefix: the function names it in S3
    (prepare_log,) = (session / "lambda" / "logs" / "demo-prepare").glob("*.log")
    ready = [json.loads(line) for line in prepare_log.read_text().splitlines()
             if '"image ready"' in line]
    assert ready and ready[0]["image"].startswith("s3://demo/supervisor-handoff/artifacts/image-")

    from supervisor.local.store import LocalStore
    doc = LocalStore.read(session)
    job = doc["jobs"][report.rows[1]["job_id"]]
    assert [h["status"] for h in job["history"]][-3:] == ["RUNNABLE", "RUNNING", "SUCCEEDED"]
    assert job["exit_code"] == 0

    # put, then `supervisor status --local` shows the invocation and its Batch job
    capsys.readouterr()
    assert main(["--json", "status", "-n", "demo-count", "--local", str(state)]) == 0
    shown = json.loads(capsys.readouterr().out)
    (invocation,) = shown["invocations"]
    assert (invocation["object"], invocation["status"]) == ("s3://demo/prepared/sample.txt",
                                                            "succeeded")
    assert shown["jobs"]["counts"]["SUCCEEDED"] == 1
    assert [j["job_id"] for j in shown["jobs"]["latest"]] == [report.rows[1]["job_id"]]


def write_fdl(folder: Path, body: str, scripts: dict[str, str]) -> Path:
    for name, text in scripts.items():
        (folder / name).write_text(text)
    fdl = folder / "functions.yaml"
    fdl.write_text(textwrap.dedent(body))
    return fdl


BATCH_FN = """\
    functions:
      aws:
      - lambda:
          name: {name}
          execution_mode: batch
          init_script: job.sh
          container: {{image: busybox, image_file: busybox.tar}}
          input: [{{storage_provider: s3, path: work/in}}]
          output: [{{storage_provider: s3, path: work/out}}]
        iam: {{role: arn:aws:iam::123456789012:role/supervisor-test}}
        batch:
          retry_attempts: 3
          compute_resources: {{subnets: [subnet-1], security_group_ids: [sg-1]}}
        {extra}
    """


def test_failing_batch_job_is_retried_attempts_times_and_ends_failed(
        tmp_path: Path, built: Built) -> None:
    build_busybox_image(tmp_path / "busybox.tar")
    fdl = write_fdl(tmp_path, BATCH_FN.format(name="flaky", extra=""),
                    {"job.sh": "echo failing on $EXECUTION_SERVICE\nexit 3\n"})
    (tmp_path / "data.txt").write_text("x")
    report = run_local(fdl, [tmp_path / "data.txt"], timeout=None, state_dir=tmp_path / "s",
                       progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                       max_wait=240)

    assert not report.ok
    (row,) = report.rows
    assert (row["status"], row["ran_on"], row["job_state"]) == ("failed", "batch", "FAILED")
    from supervisor.local.store import LocalStore
    job = LocalStore.read(report.session_dir)["jobs"][row["job_id"]]
    assert [a["exit_code"] for a in job["attempts"]] == [3, 3, 3]
    assert job["exit_code"] == 3 and job["status"] == "FAILED"


def test_duplicate_event_with_idempotency_runs_the_job_once(tmp_path: Path,
                                                            built: Built) -> None:
    build_busybox_image(tmp_path / "busybox.tar")
    fdl = write_fdl(tmp_path, BATCH_FN.format(name="once",
                                              extra="idempotency: {table: supervisor-idem}"),
                    {"job.sh": 'echo ran > "$TMP_OUTPUT_DIR/ran.txt"\n'})
    configs = from_fdl(fdl)
    with LocalCloud(configs, state_dir=tmp_path / "s", progress=lambda _: None,
                    layer_zip=built.layer, batch_pyz=built.pyz) as cloud:
        cloud.clients.client("dynamodb").create_table(
            TableName="supervisor-idem", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        s3 = cloud.clients.s3()
        s3.put_object(Bucket="work", Key="elsewhere/data.txt", Body=b"x")  # not watched
        head = s3.head_object(Bucket="work", Key="elsewhere/data.txt")
        s3.copy_object(Bucket="work", Key="in/data.txt",
                       CopySource={"Bucket": "work", "Key": "elsewhere/data.txt"})
        cloud.run_until_quiet(120)  # the upload's own event, delivered once
        event = event_of(object_created_record("work", "in/data.txt", size=1,
                                               etag=head["ETag"], sequencer="00AA"))
        first = cloud.lambdas.invoke("once", event, "RequestResponse")
        again = cloud.lambdas.invoke("once", event, "RequestResponse")  # S3 delivered twice
        cloud.run_until_quiet(120)
        report = cloud.report()

    job_ids = [r["job_id"] for inv in (first, again) for r in inv.records]
    assert len(job_ids) == 2 and job_ids[0] == job_ids[1]
    ours = [r for r in report.rows if r["job_id"] == job_ids[0]]
    assert ours and all(r["job_state"] == "SUCCEEDED" for r in ours)
    from supervisor.local.store import LocalStore
    jobs = LocalStore.read(cloud.session_dir)["jobs"]
    assert sum(1 for j in jobs.values() if j.get("name", "").startswith("once-")) == 2
    # one job from the upload's own event, one from the duplicated event: not three


def test_a_loop_in_a_workflow_is_refused_before_anything_is_deployed(tmp_path: Path,
                                                                     built: Built) -> None:
    fdl = write_fdl(tmp_path, """\
        functions:
          aws:
          - lambda: {name: a, init_script: s.sh, container: {image: busybox},
                     input: [{path: w/1}], output: [{path: w/2}]}
          - lambda: {name: b, init_script: s.sh, container: {image: busybox},
                     input: [{path: w/2}], output: [{path: w/1}]}
        """, {"s.sh": "true\n"})
    progress: list[str] = []
    with pytest.raises(ConfigError, match="a -> b -> a"):
        run_local(fdl, [], timeout=None, state_dir=tmp_path / "s", progress=say(progress),
                  layer_zip=built.layer, batch_pyz=built.pyz)
    assert progress == []  # no endpoint was started, nothing deployed


GRAYIFY = Path(__file__).resolve().parents[2] / "examples" / "grayify"
FFMPEG_STANDIN = b"""#!/bin/sh
# A stand-in ffmpeg: the input (after -i) and a marker, written to the last argument.
input=
previous=
for arg do
    [ "$previous" = -i ] && input=$arg
    previous=$arg
done
{ echo "ffmpeg of the image"; cat "$input"; } > "$previous"
"""


def test_the_grayify_example_runs_in_its_pulled_image_on_lambda_and_on_batch(
        tmp_path: Path, built: Built, registry: Any) -> None:
    """A SCAR-style example whose scripts call ffmpeg, which only the image has."""
    image = build_busybox_image(tmp_path / "ffmpeg.tar", files={"/usr/bin/ffmpeg": FFMPEG_STANDIN})
    reference = f"{registry.host}/examples/ffmpeg:tiny"
    registry.push(image, "examples/ffmpeg", "tiny")
    example = tmp_path / "grayify"
    shutil.copytree(GRAYIFY, example)
    fdl = example / "function.yaml"
    fdl.write_text(fdl.read_text().replace("jrottenberg/ffmpeg:4.4-ubuntu", reference))
    (tmp_path / "clip.avi").write_bytes(b"frames\n")
    report = run_local(fdl, [tmp_path / "clip.avi"], timeout=None, state_dir=tmp_path / "s",
                       progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                       max_wait=240)

    assert report.ok, report.rows
    assert [(r["function"], r["ran_on"], r["status"]) for r in report.rows] == [
        ("grayify", "lambda", "completed"), ("poster", "batch", "completed")]
    outputs = report.session_dir / "outputs" / "video"
    assert (outputs / "gray" / "clip.avi").read_text() == "ffmpeg of the image\nframes\n"
    assert (outputs / "posters" / "clip.png").read_text() == (
        "ffmpeg of the image\nffmpeg of the image\nframes\n")  # Batch ran the image's too


def test_an_older_form_two_step_workflow_chains_through_scars_folders(
        tmp_path: Path, built: Built) -> None:
    build_busybox_image(tmp_path / "busybox.tar")
    fdl = write_fdl(tmp_path, """\
        functions:
          step-one:
            image: busybox
            image_file: busybox.tar
            init_script: upper.sh
            s3: {input_bucket: work}
          step-two:
            image: busybox
            image_file: busybox.tar
            init_script: count.sh
            s3: {input_bucket: work/step-one/output, output_bucket: work/final}
        """, {"upper.sh": 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/up.txt"\n',
              "count.sh": 'wc -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/count.txt"\n'})
    (tmp_path / "data.txt").write_text("hello\n")
    report = run_local(fdl, [tmp_path / "data.txt"], timeout=None, state_dir=tmp_path / "s",
                       progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                       max_wait=240)
    assert report.ok, report.rows
    assert [(r["function"], r["status"]) for r in report.rows] == [
        ("step-one", "completed"), ("step-two", "completed")]
    assert report.rows[0]["outputs"] == ["s3://work/step-one/output/up.txt"]
    outputs = report.session_dir / "outputs" / "work"
    assert (outputs / "final" / "count.txt").read_text().strip() == "6"


def test_a_request_through_the_functions_rest_api_runs_it_with_the_body_as_input(
        tmp_path: Path, built: Built) -> None:
    """SCAR's darknet-api shape: api_gateway deployed, the POST body becomes the input file,
    its outputs go to the output path (a second request to another function chains)."""
    build_busybox_image(tmp_path / "busybox.tar")
    fdl = write_fdl(tmp_path, """\
        functions:
          aws:
          - lambda:
              name: api-count
              init_script: count.sh
              container: {image: busybox, image_file: busybox.tar}
              input: [{storage_provider: s3, path: api/input}]
              output: [{storage_provider: s3, path: api/output}]
            api_gateway: {name: api-count}
        """, {"count.sh": 'echo "$(basename "$INPUT_FILE_PATH") $(wc -c < "$INPUT_FILE_PATH")"'
                          ' > "$TMP_OUTPUT_DIR/count.txt"\n'})
    (tmp_path / "photo.jpg").write_bytes(bytes(range(256)) * 4)  # binary: sent base64
    progress: list[str] = []
    report = run_local(fdl, [], requests=[tmp_path / "photo.jpg"], timeout=None,
                       state_dir=tmp_path / "s", progress=say(progress),
                       layer_zip=built.layer, batch_pyz=built.pyz, max_wait=240)
    assert report.ok, report.rows
    [row] = report.rows
    assert (row["object"], row["function"], row["status"]) == (
        "(request)", "api-count", "completed")
    assert row["outputs"] == ["s3://api/output/count.txt"]
    count = (report.session_dir / "outputs" / "api" / "output" / "count.txt").read_text()
    assert count.split() == ["photo.jpg", "1024"]
    assert any(line.startswith("requested https://") and "/scar/launch with " in line
               for line in progress), progress


def test_a_script_that_does_not_parse_stops_the_session_before_anything_runs(
        tmp_path: Path, built: Built) -> None:
    from supervisor.provision import ProvisionError

    fdl = write_fdl(tmp_path, """\
        functions:
          aws:
          - lambda:
              name: broken
              init_script: broken.sh
              input: [{storage_provider: s3, path: broken/input}]
        """, {"broken.sh": "for f in *; do\n  echo $f\n"})
    (tmp_path / "data.txt").write_text("x\n")
    with pytest.raises(ProvisionError, match=r"init_script: broken.sh does not parse as a "
                                             r"shell script: broken.sh: 3: "):
        run_local(fdl, [tmp_path / "data.txt"], timeout=None, state_dir=tmp_path / "s",
                  progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                  max_wait=60)
    assert not list((tmp_path / "s").glob("sessions/*/lambda/logs"))


def test_sessions_are_kept_scripts_are_streamed_and_a_failure_shows_its_last_lines(
        tmp_path: Path, built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    fdl = write_fdl(tmp_path, """\
        functions:
          aws:
          - lambda:
              name: tally
              init_script: tally.sh
              input: [{storage_provider: s3, path: tally/input}]
              output: [{storage_provider: s3, path: tally/output}]
        """, {"tally.sh": 'echo "counting $(basename "$INPUT_FILE_PATH")"\n'
                          'grep -q bad "$INPUT_FILE_PATH" && { echo "no good: bad data" >&2;'
                          ' exit 3; }\n'
                          'wc -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename '
                          '"$INPUT_FILE_PATH").n"\n'})
    (tmp_path / "in" / "deep").mkdir(parents=True)
    (tmp_path / "in" / "a.txt").write_text("fine\n")
    (tmp_path / "in" / "deep" / "b.txt").write_text("also fine\n")
    (tmp_path / "bad.txt").write_text("bad\n")
    state = tmp_path / "state"
    streamed: list[str] = []
    first = run_local(fdl, [tmp_path / "in"], timeout=None, state_dir=state,
                      progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                      max_wait=120, stream=streamed.append)
    assert first.ok, first.rows
    assert sorted(r["object"] for r in first.rows) == ["s3://tally/input/a.txt",
                                                       "s3://tally/input/deep/b.txt"]
    assert "  tally input/a.txt | counting a.txt" in streamed
    assert "  tally input/deep/b.txt | counting b.txt" in streamed

    second = run_local(fdl, [tmp_path / "bad.txt"], timeout=None, state_dir=state,
                       progress=lambda _: None, layer_zip=built.layer, batch_pyz=built.pyz,
                       max_wait=120)
    [row] = second.rows
    assert row["status"] == "failed" and "3" in row["error"]
    assert row["output_tail"][-2:] == ["counting bad.txt", "no good: bad data"]

    # the first session's outputs and state are still there; status reads the latest
    assert first.session_dir is not None and second.session_dir is not None
    assert first.session != second.session
    assert (first.session_dir / "outputs" / "tally" / "output" / "a.txt.n").is_file()
    capsys.readouterr()
    assert main(["--json", "status", "-n", "tally", "--local", str(state)]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert main(["--json", "status", "-n", "tally", "--local", str(state),
                 "--session", first.session]) == 0
    earlier = json.loads(capsys.readouterr().out)
    assert len(latest["invocations"]) == 1 and len(earlier["invocations"]) == 2
