"""Run the user's script: its environment (pure) and the process itself.

:func:`build_env` makes the script's environment from plain values (the
contract in ``DESIGN.md``); :func:`run` starts ``/bin/sh SCRIPT`` in its own
session, streams its combined output to a capped log file, and stops the
whole process group at the deadline, and what the run left outside it at its
end (see :mod:`supervisor.process`).
"""
from __future__ import annotations

import collections
import functools
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping, Optional, Sequence

from .errors import ScriptError
from .process import Strays, become_subreaper, hide_environment, kill_group, wait_exit
from .watchdog import Clock, Deadline
from .workdir import WorkDirs

__all__ = [
    "CREDENTIAL_VARS",
    "SUPERVISOR_VARS",
    "CONTRACT_VARS",
    "EXECUTION_SERVICES",
    "DEFAULT_PATH",
    "TAIL_BYTES",
    "MAX_LINE_BYTES",
    "RunResult",
    "build_env",
    "local_ip",
    "shell_exit_code",
    "run",
    "script_argv",
    "write_script",
]

CREDENTIAL_VARS: frozenset[str] = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    }
)
"""The supervisor's AWS credentials: removed unless the config passes them."""

SUPERVISOR_VARS: frozenset[str] = frozenset(
    {"FUNCTION_CONFIG", "FUNCTION_CONFIG_PATH", "SCRIPT", "SUPERVISOR_HANDOFF"}
)
"""The supervisor's own inputs (may hold storage-provider secrets): never passed."""

CONTRACT_VARS: tuple[str, ...] = (
    "INPUT_FILE_PATH",
    "TMP_INPUT_DIR",
    "TMP_OUTPUT_DIR",
    "STORAGE_OBJECT_KEY",
    "STORAGE_BUCKET",
    "EVENT",
    "EVENT_TIME",
    "INSTANCE_IP",
    "REQUEST_ID",
    "AWS_LAMBDA_REQUEST_ID",
    "EXECUTION_SERVICE",
)
"""The names :func:`build_env` always sets; user variables cannot override them."""

EXECUTION_SERVICES: tuple[str, ...] = ("lambda", "batch")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
TAIL_BYTES = 4096
"""How much of the end of the output :class:`RunResult` keeps."""
MAX_LINE_BYTES = 64 * 1024
"""Longer lines are handed to ``on_line`` in pieces of this size."""

_READ_CHUNK = 64 * 1024
_READER_POLL = 0.1  # s between checks of the reader's stop flag
_READER_JOIN = 2.0  # s to wait for the pipe to reach EOF once the group is dead


def _check_env_item(name: str, value: str) -> None:
    if not name or "=" in name or "\0" in name:
        raise ValueError(f"invalid environment variable name {name!r}")
    if "\0" in value:
        raise ValueError(f"environment variable {name} contains a NUL character")
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError(f"environment variable {name} holds text that is not encodable "
                         "(a lone surrogate)") from None


def shell_exit_code(returncode: Optional[int]) -> int:
    """A process's status as a shell reports it: ``128 + N`` for killed by signal N
    (``Popen.returncode`` ``-N``; an unknown end counts as SIGKILL), capped at 255. Pure."""
    if returncode is None:
        returncode = -signal.SIGKILL
    if returncode < 0:
        return min(128 - returncode, 255)
    return min(returncode, 255)


