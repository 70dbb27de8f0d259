"""``supervisor init NAME``: a starter function definition and script to begin from.

It writes ``NAME.yaml`` (SCAR's definition language: a ``lambda``-mode
function reading ``s3://NAME/input``, writing ``s3://NAME/output``) and
``NAME.sh`` (counts the lines, words and bytes of each upload) into a
folder, and prints the commands that run them: ``supervisor local -f
NAME.yaml --put FILE`` works as written. Without ``--image`` the script runs
in Lambda's own environment (the definition shows where an image goes);
with it, inside that image. Existing files are kept unless ``--force``.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from .args import Subparsers, add_command
from .context import Context
from .errors import CliError

__all__ = ["register", "run_init", "definition", "script"]

EXAMPLES = """
  supervisor init hello                       # hello.yaml and hello.sh, here
  supervisor init hello -d work/ --image alpine:3.19
  supervisor local -f hello.yaml --put notes.txt   # then: run it locally
"""
# a Lambda function name that is also a bucket name (the starter's bucket is NAME)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")

_DEFINITION = """\
# {name}: runs {name}.sh on every file uploaded to s3://{name}/input/; the files the
# script writes to $TMP_OUTPUT_DIR appear in s3://{name}/output/.
#
#   supervisor local -f {name}.yaml --put FILE    # run it here, no AWS account needed
#   supervisor deploy -f {name}.yaml --dry-run    # what deploy would make on AWS
#   supervisor deploy -f {name}.yaml              # make it (iam.role must exist)
#   supervisor put -b {name}/input FILE           # then each upload runs the script
#
# Bucket names are global on AWS: if {name} is taken, change both paths.
functions:
  aws:
  - lambda:
      name: {name}
      # lambda: in Lambda (up to 900 s); lambda-batch: in Lambda, moved to AWS Batch when
      # its time runs out; batch: always on AWS Batch. The Batch modes need an image
      # and a batch: block with compute_resources: {{subnets, security_group_ids}}.
      execution_mode: lambda
      init_script: {name}.sh
      memory: 512
      timeout: 60
{container}      input:
      - storage_provider: s3
        path: {name}/input
      output:
      - storage_provider: s3
        path: {name}/output
    iam:
      # the function's execution role: it reads the input path and writes the output path
      role: arn:aws:iam::{{account_id}}:role/{name}-lambda
"""
_NO_IMAGE = """\
      # The script runs in Lambda's own environment; to run it inside an image:
      # container:
      #   image: alpine:3.19
"""
_IMAGE = """\
      container:
        image: {image}
"""
_SCRIPT = """\
#!/bin/sh
# {name}.sh: runs once per uploaded file.
#   $INPUT_FILE_PATH   the uploaded file, downloaded
#   $TMP_OUTPUT_DIR    every file written here is uploaded to the output path
# Its output is in `supervisor logs -n {name}`; exiting non-zero fails the file and
# uploads nothing.
set -eu
name=$(basename "$INPUT_FILE_PATH")
echo "counting $name on $EXECUTION_SERVICE"
wc -l -w -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.count"
echo "wrote $name.count"
"""


def definition(name: str, image: str = "") -> str:
    """The starter function definition of ``name`` (with ``image``, run in it)."""
    container = _IMAGE.format(image=image) if image else _NO_IMAGE
    return _DEFINITION.format(name=name, container=container)


def script(name: str) -> str:
    """The starter script of ``name``."""
    return _SCRIPT.format(name=name)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``init``."""
    parser = add_command(
        subparsers, "init", common=common, func=run_init, examples=EXAMPLES,
        summary="write a starter function definition (NAME.yaml) and script (NAME.sh)",
        description="Write NAME.yaml, a function definition reading s3://NAME/input and "
                    "writing s3://NAME/output, and NAME.sh, the script it runs on each "
                    "upload, ready for supervisor local; print the commands that run it.")
    parser.add_argument("name", metavar="NAME",
                        help="the function (and its bucket): 3-63 of a-z, 0-9 and -")
    parser.add_argument("-d", "--dir", type=Path, default=Path("."), metavar="DIR",
                        help="where to write the files (default: the current directory)")
    parser.add_argument("--image", default="", metavar="IMAGE",
                        help="the container image the script runs in (e.g. alpine:3.19)")
    parser.add_argument("--force", action="store_true", help="replace existing files")


def run_init(args: argparse.Namespace, ctx: Context) -> int:
    """Write the two files; print what to run next."""
    name = str(args.name)
    if not _NAME.fullmatch(name) or "--" in name:
        raise CliError(f"{name!r} cannot name a function and its bucket: use 3-63 lowercase "
                       "letters, digits and single hyphens, starting and ending with a letter "
                       "or digit")
    if any(c.isspace() for c in args.image):
        raise CliError(f"--image {args.image!r}: an image reference has no spaces")
    fdl, sh = args.dir / f"{name}.yaml", args.dir / f"{name}.sh"
    existing = [str(p) for p in (fdl, sh) if p.exists()]
    if existing and not args.force:
        raise CliError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
                       ": pass --force to replace")
    args.dir.mkdir(parents=True, exist_ok=True)
    fdl.write_text(definition(name, args.image), encoding="utf-8")
    sh.write_text(script(name), encoding="utf-8")
    sh.chmod(0o755)
    ctx.emit({"definition": str(fdl), "script": str(sh)}, lambda: "\n".join([
        f"wrote {fdl} and {sh}", "next:",
        f"  supervisor local -f {fdl} --put FILE    # run it on this machine",
        f"  supervisor deploy -f {fdl} --dry-run    # what deploy would make on AWS"]))
    return 0
