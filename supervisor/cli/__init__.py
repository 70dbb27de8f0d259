"""The ``supervisor`` command line (argparse), one module per concern.

::

    main.py        the argument tree and the one error boundary (exit codes)
    context.py     streams, --json, and the AWS clients (one ClientFactory, made lazily)
    output.py      tables and JSON (pure)
    deploy.py      deploy, rm
    artefacts.py   --layer-zip, --pyz, --udocker-layer-zip of deploy and local (else cached)
    build.py       build: the layers and supervisor-batch.pyz (supervisor.packaging)
    files.py       put (with progress.py's bar), ls
    invoke.py      invoke with the S3 event of an existing object
    status.py      status: function, invocations (cloudwatch.py), Batch jobs by state
    logs.py        logs of invocations and Batch jobs
    local.py       local: the embedded local session
    localstate.py  reading a local session's state for status/logs --local

``supervisor --help`` is the manual's first page.
"""
from __future__ import annotations

from .main import build_parser, main

__all__ = ["main", "build_parser"]
