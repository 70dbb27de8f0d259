"""``supervisor logs``: what a function's invocations and its Batch jobs logged, readable.

Which lines: the function's newest (default), one invocation's
(``--request-id``), one Batch job's, every attempt (``--job-id``), or all
that happened to one object: each Lambda invocation of it followed by the
Batch job it was handed to (``--key``). Ids may be the 8-character ones
tables and progress lines show. On AWS they come from CloudWatch Logs
(:mod:`.logs_aws`); with ``--local [DIR]`` from the log files a local
session recorded (:mod:`.logs_local`).

Each log is shown under a ``== … ==`` title, a line as ``time  LEVEL
message  field=value`` (the script's own lines as ``time  script  line``,
see :mod:`.logtext`); ``--json`` prints the records as written instead.
``--follow`` keeps printing new lines as they come, until the invocation or
job asked for has ended (the function's log: until Ctrl-C); with ``--json``
it prints one JSON object per line.

Asking for one request, job or object that has no log (yet) is an error; a
function whose log is empty is not.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..local.sessions import session_dir
from .args import Subparsers, add_command
from .cloudwatch import LogEvent
from .context import Context
from .errors import CliError
from .localstate import DEFAULT_STATE_DIR
from .logs_aws import JobView, KeyView, RecentView, RequestView
from .logs_local import LocalView
from .logsource import Source, View
from .logtext import readable, record_of
from .output import when

__all__ = ["register", "run_logs", "Printer", "show_once", "follow", "FOLLOW_INTERVAL"]

EXAMPLES = """
  supervisor logs -n scar-plants                      # the newest lines of the function
  supervisor logs -n scar-plants --key input/daisy.jpg  # its invocation, then its Batch job
  supervisor logs -n scar-plants --request-id 8f1c2a3b  # one invocation (short ids work)
  supervisor logs -n scar-plants --job-id 4d2e9f01 --follow   # a Batch job, as it runs
  supervisor logs -n scar-plants --local              # the session of supervisor local
  supervisor logs -n scar-plants --local --key daisy.jpg --json
"""
FOLLOW_INTERVAL = 2.0  # seconds between two reads with --follow

Sleep = Callable[[float], None]


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``logs``."""
    parser = add_command(
        subparsers, "logs", common=common, func=run_logs, examples=EXAMPLES,
        summary="print what a function's invocations and Batch jobs logged",
        description="Print the function's newest log lines, one invocation's (--request-id), "
                    "one Batch job's, every attempt (--job-id), or one object's: each "
                    "invocation of it followed by the Batch job it went to (--key). Lines "
                    "are readable (the script's own lines marked 'script'); --json prints "
                    "the records as written; --follow keeps printing as lines come. Ids "
                    "may be the short ones tables and progress lines show. --local reads "
                    "the log files of a local session instead of CloudWatch Logs.")
    parser.add_argument("-n", "--name", required=True, help="the function")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--request-id", metavar="ID", help="one invocation's lines")
    which.add_argument("--job-id", metavar="ID", help="a Batch job's log, every attempt")
    which.add_argument("-k", "--key", metavar="KEY",
                       help="one object's invocations and Batch jobs (its key, or "
                            "s3://BUCKET/KEY)")
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new lines until what is shown has ended "
                             "(the function's log: until Ctrl-C)")
    parser.add_argument("--queue", help="the Batch job queue a short --job-id is looked up "
                                        "in (default: named like the function)")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="lines of the function's log shown first (default 100)")
    parser.add_argument("--local", nargs="?", type=Path, const=DEFAULT_STATE_DIR,
                        metavar="STATE_DIR",
                        help=f"read a local session's log files (default {DEFAULT_STATE_DIR}: the "
                             "latest session)")
    parser.add_argument("--session", metavar="ID",
                        help="with --local: that session (its id as supervisor local printed "
                             "it, or its start) instead of the latest")


