"""``logs --local``: the log files a local session recorded, as :mod:`.logsource` sources.

The session's state (:mod:`.localstate`) lists each invocation with its
attempts and their log files, and each Batch job with its attempts and
theirs. An invocation is shown with the Batch jobs its records were handed
to, after it: what happened to one object, from its Lambda invocation to
the end of its job. The state is read again on every :meth:`LocalView.sources`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .batchjobs import FINAL_JOB_STATES
from .errors import CliError
from .localstate import function_invocations, job_ids_of, read_state
from .logsource import FileTail, Source, Tails, match_id
from .output import SHORT_ID, cell

__all__ = ["LocalView", "log_path"]

_RUNNING = ("queued", "running")


def log_path(state_dir: Path, recorded: Any) -> Optional[Path]:
    """Where a log file the state names is, seen from here.

    A relative path is the session's working directory's; when it is not
    found from here, the same file under ``state_dir`` is (the state dir
    moved, or this is another directory).
    """
    if not recorded:
        return None
    path = Path(str(recorded))
    if path.is_absolute() or path.exists():
        return path
    for start in range(1, len(path.parts)):
        candidate = state_dir.joinpath(*path.parts[start:])
        if candidate.exists():
            return candidate
    return path


def _objects(invocation: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [(str(o.get("bucket")), str(o.get("key"))) for o in invocation.get("objects") or []
             if isinstance(o, dict)]
    return found or [(str(r.get("bucket")), str(r.get("key")))
                     for r in invocation.get("records") or [] if isinstance(r, dict)]


def _names(invocation: Mapping[str, Any], key: str) -> bool:
    return any(key in (k, f"s3://{b}/{k}", f"{b}/{k}") for b, k in _objects(invocation))


def _has_log(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("log")) or any(isinstance(a, dict) and a.get("log")
                                         for a in entry.get("attempts") or [])


def _job_start(job: Mapping[str, Any]) -> Any:
    history = job.get("history")
    first = history[0] if isinstance(history, list) and history else {}
    return job.get("started") or job.get("created") or (
        first.get("at") if isinstance(first, dict) else None)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


class LocalView:
    """The log files of a local session that a ``logs --local`` command line asks for.

    ``request_id``, ``job_id`` and ``key`` narrow it to one invocation, one
    job or the invocations of one object (with their jobs); with none, every
    invocation of ``function``. ``strict``: what was asked for must be there
    now (else a ``CliError``); otherwise (``--follow``) it may come later.
    """

    def __init__(self, state_dir: Path, function: str, *, request_id: Optional[str] = None,
                 job_id: Optional[str] = None, key: Optional[str] = None,
                 strict: bool = True) -> None:
        self.state_dir = state_dir
        self.function = function
        self.request_id = request_id
        self.job_id = job_id
        self.key = key
        self.strict = strict
        self._tails = Tails()
        self._finished = False

    def finished(self) -> bool:
        """Whether every invocation and job shown has ended (as of the last read)."""
        return self._finished

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """What was asked for has no log lines (yet): an error, unless the whole function's."""
        asked = (f"job {self.job_id}" if self.job_id is not None else
                 f"invocation {self.request_id}" if self.request_id is not None else
                 f"{self.key}" if self.key is not None else None)
        if asked is None:
            return None
        return f"{asked} has no log lines yet" + (f" ({missing[-1]})" if missing else "")

    def empty_note(self) -> str:
        """No invocation of the function logged anything (yet)."""
        return f"no log lines of {self.function} in {self.state_dir}"

    def sources(self) -> list[Source]:
        """The log files to show, each invocation followed by its jobs."""
        doc = read_state(self.state_dir)
        if self.job_id is not None:
            job_id = match_id(self.job_id, doc["jobs"], "job id")
            if job_id is None:
                raise CliError(f"no Batch job {self.job_id} in this local session")
            attempts = self._job_sources(doc, job_id, {})
            self._finished = doc["jobs"][job_id].get("status") in FINAL_JOB_STATES
            if not attempts and self.strict:
                raise CliError(f"job {job_id} is {doc['jobs'][job_id].get('status', '?')} and "
                               "has no log yet")
            return attempts
        invocations = function_invocations(doc, self.function)
        if self.request_id is not None:
            rid = match_id(self.request_id, doc["invocations"], "request id")
            if rid is None:
                raise CliError(f"no invocation {self.request_id} in this local session")
            invocation = dict(doc["invocations"][rid], request_id=rid)
            invocations = [invocation]
            if self.strict and not _has_log(invocation):
                raise CliError(f"invocation {rid} has no log yet")
        elif self.key is not None:
            invocations = [i for i in invocations if _names(i, self.key)]
            if not invocations and self.strict:
                raise CliError(f"no invocation of {self.function} for {self.key} in this "
                               "local session")
        found: list[Source] = []
        ended = bool(invocations)
        for invocation in invocations:
            found.extend(self._invocation_sources(invocation))
            ended = ended and invocation.get("status") not in _RUNNING \
                and not invocation.get("retrying")
            for job_id in job_ids_of(invocation):
                found.extend(self._job_sources(doc, job_id, invocation))
                job = doc["jobs"].get(job_id)
                ended = ended and isinstance(job, dict) and job.get("status") in FINAL_JOB_STATES
        # the function's whole log never ends: new invocations may come
        self._finished = ended and (self.request_id is not None or self.key is not None)
        return found

    def _invocation_sources(self, invocation: Mapping[str, Any]) -> list[Source]:
        rid = str(invocation["request_id"])
        objects = _objects(invocation)
        function = str(invocation.get("function") or self.function)
        context: dict[str, Any] = {"request_id": rid, "function": function}
        if len(objects) == 1:
            context.update(bucket=objects[0][0], key=objects[0][1])
        what = invocation.get("object") or (f"{len(objects)} objects" if objects else "-")
        attempts = [a for a in invocation.get("attempts") or []
                    if isinstance(a, dict) and a.get("log")]
        if not attempts:
            attempts = [{"attempt": invocation.get("attempt"), "log": invocation.get("log"),
                         "status": invocation.get("status"),
                         "started": invocation.get("started")}]
        found = []
        for number, attempt in enumerate(attempts, start=1):
            number = int(attempt.get("attempt") or number)
            again = f", attempt {number}" if len(attempts) > 1 else ""
            title = (f"== lambda {function} request {rid[:SHORT_ID]}{again}: "
                     f"{attempt.get('status') or invocation.get('status', '?')}, {what} ==")
            found.append(self._source(f"lambda/{rid}/{number}", title, "lambda", rid,
                                      attempt.get("log"),
                                      attempt.get("started") or invocation.get("started"),
                                      number, context))
        return found

    def _job_sources(self, doc: Mapping[str, Any], job_id: str,
                     invocation: Mapping[str, Any]) -> list[Source]:
        job = doc["jobs"].get(job_id)
        if not isinstance(job, dict):
            return []
        objects = _objects(invocation) if invocation else []
        context: dict[str, Any] = {"job_id": job_id, "request_id": None, "function": None,
                                   "bucket": None}
        if len(objects) == 1:
            context["key"] = objects[0][1]
        attempts = [a for a in job.get("attempts") or [] if isinstance(a, dict) and a.get("log")]
        if not attempts and job.get("log"):
            attempts = [{"attempt": 1, "log": job["log"], "started": job.get("started")}]
        name = f"batch job {job.get('name') or '-'} {job_id[:SHORT_ID]}"
        found = []
        for number, attempt in enumerate(attempts, start=1):
            number = int(attempt.get("attempt") or number)
            if "exit_code" in attempt or attempt.get("stopped"):
                why = attempt.get("reason")
                state = f"exit {cell(attempt.get('exit_code'))}{', ' + str(why) if why else ''}"
            else:
                state = str(job.get("status", "?"))
            found.append(self._source(f"batch/{job_id}/{number}",
                                      f"== {name}, attempt {number}: {state} ==", "batch",
                                      job_id, attempt.get("log"),
                                      attempt.get("started") or _job_start(job), number,
                                      context))
        return found

    def _source(self, key: str, title: str, side: str, ident: str, log: Any, started: Any,
                attempt: int, context: Mapping[str, Any]) -> Source:
        path = log_path(self.state_dir, log)
        tail = self._tails.get(key, lambda: FileTail(path, str(path or ""), _float(started)))
        return Source(key=key, title=title, side=side, ident=ident, tail=tail,
                      attempt=attempt, context=context)
