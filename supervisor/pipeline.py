"""One record through stage-in, the script, and stage-out: the same on Lambda and Batch."""
from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence, TypeVar

from .aws import ClientFactory
from .config import FunctionConfig
from .container.spec import ContainerSpec
from .direct import DirectInvocation
from .errors import ScriptError, ScriptTimeout
from .events import InputObject
from .result import RecordResult
from .runner import RunResult, build_env, local_ip, run, script_argv, write_script
from .storage import stage_in, stage_out
from .watchdog import Deadline
from .workdir import WorkDirs

if TYPE_CHECKING:
    from .container.prepare import Ready

__all__ = ["Job", "run_job", "input_provider", "run_within", "command_script"]

log = logging.getLogger("supervisor.pipeline")

T = TypeVar("T")

# An input below this size comes in one GET: it runs in the invocation's own thread when
# more than QUICK_STEP_MARGIN_S seconds of budget are left.
QUICK_STAGE_IN_BYTES = 1024 * 1024
QUICK_STEP_MARGIN_S = 60.0


@dataclass(frozen=True)
class Job:
    """Everything one run of the user's script needs, resolved up front."""

    obj: Optional[InputObject]  # None: a direct invocation (see ``direct``)
    config: FunctionConfig
    script: str
    request_id: str
    execution_service: str  # "lambda" or "batch"
    deadline: Deadline = Deadline.none()
    upload: bool = True  # False on the non-main nodes of a multi-node Batch job
    container: Optional[ContainerSpec] = None  # run the script in this image (udocker)
    grace: float = 2.0  # seconds between SIGTERM and SIGKILL when the deadline passes
    direct: Optional[DirectInvocation] = None  # what a direct invocation brings instead
    event_json: str = "{}"  # EVENT for a direct invocation: the event as received


def input_provider(config: FunctionConfig, bucket: str) -> str:
    """The storage provider of the input path the object's bucket belongs to ("s3" if none)."""
    for path in config.input:
        if path.bucket == bucket:
            return path.storage_provider
    return "s3"


def run_job(job: Job, *, clients: ClientFactory, base_env: Mapping[str, str],
            work_base: Optional[Path] = None,
            on_line: Optional[Callable[[str], None]] = None,
            clock: Callable[[], float] = time.monotonic) -> RecordResult:
    """Download the object, run the script on it, upload what it wrote.

    With a container spec, the image is had first (pulled or loaded once
    per sandbox; see :mod:`supervisor.container.prepare`), so an image that
    cannot be had fails the record before anything is downloaded.

    Returns ``completed`` when the script exited 0 and every output was
    uploaded, ``failed`` when it exited non-zero (nothing is uploaded).
    Raises ``ScriptTimeout`` when the deadline passed while the image was
    had, during stage-in or the script (the work dir, partial outputs
    included, is gone by then), and the ``ImageError`` / ``StageInError`` /
    ``StageOutError`` / ``ScriptError`` of the failing step.
    """
    obj, config = job.obj, job.config
    start = clock()
    ready = None
    container = job.container
    if container is not None:
        from .container.archive import fetch_archive
        from .container.prepare import prepare

        t0 = clock()
        if container.archive_uri is not None:  # an archive deploy shipped to S3
            container = fetch_archive(container, clients.s3("s3"), job.deadline, clock=clock)
        ready = prepare(container, host_env=base_env, deadline=job.deadline, clock=clock)
        log.info("image ready", extra={"phase": "image", "seconds": round(clock() - t0, 3),
                                       "image": container.image,
                                       "execmode": container.execmode})
        work_base = container.runs_dir
    bucket, key = (obj.bucket, obj.key) if obj is not None else ("", "")
    work = WorkDirs.create(work_base, label=job.execution_service)
    try:
        input_file = _stage_in(job, work, clients, clock)
        script = job.script
        if job.direct is not None and job.direct.cmd_args is not None:
            script = command_script(job.direct.cmd_args, _entrypoint(ready))
        script_path = write_script(script, work)
        result = _run_script(job, container, ready, work, input_file, script_path, base_env,
                             on_line, clock)
        log.info("run done", extra={"phase": "run", "seconds": round(result.duration, 3),
                                    "exit_code": result.exit_code,
                                    "timed_out": result.timed_out})
        if result.timed_out:
            work.clear_outputs()
            raise ScriptTimeout(
                f"script exceeded the time budget after {result.duration:.1f} s and was killed;"
                " its partial outputs were discarded", exit_code=result.exit_code,
                output_tail=result.output_tail)
        if not result.succeeded:
            return RecordResult(bucket=bucket, key=key, status="failed",
                                exit_code=result.exit_code, duration=clock() - start,
                                output_tail=result.output_tail,
                                error=f"script exited with code {result.exit_code}")
        uploaded: list[str] = []
        if not job.upload:
            log.info("stage-out skipped: not the main node", extra={"phase": "stage-out",
                                                                     "files": 0})
        else:
            t0 = clock()
            # All or nothing, inside the time budget: past it, nothing becomes visible and
            # the record is handed off (lambda-batch) or failed.
            uploaded = [u.uri for u in stage_out(clients, work.output_dir, config.output,
                                                 deadline=job.deadline, clock=clock)]
            log.info("stage-out done", extra={"phase": "stage-out",
                                              "seconds": round(clock() - t0, 3),
                                              "files": len(uploaded)})
        return RecordResult(bucket=bucket, key=key, status="completed",
                            exit_code=result.exit_code, duration=clock() - start,
                            uploaded=tuple(uploaded), output_tail=result.output_tail)
    finally:
        work.remove()