class Printer:
    """Writes the lines of sources: readable under their titles, or JSON records.

    With ``streaming`` every line is written at once (``--follow``: JSON
    lines); otherwise they are kept for :meth:`finish`, which prints them
    (``--json``: one JSON array).
    """

    def __init__(self, ctx: Context, *, streaming: bool) -> None:
        self._ctx = ctx
        self._streaming = streaming
        self._records: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._last: Optional[str] = None

    def show(self, source: Source, events: list[LogEvent], *, placeholder: bool = False) -> None:
        """The new ``events`` of ``source`` (``placeholder``: say so when there are none)."""
        if self._ctx.json:
            for event in events:
                self._record({"side": source.side, "id": source.ident,
                              "attempt": source.attempt, **event.to_dict(),
                              "record": record_of(event.message)})
            return
        lines = [f"{_stamp(event)}  {text}" for event in events
                 for text in [readable(event.message, source.context)] if text is not None]
        if not lines and not placeholder:
            return
        if source.key != self._last:
            lines.insert(0, source.title)
            self._last = source.key
        if not events and placeholder:
            lines.append(f"  ({source.tail.missing or 'no log lines yet'})")
        self._write(lines)

    def _record(self, record: dict[str, Any]) -> None:
        if self._streaming:
            self._ctx.stdout.write(json.dumps(record, default=str) + "\n")
            self._ctx.stdout.flush()
        else:
            self._records.append(record)

    def _write(self, lines: list[str]) -> None:
        if self._streaming:
            self._ctx.stdout.write("".join(line + "\n" for line in lines))
            self._ctx.stdout.flush()
        else:
            self._lines.extend(lines)

    def finish(self) -> None:
        """Print what was kept."""
        if not self._streaming:
            self._ctx.emit(self._records, lambda: "\n".join(self._lines))


def _stamp(event: LogEvent) -> str:
    """The event's time, or ``-`` as wide when it is not known (0)."""
    return when(event.timestamp, millis=True) if event.timestamp else "-".ljust(19)


def show_once(view: View, printer: Printer, ctx: Context) -> None:
    """Print every line there is now; ``CliError`` when what was asked for has none."""
    polled = [(source, source.tail.poll(final=True)) for source in view.sources()]
    if not any(events for _, events in polled):
        missing = [s.tail.missing for s, _ in polled if s.tail.missing]
        error = view.empty_error(missing)
        if error:
            raise CliError(error)
        if not polled and not ctx.json:
            ctx.note(view.empty_note())
    for source, events in polled:
        printer.show(source, events, placeholder=True)
    printer.finish()


def follow(view: View, printer: Printer, *, sleep: Sleep = time.sleep,
           interval: float = FOLLOW_INTERVAL) -> None:
    """Print lines as they come until the view has ended (or Ctrl-C)."""
    try:
        while True:
            for source in view.sources():
                printer.show(source, source.tail.poll())
            if view.finished():
                sleep(interval)  # the last lines may still be on their way
                for source in view.sources():
                    printer.show(source, source.tail.poll(final=True))
                return
            sleep(interval)
    except KeyboardInterrupt:
        return


def _view(args: argparse.Namespace, ctx: Context) -> View:
    strict = not args.follow
    if args.local is not None:
        return LocalView(session_dir(args.local, args.session), args.name,
                         request_id=args.request_id, job_id=args.job_id, key=args.key,
                         strict=strict)
    queue = args.queue or args.name
    if args.job_id:
        return JobView(ctx, args.job_id, queue, strict=strict)
    if args.request_id:
        return RequestView(ctx, args.name, args.request_id, strict=strict)
    if args.key:
        return KeyView(ctx, args.name, args.key, queue, strict=strict)
    return RecentView(ctx, args.name, args.limit)


def run_logs(args: argparse.Namespace, ctx: Context, *, sleep: Sleep = time.sleep) -> int:
    """Print the logs asked for (``sleep`` waits between two reads of ``--follow``)."""
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    for option in ("request_id", "job_id", "key"):
        if getattr(args, option) is not None and not getattr(args, option).strip():
            raise CliError(f"--{option.replace('_', '-')} needs a value")
    view = _view(args, ctx)
    if args.follow:
        follow(view, Printer(ctx, streaming=True), sleep=sleep)
    else:
        show_once(view, Printer(ctx, streaming=False), ctx)
    return 0
