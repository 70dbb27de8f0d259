"""``supervisor build``: the Lambda layers and ``supervisor-batch.pyz``, from this package.

:func:`supervisor.packaging.build` does the work; without ``-o`` it builds into the
per-user cache that ``deploy`` and ``local`` use. What the builder says goes to stderr
as it happens; the result is one line per artefact (or JSON).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..packaging import Options, build, cache_dir, report_lines, wheelhouse
from ..packaging.layout import PACKAGE
from .args import Subparsers, add_command
from .context import Context
from .errors import CliError

__all__ = ["register", "run_build"]

EXAMPLES = """
  supervisor build                     # into the cache that deploy and local use
  supervisor build -o artefacts        # artefacts/supervisor-layer.zip and the others
  supervisor build -o artefacts --udocker-tarball udocker-englib-1.2.11.tar.gz  # for Lambda
  supervisor deploy -f function.yaml --layer-zip artefacts/supervisor-layer.zip \\
      --pyz artefacts/supervisor-batch.pyz
"""


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``build``."""
    parser = add_command(
        subparsers, "build", common=common, func=run_build, examples=EXAMPLES,
        summary="build the Lambda layers and supervisor-batch.pyz from this package",
        description="Build, reproducibly (the same inputs give the same bytes), what deploy "
                    "ships: supervisor-layer.zip (the supervisor on Lambda), "
                    "supervisor-batch.pyz (on Batch hosts) and udocker-layer.zip (for "
                    "scripts that run in a container image on Lambda; from this machine's "
                    "proot, patchelf and fakechroot, or a udockertools tarball). Pinned "
                    "wheels are downloaded from PyPI once. Nothing is built when the "
                    "inputs have not changed. deploy and local build what they need "
                    "themselves; this writes the files where you say.")
    parser.add_argument("-o", "--out", type=Path, metavar="DIR",
                        help="where the artefacts go (default: the per-user cache, "
                             "${XDG_CACHE_HOME:-~/.cache}/supervisor/VERSION-HASH)")
    parser.add_argument("--wheelhouse", type=Path, metavar="DIR",
                        help="where the pinned wheels are kept between builds "
                             "(default: ${XDG_CACHE_HOME:-~/.cache}/supervisor/wheels)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    udocker = parser.add_mutually_exclusive_group()
    udocker.add_argument("--udocker", action="store_true", default=None,
                         help="build udocker-layer.zip, failing when its engine files are "
                              "missing (default: when they are here)")
    udocker.add_argument("--no-udocker", dest="udocker", action="store_false",
                         help="leave udocker-layer.zip out")
    parser.add_argument("--udocker-tarball", type=Path, metavar="PATH",
                        help="take udocker-layer.zip's patchelf, proot and libfakechroot "
                             "from this udockertools tarball (udocker-englib-1.2.11.tar.gz) "
                             "instead of this machine's Debian packages: for Lambda")
    parser.add_argument("--udocker-fakechroot", metavar="DISTRO-VERSION",
                        help="with --udocker-tarball: its libfakechroot for this guest "
                             "distribution (e.g. Fedora-36, CentOS-7; default: the newest "
                             "Fedora one)")
    parser.add_argument("--with-boto3", action="store_true",
                        help="bundle boto3/botocore in the layer instead of the runtime's")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip importing the staged trees and running the engines")
    parser.add_argument("--package", type=Path, metavar="DIR",
                        help="the supervisor package to ship (default: this one; tests "
                             "pass a snapshot)")


def options_of(args: argparse.Namespace) -> Options:
    """The build's options; ``CliError`` for a combination that cannot be built."""
    tarball = args.udocker_tarball.resolve() if args.udocker_tarball else None
    if tarball is not None and not tarball.is_file():
        raise CliError(f"--udocker-tarball {args.udocker_tarball}: no such file")
    if args.udocker_fakechroot and tarball is None:
        raise CliError("--udocker-fakechroot needs --udocker-tarball")
    if tarball is not None and args.udocker is False:
        raise CliError("--udocker-tarball builds udocker-layer.zip: leave out --no-udocker")
    if args.out is None and (tarball is not None or args.with_boto3 or args.package):
        raise CliError("--udocker-tarball, --with-boto3 and --package build something else "
                       "than deploy and local use: give -o DIR")
    package = args.package.resolve() if args.package else None
    if package is not None and (package.name != "supervisor"
                                or not (package / "__init__.py").is_file()):
        raise CliError(f"--package {args.package}: not a directory 'supervisor' with "
                       "__init__.py")
    out = args.out.resolve() if args.out else cache_dir(os.environ)
    house = args.wheelhouse.resolve() if args.wheelhouse else wheelhouse(os.environ)
    return Options(out=out, wheelhouse=house, package=package or PACKAGE,
                   with_boto3=args.with_boto3, force=args.force, verify=args.verify,
                   udocker=args.udocker, udocker_tarball=tarball,
                   udocker_fakechroot=args.udocker_fakechroot)


def run_build(args: argparse.Namespace, ctx: Context) -> int:
    """Build what is out of date; print each artefact's path, sizes and SHA-256."""
    found = build(options_of(args), ctx.note)
    ctx.emit({name: artefact.to_dict() for name, artefact in sorted(found.items())},
             lambda: "\n".join(report_lines(found)))
    return 0
