"""A record's outputs committed together: none visible until every one is uploaded.

As Hadoop's S3A committers do it: every output is a multipart upload left open (its
parts uploaded, the upload not completed) until the whole set is up; then each upload is
completed. An open upload is no object: nothing is listed, nothing starts a downstream
function, no data is copied. Three phases, each a pool of requests:

(A record's only output, when it is small, is one ``PutObject``: all or nothing as it is.)

1. ``CreateMultipartUpload`` per output;
2. ``UploadPart`` per part (one part for a small file; ``part_size`` parts for a large one);
3. ``CompleteMultipartUpload`` per output, only when 1 and 2 succeeded for all.

A failure or the deadline in 1-2 aborts every upload (nothing ever appeared). A failure in
3 deletes the outputs already completed and aborts the rest, and says so (a Complete sent
again after a lost answer and answered NoSuchUpload counts as made when the object there
has the ETag its parts make). The window that
remains: a crash in the middle of phase 3 can leave part of the set visible.

The deadline is kept even when S3 does not answer: past it nothing more is waited for. A
request still running then is left to end on its own (botocore's timeouts bound it); a
clean-up thread aborts every upload once they all have. A commit (phase 3, or the one
``PutObject``) still running at the deadline may complete after it: the error says how
many outputs were visible by then, and the rest may still appear.
"""
from __future__ import annotations

import functools
import hashlib
import os
import stat
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from .errors import ScriptTimeout, StageOutError, error_code
from .watchdog import Deadline

__all__ = ["Output", "Uploaded", "commit_outputs", "PART_SIZE", "MIN_PART_SIZE"]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part but the last
PART_SIZE = 8 * 1024 * 1024
_SHOWN = 3

Clock = Callable[[], float]
Reasons = Callable[[BaseException], str]


@dataclass(frozen=True)
class Output:
    """One output to commit: a local file, its destination and content type."""

    provider: str
    bucket: str
    key: str
    path: Path
    rel: str
    content_type: str


@dataclass(frozen=True)
class Uploaded:
    """One output, uploaded and committed."""

    bucket: str
    key: str
    size: int

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class _Open:
    """An output's open multipart upload."""

    output: Output
    client: Any
    upload_id: str = ""
    size: int = 0
    fd: int = -1
    etags: dict[int, str] = field(default_factory=dict)

    def parts(self, part_size: int) -> list[tuple[int, int, int]]:
        """(number, offset, length) of each part: one (possibly empty) part at least."""
        count = max(1, -(-self.size // part_size))
        return [(n + 1, n * part_size, min(part_size, self.size - n * part_size))
                for n in range(count)]


class _Failed(Exception):
    """An output that could not be staged: the one-line reason."""


def _open_file(output: Output) -> tuple[int, int]:
    """The output's file, opened without following a symlink; (fd, size)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        output.key.encode("utf-8")
    except UnicodeEncodeError:
        raise _Failed("file name is not valid UTF-8") from None
    try:
        fd = os.open(output.path, flags)
    except FileNotFoundError:
        raise _Failed(f"{output.rel} disappeared before upload") from None
    except OSError as exc:
        raise _Failed(f"cannot open {output.rel}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _Failed(f"{output.rel} is no longer a regular file")
    return fd, info.st_size


class _Phases:
    """Runs each phase's requests in one pool, under the deadline."""

    def __init__(self, pool: ThreadPoolExecutor, deadline: Deadline, clock: Clock) -> None:
        self.pool = pool
        self.deadline = deadline
        self.clock = clock
        self.stop = threading.Event()
        self.abandoned = False  # requests were left running at the deadline

    def remaining(self) -> Optional[float]:
        """Seconds to the deadline; None without one."""
        return self.deadline.remaining(self.clock)

    def leave(self, pending: set[Future[None]]) -> None:
        """Stop waiting for ``pending``: the queued ones never start, the running ones are
        left to end on their own."""
        self.stop.set()
        for future in pending:
            future.cancel()
        self.abandoned = self.abandoned or not all(f.done() for f in pending)

    def run(self, tasks: Sequence[Callable[[], None]], what: str) -> list[BaseException]:
        """Run ``tasks``; the errors. ``ScriptTimeout`` when the deadline passes first
        (the queued requests never start; the running ones are not waited for). After a
        failure the running ones are waited for until the deadline."""
        def guarded(task: Callable[[], None]) -> None:
            if not self.stop.is_set():
                task()

        futures: list[Future[None]] = [self.pool.submit(guarded, t) for t in tasks]
        pending = set(futures)
        while pending:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                self.leave(pending)
                raise ScriptTimeout(f"stage-out exceeded the time budget ({what}); "
                                    "no output was made visible")
            _, pending = wait(pending, timeout=remaining, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                self.stop.set()
                _, pending = wait(pending, timeout=self.remaining())
                self.leave(pending)
                break
        return [e for e in (f.exception() for f in futures if f.done() and not f.cancelled())
                if e]


def commit_outputs(outputs: Sequence[Output], clients: Mapping[str, Any], *,
                   reason: Reasons, deadline: Optional[Deadline] = None,
                   clock: Clock = time.monotonic, part_size: int = PART_SIZE,
                   max_workers: int = 8) -> list[Uploaded]:
    """Upload ``outputs`` and make them visible together; see the module docstring.

    ``clients`` maps each output's provider to its S3 client; ``reason`` turns a
    botocore error into one line. Raises ``StageOutError`` (nothing visible, or what was
    committed removed, said in one line) and ``ScriptTimeout`` (nothing visible, unless a
    commit was still running at the deadline: the message says so).
    """
    if not outputs:
        return []
    part_size = max(part_size, MIN_PART_SIZE)
    deadline = deadline or Deadline.none()
    if len(outputs) == 1:
        single = _put_alone(outputs[0], clients[outputs[0].provider], part_size, reason,
                            deadline, clock)
        if single is not None:
            return [single]
    opened = [_Open(output=o, client=clients[o.provider]) for o in outputs]
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(outputs) * 2)),
                              thread_name_prefix="stage-out")
    phases = _Phases(pool, deadline, clock)
    try:
        return _commit(opened, phases, part_size, reason)
    finally:
        if phases.abandoned:
            threading.Thread(target=_clean_up, args=(opened, pool), name="stage-out-clean-up",
                             daemon=True).start()
        else:
            pool.shutdown()


