"""The Lambda handler end to end against the moto server, in `lambda` mode."""
from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import put

from supervisor.aws import ClientFactory
from supervisor.handler import handle
from supervisor.local.context import LocalContext
from supervisor.s3event import event_of, object_created_record

pytestmark = pytest.mark.integration

NESTED_SCRIPT = """\
set -eu
name=$(basename "$INPUT_FILE_PATH")
mkdir -p "$TMP_OUTPUT_DIR/deep/er" "$TMP_OUTPUT_DIR/logs"
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/deep/er/$name.copy.txt"
echo "svc=$EXECUTION_SERVICE rid=$REQUEST_ID key=$STORAGE_OBJECT_KEY greet=$GREETING" \\
    > "$TMP_OUTPUT_DIR/deep/env.txt"
echo skipped-by-suffix > "$TMP_OUTPUT_DIR/logs/run.log"
ls -A "$TMP_INPUT_DIR" > "$TMP_OUTPUT_DIR/deep/inputs.txt"
echo "done $name"
"""


def make_config(bucket: str, script: Path, *, mode: str = "lambda", timeout: int = 60,
                threshold: int = 2, extra_output: str = "") -> str:
    return textwrap.dedent(f"""\
        name: fn-test
        execution_mode: {mode}
        timeout: {timeout}
        init_script: {script}
        container:
          image: busybox
          run_on_host: true
          timeout_threshold: {threshold}
          environment:
            Variables:
              GREETING: hi
        input:
        - storage_provider: s3
          path: {bucket}/input
        output:
        - storage_provider: s3
          path: {bucket}/output
          suffix: [.txt]
        {extra_output}
        """)


def invoke(event: dict[str, Any], config_yaml: str, aws_env: dict[str, str], tmp_path: Path,
           *, timeout: float = 60) -> tuple[dict[str, Any], dict[str, Any]]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    environ = dict(aws_env, PATH=os.environ["PATH"], SUPERVISOR_WORK_DIR=str(work),
                   FUNCTION_CONFIG=base64.b64encode(config_yaml.encode()).decode())
    context = LocalContext(function_name="fn-test", timeout=timeout)
    response = handle(event, context, environ=environ, clients=ClientFactory())
    return response, json.loads(response["body"])


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def write_script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.sh"
    path.write_text(text)
    return path


def test_two_record_event_uploads_nested_filtered_outputs(s3: Any, bucket: str,
                                                          aws_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    script = write_script(tmp_path, NESTED_SCRIPT)
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"),
                     put(s3, bucket, "input/sub dir/b ñ.txt", b"beta"))
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 200, body
    assert [r["status"] for r in body["records"]] == ["completed", "completed"]
    assert keys(s3, bucket, "output/") == sorted([
        "output/deep/er/a.txt.copy.txt", "output/deep/env.txt", "output/deep/inputs.txt",
        "output/deep/er/b ñ.txt.copy.txt"])
    copy = s3.get_object(Bucket=bucket, Key="output/deep/er/b ñ.txt.copy.txt")
    assert copy["Body"].read() == b"beta"
    env_line = s3.get_object(Bucket=bucket, Key="output/deep/env.txt")["Body"].read().decode()
    request_id = body["request_id"]
    assert env_line.strip() == (f"svc=lambda rid={request_id} key=input/sub dir/b ñ.txt "
                                "greet=hi")
    second = body["records"][1]
    assert second["key"] == "input/sub dir/b ñ.txt"
    assert second["exit_code"] == 0 and "done b ñ.txt" in second["output_tail"]
    assert f"s3://{bucket}/output/deep/er/b ñ.txt.copy.txt" in second["uploaded"]
    assert response["headers"]["amz-lambda-request-id"] == request_id
    assert response["headers"]["amz-log-group-name"] == "/aws/lambda/fn-test"


