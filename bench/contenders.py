"""The three contenders and exactly how each one is started.

* ``ours``: this project, ``python -m supervisor.batch_entry`` (what ``supervisor-batch``
  runs) from the project venv; in Lambda, ``supervisor.handler.lambda_handler``.
* ``peer``: faas-supervisor 1.5.8 from its own venv (``bench/.peer-venv``). On Batch, SCAR's
  job definition runs ``/bin/sh -c 'echo $EVENT | supervisor'``: its binary mode reads the
  event on stdin, so the runner writes ``EVENT`` to its stdin (same variables otherwise).
  In Lambda, ``faassupervisor.faas.aws_lambda.function_handler.lambda_handler`` with
  ``AWS_EXECUTION_ENV=AWS_Lambda_Image`` (its container-image runtime: the script runs
  with ``/bin/sh``, no udocker) and the configuration in ``FDL``. For the hand-off, its
  udocker path (the only one that delegates on timeout) with ``UDOCKER_EXEC`` pointing at
  a stub that runs the entrypoint directly.
* ``floor``: ``bench/floor.py``, from the project venv.

Every contender reaches moto through ``AWS_ENDPOINT_URL``, which botocore (≥ 1.31)
honours for every client, so none of them is modified.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Contender", "make_contenders", "BENCH_DIR", "UDOCKER_STUB"]

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PEER_VENV = BENCH_DIR / ".peer-venv"

UDOCKER_STUB = """\
#!/bin/sh
# Stands in for udocker in faas-supervisor's Lambda path: every container command is a
# no-op that reports the image and container as present; "run" executes the entrypoint.
case "$1" in
  images) echo "busybox" ;;
  ps) echo "udocker_container" ;;
  --quiet)
    for arg in "$@"; do
      case "$arg" in --entrypoint=*) entry="${arg#--entrypoint=}" ;; esac
    done
    exec $entry ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Contender:
    """One runtime under test."""

    name: str  # "ours", "peer", "floor"
    label: str
    python: str

    def batch_argv(self) -> list[str]:
        """The Batch-side command (the environment carries EVENT, FUNCTION_CONFIG, SCRIPT)."""
        if self.name == "ours":
            return [self.python, "-m", "supervisor.batch_entry"]
        if self.name == "peer":
            return [self.python, "-m", "faassupervisor.supervisor"]
        return [self.python, str(BENCH_DIR / "floor.py")]

    def batch_stdin(self, event_json: str) -> Optional[bytes]:
        """What goes to stdin: the event for the peer (as ``echo $EVENT |``), else nothing."""
        return event_json.encode("utf-8") if self.name == "peer" else None

    def lambda_env(self, config_b64: str, *, handoff: bool = False,
                   stub: Optional[Path] = None, udocker_dir: Optional[Path] = None
                   ) -> dict[str, str]:
        """The Lambda-side variables that carry the configuration (and the peer's runtime)."""
        if self.name != "peer":
            return {"FUNCTION_CONFIG": config_b64}
        env = {"FDL": config_b64}
        if handoff:
            assert stub is not None and udocker_dir is not None
            env.update(AWS_EXECUTION_ENV="AWS_Lambda_python3.11", UDOCKER_EXEC=str(stub),
                       UDOCKER_DIR=str(udocker_dir))
        else:
            env["AWS_EXECUTION_ENV"] = "AWS_Lambda_Image"
        return env

    def lambda_argv(self, spec: Path, out: Path) -> list[str]:
        """The in-process Lambda measurement (``lambda_child.py``) for this contender."""
        return [self.python, str(BENCH_DIR / "lambda_child.py"), self.name, str(spec), str(out)]


def make_contenders(peer_python: Optional[str] = None, *,
                    need_peer: bool = True) -> list[Contender]:
    """ours, peer, floor; ours and the floor run on this interpreter (the project venv).

    Without ``need_peer`` (rows that do not run it) a missing peer venv leaves it out.
    """
    peer = peer_python or str(PEER_VENV / "bin" / "python")
    found = os.access(peer, os.X_OK)
    if need_peer and not found:
        raise SystemExit(f"the peer's venv is missing ({peer}); ./build.sh bench creates it")
    return [Contender("ours", "this project", sys.executable),
            *([Contender("peer", "faas-supervisor 1.5.8", peer)] if found else []),
            Contender("floor", "boto3 floor", sys.executable)]