def _stage_in(job: Job, work: WorkDirs, clients: ClientFactory,
              clock: Callable[[], float]) -> Optional[Path]:
    """The input file: the S3 object downloaded, a direct invocation's body, or none."""
    obj = job.obj
    t0 = clock()
    if obj is None:
        body = job.direct.body if job.direct is not None else None
        if body is None:
            return None
        path = work.input_dir / (job.direct.body_name if job.direct else "request-body")
        path.write_bytes(body)
        return path
    s3 = clients.s3(input_provider(job.config, obj.bucket))
    quick = 0 < obj.size < QUICK_STAGE_IN_BYTES  # one short GET: not worth a thread
    cancel = threading.Event()
    input_file = run_within(job.deadline, clock, f"stage-in of {obj.uri}", lambda: stage_in(
        s3, bucket=obj.bucket, key=obj.key, input_dir=work.input_dir,
        version_id=obj.version_id, size=obj.size or None, cancel=cancel),
        quick=quick, cancel=cancel)
    log.info("stage-in done", extra={"phase": "stage-in", "seconds": round(clock() - t0, 3),
                                     "bytes": input_file.stat().st_size})
    return input_file


def _now_iso() -> str:
    from .handoff import now_iso  # the one ISO-time formatter

    return now_iso()


def command_script(cmd_args: Sequence[str], entrypoint: Sequence[str] = ()) -> str:
    """The script that runs the image's command with ``cmd_args`` (``cmd_args`` of a direct
    invocation): ``exec ENTRYPOINT... ARGS...``, every word quoted. Pure."""
    return "exec " + " ".join(shlex.quote(word) for word in (*entrypoint, *cmd_args)) + "\n"


def _entrypoint(ready: Optional["Ready"]) -> tuple[str, ...]:
    """The image's ENTRYPOINT, from the metadata udocker keeps beside the container's root."""
    if ready is None:
        return ()
    try:
        data = json.loads((ready.root.parent / "container.json").read_text(encoding="utf-8"))
        entrypoint = (data.get("config") or data.get("container_config") or {}).get("Entrypoint")
    except (OSError, ValueError, AttributeError):
        return ()
    if isinstance(entrypoint, str):
        return (entrypoint,)
    return tuple(str(w) for w in entrypoint) if isinstance(entrypoint, list) else ()


def run_within(deadline: Deadline, clock: Callable[[], float], what: str,
            step: Callable[[], T], *, quick: bool = False,
            cancel: Optional[threading.Event] = None) -> T:
    """Run ``step``, giving up with ``ScriptTimeout`` when the deadline passes first.

    The budget covers stage-in too: at the deadline ``cancel`` is set, so a download
    that watches it stops (between chunks, on its own thread) while the record is
    handed off in the seconds that are left. A ``quick`` step with plenty of
    time left runs in this thread (a thread per invocation costs milliseconds);
    it is checked against the deadline when it returns.
    """
    remaining = deadline.remaining(clock)
    if remaining is None:
        return step()
    if quick and remaining > QUICK_STEP_MARGIN_S:
        result = step()
        if deadline.expired(clock):
            raise ScriptTimeout(f"{what} exceeded the time budget")
        return result
    future: Future[T] = Future()

    def work() -> None:
        try:
            future.set_result(step())
        except BaseException as exc:  # handed to the waiting thread as is
            future.set_exception(exc)

    # A daemon thread: a process that gives up on the download can still exit at once.
    threading.Thread(target=work, name="stage-in", daemon=True).start()
    try:
        return future.result(timeout=remaining)
    except FutureTimeout:
        if cancel is not None:
            cancel.set()
        raise ScriptTimeout(f"{what} exceeded the time budget") from None


def _run_script(job: Job, container: Optional[ContainerSpec], ready: Optional["Ready"],
                work: WorkDirs, input_file: Optional[Path],
                script_path: Path, base_env: Mapping[str, str],
                on_line: Optional[Callable[[str], None]],
                clock: Callable[[], float]) -> RunResult:
    """The script on the host (``/bin/sh``), or in the job's image when it names one."""
    if container is not None:
        from .container.run import container_base_env

        script_base_env: Mapping[str, str] = container_base_env(base_env)
    else:
        script_base_env = base_env
    try:
        env = _script_env(job, script_base_env, input_file, work)
    except ValueError as exc:  # a key or variable no process environment can hold
        raise ScriptError(f"cannot start the script: {exc}") from None
    if container is None:
        return run(script_argv(script_path), env=env, cwd=work.root, deadline=job.deadline,
                   log_path=work.log_path, on_line=on_line, clock=clock, grace=job.grace)
    from .container.run import run_in_container

    return run_in_container(container, script_path=script_path, work=work, env=env,
                            deadline=job.deadline, log_path=work.log_path, on_line=on_line,
                            clock=clock, host_env=base_env, ready=ready, grace=job.grace)


def _script_env(job: Job, script_base_env: Mapping[str, str], input_file: Optional[Path],
                work: WorkDirs) -> dict[str, str]:
    """The script's environment (the contract's variables from the record or invocation)."""
    obj, config = job.obj, job.config
    return build_env(
        base_env=script_base_env, input_file=input_file, work=work,
        bucket=obj.bucket if obj else "", key=obj.key if obj else "",
        event_json=obj.event_json() if obj else job.event_json,
        event_time=obj.event_time if obj else _now_iso(),
        request_id=job.request_id, execution_service=job.execution_service,
        variables=config.container.environment,
        pass_aws_credentials=config.container.pass_aws_credentials,
        instance_ip=local_ip())
