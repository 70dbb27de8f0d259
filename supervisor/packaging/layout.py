"""What the builder makes, from which files, for which Pythons: names, places and limits."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = [
    "Log", "Target", "BUILDER", "PACKAGE", "PINS", "PYZ_MAIN", "LAYER_NAME",
    "UDOCKER_LAYER_NAME", "PYZ_NAME", "ARTEFACT_NAMES", "LAYER_NAMES", "CORE_NAMES",
    "STAMP_NAME", "LAYER_REQUIREMENTS", "LAYER_BOTO3_REQUIREMENTS", "UDOCKER_REQUIREMENTS",
    "PYZ_REQUIREMENTS", "MIB", "MAX_LAYER_ZIP", "MAX_LAYER_UNZIPPED", "PACKAGE_EXCLUDE",
    "RUNTIME_PROVIDED", "PRUNED_PACKAGES", "BOTO_SERVICES", "LAYER_TARGET", "PYZ_TARGET",
]

#: Where the builder says what it does, one line at a time (warnings start "warning: ").
Log = Callable[[str], None]

BUILDER = Path(__file__).resolve().parent  # this package: its sources are a build input
PACKAGE = BUILDER.parent  # the supervisor package the artefacts ship, as installed
PINS = BUILDER / "pins"
PYZ_MAIN = BUILDER / "pyz_main.py"

LAYER_NAME = "supervisor-layer.zip"
UDOCKER_LAYER_NAME = "udocker-layer.zip"
PYZ_NAME = "supervisor-batch.pyz"
ARTEFACT_NAMES = (LAYER_NAME, UDOCKER_LAYER_NAME, PYZ_NAME)
LAYER_NAMES = (LAYER_NAME, UDOCKER_LAYER_NAME)
CORE_NAMES = (LAYER_NAME, PYZ_NAME)  # built together; the udocker layer on its own
STAMP_NAME = ".supervisor-build.json"

LAYER_REQUIREMENTS = PINS / "lambda-layer.txt"
LAYER_BOTO3_REQUIREMENTS = PINS / "lambda-layer-boto3.txt"
UDOCKER_REQUIREMENTS = PINS / "udocker-layer.txt"
PYZ_REQUIREMENTS = PINS / "batch-pyz.txt"

MIB = 1024 * 1024
# Lambda: a layer zip uploaded directly is at most 50 MB; function + layers unzipped 250 MB.
MAX_LAYER_ZIP = 50 * MIB
MAX_LAYER_UNZIPPED = 250 * MIB

# The sub-packages of the supervisor that stay out of the artefacts: the embedded local
# mode (moto server, demo) is a development tool and needs moto; the builder builds them.
PACKAGE_EXCLUDE = ("local", "packaging")

# What the managed Lambda runtime brings (boto3 and its dependencies): top-level names.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six",
                    "urllib3")
# Packages cut down to what the supervisor imports (the import closure, see closure.py).
PRUNED_PACKAGES = ("aws_lambda_powertools",)

# botocore/boto3 service data kept in the pyz: what supervisor-batch and the supervisor's
# clients call (S3 stage-in/out and hand-off, Batch, DynamoDB idempotency, STS, Secrets
# Manager and SSM for provider keys given as references), newest API version only,
# without the documentation examples.
BOTO_SERVICES = ("s3", "batch", "dynamodb", "sts", "secretsmanager", "ssm")


@dataclass(frozen=True)
class Target:
    """The interpreter a set of wheels is chosen for (pip download's platform flags)."""

    python: str  # "3.11"
    platform: str = "manylinux2014_x86_64"

    @property
    def abi(self) -> str:
        """The CPython ABI tag, ``cp311``."""
        return "cp" + self.python.replace(".", "")

    @property
    def tag(self) -> str:
        """``cp311-manylinux2014_x86_64``: the wheelhouse's sub-directory for it."""
        return f"{self.abi}-{self.platform}"


# The layer's wheels are checked against the oldest runtime it serves, the pyz's against
# Python 3.9 (pip refuses a pin whose Requires-Python excludes the target). The platform
# only picks which of PyYAML's wheels is unpacked: its Python files are the same in all,
# and its one compiled file is stripped.
LAYER_TARGET = Target("3.11")
PYZ_TARGET = Target("3.9")
