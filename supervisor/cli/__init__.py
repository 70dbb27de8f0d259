"""The ``supervisor`` command line (argparse), one module per concern.

::

    main.py        the argument tree and the one error boundary (exit codes)
    args.py        declaring a subcommand; the parser whose usage errors are one line
    context.py     streams, --json, and the AWS clients (one ClientFactory, made lazily)
    output.py      tables (fitted to terminal.py's width) and JSON (pure)
    init.py        init: a starter function definition and script
    deploy.py      deploy, rm
    artefacts.py   --layer-zip, --pyz, --udocker-layer-zip of deploy and local (else cached)
    build.py       build: the layers and supervisor-batch.pyz (supervisor.packaging)
    files.py       put (with progress.py's bar), ls (functions.py without -b)
    get.py         get: download a folder or an object
    invoke.py      invoke with the S3 event of an existing object
    status.py      status: function, invocations (cloudwatch.py), Batch jobs by state
                   (batchjobs.py)
    logs.py        logs: readable (logtext.py), --key, --follow, over logsource.py's
                   sources from CloudWatch (logs_aws.py) or a local session (logs_local.py)
    local.py       local: the embedded local session
    localstate.py  reading a local session's state for status/logs --local

``supervisor --help`` is the manual's first page.
"""
from __future__ import annotations

from .main import build_parser, main

__all__ = ["main", "build_parser"]
