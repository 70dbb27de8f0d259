"""Stage-in and stage-out: the input object to a local file, output files to S3.

``safe_name``, ``select_outputs``, ``output_key`` and ``content_type`` decide
*what* moves where and touch nothing remote; ``stage_in`` downloads over a boto3 S3
client with s3transfer's ``TransferManager`` (ranged requests, bounded memory) and
``stage_out`` commits a record's outputs together (:mod:`supervisor.commit`).

Foreign errors (botocore, s3transfer, ``OSError``) are translated here into
``StageInError`` / ``StageOutError`` with a one-line message naming the S3 URI
and the reason.
"""
from __future__ import annotations

import errno
import functools
import mimetypes
import os
import secrets
import stat
import threading
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from .aws import ClientFactory
from .commit import Output, Uploaded, commit_outputs
from .config import StoragePath
from .errors import StageInError, StageOutError
from .watchdog import Deadline

if TYPE_CHECKING:
    from s3transfer.manager import TransferConfig

__all__ = [
    "FALLBACK_NAME",
    "Uploaded",
    "content_type",
    "output_key",
    "safe_name",
    "select_outputs",
    "stage_in",
    "stage_out",
]

#: The input file's name when the key has no usable base name.
FALLBACK_NAME = "input"

_NAME_MAX = 255  # bytes, the usual file-name limit (ext4, xfs, tmpfs)
_KEEP_EXT_MAX = _NAME_MAX - 16  # a longer "extension" is not worth keeping
_PART_TAG = ".part-"
_TOKEN_BYTES = 6  # 12 hex characters
_SHOWN_FAILURES = 3
# The one-GET download reads this much at a time and looks at its cancel flag in between.
_GET_CHUNK = 64 * 1024
_CANCEL_POLL_S = 0.05  # how often a waiting ranged download looks at its cancel flag
# Parts in flight per large transfer: each holds up to a part (8 MiB) in memory; four
# keep a 1-2 core Lambda or job busy without the peak memory growing with the file.
_TRANSFER_THREADS = 4



@functools.lru_cache(maxsize=1)
def _transfer_errors() -> tuple[type[BaseException], ...]:
    """Errors a transfer may raise that we translate; anything else is a bug and
    propagates. s3transfer (and the botocore it loads) is imported only when it is
    needed: an ``except`` clause evaluates this only when something was raised."""
    from s3transfer.exceptions import (
        RetriesExceededError,
        S3DownloadFailedError,
        S3UploadFailedError,
        S3ValidationError,
    )

    return (ClientError, BotoCoreError, OSError, RetriesExceededError, S3DownloadFailedError,
            S3UploadFailedError, S3ValidationError, CancelledError)

# Only Python's built-in table, so the answer is the same on Lambda, Batch and a laptop.
@functools.lru_cache(maxsize=1)
def _mime() -> mimetypes.MimeTypes:
    return mimetypes.MimeTypes()  # built on first use: a few ms off every cold start
_ENCODING_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


# ---------------------------------------------------------------------------
# pure helpers


def _cap_bytes(name: str, limit: int) -> str:
    """``name`` cut on a character boundary to at most ``limit`` UTF-8 bytes."""
    raw = name.encode("utf-8")
    if len(raw) <= limit:
        return name
    return raw[:limit].decode("utf-8", "ignore")


