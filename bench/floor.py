"""The floor: a hand-written boto3 script doing the same work with nothing else.

Batch form (``python bench/floor.py``): reads SCAR's environment (``EVENT`` JSON,
``FUNCTION_CONFIG`` base64 YAML, ``SCRIPT`` base64), and for every record:
``download_file`` the object, run ``/bin/sh SCRIPT`` with the contract's variables,
then upload every file of the output dir to each output path: one ``PutObject`` for a
file under 8 MiB, s3transfer's multipart ``upload_file`` from 8 MiB, up to 8 files at a
time (one at a time, the 200-file run takes twice as long as this project's here, which
would make it no floor). Exit code: the script's (the first non-zero one).

Lambda form (``lambda_handler(event, context)``): the same with one boto3 client and the
configuration read once per process, the script from ``init_script``.

No validation, no logging, no error handling, no deadline: nothing a runtime could skip.
Only boto3, PyYAML (the configuration is YAML, as for the other contenders) and the stdlib.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional
from urllib.parse import unquote_plus

import boto3
import yaml

SMALL = 8 * 1024 * 1024  # below: one PutObject; from: multipart (s3transfer's default)
WORKERS = 8

_CLIENT: Optional[Any] = None
_CONFIG: Optional[dict[str, Any]] = None


def _client() -> Any:
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = boto3.client("s3")
    return _CLIENT


def _config(environ: "os._Environ[str]") -> dict[str, Any]:
    global _CONFIG
    if _CONFIG is None:
        raw = environ.get("FUNCTION_CONFIG") or environ.get("FDL", "")
        _CONFIG = yaml.safe_load(base64.b64decode(raw))
    return _CONFIG


def process(record: dict[str, Any], script: str, outputs: list[dict[str, Any]],
            service: str) -> int:
    """Download, run, upload one record; returns the script's exit code."""
    s3 = _client()
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])
    work = tempfile.mkdtemp()
    try:
        in_dir, out_dir = os.path.join(work, "input"), os.path.join(work, "output")
        os.mkdir(in_dir)
        os.mkdir(out_dir)
        path = os.path.join(in_dir, os.path.basename(key) or "input")
        s3.download_file(bucket, key, path)
        script_path = os.path.join(work, "script.sh")
        with open(script_path, "w") as handle:
            handle.write(script)
        env = dict(os.environ, INPUT_FILE_PATH=path, TMP_INPUT_DIR=in_dir,
                   TMP_OUTPUT_DIR=out_dir, STORAGE_BUCKET=bucket, STORAGE_OBJECT_KEY=key,
                   EVENT=json.dumps(record), EVENT_TIME=record.get("eventTime", ""),
                   EXECUTION_SERVICE=service)
        code = subprocess.call(["/bin/sh", script_path], cwd=work, env=env)
        if code != 0:
            return code
        files = [os.path.join(root, name) for root, _dirs, names in os.walk(out_dir)
                 for name in names]
        jobs = []
        for out in outputs:
            out_bucket, _, prefix = out["path"].partition("/")
            for full in files:
                rel = os.path.relpath(full, out_dir)
                jobs.append((full, out_bucket, f"{prefix}/{rel}" if prefix else rel))
        if len(jobs) == 1:
            _upload(*jobs[0])
        elif jobs:
            with ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(lambda job: _upload(*job), jobs))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _upload(path: str, bucket: str, key: str) -> None:
    s3 = _client()
    if os.path.getsize(path) < SMALL:
        with open(path, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        s3.upload_file(path, bucket, key)


def main() -> int:
    """The Batch form: SCAR's ``EVENT`` / ``FUNCTION_CONFIG`` / ``SCRIPT``."""
    event = json.loads(os.environ["EVENT"])
    outputs = _config(os.environ).get("output") or []
    script = base64.b64decode(os.environ["SCRIPT"]).decode()
    first = 0
    for record in event["Records"]:
        code = process(record, script, outputs, "batch")
        first = first or code
    return first


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda form: the script is the configuration's ``init_script``."""
    config = _config(os.environ)
    with open(config["init_script"]) as handle:
        script = handle.read()
    codes = [process(r, script, config.get("output") or [], "lambda") for r in event["Records"]]
    return {"statusCode": 200 if not any(codes) else 500, "body": json.dumps(codes)}


if __name__ == "__main__":
    sys.exit(main())
