"""The ``supervisor`` command: the argument tree and the one error boundary.

Every error the CLI knows how to describe (``SupervisorError``, botocore's
and boto3's errors, ``OSError``) becomes one line on stderr,
``supervisor: <reason>``, and exit code 1; argparse's errors exit 2;
Ctrl-C exits 130. Nothing below this module prints a traceback or exits.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import SupervisorError
from . import build, deploy, files, get, init, invoke, local, logs, status
from .args import Parser
from .context import Context, SessionFactory, boto3_session, cli_region
from .errors import reason

__all__ = ["main", "build_parser"]

DESCRIPTION = """\
Run a shell script on every S3 upload, on AWS Lambda or, for long jobs, on AWS Batch.
A function definition (FDL, YAML) names the script, the container image, the
input and output paths and the execution mode (lambda, lambda-batch, batch)."""

EPILOG = """\
typical flow:
  supervisor deploy -f scar-plants.yaml      # buckets, trigger, function, layer, Batch resources
  supervisor put -b scar-plants/input daisy.jpg
  supervisor status -n scar-plants           # invocations and Batch jobs by state
  supervisor logs -n scar-plants --key input/daisy.jpg   # its invocation, then its Batch job
  supervisor get -b scar-plants/output -p results/       # download the outputs
  supervisor rm -f scar-plants.yaml

without an AWS account (an embedded endpoint, a local Lambda and Batch):
  supervisor init hello                      # hello.yaml and hello.sh, a function to start from
  supervisor local -f hello.yaml --put notes.txt
  supervisor local -f examples/wordcount/function.yaml --put examples/wordcount/sample.txt

'supervisor COMMAND --help' shows each command's options and examples. Results are
tables, or JSON with --json; an error is one line on stderr and a non-zero exit code."""

_COMMANDS = (init, deploy, files, get, invoke, status, logs, local, build)


def _global_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """The options accepted before and after the command (``supervisor --json ls ...``).

    In a subcommand their default is "not given", so they never undo the
    same option given before the command.
    """
    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("global options")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print the result as JSON")
    group.add_argument("--region", default=default(None),
                       help="the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, "
                            "then the profile's region in ~/.aws/config)")
    group.add_argument("--endpoint-url", default=default(None), metavar="URL",
                       help="the AWS endpoint (default: boto3's, e.g. AWS_ENDPOINT_URL)")
    group.add_argument("--profile", default=default(None),
                       help="the profile of ~/.aws/config and ~/.aws/credentials "
                            "(default: AWS_PROFILE, else default)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole argument tree."""
    parser = Parser(
        prog="supervisor", description=DESCRIPTION, epilog=EPILOG,
        parents=[_global_options(in_subcommand=False)],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    common = _global_options(in_subcommand=True)
    for module in _COMMANDS:
        module.register(subparsers, common)
    return parser


def _caught() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (SupervisorError, ClientError, BotoCoreError, Boto3Error, OSError)


def main(argv: Optional[Sequence[str]] = None, *,
         session_factory: SessionFactory = boto3_session) -> int:
    """Run one command; the exit code (0 ok, 1 error, 2 bad arguments, 130 interrupted).

    ``session_factory`` makes the boto3 session from ``--profile`` and
    ``--region``; tests pass one whose clients they can watch.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    ctx = Context(stdout=sys.stdout, stderr=sys.stderr, json=args.json,
                  region=cli_region(args.region, os.environ),
                  endpoint_url=args.endpoint_url, profile=args.profile,
                  session_factory=session_factory)
    try:
        return int(args.func(args, ctx))
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("\nsupervisor: interrupted", file=sys.stderr)
        return 130
    except _caught() as exc:
        sys.stdout.flush()
        print(f"supervisor: {reason(exc)}", file=sys.stderr)
        return 1
