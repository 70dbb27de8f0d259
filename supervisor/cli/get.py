"""``supervisor get``: download the files under an S3 path (``BUCKET[/PREFIX]``), e.g. outputs.

The path is a folder, as for ``put``: every object under ``PREFIX/`` is
written to ``DIR`` (``-p``, default ``.``) under its key relative to the
folder (``output/a/b.txt`` → ``DIR/a/b.txt``), the way ``put`` would send it
back. A path that is one object's key downloads that object into ``DIR``.
Every key is checked before anything is written: one that would leave
``DIR`` (``..``, an empty part) is refused. boto3 writes each file under a
temporary name and renames it when complete; a progress bar is drawn on a
terminal.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from botocore.exceptions import ClientError

from .args import Subparsers, add_command
from .context import Context
from .errors import CliError, error_code
from .files import Location
from .progress import ProgressBar

__all__ = ["register", "run_get", "Download", "plan_downloads"]

EXAMPLES = """
  supervisor get -b scar-plants/output                 # every output, into .
  supervisor get -b scar-plants/output -p results/     # into results/
  supervisor get -b scar-plants/output/daisy.jpg.json  # one object
"""


@dataclass(frozen=True)
class Download:
    """One object and the local file it goes to."""

    key: str
    path: Path
    size: int


def plan_downloads(objects: Sequence[tuple[str, int]], location: Location,
                   directory: Path) -> list[Download]:
    """Where each ``(key, size)`` under ``location`` goes in ``directory``; ``CliError``
    (before anything is written) for a key that would land outside it."""
    downloads: list[Download] = []
    unsafe: list[str] = []
    for key, size in objects:
        if key.endswith("/"):
            continue  # a folder marker, no file
        relative = key[len(location.folder):] if key.startswith(location.folder) else \
            PurePosixPath(key).name
        parts = relative.split("/")
        if not relative or any(part in ("", ".", "..") for part in parts):
            unsafe.append(key)
            continue
        downloads.append(Download(key, directory.joinpath(*parts), size))
    if unsafe:
        raise CliError(f"not downloaded: {', '.join(unsafe)} would not be a file under "
                       f"{directory} (an empty, '.' or '..' part)")
    return downloads


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``get``."""
    parser = add_command(
        subparsers, "get", common=common, func=run_get, examples=EXAMPLES,
        summary="download the files under an S3 path (a function's outputs)",
        description="Download every object under BUCKET[/PREFIX] into DIR, keyed by its "
                    "path relative to the folder (as put uploads them), or the one object "
                    "the path names. A progress bar is drawn on a terminal; the files "
                    "written are printed.")
    parser.add_argument("-b", "--bucket", required=True, metavar="BUCKET[/PREFIX]",
                        help="the folder (or object) to download")
    parser.add_argument("-p", "--path", type=Path, default=Path("."), metavar="DIR",
                        help="where to write the files (default: the current directory)")


def _listing(s3: Any, location: Location) -> list[tuple[str, int]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                         Prefix=location.folder)
    return [(o["Key"], int(o["Size"])) for page in pages for o in page.get("Contents", [])]


def _one_object(s3: Any, location: Location) -> list[tuple[str, int]]:
    """The object whose key is the path itself, or nothing."""
    if not location.prefix:
        return []
    try:
        head = s3.head_object(Bucket=location.bucket, Key=location.prefix)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return []
        raise
    return [(location.prefix, int(head.get("ContentLength", 0)))]


def run_get(args: argparse.Namespace, ctx: Context) -> int:
    """Download; print one local path per file."""
    location = Location.parse(args.bucket)
    if args.path.exists() and not args.path.is_dir():
        raise CliError(f"{args.path} is not a folder")
    s3 = ctx.clients.s3()
    objects = _listing(s3, location) or _one_object(s3, location)
    downloads = plan_downloads(objects, location, args.path)
    if not downloads:
        raise CliError(f"nothing to download: no objects under "
                       f"s3://{location.bucket}/{location.folder}")
    done: list[dict[str, Any]] = []
    for download in downloads:
        download.path.parent.mkdir(parents=True, exist_ok=True)
        bar = ProgressBar(ctx.stderr, download.key, download.size, enabled=ctx.interactive)
        s3.download_file(location.bucket, download.key, str(download.path), Callback=bar)
        bar.done()
        done.append({"uri": f"s3://{location.bucket}/{download.key}",
                     "path": str(download.path), "size": download.size})
    ctx.emit(done, lambda: "\n".join(d["path"] for d in done))
    return 0