@functools.lru_cache(maxsize=1)
def local_ip() -> str:
    """This host's address as faas-supervisor gives it (``INSTANCE_IP``); "" when the
    host name does not resolve. Looked up once per process, when first needed."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""


def build_env(
    *,
    base_env: Mapping[str, str],
    input_file: Optional[Path],
    work: WorkDirs,
    bucket: str,
    key: str,
    event_json: str,
    event_time: str,
    request_id: str,
    execution_service: str,
    variables: Mapping[str, str],
    pass_aws_credentials: bool = False,
    instance_ip: str = "",
) -> dict[str, str]:
    """The script's environment (**contract**: same on Lambda and Batch). Pure.

    Layers, later wins:

    1. ``base_env`` (the supervisor's own environment) without
       :data:`SUPERVISOR_VARS`, and without :data:`CREDENTIAL_VARS` unless
       ``pass_aws_credentials``;
    2. ``HOME`` = ``work.root`` and ``PATH`` = :data:`DEFAULT_PATH` when absent;
    3. ``variables`` (``container.environment.Variables``): the user may set
       anything, including ``HOME``, ``PATH`` or their own AWS keys, *except*
    4. the :data:`CONTRACT_VARS`, which always hold the supervisor's values
       (a user variable with one of those names is ignored; config
       validation should reject it up front).

    Raises ``ValueError`` for an ``execution_service`` other than ``lambda``
    or ``batch`` and for names or values the OS cannot put in an environment.
    """
    if execution_service not in EXECUTION_SERVICES:
        raise ValueError(
            f"execution_service must be one of {', '.join(EXECUTION_SERVICES)}, "
            f"not {execution_service!r}"
        )
    dropped = set(SUPERVISOR_VARS)
    if not pass_aws_credentials:
        dropped |= CREDENTIAL_VARS
    env = {name: value for name, value in base_env.items() if name not in dropped}
    env.setdefault("HOME", str(work.root))
    env.setdefault("PATH", DEFAULT_PATH)
    contract = {
        "INPUT_FILE_PATH": str(input_file) if input_file is not None else "",
        "TMP_INPUT_DIR": str(work.input_dir),
        "TMP_OUTPUT_DIR": str(work.output_dir),
        "STORAGE_OBJECT_KEY": key,
        "STORAGE_BUCKET": bucket,
        "EVENT": event_json,
        "EVENT_TIME": event_time,
        "INSTANCE_IP": instance_ip,
        "REQUEST_ID": request_id,
        "AWS_LAMBDA_REQUEST_ID": request_id,
        "EXECUTION_SERVICE": execution_service,
    }
    for name, value in variables.items():
        if name not in contract:
            env[name] = value
    env.update(contract)
    for name, value in env.items():
        _check_env_item(name, value)
    return env


@dataclass(frozen=True)
class RunResult:
    """What one run of the script did.

    ``exit_code`` is the shell's: the script's own status, ``128 + N`` when it was
    killed by signal N (:func:`shell_exit_code`), the same in the Lambda response and
    from ``supervisor-batch``. ``output_tail`` is the last :data:`TAIL_BYTES` of everything
    the script printed (including what came after the log's cap), decoded
    as UTF-8 with replacement; ``output_truncated`` says the log file hit
    its cap. ``duration`` is wall-clock seconds from start to return.
    """

    exit_code: int
    timed_out: bool
    duration: float
    output_tail: str
    output_truncated: bool
    log_path: Path

    @property
    def succeeded(self) -> bool:
        """The script exited 0 before the deadline."""
        return self.exit_code == 0 and not self.timed_out


def script_argv(script_path: Path) -> list[str]:
    """How the script is started (**contract**): ``/bin/sh SCRIPT``."""
    return ["/bin/sh", str(script_path)]


def write_script(text: str, work: WorkDirs) -> Path:
    """Write the script text to ``work.script_path`` (mode 0700) and return it."""
    path = work.script_path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(handle.fileno(), 0o700)
            handle.write(text)
    except OSError as exc:
        raise ScriptError(f"cannot write the script to {path}: {exc}") from exc
    return path


class _OutputPump:
    """Drains the child's pipe on a thread: capped log, tail, ``on_line``.

    The log file receives the raw bytes up to ``cap``, then one marker line;
    the pipe keeps being drained (so the script never blocks on a full
    pipe) and the tail keeps following the real end of the output.
    ``on_line`` sees the same lines the log holds, then the marker.
    """

    def __init__(
        self,
        fd: int,
        log: IO[bytes],
        cap: int,
        on_line: Optional[Callable[[str], None]],
    ) -> None:
        self._fd = fd
        self._log: Optional[IO[bytes]] = log
        self._cap = cap
        self._on_line = on_line
        self._written = 0  # bytes in the log file (before the marker)
        self._line_bytes = 0  # bytes handed to on_line
        self._pending = bytearray()  # the current incomplete line
        self._marker_sent = False  # on_line has had the truncation marker
        self._log_ends_newline = True  # the last byte written to the log is "\n"
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_len = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.truncated = False
        self.thread = threading.Thread(target=self._run, name="script-output", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the thread to stop reading (the pipe is held by an escaped process)."""
        self._stop.set()

    def tail(self) -> str:
        """The last :data:`TAIL_BYTES` of the output, decoded."""
        with self._lock:
            data = b"".join(self._tail)[-TAIL_BYTES:]
        if len(data) == TAIL_BYTES:  # do not start in the middle of a UTF-8 character
            skip = 0
            while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", errors="replace")

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._fd, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(_READER_POLL):
                    continue
                try:
                    chunk = os.read(self._fd, _READ_CHUNK)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                if not chunk:
                    break
                self._feed(chunk)
            self._flush_pending()
        finally:
            selector.close()
            os.close(self._fd)
            self._close_log()

    def _feed(self, chunk: bytes) -> None:
        with self._lock:
            self._tail.append(chunk)
            self._tail_len += len(chunk)
            while self._tail_len - len(self._tail[0]) >= TAIL_BYTES:
                self._tail_len -= len(self._tail.popleft())
        self._write_log(chunk)
        if self._on_line is None or self._marker_sent:
            return
        self._pending += chunk
        start = 0
        while True:
            newline = self._pending.find(b"\n", start, start + MAX_LINE_BYTES + 1)
            if newline >= 0:
                end = newline + 1
            elif len(self._pending) - start >= MAX_LINE_BYTES:
                end = start + MAX_LINE_BYTES
            else:
                break
            self._emit(bytes(self._pending[start:end]))
            start = end
        del self._pending[:start]

    def _flush_pending(self) -> None:
        if self._pending:
            self._emit(bytes(self._pending))
            self._pending.clear()

    def _marker(self) -> bytes:
        return f"[output truncated at {self._cap} bytes]\n".encode("ascii")

    def _write_log(self, chunk: bytes) -> None:
        if self._log is None:
            return
        room = self._cap - self._written
        piece = chunk[:room] if room > 0 else b""
        try:
            if piece:
                self._log.write(piece)
                self._written += len(piece)
                self._log_ends_newline = piece.endswith(b"\n")
            if len(piece) < len(chunk):
                self.truncated = True
                self._log.write((b"" if self._log_ends_newline else b"\n") + self._marker())
                self._close_log()
            else:
                self._log.flush()
        except OSError:  # disk full: keep draining, the log is as long as it got
            self.truncated = True
            self._close_log()

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            try:
                log.close()
            except OSError:
                pass

    def _emit(self, raw: bytes) -> None:
        callback = self._on_line
        if callback is None or self._marker_sent:
            return
        try:
            if self._line_bytes < self._cap:
                self._line_bytes += len(raw)
                line = raw.decode("utf-8", errors="replace")
                if line.endswith("\n"):
                    line = line[:-1]
                    if line.endswith("\r"):
                        line = line[:-1]
                callback(line)
            if self._line_bytes >= self._cap and self.truncated:
                self._marker_sent = True
                callback(self._marker().decode("ascii").rstrip("\n"))
        except Exception:  # a broken callback must not stop the draining
            self._on_line = None


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    deadline: Deadline,
    log_path: Path,
    output_cap: int = 10 * 1024 * 1024,
    on_line: Optional[Callable[[str], None]] = None,
    grace: float = 2.0,
    clock: Clock = time.monotonic,
) -> RunResult:
    """Run ``argv`` in its own session until it exits or ``deadline`` passes.

    stdin is ``/dev/null``; stdout and stderr go, combined, to ``log_path``
    (at most ``output_cap`` bytes plus one ``[output truncated at N bytes]``
    line) and, line by line, to ``on_line`` (called on a reader thread, in
    order; lines over :data:`MAX_LINE_BYTES` arrive in pieces; after the
    cap only the marker line). At the deadline the whole process group gets
    SIGTERM, then SIGKILL after ``grace`` seconds, and the result says
    ``timed_out``. When the script exits by itself, whatever it left running
    in its process group is stopped the same way, and what it left outside
    the group is killed (:class:`~supervisor.process.Strays`: this run's
    only, never what a concurrent run started), so nothing outlives the run.
    A program that cannot be started is a
    :class:`~supervisor.errors.ScriptError`.
    """
    if not argv:
        raise ScriptError("no command to run")
    if output_cap < 0:
        raise ValueError("output_cap must not be negative")
    try:
        log = open(log_path, "wb")
    except OSError as exc:
        raise ScriptError(f"cannot open the script log {log_path}: {exc}") from exc
    adopting = become_subreaper()
    hide_environment()  # the script cannot read the supervisor's /proc/<pid>/environ
    strays = Strays()  # what starts from now on may be this run's
    started = clock()
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
            bufsize=0,
        )
    except (OSError, ValueError) as exc:
        strays.end(kill=False)
        log.close()
        where = getattr(exc, "filename", None)
        detail = f" ({where})" if where and str(where) != argv[0] else ""
        raise ScriptError(f"cannot start {argv[0]}{detail}: {exc}") from exc

    strays.lead(proc.pid)
    assert proc.stdout is not None
    # The pump owns a duplicate of the pipe's fd so it can close it on its
    # own thread; the Popen's copy is closed here.
    pump = _OutputPump(os.dup(proc.stdout.fileno()), log, output_cap, on_line)
    proc.stdout.close()
    pump.start()

    timed_out = False
    try:
        while not wait_exit(proc, deadline.remaining(clock)):
            if deadline.expired(clock):
                timed_out = True
                kill_group(proc.pid, grace=grace, leader=proc)
                proc.wait()
                break
    finally:
        # Normal exit, timeout or an exception here: nothing of the group
        # may outlive the run (a backgrounded grandchild would also hold
        # the pipe open and keep the reader from ever seeing EOF), nor what
        # left the group and was handed to this process as its subreaper
        # (this run's only: another run of this process may still be going).
        try:
            kill_group(proc.pid, grace=grace, leader=proc)
        finally:
            strays.end(kill=adopting)  # without a subreaper, init has them
        pump.thread.join(_READER_JOIN)
        if pump.thread.is_alive():  # someone outside the group holds the pipe
            pump.stop()
            pump.thread.join(_READER_JOIN)
    return RunResult(
        exit_code=shell_exit_code(proc.returncode),
        timed_out=timed_out,
        duration=clock() - started,
        output_tail=pump.tail(),
        output_truncated=pump.truncated,
        log_path=log_path,
    )
