"""``./build.sh demo``: one real ``lambda``-mode invocation against the embedded endpoint.

Starts a moto server, creates the example's buckets, uploads a file, sends
the function the S3 event S3 would send, and prints what came out.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..aws import ClientFactory
from ..config import from_fdl, to_yaml
from ..handler import handle
from .context import LocalContext
from .endpoint import start_endpoint
from .s3event import event_of, object_created_record

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wordcount"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; exit 0 when the object was processed and its outputs uploaded."""
    parser = argparse.ArgumentParser(prog="supervisor-demo", description=__doc__)
    parser.add_argument("-f", "--function", type=Path, default=EXAMPLE / "function.yaml")
    parser.add_argument("--put", type=Path, default=EXAMPLE / "sample.txt")
    args = parser.parse_args(argv)

    with start_endpoint() as endpoint:
        print(f"embedded AWS endpoint: {endpoint.url}")
        os.environ.update(endpoint.env)  # this process's boto3 talks to the endpoint
        config = from_fdl(args.function)[0]
        clients = ClientFactory()
        s3 = clients.s3()
        for path in {*config.input, *config.output}:
            s3.create_bucket(Bucket=path.bucket)
        source = config.input[0]
        key = f"{source.key_prefix}/{args.put.name}".lstrip("/")
        s3.upload_file(str(args.put), source.bucket, key)
        head = s3.head_object(Bucket=source.bucket, Key=key)
        print(f"uploaded {args.put} -> s3://{source.bucket}/{key}")

        event = event_of(object_created_record(source.bucket, key,
                                               size=head["ContentLength"], etag=head["ETag"]))
        environ = dict(os.environ,
                       FUNCTION_CONFIG=base64.b64encode(to_yaml(config).encode()).decode())
        context = LocalContext(function_name=config.name, timeout=config.timeout,
                               memory_limit_in_mb=config.memory)
        print(f"invoking {config.name} ({config.execution_mode}) with the S3 event")
        response = handle(event, context, environ=environ, clients=clients)
        body = json.loads(response["body"])
        print(f"\nstatusCode {response['statusCode']}")
        for record in body["records"]:
            print(f"  s3://{record['bucket']}/{record['key']}: {record['status']}"
                  f" (exit {record['exit_code']}, {record['duration']} s)")
            for uri in record["uploaded"]:
                bucket, _, out_key = uri[5:].partition("/")
                text = s3.get_object(Bucket=bucket, Key=out_key)["Body"].read()
                print(f"    -> {uri}\n       {text.decode(errors='replace').strip()[:200]}")
        return 0 if response["statusCode"] == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