def _cap_name(name: str, limit: int = _NAME_MAX) -> str:
    """``name`` shortened to ``limit`` UTF-8 bytes, keeping its extension when it can."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, ext = os.path.splitext(name)
    ext_len = len(ext.encode("utf-8"))
    if stem and ext and ext_len <= min(_KEEP_EXT_MAX, limit - 16):
        return _cap_bytes(stem, limit - ext_len) + ext
    return _cap_bytes(name, limit)


def safe_name(key: str) -> str:
    """The file name the object ``key`` gets inside the input dir.

    The key's last non-empty ``/``-segment (so ``"a/b/"`` gives ``"b"``), with
    NUL removed and capped at 255 UTF-8 bytes keeping the extension. A key with
    no such segment, or whose last one is ``"."`` or ``".."``, gives
    ``FALLBACK_NAME``. The result never contains ``/`` and is never ``.`` or
    ``..``, so ``input_dir / safe_name(key)`` is always directly in ``input_dir``.
    """
    cleaned = key.replace("\0", "").encode("utf-8", "replace").decode("utf-8")
    segments = [segment for segment in cleaned.split("/") if segment]
    if not segments or segments[-1] in (".", ".."):
        return FALLBACK_NAME
    return _cap_name(segments[-1])


def _normalise_filter(entry: str) -> str:
    """A prefix filter as a relative path: no leading ``/`` or ``./``."""
    while entry.startswith("./") or entry.startswith("/"):
        entry = entry[2:] if entry.startswith("./") else entry[1:]
    return entry


def _matches(rel: str, prefix: Sequence[str], suffix: Sequence[str]) -> bool:
    if prefix and not any(rel.startswith(_normalise_filter(p)) for p in prefix):
        return False
    if suffix and not any(rel.endswith(s) for s in suffix):
        return False
    return True


def select_outputs(output_dir: Path, *, prefix: Sequence[str] = (),
                   suffix: Sequence[str] = ()) -> list[tuple[Path, str]]:
    """The files to upload from ``output_dir``: ``(absolute path, relative posix path)``.

    Every regular file under ``output_dir``, recursively, whose relative path
    starts with any of ``prefix`` and ends with any of ``suffix`` (an empty
    list matches everything), sorted by relative path. Symlinks (to files or
    directories) are neither returned nor followed; FIFOs, sockets and devices
    are skipped; nothing that resolves outside ``output_dir`` is returned, and
    an ``output_dir`` that is itself reached through a symlink is refused
    (``StageOutError``): pass a path without symlinks (``WorkDirs`` does).
    Prefix entries are read as relative paths (a leading ``/`` or ``./`` is
    ignored). A missing ``output_dir`` has no outputs.

    Raises ``StageOutError`` when a directory under ``output_dir`` cannot be listed.
    """
    root = Path(os.path.abspath(output_dir))
    real_root = os.path.realpath(root)
    if real_root != str(root) and os.path.lexists(root):
        # The script replaced its output dir (or a dir above it) with a symlink: following
        # it could upload anything the link points at, the function's own secrets included.
        raise StageOutError(f"the output dir {root} leads to {real_root} through a symlink; "
                            "nothing is uploaded from it")
    errors: list[OSError] = []
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                mode = os.lstat(full).st_mode
            except FileNotFoundError:
                continue  # gone already: it is not an output
            except OSError as exc:
                raise StageOutError(f"cannot inspect output {full}: {exc.strerror}") from exc
            if not stat.S_ISREG(mode):
                continue
            real = os.path.realpath(full)
            if os.path.commonpath([real_root, real]) != real_root:
                continue
            rel = PurePath(os.path.relpath(full, root)).as_posix()
            if _matches(rel, prefix, suffix):
                found.append((Path(full), rel))
    for err in errors:
        if isinstance(err, FileNotFoundError) and os.path.abspath(err.filename or "") == str(root):
            continue
        raise StageOutError(f"cannot list outputs in {err.filename}: {err.strerror}") from err
    found.sort(key=lambda item: item[1])
    return found


def output_key(key_prefix: str, rel: str) -> str:
    """The S3 key of output ``rel`` under ``key_prefix`` (``""`` = bucket root).

    Segments are joined with single ``/``; empty and ``"."`` segments are
    dropped, so the key never starts with ``/`` nor contains ``//`` and
    ``"./a"`` is ``"a"``. Other segments (``..`` included) are kept verbatim:
    S3 keys are flat names, nothing there can be escaped. Raises
    ``ValueError`` when nothing is left.
    """
    parts = [part for part in f"{key_prefix}/{rel}".split("/") if part not in ("", ".")]
    if not parts:
        raise ValueError(f"no S3 key can be made from prefix {key_prefix!r} and path {rel!r}")
    return "/".join(parts)


def content_type(rel: str) -> str:
    """The ``Content-Type`` for an output named ``rel``.

    Python's built-in table (system files are not read, so every host agrees);
    a compressed name like ``x.tar.gz`` gets the compression's type
    (``application/gzip``); unknown names get ``application/octet-stream``.
    """
    guessed, encoding = _mime().guess_type(rel, strict=False)
    if encoding is not None:
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"


# ---------------------------------------------------------------------------
# reasons, one line each


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _client_reason(exc: ClientError, missing: str) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "")) or "error"
    message = _one_line(str(error.get("Message", "")))
    if code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
        return missing
    if code == "NoSuchBucket":
        return "bucket does not exist"
    if code in ("403", "AccessDenied", "Forbidden", "AllAccessDisabled"):
        return "access denied"
    if code in ("412", "PreconditionFailed"):
        return "object changed during the transfer"
    return f"{code}: {message}" if message else code


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    elif exc.errno == errno.EDQUOT:
        reason = "disk quota exceeded"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename:
        reason = f"{reason}: {exc.filename}"
    return _one_line(reason)


def _reason(exc: BaseException, missing: str) -> str:
    if isinstance(exc, ClientError):
        return _client_reason(exc, missing)
    if isinstance(exc, OSError):
        return _os_reason(exc)
    from s3transfer.exceptions import S3DownloadFailedError, S3UploadFailedError

    if isinstance(exc, (S3DownloadFailedError, S3UploadFailedError)) and exc.__cause__:
        return _reason(exc.__cause__, missing)
    return _one_line(str(exc)) or type(exc).__name__


# ---------------------------------------------------------------------------
# stage-in


def _s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _open_temp(directory: Path, name: str) -> tuple[Path, int]:
    """Create ``.<name>.part-<random>`` in ``directory`` exclusively; return it and its fd."""
    budget = _NAME_MAX - 1 - len(_PART_TAG) - 2 * _TOKEN_BYTES
    stem = _cap_name(name, budget)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(8):
        temp = directory / f".{stem}{_PART_TAG}{secrets.token_hex(_TOKEN_BYTES)}"
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


_GET_ATTEMPTS = 3


def _cancelled(uri: str) -> StageInError:
    return StageInError(f"cannot download {uri}: cancelled (the time budget ran out)")


def _copy_body(body: Any, sink: Any, cancel: Optional[threading.Event], uri: str) -> None:
    """``body`` into ``sink`` chunk by chunk, stopping when ``cancel`` is set."""
    while True:
        if cancel is not None and cancel.is_set():
            raise _cancelled(uri)
        chunk = body.read(_GET_CHUNK)
        if not chunk:
            return
        sink.write(chunk)


def _get_whole(s3: Any, bucket: str, key: str, extra_args: dict[str, Any], sink: Any,
               uri: str, cancel: Optional[threading.Event] = None) -> Optional[int]:
    """One GET of a small object into ``sink``, again (from the start, pinned to the first
    answer's ETag) when the body comes short or the connection breaks mid-body, as
    s3transfer does for its ranged GETs. Returns the object's ContentLength. Stops
    (``StageInError``) between chunks once ``cancel`` is set."""
    from urllib3.exceptions import HTTPError as Urllib3Error

    pinned = dict(extra_args)
    for attempt in range(1, _GET_ATTEMPTS + 1):
        sink.seek(0)
        sink.truncate()
        answer = s3.get_object(Bucket=bucket, Key=key, **pinned)
        expected = answer.get("ContentLength")
        if answer.get("ETag") and "VersionId" not in pinned:
            pinned["IfMatch"] = answer["ETag"]  # a retry gets these bytes, or fails
        try:
            with answer["Body"] as body:
                _copy_body(body, sink, cancel, uri)
        except (BotoCoreError, Urllib3Error, ConnectionError) as exc:
            if attempt == _GET_ATTEMPTS:
                raise StageInError(f"cannot download {uri}: the body broke off "
                                   f"{attempt} times ({type(exc).__name__})") from exc
            continue
        sink.flush()
        if expected is None or sink.tell() == expected or attempt == _GET_ATTEMPTS:
            return int(expected) if expected is not None else None
    return None  # pragma: no cover - the loop returns or raises


class _Finished:
    """An s3transfer subscriber: sets ``event`` when its transfer is done, whatever the
    outcome."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self.event.set()


def _download(s3: Any, bucket: str, key: str, extra_args: dict[str, Any], sink: Any,
              config: Any, cancel: Optional[threading.Event], uri: str) -> Optional[int]:
    """A TransferManager download into ``sink``, cancelled (its requests stop between
    chunks) once ``cancel`` is set. Returns the object's size."""
    from s3transfer.manager import TransferManager

    finished = _Finished()
    with TransferManager(s3, config) as manager:
        future = manager.download(bucket, key, sink, extra_args=extra_args,
                                  subscribers=[finished])
        if cancel is not None:
            while not finished.event.wait(_CANCEL_POLL_S):
                if cancel.is_set():
                    future.cancel()
                    raise _cancelled(uri)
        future.result()
        return int(future.meta.size) if future.meta.size is not None else None


def stage_in(s3: Any, *, bucket: str, key: str, input_dir: Path,
             version_id: Optional[str] = None,
             transfer_config: Optional[Any] = None, size: Optional[int] = None,
             small_object_threshold: int = 8 * 1024 * 1024,
             cancel: Optional[threading.Event] = None) -> Path:
    """Download ``s3://bucket/key`` to ``input_dir / safe_name(key)``; return that path.

    The object is written to a hidden temporary file in ``input_dir`` and
    renamed into place only when complete and as long as S3 said, so the
    final name never holds a partial file. An object the event says is
    smaller than ``small_object_threshold`` (``size``) comes in one streamed
    GET; any other by an s3transfer ``TransferManager`` (ranged, concurrent
    GETs above the multipart threshold, pinned to the object's ETag; bounded
    memory). ``version_id`` downloads that version. ``transfer_config`` is an
    s3transfer/boto3 ``TransferConfig``. Once ``cancel`` is set (the caller gave up on
    the download), the transfer stops between chunks and its requests end.

    Raises ``StageInError`` (one line: the URI and why) on any failure, after
    removing the temporary file.
    """
    uri = _s3_uri(bucket, key) + (f" (version {version_id})" if version_id else "")
    directory = Path(input_dir)
    final = directory / safe_name(key)
    if final.resolve().parent != directory.resolve():  # cannot happen; do not trust, check
        raise StageInError(f"cannot download {uri}: {final} is not inside {directory}")
    extra_args = {"VersionId": version_id} if version_id else {}
    temp: Optional[Path] = None
    done = False
    try:
        temp, fd = _open_temp(directory, final.name)
        with os.fdopen(fd, "wb") as sink:
            if size is not None and size < small_object_threshold:
                expected = _get_whole(s3, bucket, key, extra_args, sink, uri, cancel)
            else:
                expected = _download(s3, bucket, key, extra_args, sink,
                                     transfer_config or _download_config(), cancel, uri)
            sink.flush()
            written = os.fstat(sink.fileno()).st_size
        if expected is not None and written != expected:
            raise StageInError(f"cannot download {uri}: got {written} bytes, "
                               f"the object has {expected}")
        os.replace(temp, final)
        done = True
    except _transfer_errors() as exc:
        raise StageInError(f"cannot download {uri}: {_reason(exc, 'does not exist')}") from exc
    finally:
        if temp is not None and not done:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
    return final


# ---------------------------------------------------------------------------
# stage-out


@dataclass(frozen=True)
class _Upload:
    """One planned upload: a local file to ``bucket/key`` on a provider."""

    provider: str
    bucket: str
    key: str
    path: Path
    rel: str


def _plan(output_dir: Path, outputs: Sequence[StoragePath]) -> list[_Upload]:
    """Every (file, destination) pair, once per provider/bucket/key."""
    plan: dict[tuple[str, str, str], _Upload] = {}
    for out in outputs:
        for path, rel in select_outputs(output_dir, prefix=out.prefix, suffix=out.suffix):
            key = output_key(out.key_prefix, rel)
            plan.setdefault((out.storage_provider, out.bucket, key),
                            _Upload(out.storage_provider, out.bucket, key, path, rel))
    return list(plan.values())


def _download_config() -> TransferConfig:
    from s3transfer.manager import TransferConfig

    return TransferConfig(max_request_concurrency=_TRANSFER_THREADS)


def stage_out(clients: ClientFactory, output_dir: Path, outputs: Sequence[StoragePath], *,
              small_file_threshold: int = 8 * 1024 * 1024, max_workers: int = 8,
              deadline: Optional[Deadline] = None,
              clock: Callable[[], float] = time.monotonic) -> list[Uploaded]:
    """Upload the selected files of ``output_dir`` to every output path, all or nothing.

    For each ``StoragePath``, the files ``select_outputs`` picks with its
    prefix/suffix go to ``bucket/output_key(key_prefix, rel)`` through
    ``clients.s3(storage_provider)``, with ``content_type(rel)``, committed together
    (:mod:`supervisor.commit`): none is visible until every one is uploaded, parts of
    ``small_file_threshold`` bytes, ``max_workers`` requests at a time.

    Returns the uploads sorted by (bucket, key); ``[]`` when nothing is
    configured. Raises ``StageOutError`` (one line: how many failed, the first few URIs
    and reasons, and that nothing was made visible, or what was removed),
    ``ScriptTimeout`` when ``deadline`` passes before the commit (nothing visible), and
    ``ConfigError`` if an output names an undefined storage provider.
    """
    if not outputs:
        return []
    jobs = _plan(Path(output_dir), outputs)
    if not jobs:
        return []
    s3_clients = {provider: clients.s3(provider) for provider in sorted({j.provider for j in jobs})}
    return commit_outputs(
        [Output(provider=j.provider, bucket=j.bucket, key=j.key, path=j.path, rel=j.rel,
                content_type=content_type(j.rel)) for j in jobs], s3_clients,
        reason=lambda exc: _reason(exc, "bucket or key does not exist"), deadline=deadline,
        clock=clock, part_size=small_file_threshold, max_workers=max_workers)