def _commit(opened: Sequence[_Open], phases: _Phases, part_size: int,
            reason: Reasons) -> list[Uploaded]:
    """The three phases of :func:`commit_outputs` in ``phases``' pool."""
    failures: dict[int, str] = {}
    try:
        try:
            _stage(opened, phases, part_size, failures, reason)
        finally:
            if not phases.abandoned:  # else a running request may still read its file
                _close(opened)
        if failures:
            raise StageOutError(_report(f"{len(failures)} of {len(opened)} outputs failed to "
                                        "upload", opened, failures)
                                + "; none was made visible")
    except BaseException:
        if not phases.abandoned:
            _abort(opened, phases.pool)
        raise
    return _complete(opened, phases, reason)


def _close(opened: Sequence[_Open]) -> None:
    for item in opened:
        if item.fd >= 0:
            os.close(item.fd)
            item.fd = -1


def _clean_up(opened: Sequence[_Open], pool: ThreadPoolExecutor) -> None:
    """After a deadline that left requests running: once they have ended, abort every
    upload (nothing of it was made visible) and close the files."""
    pool.shutdown(wait=True)
    _abort(opened, None)
    _close(opened)


def _put_alone(output: Output, client: Any, part_size: int, reason: Reasons,
               deadline: Deadline, clock: Clock) -> Optional[Uploaded]:
    """A record's only output, when small, in one ``PutObject``: already all or nothing.
    None when it is large (it then goes through the multipart commit). Past the deadline
    the ``PutObject`` is not waited for (``ScriptTimeout``; it may still complete)."""
    if deadline.expired(clock):
        raise ScriptTimeout("stage-out exceeded the time budget (before the upload); "
                            "no output was made visible")
    try:
        fd, size = _open_file(output)
    except _Failed as exc:
        raise StageOutError(f"1 of 1 outputs failed to upload: s3://{output.bucket}/"
                            f"{output.key}: {exc}; none was made visible") from None
    with os.fdopen(fd, "rb") as source:
        if size >= part_size:
            return None
        from .pipeline import run_within  # the one "give up at the deadline" wait

        try:
            run_within(deadline, clock, f"stage-out of s3://{output.bucket}/{output.key}",
                       lambda: client.put_object(Bucket=output.bucket, Key=output.key,
                                                 Body=source, ContentLength=size,
                                                 ContentType=output.content_type))
        except ScriptTimeout as exc:
            raise ScriptTimeout(f"{exc}; the output may still appear") from None
        except Exception as exc:
            raise StageOutError(f"1 of 1 outputs failed to upload: s3://{output.bucket}/"
                                f"{output.key}: {reason(exc)}; none was made visible") from None
    return Uploaded(output.bucket, output.key, size)


