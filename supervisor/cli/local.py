"""``supervisor local``: run function definitions on this machine, as AWS would.

The work is :func:`supervisor.local.session.run_local` (an embedded AWS
endpoint, the same provisioning code as ``deploy``, the local Lambda and
Batch executors); this module parses the arguments, prints its progress
lines on stderr as they come, and ends with one row per object (or JSON).
The exit code is 0 only when every object was processed successfully.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

from .args import Subparsers, add_command
from .artefacts import add_artefact_options
from .context import Context
from .errors import CliError
from .localstate import DEFAULT_STATE_DIR
from .output import Column, seconds, table
from .progress import ProgressBar

__all__ = ["register", "run_local_command", "LocalReportLike", "LocalRunner", "report_text",
           "REPORT_COLUMNS", "session_runner"]

EXAMPLES = """
  supervisor local -f examples/wordcount/function.yaml --put examples/wordcount/sample.txt
  supervisor local -f examples/plants/function.yaml --put ./daisy.jpg --put ./rose.jpg
  supervisor local -f function.yaml --put ./big.bin --timeout 5   # see lambda-batch hand off
  supervisor local -f darknet.yaml --request ./dog.jpg   # through its REST API
  supervisor status -n scar-plants --local     # afterwards: what the session recorded
"""
BAR_BYTES = 4 * 1024 * 1024  # an upload this big gets a progress bar on a terminal
REPORT_COLUMNS: tuple[Column, ...] = (
    ("object", "object"), ("function", "function"), ("ran_on", "ran on"),
    ("status", "status"), ("duration_text", "duration"), ("job_id", "batch job"),
    ("outputs", "outputs"))
"""The table's columns (``--json`` has every field: the mode, the job's state, ...)."""


class LocalReportLike(Protocol):
    """What ``run_local`` returns: one row per object, the verdict, the endpoint's URL."""

    @property
    def rows(self) -> list[dict[str, Any]]: ...  # noqa: E704

    @property
    def ok(self) -> bool: ...  # noqa: E704

    @property
    def endpoint(self) -> str: ...  # noqa: E704

    @property
    def session(self) -> str: ...  # noqa: E704


class LocalRunner(Protocol):
    """The signature of :func:`supervisor.local.session.run_local`."""

    def __call__(self, fdl: Path, puts: Sequence[Path], *, timeout: Optional[float],
                 state_dir: Path, progress: Callable[[str], None],
                 max_wait: float, requests: Sequence[Path] = (),
                 stream: Optional[Callable[[str], None]] = None,
                 bars: Optional[Callable[[str, int], ProgressBar]] = None
                 ) -> LocalReportLike: ...


def session_runner(layer_zip: Optional[Path] = None, batch_pyz: Optional[Path] = None,
                   udocker_layer_zip: Optional[Path] = None) -> LocalRunner:
    """The real local session (imported only when the command runs), with the artefacts
    given by option (None: found or built in the per-user cache)."""
    def run(fdl: Path, puts: Sequence[Path], *, timeout: Optional[float], state_dir: Path,
            progress: Callable[[str], None], max_wait: float,
            requests: Sequence[Path] = (),
            stream: Optional[Callable[[str], None]] = None,
            bars: Optional[Callable[[str, int], ProgressBar]] = None) -> LocalReportLike:
        from ..local.session import run_local

        return run_local(fdl, puts, timeout=timeout, state_dir=state_dir, progress=progress,
                         max_wait=max_wait, requests=requests, layer_zip=layer_zip,
                         batch_pyz=batch_pyz, udocker_layer_zip=udocker_layer_zip,
                         stream=stream, bars=bars)

    return run


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``local``."""
    parser = add_command(
        subparsers, "local", common=common, func=run_local_command, examples=EXAMPLES,
        summary="run function definitions locally: embedded AWS endpoint, Lambda and Batch",
        description="Start an embedded AWS endpoint (a moto server on a free loopback port), "
                    "deploy the function definition(s) into it with the same provisioning "
                    "code as deploy, upload the files to the first input path, and let the "
                    "uploads trigger the functions as on AWS (Lambda, and Batch for "
                    "lambda-batch/batch). Prints progress, then one row per object; exits 0 "
                    "only when every object was processed successfully. Each script's "
                    "output is shown as it runs, prefixed with its function and object "
                    "(--quiet: not shown). Every run is a session of its own under "
                    "--state-dir; status and logs --local read the latest (or --session "
                    "ID) afterwards.")
    parser.add_argument("-f", "--file", type=Path, required=True, metavar="FDL",
                        help="the function definition file (YAML)")
    parser.add_argument("--put", type=Path, action="extend", nargs="+", default=[],
                        metavar="PATH",
                        help="files or folders to upload (a folder: every file under it, "
                             "named by its path in the folder); repeat for more")
    parser.add_argument("--request", type=Path, action="append", default=[], metavar="PATH",
                        help="a file to send as the body of a request to the function's "
                             "REST API (api_gateway in its definition; repeat for more)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="the Lambda timeout to use instead of the definition's")
    parser.add_argument("--max-wait", type=float, default=3600.0, metavar="SECONDS",
                        help="give up when the session has not settled after this long "
                             "(default 3600)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not show the scripts' output as they run")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR",
                        help=f"where sessions keep their state, logs and outputs, one folder "
                             f"each (default {DEFAULT_STATE_DIR})")
    add_artefact_options(parser)


def report_text(rows: Sequence[dict[str, Any]]) -> str:
    """The final table, one row per object, then the error of each failed one."""
    if not rows:
        return "no object was processed"
    shown = [dict(r, duration_text=seconds(r.get("duration"))) for r in rows]
    errors: list[str] = []
    for row in rows:
        if row.get("error"):
            errors.append(f"{row.get('object')}: {' '.join(str(row['error']).split())}")
            errors.extend(f"  | {line}" for line in row.get("output_tail") or [])
    return "\n".join([table(shown, REPORT_COLUMNS), *errors])


def run_local_command(args: argparse.Namespace, ctx: Context, *,
                      runner: Optional[LocalRunner] = None) -> int:
    """Run the session; 0 only when every object was processed successfully."""
    runner = runner or session_runner(args.layer_zip, args.pyz, args.udocker_layer_zip)
    if not args.put and not args.request:
        raise CliError("nothing to run: give files with --put (uploads) or --request "
                       "(REST API requests)")
    missing = [str(p) for p in args.put if not (p.is_file() or p.is_dir())]
    missing += [str(p) for p in args.request if not p.is_file()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds")
    if args.max_wait <= 0:
        raise CliError("--max-wait must be a positive number of seconds")
    report = runner(args.file, list(args.put), timeout=args.timeout,
                    state_dir=args.state_dir, progress=ctx.note, max_wait=args.max_wait,
                    requests=list(args.request),
                    stream=None if args.quiet or ctx.json else ctx.note,
                    bars=lambda key, size: ProgressBar(
                        ctx.stderr, key, size, enabled=ctx.interactive and size >= BAR_BYTES))
    rows = list(report.rows)
    ctx.emit({"endpoint": report.endpoint, "ok": report.ok, "session": report.session,
              "rows": rows}, lambda: report_text(rows))
    if report.session:
        ctx.note(f"session {report.session}: supervisor status/logs -n NAME --local read it "
                 f"(--session {report.session} once there are newer ones)")
    if not report.ok:
        raise CliError(f"not every object was processed successfully ({len(rows)} "
                       f"object{'s' if len(rows) != 1 else ''}: see the table)")
    return 0
