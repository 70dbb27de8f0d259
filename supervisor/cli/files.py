"""``supervisor put`` and ``supervisor ls``: files in an S3 path (``BUCKET[/PREFIX]``).

A path is a folder, as in a function definition: ``put -b scar-plants/input
daisy.jpg`` writes the key ``input/daisy.jpg``, a folder uploads every file
under it with its relative path (``photos/a/b.jpg`` → ``input/a/b.jpg``), and
``ls -b scar-plants/input`` lists the keys under ``input/``. ``ls`` without
``-b`` lists the deployed functions (:mod:`.functions`), as ``scar ls`` does.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..fileset import named_files
from .args import Subparsers, add_command
from .context import Context
from .errors import CliError
from .functions import run_list_functions
from .output import Column, size, table, when
from .progress import ProgressBar

__all__ = ["register", "run_put", "run_ls", "Location", "Upload", "plan_uploads"]

PUT_EXAMPLES = """
  supervisor put -b scar-plants/input daisy.jpg
  supervisor put -b scar-plants/input photos/          # every file under photos/
  supervisor put -b s3://scar-plants/input/2024 a.jpg b.jpg --json
"""
LS_EXAMPLES = """
  supervisor ls                        # the functions deployed in this region
  supervisor ls -b scar-plants/output
  supervisor ls -b scar-plants --json
"""
LS_COLUMNS: tuple[Column, ...] = (("key", "key"), ("size_text", "size"),
                                  ("modified", "last modified (UTC)"))


@dataclass(frozen=True)
class Location:
    """``BUCKET[/PREFIX]`` as typed: a bucket and a key prefix without slashes at the ends."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> "Location":
        """Read ``bucket``, ``bucket/prefix`` or ``s3://bucket/prefix/``."""
        body = text[len("s3://"):] if text.startswith("s3://") else text
        bucket, _, prefix = body.partition("/")
        if not bucket:
            raise CliError(f"{text!r} names no bucket; give BUCKET or BUCKET/PREFIX")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def key(self, relative: str) -> str:
        """The key of ``relative`` inside this folder."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    @property
    def folder(self) -> str:
        """The ``Prefix`` that lists this folder: ``prefix/`` (or '' for the bucket)."""
        return f"{self.prefix}/" if self.prefix else ""


@dataclass(frozen=True)
class Upload:
    """One local file and the key it goes to."""

    path: Path
    key: str
    size: int


def plan_uploads(paths: Sequence[Path], location: Location) -> list[Upload]:
    """What ``put`` uploads, checked before anything is sent (missing paths, clashes)."""
    uploads: list[Upload] = []
    missing = [str(p) for p in paths if not (p.is_file() or p.is_dir())]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    uploads.extend(Upload(path, location.key(name), path.stat().st_size)
                   for path, name in named_files(paths))
    keys: dict[str, Path] = {}
    for upload in uploads:
        other = keys.setdefault(upload.key, upload.path)
        if other != upload.path:
            raise CliError(f"{other} and {upload.path} would both be uploaded to "
                           f"s3://{location.bucket}/{upload.key}")
    return uploads


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``put`` and ``ls``."""
    parser = add_command(
        subparsers, "put", common=common, func=run_put, examples=PUT_EXAMPLES,
        summary="upload files or folders to an S3 path (an input path starts the function)",
        description="Upload files to BUCKET[/PREFIX]; a folder uploads every file under it, "
                    "keyed by its path relative to the folder. A progress bar is drawn on "
                    "a terminal; the uploaded S3 URIs are printed.")
    parser.add_argument("-b", "--bucket", required=True, metavar="BUCKET[/PREFIX]",
                        help="where to upload (a folder: PREFIX/name)")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="files and folders")
    parser = add_command(
        subparsers, "ls", common=common, func=run_ls, examples=LS_EXAMPLES,
        summary="list the deployed functions, or the objects under an S3 path",
        description="List the functions deployed in this region; with -b, the keys under "
                    "BUCKET[/PREFIX] (a folder), with sizes and dates.")
    parser.add_argument("-b", "--bucket", metavar="BUCKET[/PREFIX]",
                        help="the folder to list (default: list the functions)")


def run_put(args: argparse.Namespace, ctx: Context) -> int:
    """Upload; print one S3 URI per file."""
    location = Location.parse(args.bucket)
    uploads = plan_uploads(args.paths, location)
    if not uploads:
        raise CliError(f"nothing to upload: {', '.join(map(str, args.paths))} holds no files")
    s3 = ctx.clients.s3()
    done: list[dict[str, Any]] = []
    for upload in uploads:
        bar = ProgressBar(ctx.stderr, upload.key, upload.size, enabled=ctx.interactive)
        s3.upload_file(str(upload.path), location.bucket, upload.key, Callback=bar)
        bar.done()
        done.append({"uri": f"s3://{location.bucket}/{upload.key}", "size": upload.size,
                     "path": str(upload.path)})
    ctx.emit(done, lambda: "\n".join(d["uri"] for d in done))
    return 0


def run_ls(args: argparse.Namespace, ctx: Context) -> int:
    """List the folder's objects, oldest key first (S3's order); without one, the functions."""
    if args.bucket is None:
        return run_list_functions(ctx)
    location = Location.parse(args.bucket)
    pages = ctx.clients.s3().get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=location.folder)
    objects = [{"key": o["Key"], "size": o["Size"], "last_modified": o["LastModified"],
                "etag": o.get("ETag", "").strip('"')}
               for page in pages for o in page.get("Contents", [])]

    def text() -> str:
        if not objects:
            return f"no objects under s3://{location.bucket}/{location.folder}"
        rows = [dict(o, size_text=size(o["size"]), modified=when(o["last_modified"]))
                for o in objects]
        total = sum(o["size"] for o in objects)
        return f"{table(rows, LS_COLUMNS)}\n{len(objects)} objects, {size(total)}"

    ctx.emit(objects, text)
    return 0