def _stage(opened: Sequence[_Open], phases: _Phases, part_size: int,
           failures: dict[int, str], reason: Reasons) -> None:
    """Phases 1 and 2: open every upload and upload its parts (a one-part file's part in
    the same task as its opening: one round less)."""
    def guarded(index: int, step: Callable[[], None]) -> Callable[[], None]:
        def task() -> None:
            try:
                step()
            except _Failed as exc:
                failures[index] = str(exc)
                raise
            except Exception as exc:
                failures[index] = reason(exc)
                raise
        return task

    def upload(item: _Open, number: int, offset: int, length: int) -> None:
        body = os.pread(item.fd, length, offset) if length else b""
        if len(body) != length:
            raise _Failed(f"{item.output.rel} changed while it was uploaded")
        answer = item.client.upload_part(
            Bucket=item.output.bucket, Key=item.output.key, UploadId=item.upload_id,
            PartNumber=number, Body=body)
        item.etags[number] = str(answer["ETag"])

    def create(item: _Open) -> None:
        item.fd, item.size = _open_file(item.output)
        answer = item.client.create_multipart_upload(
            Bucket=item.output.bucket, Key=item.output.key,
            ContentType=item.output.content_type)
        item.upload_id = str(answer["UploadId"])
        parts = item.parts(part_size)
        if len(parts) == 1:
            upload(item, *parts[0])

    if phases.run([guarded(i, functools.partial(create, item))
                   for i, item in enumerate(opened)], "uploading the outputs"):
        return
    tasks = [guarded(i, functools.partial(upload, item, *part))
             for i, item in enumerate(opened) if item.size > part_size
             for part in item.parts(part_size)]
    phases.run(tasks, "uploading the outputs")


def _abort(opened: Sequence[_Open], pool: Optional[ThreadPoolExecutor]) -> None:
    """Abort every open upload, in ``pool`` or one by one (best effort: S3 also expires
    them by lifecycle rule)."""
    def abort(item: _Open) -> None:
        try:
            item.client.abort_multipart_upload(Bucket=item.output.bucket, Key=item.output.key,
                                               UploadId=item.upload_id)
        except Exception:  # nothing more to do: the upload was never visible
            pass

    started = [item for item in opened if item.upload_id]
    if pool is None:
        for item in started:
            abort(item)
        return
    for future in [pool.submit(abort, item) for item in started]:
        future.result()


def _complete(opened: Sequence[_Open], phases: _Phases, reason: Reasons) -> list[Uploaded]:
    """Phase 3: complete every upload; on a failure, remove what was completed."""
    done: list[_Open] = []
    failures: dict[int, str] = {}
    lock = threading.Lock()

    def complete(index: int, item: _Open) -> None:
        parts = [{"PartNumber": n, "ETag": e} for n, e in sorted(item.etags.items())]
        try:
            item.client.complete_multipart_upload(
                Bucket=item.output.bucket, Key=item.output.key, UploadId=item.upload_id,
                MultipartUpload={"Parts": parts})
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload" or not _is_there(item):
                failures[index] = reason(exc)
                return
        with lock:
            done.append(item)

    futures = [phases.pool.submit(complete, i, item) for i, item in enumerate(opened)]
    _, late = wait(futures, timeout=phases.remaining())
    if late:
        phases.leave(late)
        with lock:
            shown = len(done)
        raise ScriptTimeout(f"stage-out exceeded the time budget (committing the outputs); "
                            f"{shown} of {len(opened)} were visible by then and the others "
                            "may still appear")
    if not failures:
        return sorted((Uploaded(i.output.bucket, i.output.key, i.size) for i in opened),
                      key=lambda c: (c.bucket, c.key))
    removed = 0
    for item in done:
        try:
            item.client.delete_object(Bucket=item.output.bucket, Key=item.output.key)
            removed += 1
        except Exception:
            pass
    _abort([item for i, item in enumerate(opened) if i in failures], phases.pool)
    raise StageOutError(_report(f"the commit of {len(opened)} outputs failed for "
                                f"{len(failures)}", opened, failures)
                        + f"; the {removed} already committed were removed"
                        + ("" if removed == len(done) else
                           f" ({len(done) - removed} could not be and stay visible)"))


def _is_there(item: _Open) -> bool:
    """Whether ``item``'s object is the one its upload made: a Complete whose answer was
    lost, sent again, is answered NoSuchUpload when the first one took effect. The ETag of
    a multipart object is the MD5 of its parts' MD5s, ``-`` and the number of parts."""
    etags = [item.etags[n].strip('"') for n in sorted(item.etags)]
    try:
        digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in etags), usedforsecurity=False)
        answer = item.client.head_object(Bucket=item.output.bucket, Key=item.output.key)
    except Exception:  # not an MD5 (encrypted parts), or no answer: it cannot be told
        return False
    return str(answer.get("ETag", "")).strip('"') == f"{digest.hexdigest()}-{len(etags)}"


def _report(head: str, opened: Sequence[_Open], failures: Mapping[int, str]) -> str:
    shown = sorted((f"s3://{opened[i].output.bucket}/{opened[i].output.key}", why)
                   for i, why in failures.items())
    text = "; ".join(f"{uri}: {why}" for uri, why in shown[:_SHOWN])
    more = len(shown) - _SHOWN
    return f"{head}: {text}" + (f"; and {more} more" if more > 0 else "")
