"""What importing the handler costs: the Lambda init phase loads no AWS SDK beyond
botocore's exceptions; boto3, s3transfer and powertools come with the first invocation."""
from __future__ import annotations

import json
import subprocess
import sys


def test_importing_the_handler_loads_no_sdk_it_does_not_need_yet() -> None:
    code = ("import sys, json, supervisor.handler; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = set(json.loads(done.stdout))
    assert loaded & {"boto3", "s3transfer", "aws_lambda_powertools", "yaml"} == set(), loaded