def test_failing_script_is_failed_and_uploads_nothing(s3: Any, bucket: str,
                                                      aws_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    script = write_script(tmp_path, 'echo partial > "$TMP_OUTPUT_DIR/x.txt"\n'
                                    'echo broken >&2\nexit 7\n')
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"))
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 500
    (record,) = body["records"]
    assert record["status"] == "failed" and record["exit_code"] == 7
    assert "broken" in record["output_tail"] and "code 7" in record["error"]
    assert record["uploaded"] == []
    assert keys(s3, bucket, "output/") == []


def test_no_state_carries_over_between_invocations(s3: Any, bucket: str,
                                                   aws_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    script = write_script(tmp_path, NESTED_SCRIPT)
    config = make_config(bucket, script)
    environ_before = dict(os.environ)
    invoke(event_of(put(s3, bucket, "input/one.txt", b"1")), config, aws_env, tmp_path)
    response, body = invoke(event_of(put(s3, bucket, "input/two.txt", b"2")), config,
                            aws_env, tmp_path)

    assert response["statusCode"] == 200
    listing = s3.get_object(Bucket=bucket, Key="output/deep/inputs.txt")["Body"].read()
    assert listing.decode().split() == ["two.txt"]  # a fresh input dir, not the first one's
    assert list((tmp_path / "work").iterdir()) == []  # work dirs removed
    assert dict(os.environ) == environ_before


def test_delete_record_is_skipped_and_create_still_runs(s3: Any, bucket: str,
                                                        aws_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    script = write_script(tmp_path, NESTED_SCRIPT)
    removed = object_created_record(bucket, "input/gone.txt", size=0,
                                    event_name="ObjectRemoved:Delete")
    event = event_of(removed, put(s3, bucket, "input/a.txt", b"alpha"))
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 200
    assert [r["status"] for r in body["records"]] == ["skipped", "completed"]
    assert "ObjectRemoved:Delete" in body["records"][0]["reason"]


def test_lambda_mode_timeout_fails_with_time_budget_error(s3: Any, bucket: str,
                                                          aws_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    script = write_script(tmp_path, 'echo partial > "$TMP_OUTPUT_DIR/p.txt"\n'
                                    'echo working\nsleep 30\n')
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"))
    config = make_config(bucket, script, timeout=60, threshold=1)
    response, body = invoke(event, config, aws_env, tmp_path, timeout=3)

    assert response["statusCode"] == 500
    (record,) = body["records"]
    assert record["status"] == "failed"
    assert "exceeded the time budget" in record["error"]
    assert record["exit_code"] == 128 + 15 and "working" in record["output_tail"]
    assert keys(s3, bucket, "output/") == []


def test_missing_object_is_failed_with_stage_in_error(s3: Any, bucket: str,
                                                      aws_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    script = write_script(tmp_path, NESTED_SCRIPT)
    event = event_of(object_created_record(bucket, "input/never.txt", size=3))
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 500
    (record,) = body["records"]
    assert record["status"] == "failed" and "never.txt" in record["error"]


def test_not_an_s3_event_is_a_400(aws_env: dict[str, str], tmp_path: Path) -> None:
    response, body = invoke({"detail-type": "Scheduled Event"}, "name: x\n", aws_env, tmp_path)

    assert response["statusCode"] == 400
    assert "not an S3 event" in body["error"] and body["records"] == []


def test_config_error_reports_every_record_failed(s3: Any, bucket: str,
                                                  aws_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"))
    response, body = invoke(event, "name: fn\nexecution_mode: fast\ncontainer: {image: x}\n",
                            aws_env, tmp_path)

    assert response["statusCode"] == 500
    assert "execution_mode" in body["error"]
    assert [r["status"] for r in body["records"]] == ["failed"]


def test_script_from_event_field_is_used(s3: Any, bucket: str, aws_env: dict[str, str],
                                         tmp_path: Path) -> None:
    script = write_script(tmp_path, "exit 9\n")  # init_script loses to the event's script
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"))
    event["script"] = base64.b64encode(b'echo from-event > "$TMP_OUTPUT_DIR/e.txt"\n').decode()
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 200, body
    assert s3.get_object(Bucket=bucket, Key="output/e.txt")["Body"].read() == b"from-event\n"


CONTAINER_SCRIPT = """\
set -eu
mkdir -p "$TMP_OUTPUT_DIR/c"
{
  [ -e /etc/debian_version ] && echo "host-os" || echo "image-os"
  busybox | head -n 1 | cut -d' ' -f1
  echo "svc=$EXECUTION_SERVICE"
  cat "$INPUT_FILE_PATH"
} > "$TMP_OUTPUT_DIR/c/view.txt"
"""


@pytest.mark.container
@pytest.mark.skipif(not (Path("/usr/bin/proot").is_file() and Path("/bin/busybox").is_file()),
                    reason="needs proot and busybox-static (build.sh installs them)")
def test_image_file_runs_the_script_in_a_real_container(s3: Any, bucket: str,
                                                        aws_env: dict[str, str],
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.local.image import build_busybox_image

    image = build_busybox_image(tmp_path / "busybox.tar")
    monkeypatch.setenv("SUPERVISOR_UDOCKER_DIR", str(tmp_path / "udocker"))
    aws_env = dict(aws_env, SUPERVISOR_UDOCKER_DIR=str(tmp_path / "udocker"))
    script = write_script(tmp_path, CONTAINER_SCRIPT)
    config = make_config(bucket, script).replace(
        "  image: busybox\n  run_on_host: true\n", f"  image: busybox\n  image_file: {image}\n")
    event = event_of(put(s3, bucket, "input/a.txt", b"inside"))
    response, body = invoke(event, config, aws_env, tmp_path)

    assert response["statusCode"] == 200, body
    view = s3.get_object(Bucket=bucket, Key="output/c/view.txt")["Body"].read().decode()
    assert view.split("\n")[:4] == ["image-os", "BusyBox", "svc=lambda", "inside"]


def test_a_script_that_swaps_its_output_dir_for_a_symlink_uploads_nothing(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-outputs"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("do not upload")
    script = write_script(tmp_path, f'rm -rf "$TMP_OUTPUT_DIR"\n'
                                    f'ln -s {elsewhere} "$TMP_OUTPUT_DIR"\n')
    event = event_of(put(s3, bucket, "input/a.txt", b"alpha"))
    response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)

    assert response["statusCode"] == 500
    (record,) = body["records"]
    assert record["status"] == "failed" and "symlink" in record["error"]
    assert keys(s3, bucket, "output/") == []


def test_a_bad_record_fails_alone_and_the_good_ones_still_run(s3: Any, bucket: str,
                                                              aws_env: dict[str, str],
                                                              tmp_path: Path) -> None:
    script = write_script(tmp_path, NESTED_SCRIPT)
    good = put(s3, bucket, "input/a.txt", b"alpha")
    broken = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": bucket}, "object": {"size": 3}}}  # no key
    response, body = invoke(event_of(good, broken), make_config(bucket, script), aws_env,
                            tmp_path)

    assert response["statusCode"] == 500
    first, second = body["records"]
    assert (first["key"], first["status"]) == ("input/a.txt", "completed")
    assert (second["bucket"], second["status"]) == (bucket, "failed")
    assert "Records[1].s3.object.key is missing" in second["error"]
    assert "output/deep/er/a.txt.copy.txt" in keys(s3, bucket, "output/")


def test_the_script_gets_the_s3_event_and_the_instance_ip_as_scar_scripts_read_them(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    from supervisor.runner import local_ip

    script = write_script(tmp_path, 'printf "%s" "$EVENT" > "$TMP_OUTPUT_DIR/event.txt"\n'
                                    'printf "%s" "$INSTANCE_IP" > "$TMP_OUTPUT_DIR/ip.txt"\n')
    record = put(s3, bucket, "input/a.txt", b"alpha")
    del record["eventName"]  # as in faas-supervisor's own test events: still processed
    response, body = invoke(event_of(record), make_config(bucket, script), aws_env, tmp_path)
    assert body["records"][0]["status"] == "completed", body
    event = json.loads(s3.get_object(Bucket=bucket, Key="output/event.txt")["Body"].read())
    assert event == {"Records": [record]}  # jq '.Records[0].s3.object.key' works
    ip = s3.get_object(Bucket=bucket, Key="output/ip.txt")["Body"].read().decode()
    assert ip == local_ip()


DIRECT_SCRIPT = """\
if [ -n "$INPUT_FILE_PATH" ]; then cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/echo.txt"; fi
echo "input=[$INPUT_FILE_PATH] bucket=[$STORAGE_BUCKET]" > "$TMP_OUTPUT_DIR/seen.txt"
echo "ran the init script"
"""


def direct(event: Any, config_yaml: str, aws_env: dict[str, str],
           tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    response, body = invoke(event, config_yaml, aws_env, tmp_path)
    assert response["isBase64Encoded"] is False  # SCAR's CLI reads the key
    return response, body


def test_an_empty_event_runs_the_script_once_with_no_input(s3: Any, bucket: str,
                                                           aws_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    response, body = direct({}, make_config(bucket, script), aws_env, tmp_path)
    assert response["statusCode"] == 200, body
    (record,) = body["records"]
    assert (record["status"], record["bucket"], record["key"]) == ("completed", "", "")
    assert "ran the init script" in record["output_tail"]
    seen = s3.get_object(Bucket=bucket, Key="output/seen.txt")["Body"].read().decode()
    assert seen == "input=[] bucket=[]\n"


def test_a_script_in_the_event_replaces_the_init_script(s3: Any, bucket: str,
                                                        aws_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    other = base64.b64encode(b'echo "the event\'s script" > "$TMP_OUTPUT_DIR/other.txt"\n')
    # as JSON text, the way some clients hand it over
    response, body = direct(json.dumps({"script": other.decode()}),
                            make_config(bucket, script), aws_env, tmp_path)
    assert body["records"][0]["status"] == "completed", body
    assert keys(s3, bucket, "output/") == ["output/other.txt"]


def test_cmd_args_run_the_command_instead_of_the_script(s3: Any, bucket: str,
                                                       aws_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    event = {"cmd_args": json.dumps(["sh", "-c", 'echo "args: $0 $1"', "a b", "c"])}
    response, body = direct(event, make_config(bucket, script), aws_env, tmp_path)
    (record,) = body["records"]
    assert record["status"] == "completed", record
    assert "args: a b c" in record["output_tail"]
    assert "ran the init script" not in record["output_tail"]


def test_an_api_gateway_request_body_is_the_input_file(s3: Any, bucket: str,
                                                      aws_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    payload = bytes(range(256))
    event = {"httpMethod": "POST", "path": "/launch", "requestContext": {"stage": "scar"},
             "headers": {"Content-Disposition": 'attachment; filename="data.bin"'},
             "isBase64Encoded": True, "body": base64.b64encode(payload).decode()}
    response, body = direct(event, make_config(bucket, script), aws_env, tmp_path)
    assert body["records"][0]["status"] == "completed", body
    assert s3.get_object(Bucket=bucket, Key="output/echo.txt")["Body"].read() == payload
    seen = s3.get_object(Bucket=bucket, Key="output/seen.txt")["Body"].read().decode()
    assert "/data.bin] bucket=[]" in seen


def test_a_direct_invocation_of_a_batch_function_is_refused_in_one_line(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    config = make_config(bucket, script, mode="batch")
    response, body = direct({}, config, aws_env, tmp_path)
    (record,) = body["records"]
    assert record["status"] == "failed" and "execution_mode batch" in record["error"]
    assert "\n" not in record["error"] and keys(s3, bucket, "output/") == []


def test_an_event_that_is_no_kind_of_invocation_is_a_400(aws_env: dict[str, str],
                                                         tmp_path: Path, bucket: str) -> None:
    script = write_script(tmp_path, DIRECT_SCRIPT)
    for event in ("[1, 2]", {"what": "ever"}):
        response, body = invoke(event, make_config(bucket, script), aws_env, tmp_path)
        assert response["statusCode"] == 400 and "\n" not in body["error"]
        assert response["isBase64Encoded"] is False


@pytest.mark.parametrize("key", ["input/with\nnewline.txt", "input/nul\x00.txt",
                                 "input/lone\udc80surrogate.txt", "input/\x1b[31mred.txt"])
def test_any_key_gets_an_answer_with_a_one_line_error(s3: Any, bucket: str, key: str,
                                                      aws_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    script = write_script(tmp_path, "echo never\n")
    record = object_created_record(bucket, "input/placeholder.txt", size=5, etag="x")
    record["s3"]["object"]["key"] = key  # as a client might send it, not URL-encoded
    response, body = invoke(event_of(record), make_config(bucket, script), aws_env, tmp_path)
    (result,) = body["records"]
    assert result["status"] == "failed"
    assert "\n" not in result["error"] and "\x00" not in result["error"]
    assert "internal error" not in result["error"]
    assert "\x1b" not in result["error"] and "\udc80" not in result["error"]
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # the answer itself is encodable


def test_outputs_go_to_a_minio_provider_through_its_own_endpoint(
        s3: Any, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    script = write_script(tmp_path, 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n')
    config = make_config(bucket, script).replace(
        f"- storage_provider: s3\n  path: {bucket}/output\n  suffix: [.txt]\n",
        f"- storage_provider: minio.lab\n  path: {bucket}/from-minio\n") + textwrap.dedent(f"""\
        storage_providers:
          minio:
            lab:
              endpoint: {aws_env['AWS_ENDPOINT_URL']}
              access_key: minio-user
              secret_key: minio-secret
              region: us-east-1
        """)
    assert "minio.lab" in config
    response, body = invoke(event_of(put(s3, bucket, "input/a.txt", b"to minio")), config,
                            aws_env, tmp_path)
    assert body["records"][0]["status"] == "completed", body
    assert body["records"][0]["uploaded"] == [f"s3://{bucket}/from-minio/copy.txt"]
    got = s3.get_object(Bucket=bucket, Key="from-minio/copy.txt")["Body"].read()
    assert got == b"to minio"
    assert "minio-secret" not in response["body"]
