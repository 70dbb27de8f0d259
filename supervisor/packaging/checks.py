"""The checks of a staged tree and a built artefact: import and use it in a clean Python,
run the written .pyz, and keep each layer within Lambda's size limits."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import BuildError
from .layout import LAYER_NAME, LAYER_NAMES, MAX_LAYER_UNZIPPED, MAX_LAYER_ZIP, MIB

__all__ = ["tail", "run_check", "check_pyz_runs", "check_layer_size", "check_layers_total",
           "layer_sizes", "layers_total", "mb", "PYZ_CHECK", "LAYER_CHECK", "UDOCKER_CHECK"]


def tail(text: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a subprocess's output, for a message."""
    return "\n".join(text.strip().splitlines()[-lines:])


PYZ_CHECK = r"""
import io, sys, contextlib
sys.path.insert(0, sys.argv[1])
import yaml
assert not yaml.__with_libyaml__, "PyYAML's C extension is present"
assert yaml.safe_load("a: [1, 2]") == {"a": [1, 2]}
import supervisor.batch_entry, boto3
from botocore.stub import Stubber
calls = {"s3": "list_buckets", "batch": "describe_job_queues", "dynamodb": "list_tables",
         "sts": "get_caller_identity", "secretsmanager": "list_secrets",
         "ssm": "describe_parameters"}
session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                region_name="eu-west-1")
for service, operation in calls.items():
    client = session.client(service)
    with Stubber(client) as stub:  # endpoint rules and models load; no request is sent
        stub.add_response(operation, {})
        getattr(client, operation)()
for mod in ("supervisor", "yaml", "boto3", "botocore", "s3transfer", "urllib3"):
    path = sys.modules[mod].__file__
    assert path.startswith(sys.argv[1]), (mod, path)
with contextlib.redirect_stdout(io.StringIO()):
    try:
        supervisor.batch_entry.main(["--version"])
    except SystemExit:
        pass
print("ok")
"""

LAYER_CHECK = r"""
import contextlib, importlib, io, json, sys
layer, runtime = sys.argv[1], sys.argv[2]
sys.path[:] = [layer] + sys.path + [runtime]  # the runtime's boto3 comes after /opt/python
for name in json.loads(sys.argv[3]):
    importlib.import_module(name)
import yaml, boto3
assert not yaml.__with_libyaml__, "PyYAML's C extension is present"
assert yaml.safe_load("a: [1, 2]") == {"a": [1, 2]}
import supervisor.handler, supervisor.delegate
for mod in ("supervisor", "yaml", "aws_lambda_powertools"):
    assert sys.modules[mod].__file__.startswith(layer), (mod, sys.modules[mod].__file__)
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer,
    IdempotencyConfig, idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError)
with contextlib.redirect_stdout(io.StringIO()) as out:
    logger = Logger(service="check")
    logger.append_keys(request_id="r")
    logger.info("hello", extra={"k": 1})
    metrics = Metrics(namespace="Check", service="check")
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Duration", unit=MetricUnit.Seconds, value=0.5)
    metrics.flush_metrics()
assert '"Invocations"' in out.getvalue(), out.getvalue()
client = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                               region_name="eu-west-1").client("dynamodb")
store = DynamoDBPersistenceLayer(table_name="t", boto3_client=client)
settings = IdempotencyConfig(event_key_jmespath="identity", raise_on_no_idempotency_key=True)
idempotent_function(lambda item: item, data_keyword_argument="item",
                    persistence_store=store, config=settings)
print("ok")
"""


UDOCKER_CHECK = r"""
import sys
site, version = sys.argv[1], sys.argv[2]
sys.path.insert(0, site)
import udocker, udocker.maincmd, udocker.engine.fakechroot, udocker.engine.proot
import udocker.helper.elfpatcher, udocker.tools
assert udocker.__version__ == version, (udocker.__version__, version)
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] == "udocker":
        assert module.__file__.startswith(site + "/"), (name, module.__file__)
print("ok")
"""


def run_check(code: str, *args: str, python: Optional[str] = None) -> None:
    """Run ``code`` with ``args`` in ``python -I -S -B``; it must print ``ok`` alone."""
    proc = subprocess.run([python or sys.executable, "-I", "-S", "-B", "-c", code, *args],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        raise BuildError("the staged tree does not work:\n" + tail(proc.stderr + proc.stdout))


def check_pyz_runs(pyz: Path) -> None:
    """Run the written ``.pyz --version`` in a bare ``python -I -S``, as a Batch job would."""
    with tempfile.TemporaryDirectory(prefix="pyz-check-") as tmp:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SUPERVISOR_CACHE_DIR": tmp}
        proc = subprocess.run([sys.executable, "-I", "-S", str(pyz), "--version"], env=env,
                              cwd=tmp, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not proc.stdout.startswith("supervisor-batch "):
            raise BuildError(f"{pyz.name} --version failed:\n"
                             + tail(proc.stderr + proc.stdout))


def layer_sizes(zip_bytes: int, unzipped_bytes: int, *, max_zip: int = MAX_LAYER_ZIP,
                max_unzipped: int = MAX_LAYER_UNZIPPED) -> str:
    """Both sizes of a layer and their limits, as one line."""
    return (f"{mb(zip_bytes)} zipped (limit {mb(max_zip)}), "
            f"{mb(unzipped_bytes)} unzipped (limit {mb(max_unzipped)})")


def layers_total(unzipped_bytes: int, *, max_unzipped: int = MAX_LAYER_UNZIPPED) -> str:
    """The layers' unzipped total and its limit, as one line."""
    return (f"{' + '.join(LAYER_NAMES)}: {mb(unzipped_bytes)} unzipped "
            f"(limit {mb(max_unzipped)} for a function and all its layers)")


def check_layer_size(zip_bytes: int, unzipped_bytes: int, *, max_zip: int = MAX_LAYER_ZIP,
                     max_unzipped: int = MAX_LAYER_UNZIPPED, name: str = LAYER_NAME) -> str:
    """Both sizes as one line; ``BuildError`` when either is over Lambda's limit."""
    line = layer_sizes(zip_bytes, unzipped_bytes, max_zip=max_zip, max_unzipped=max_unzipped)
    over = []
    if zip_bytes > max_zip:
        over.append(f"the zip is over the {mb(max_zip)} Lambda accepts for a layer upload")
    if unzipped_bytes > max_unzipped:
        over.append(f"unzipped it is over the {mb(max_unzipped)} Lambda allows for a "
                    "function and its layers")
    if over:
        raise BuildError(f"{name} is too big: {line}: " + "; ".join(over))
    return line


def check_layers_total(unzipped_bytes: int, *, max_unzipped: int = MAX_LAYER_UNZIPPED) -> str:
    """The layers' unzipped total as one line; ``BuildError`` when over Lambda's limit."""
    line = layers_total(unzipped_bytes, max_unzipped=max_unzipped)
    if unzipped_bytes > max_unzipped:
        raise BuildError(f"the layers are too big together: {line}")
    return line


def mb(size: int) -> str:
    """``1.5 MB``."""
    return f"{size / MIB:.1f} MB"
