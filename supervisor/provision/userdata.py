"""The launch template's user data: put ``supervisor-batch.pyz`` on every Batch host.

AWS Batch merges a launch template's user data with its own, so it must be a
MIME multipart document. The part is a shell script that copies the .pyz
from the staging bucket with ``aws s3 cp`` (the instance role's
credentials), checks its SHA-256, and moves it into place at
``/opt/supervisor/supervisor-batch.pyz``; the job definition mounts that
directory read-only into the job container.

Why ``aws s3 cp`` and not ``curl`` of a presigned URL (as SCAR's curl of a
GitHub release): a presigned URL expires (at most 7 days, less with role
credentials), but the compute environment starts hosts whenever jobs arrive,
months after the deploy. The instance role (``batch.compute_resources.
instance_role``) needs ``s3:GetObject`` on the artifact key. When the AMI
has no AWS CLI, the script installs it with dnf or yum.
"""
from __future__ import annotations

import shlex

__all__ = ["HOST_DIR", "HOST_PYZ", "BOUNDARY", "batch_user_data"]

HOST_DIR = "/opt/supervisor"
HOST_PYZ = f"{HOST_DIR}/supervisor-batch.pyz"
BOUNDARY = "==SUPERVISOR-BOUNDARY=="

_SCRIPT = """\
#!/bin/bash
# supervisor: install supervisor-batch.pyz for AWS Batch jobs
set -euo pipefail
mkdir -p {dir}
if ! command -v aws >/dev/null 2>&1; then
  dnf install -y awscli >/dev/null 2>&1 || yum install -y awscli >/dev/null 2>&1 || true
fi
for attempt in 1 2 3 4 5; do
  if aws s3 cp --only-show-errors --region {region} {source} {tmp}; then
    break
  fi
  sleep $((attempt * 5))
done
echo {check} | sha256sum -c -
chmod 0644 {tmp}
mv -f {tmp} {target}
"""


def batch_user_data(*, bucket: str, key: str, sha256: str, region: str) -> str:
    """The MIME multipart user data that installs ``s3://bucket/key`` at :data:`HOST_PYZ`."""
    tmp = f"{HOST_PYZ}.part"
    script = _SCRIPT.format(
        dir=shlex.quote(HOST_DIR), region=shlex.quote(region),
        source=shlex.quote(f"s3://{bucket}/{key}"), tmp=shlex.quote(tmp),
        check=shlex.quote(f"{sha256}  {tmp}"), target=shlex.quote(HOST_PYZ))
    return (
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\n'
        "\n"
        f"--{BOUNDARY}\n"
        'Content-Type: text/x-shellscript; charset="us-ascii"\n'
        "\n"
        f"{script}\n"
        f"--{BOUNDARY}--\n"
    )
