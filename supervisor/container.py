"""Run the user's script inside a container image with udocker (SCAR's ``image_file``).

When a function names a local image archive (``container.image_file``, a
``docker save`` tarball), the script runs as ``/bin/sh SCRIPT`` inside that
image instead of on the host:

1. :func:`prepare` loads the archive into udocker's repository once and
   creates a container from it, named after the archive's sha256 (a changed
   archive gets a new container); later calls only check a marker file.
2. :func:`container_argv` (pure) builds the ``udocker run`` command line:
   the work dir bound at the same path, a fresh ``/tmp``, the script's
   environment as ``--env`` options, cwd = the work dir.
3. :func:`run_in_container` runs that command with :func:`supervisor.runner.run`,
   so the deadline, the capped log and the process-group kill are the same
   as for a script on the host.

Execution modes (``ContainerSpec.execmode``): ``P1`` (PRoot with seccomp,
the default) needs ``ptrace``, which this project's hosts allow; it uses the
system's ``proot`` (Debian's package) through a small wrapper script that
drops the ``-k <kernel release>`` option udocker always passes (kernel-release
emulation breaks the dynamic loader on recent kernels). Real AWS Lambda
forbids ``ptrace``: use ``F1`` there (Fakechroot, ``LD_PRELOAD``-based),
with ``udocker_dir=/tmp/udocker`` and ``tools_tarball`` set to the
udockertools tarball (``udocker-englib-1.2.11.tar.gz``, which holds the
fakechroot libraries) shipped in a Lambda layer; the host also needs ``tar``.

udocker is configured entirely through its environment, never the network:
``UDOCKER_DIR`` (its repository), ``UDOCKER_TARBALL`` (empty: never download
the udockertools; a path: install them from that local file),
``UDOCKER_USE_PROOT_EXECUTABLE`` (the wrapper), ``UDOCKER_TMP`` and
``PROOT_TMP_DIR`` (a per-run scratch dir), ``HOME`` (the udocker dir, so a
user's ``~/.udocker/udocker.conf`` is not read); ``--allow-root`` lets it run
as root (the local mode and CI). Every call is an argv list.

What the container sees of the host: the work dir (``input/``, ``output/``,
the script and its log) at its own path, ``/dev``, ``/proc``,
``/etc/resolv.conf`` and ``/etc/hosts``, and nothing else: ``--nosysdirs``
drops udocker's default ``/sys`` and ``/lib/modules`` binds, the host's
``$HOME`` and cwd are never bound, ``/tmp`` and ``/dev/shm`` are fresh empty
per-run dirs. ``/proc`` is the host's (programs need it), so, as with the
process runner, a script running as the supervisor's user could read the
supervisor's ``/proc/<pid>/environ``. The container's own root file system
(``<udocker_dir>/containers/<name>/ROOT``) is shared by the runs of one
image: what a script writes outside ``/tmp`` and the work dir persists.

udocker limits worth knowing: it strips leading and trailing whitespace from
``--env`` values, and it adds ``USER``, ``LOGNAME``, ``HOME`` (when unset),
``PROOT_TMP_DIR`` and ``container_*`` variables of its own.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from .errors import ScriptError, ScriptTimeout
from .runner import DEFAULT_PATH, RunResult, run
from .watchdog import Clock, Deadline, kill_group
from .workdir import WorkDirs

__all__ = [
    "DEFAULT_EXECMODE",
    "LAMBDA_EXECMODE",
    "LAMBDA_UDOCKER_DIR",
    "EXECMODES",
    "HOST_BINDS",
    "ContainerSpec",
    "default_udocker_dir",
    "spec_from_environ",
    "image_digest",
    "container_name",
    "proot_wrapper_text",
    "udocker_env",
    "container_base_env",
    "prepare",
    "container_argv",
    "run_in_container",
]

DEFAULT_EXECMODE = "P1"
"""PRoot with seccomp: needs ``ptrace`` (fine here, not on AWS Lambda)."""
LAMBDA_EXECMODE = "F1"
"""Fakechroot: what works on AWS Lambda (needs ``ContainerSpec.tools_tarball``)."""
LAMBDA_UDOCKER_DIR = Path("/tmp/udocker")
EXECMODES: tuple[str, ...] = ("P1", "P2", "F1", "F2", "F3", "F4", "R1", "R2", "R3", "S1")
"""The execution modes ``udocker setup --execmode`` accepts."""

HOST_BINDS: tuple[str, ...] = ("/dev", "/proc", "/etc/resolv.conf", "/etc/hosts")
"""Host paths the container sees (each only if it exists on the host)."""

ENV_EXECMODE = "SUPERVISOR_CONTAINER_EXECMODE"
ENV_UDOCKER_DIR = "SUPERVISOR_UDOCKER_DIR"
ENV_TOOLS_TARBALL = "UDOCKER_TARBALL"

_STATE_DIR = "supervisor"  # our files inside the udocker dir: markers, lock, wrapper
_IMAGE_REPO = "supervisor-image"
_NAME_PREFIX = "supervisor-"
_HASH_CHUNK = 1024 * 1024
_LOCK_POLL = 0.05


def _default_udocker_command() -> tuple[str, ...]:
    return (sys.executable, "-m", "udocker.maincmd")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "supervisor" / "udocker"


@dataclass(frozen=True)
class ContainerSpec:
    """How to run scripts in one image archive with udocker.

    ``image_file`` is the ``docker save`` tarball; ``execmode`` the udocker
    execution mode (``P1`` here, :data:`LAMBDA_EXECMODE` on AWS Lambda);
    ``udocker_dir`` udocker's repository (images, containers; it must be
    writable and have room for the unpacked image); ``proot`` the PRoot
    binary the ``P`` modes run through the ``-k``-dropping wrapper, or
    ``None`` for the one in the udockertools; ``tools_tarball`` a local
    udockertools tarball to install from (needed by the ``F`` modes), or
    ``None`` to never install them; ``udocker_command`` how to start udocker.
    """

    image_file: Path
    execmode: str = DEFAULT_EXECMODE
    udocker_dir: Path = field(default_factory=_default_cache_dir)
    proot: Optional[Path] = Path("/usr/bin/proot")
    tools_tarball: Optional[Path] = None
    udocker_command: tuple[str, ...] = field(default_factory=_default_udocker_command)

    def __post_init__(self) -> None:
        if self.execmode not in EXECMODES:
            raise ValueError(f"execmode must be one of {', '.join(EXECMODES)}, "
                             f"not {self.execmode!r}")
        if not self.udocker_command:
            raise ValueError("udocker_command must not be empty")

    @property
    def state_dir(self) -> Path:
        """The supervisor's own files in the udocker dir (markers, lock, proot wrapper)."""
        return self.udocker_dir / _STATE_DIR

    @property
    def proot_wrapper(self) -> Path:
        """Where the ``-k``-dropping proot wrapper is written."""
        return self.state_dir / "proot"

    @property
    def uses_proot_wrapper(self) -> bool:
        """A ``P`` execmode with the system's ``proot`` (not the udockertools' one)."""
        return self.execmode.startswith("P") and self.proot is not None


def default_udocker_dir(environ: Mapping[str, str]) -> Path:
    """``/tmp/udocker`` on AWS Lambda, else ``$XDG_CACHE_HOME`` (or ``~/.cache``)/supervisor/udocker."""
    if environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LAMBDA_UDOCKER_DIR
    cache = environ.get("XDG_CACHE_HOME")
    if cache and os.path.isabs(cache):
        return Path(cache) / "supervisor" / "udocker"
    home = environ.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".cache" / "supervisor" / "udocker"


def spec_from_environ(image_file: Path, environ: Mapping[str, str]) -> ContainerSpec:
    """The :class:`ContainerSpec` for ``image_file`` as the environment asks.

    ``SUPERVISOR_CONTAINER_EXECMODE`` (default ``P1``; set ``F1`` on AWS
    Lambda), ``SUPERVISOR_UDOCKER_DIR`` (default :func:`default_udocker_dir`),
    ``UDOCKER_TARBALL`` (a local udockertools tarball; unset: none). Raises
    ``ValueError`` for an unknown execution mode.
    """
    udocker_dir = environ.get(ENV_UDOCKER_DIR)
    tarball = environ.get(ENV_TOOLS_TARBALL)
    return ContainerSpec(
        image_file=image_file,
        execmode=environ.get(ENV_EXECMODE) or DEFAULT_EXECMODE,
        udocker_dir=Path(udocker_dir) if udocker_dir else default_udocker_dir(environ),
        tools_tarball=Path(tarball) if tarball else None,
    )


_digest_cache: dict[tuple[str, int, int, int, int], str] = {}
_digest_lock = threading.Lock()


def image_digest(image_file: Path) -> str:
    """The sha256 (hex) of ``image_file``; remembered per file identity and mtime.

    Raises :class:`~supervisor.errors.ScriptError` when the file cannot be read.
    """
    try:
        path = image_file.resolve()
        st = path.stat()
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _digest_lock:
            cached = _digest_cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ScriptError(f"cannot read the container image file {image_file}: "
                          f"{exc.strerror or exc}") from exc
    value = digest.hexdigest()
    with _digest_lock:
        _digest_cache[key] = value
    return value


def container_name(digest: str) -> str:
    """The udocker container name for the image with sha256 ``digest``."""
    return _NAME_PREFIX + digest[:32]


def _image_repo(digest: str) -> str:
    return f"{_IMAGE_REPO}/{digest[:32]}"


def proot_wrapper_text(proot: Path) -> str:
    """A ``/bin/sh`` script that runs ``proot`` without udocker's ``-k RELEASE``.

    Only options before the root file system (``-r``) are filtered, so a
    ``-k`` in the command run inside the container is passed unchanged.
    """
    return f"""#!/bin/sh
# Written by supervisor.container: runs proot without the "-k <kernel release>"
# option udocker always passes (kernel-release emulation breaks ld.so here).
# Options from -r (the root file system) on, and the command, pass unchanged.
n=$#
seen_root=
while [ "$n" -gt 0 ]; do
    arg=$1
    shift
    n=$((n - 1))
    if [ -z "$seen_root" ]; then
        case $arg in
            -k|--kernel-release)
                if [ "$n" -gt 0 ]; then shift; n=$((n - 1)); fi
                continue ;;
            -k?*|--kernel-release=*)
                continue ;;
            -r|-r?*|--rootfs|--rootfs=*)
                seen_root=1 ;;
        esac
    fi
    set -- "$@" "$arg"
done
exec {shlex.quote(str(proot))} "$@"
"""


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that."""
    try:
        if path.read_text(encoding="utf-8") == text and (path.stat().st_mode & 0o777) == mode:
            return
    except OSError:
        pass
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _udocker_pythonpath() -> str:
    """The directory the ``udocker`` package is imported from."""
    found = importlib.util.find_spec("udocker")
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise ScriptError("udocker is not installed (pip install udocker): "
                          "it is needed to run scripts in a container image")
    return str(Path(locations[0]).parent)


def udocker_env(spec: ContainerSpec, *, tmp_dir: Path,
                host_env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of the udocker process itself (not the script's). Pure but for finding udocker.

    From ``host_env`` only ``PATH`` (udocker runs ``tar``) and
    ``LD_LIBRARY_PATH`` (the Lambda runtime's Python needs it) are taken;
    udocker clears its environment before it starts the container, so
    neither reaches the script.
    """
    host_env = host_env or {}
    env = {
        "PATH": host_env.get("PATH") or DEFAULT_PATH,
        "HOME": str(spec.udocker_dir),
        "UDOCKER_DIR": str(spec.udocker_dir),
        "UDOCKER_TARBALL": str(spec.tools_tarball) if spec.tools_tarball else "",
        "UDOCKER_TMP": str(tmp_dir),
        "PROOT_TMP_DIR": str(tmp_dir),
        "PYTHONPATH": _udocker_pythonpath(),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if spec.uses_proot_wrapper:
        env["UDOCKER_USE_PROOT_EXECUTABLE"] = str(spec.proot_wrapper)
    if host_env.get("LD_LIBRARY_PATH"):
        env["LD_LIBRARY_PATH"] = host_env["LD_LIBRARY_PATH"]
    return env


def container_base_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """What a script in a container inherits from the supervisor's environment: ``AWS_*`` only.

    Pass it as ``build_env(base_env=...)`` for a container run: the host's
    ``PATH``, ``HOME``, ``LD_LIBRARY_PATH`` and the like describe the host's
    file system, not the image's (on Batch the script sees the image's own
    environment). ``build_env`` still drops the credentials unless the
    configuration passes them.
    """
    return {name: value for name, value in host_env.items() if name.startswith("AWS_")}


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def _udocker(spec: ContainerSpec, args: Sequence[str], *, env: Mapping[str, str],
             deadline: Deadline, clock: Clock) -> tuple[int, str, str]:
    """Run one udocker command to completion; (exit code, stdout, stderr).

    The command runs in its own session; at the deadline the whole group
    is killed and :class:`~supervisor.errors.ScriptTimeout` raised.
    """
    argv = [*spec.udocker_command, "--allow-root", *args]
    try:
        proc = subprocess.Popen(argv, env=dict(env), cwd=str(spec.udocker_dir),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True,
                                start_new_session=True)
    except OSError as exc:
        raise ScriptError(f"cannot start udocker ({argv[0]}): {exc}") from exc
    try:
        out, err = proc.communicate(timeout=deadline.remaining(clock))
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace=1.0, leader=proc)
        proc.communicate()
        raise ScriptTimeout(f"preparing the container image {spec.image_file} "
                            f"(udocker {args[0]}) exceeded the time budget") from None
    finally:
        kill_group(proc.pid, grace=1.0, leader=proc)  # nothing it started outlives it
    return (proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _checked(spec: ContainerSpec, args: Sequence[str], *, env: Mapping[str, str],
             deadline: Deadline, clock: Clock) -> str:
    """Run a udocker command; its stdout, or a one-line ScriptError when it fails."""
    code, out, err = _udocker(spec, args, env=env, deadline=deadline, clock=clock)
    if code != 0:
        raise ScriptError(f"udocker {args[0]} failed for {spec.image_file} (exit {code}): "
                          f"{_last_line(err, out)}")
    return out


@dataclass(frozen=True)
class _Marker:
    """What a finished :func:`prepare` records: ``<state dir>/<digest>.json``."""

    name: str
    image: str
    execmode: str

    @classmethod
    def read(cls, path: Path) -> Optional["_Marker"]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(name=str(data["name"]), image=str(data["image"]),
                       execmode=str(data["execmode"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path, image_file: Path) -> None:
        text = json.dumps({"name": self.name, "image": self.image, "execmode": self.execmode,
                           "image_file": str(image_file)}, sort_keys=True)
        _write_if_changed(path, text + "\n", 0o644)


def _container_exists(spec: ContainerSpec, name: str) -> bool:
    # udocker's repository layout: containers/<name> is a symlink to the
    # container's dir, whose ROOT is the unpacked image.
    return (spec.udocker_dir / "containers" / name / "ROOT").is_dir()


def _ready(spec: ContainerSpec, marker_path: Path, name: str) -> bool:
    marker = _Marker.read(marker_path)
    return (marker is not None and marker.name == name and marker.execmode == spec.execmode
            and _container_exists(spec, name)
            and (not spec.uses_proot_wrapper or os.access(spec.proot_wrapper, os.X_OK)))


@contextlib.contextmanager
def _locked(path: Path, deadline: Deadline, clock: Clock) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; ScriptTimeout if the deadline passes first."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline.expired(clock):
                    raise ScriptTimeout(f"waiting for the udocker lock {path} exceeded "
                                        "the time budget") from None
                time.sleep(_LOCK_POLL)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _scratch(spec: ContainerSpec) -> Iterator[Path]:
    """A fresh directory under the udocker dir, removed afterwards."""
    base = spec.udocker_dir / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _build(spec: ContainerSpec, name: str, digest: str, marker_path: Path, *,
           env: Mapping[str, str], deadline: Deadline, clock: Clock) -> None:
    """Load the archive and create the container (or only switch its execmode)."""
    def call(*args: str) -> str:
        return _checked(spec, args, env=env, deadline=deadline, clock=clock)

    marker = _Marker.read(marker_path)
    if marker is not None and marker.name == name and _container_exists(spec, name):
        call("setup", f"--execmode={spec.execmode}", name)
        _Marker(name, marker.image, spec.execmode).write(marker_path, spec.image_file)
        return
    marker_path.unlink(missing_ok=True)
    repo = _image_repo(digest)
    # Leftovers of an attempt that was killed half-way (a Lambda timeout).
    link = spec.udocker_dir / "containers" / name
    if link.is_symlink() and not link.exists():
        link.unlink()
    elif link.exists():
        call("rm", "-f", name)
    for line in call("images").splitlines():
        ref = line.split()[0] if line.split() else ""
        if ref.startswith(repo + ":"):
            call("rmi", "-f", ref)
    loaded = call("load", f"--input={os.path.abspath(spec.image_file)}", repo)
    images = [line.strip() for line in loaded.splitlines()
              if line.strip().startswith(repo + ":")]
    if not images:
        raise ScriptError(f"udocker load found no image in {spec.image_file}: "
                          f"{_last_line(loaded)}")
    call("create", f"--name={name}", images[0])
    call("setup", f"--execmode={spec.execmode}", name)
    _Marker(name, images[0], spec.execmode).write(marker_path, spec.image_file)


def prepare(spec: ContainerSpec, *, host_env: Optional[Mapping[str, str]] = None,
            deadline: Optional[Deadline] = None,
            clock: Clock = time.monotonic) -> str:
    """Make the container for ``spec.image_file`` ready to run; return its name.

    The first call loads the archive (``udocker load``), creates a container
    named after the archive's sha256 (``udocker create``) and sets its
    execution mode (``udocker setup --execmode``); it records that in a
    marker file. Later calls only hash the archive (once per process and
    file version) and read the marker: no udocker process. A changed archive
    gets a new container; a changed ``execmode`` only re-runs ``setup``. An
    exclusive lock in the udocker dir keeps concurrent callers from loading
    the same image twice. Failures are a one-line
    :class:`~supervisor.errors.ScriptError` (with udocker's last error line);
    running past ``deadline`` kills udocker and raises
    :class:`~supervisor.errors.ScriptTimeout` (default: no deadline).
    """
    deadline = deadline or Deadline.none()
    if spec.uses_proot_wrapper and spec.proot is not None and not spec.proot.is_file():
        raise ScriptError(f"proot not found at {spec.proot} (apt-get install proot), "
                          f"needed by udocker execmode {spec.execmode}")
    digest = image_digest(spec.image_file)
    name = container_name(digest)
    marker_path = spec.state_dir / f"{digest}.json"
    if _ready(spec, marker_path, name):
        return name
    try:
        spec.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScriptError(f"cannot create the udocker dir {spec.udocker_dir}: {exc}") from exc
    with _locked(spec.state_dir / "lock", deadline, clock):
        if spec.uses_proot_wrapper and spec.proot is not None:
            _write_if_changed(spec.proot_wrapper, proot_wrapper_text(spec.proot), 0o755)
        if _ready(spec, marker_path, name):
            return name
        with _scratch(spec) as tmp_dir:
            env = udocker_env(spec, tmp_dir=tmp_dir, host_env=host_env)
            _build(spec, name, digest, marker_path, env=env, deadline=deadline, clock=clock)
    return name


def _check_bind_path(path: str) -> str:
    if not os.path.isabs(path) or ":" in path:
        raise ValueError(f"cannot bind {path!r} into a container: the path must be "
                         "absolute and contain no ':'")
    return path


def _check_env_name(name: str) -> str:
    if not name or name[0].isdigit() or any(c in name for c in " =\n\t\0"):
        raise ValueError(f"environment variable name {name!r} cannot be passed to a container")
    return name


def container_argv(name: str, *, script_path: Path, work: WorkDirs, env: Mapping[str, str],
                   spec: ContainerSpec, host_binds: Sequence[str] = HOST_BINDS,
                   tmp_dir: Optional[Path] = None, shm_dir: Optional[Path] = None) -> list[str]:
    """The ``udocker run`` command that runs ``/bin/sh script_path`` in container ``name``. Pure.

    - ``--nosysdirs``: none of udocker's default host binds; ``host_binds``
      (default :data:`HOST_BINDS`; pass only paths that exist) instead.
    - ``work.root`` bound at the same path (it holds ``input/``, ``output/``
      and the script, so every path in the contract is valid inside) and
      used as the cwd; ``tmp_dir`` bound as ``/tmp`` and ``shm_dir`` as
      ``/dev/shm`` when given.
    - ``--entrypoint=``: the image's ENTRYPOINT is ignored (**contract**:
      ``/bin/sh SCRIPT``); its ``Env``, ``User`` and the rest still apply.
    - One ``--env=NAME=VALUE`` per variable of ``env``, except ``PATH`` when
      it is :data:`supervisor.runner.DEFAULT_PATH` (``build_env``'s
      fallback), so that the image's own ``PATH`` applies.

    Raises ``ValueError`` for a path udocker cannot bind (relative, or with
    a ``:``) and for a variable name udocker would silently drop.
    """
    root = _check_bind_path(str(work.root))
    argv = [*spec.udocker_command, "--allow-root", "--quiet", "run", "--nobanner",
            "--nosysdirs", "--entrypoint="]
    argv += [f"--volume={_check_bind_path(path)}" for path in host_binds]
    argv.append(f"--volume={root}:{root}")
    if tmp_dir is not None:
        argv.append(f"--volume={_check_bind_path(str(tmp_dir))}:/tmp")
    if shm_dir is not None:
        argv.append(f"--volume={_check_bind_path(str(shm_dir))}:/dev/shm")
    argv.append(f"--workdir={root}")
    for var, value in sorted(env.items()):
        if var == "PATH" and value == DEFAULT_PATH:
            continue
        argv.append(f"--env={_check_env_name(var)}={value}")
    argv += [name, "/bin/sh", str(script_path)]
    return argv


def run_in_container(spec: ContainerSpec, *, script_path: Path, work: WorkDirs,
                     env: Mapping[str, str], deadline: Deadline, log_path: Path,
                     on_line: Optional[Callable[[str], None]] = None,
                     clock: Clock = time.monotonic,
                     host_env: Optional[Mapping[str, str]] = None,
                     output_cap: int = 10 * 1024 * 1024, grace: float = 2.0) -> RunResult:
    """Run the script in the image's container, like :func:`supervisor.runner.run` on the host.

    :func:`prepare` first (its time counts against ``deadline``), then
    ``udocker run`` (:func:`container_argv`) through
    :func:`supervisor.runner.run` with cwd ``work.root``: the same capped
    log, ``on_line`` stream, and process-group kill at the deadline, which
    stops udocker, proot and everything the script started. ``env`` is the
    script's environment (from ``build_env``, best with
    :func:`container_base_env`); it reaches the script only as ``--env``
    options. udocker itself gets :func:`udocker_env` (``host_env`` supplies
    its ``PATH``). The exit code is the script's; when udocker itself
    fails (exit 1 or 2) its ``Error:`` line is in the log.
    """
    name = prepare(spec, host_env=host_env, deadline=deadline, clock=clock)
    binds = [path for path in HOST_BINDS if os.path.exists(path)]
    with _scratch(spec) as scratch:
        tmp_dir, shm_dir, udocker_tmp = scratch / "tmp", scratch / "shm", scratch / "udocker"
        for directory in (tmp_dir, shm_dir, udocker_tmp):
            directory.mkdir()
        tmp_dir.chmod(0o1777)
        shm_dir.chmod(0o1777)
        try:
            argv = container_argv(name, script_path=script_path, work=work, env=env, spec=spec,
                                  host_binds=binds, tmp_dir=tmp_dir,
                                  shm_dir=shm_dir if os.path.isdir("/dev/shm") else None)
        except ValueError as exc:
            raise ScriptError(str(exc)) from exc
        return run(argv, env=udocker_env(spec, tmp_dir=udocker_tmp, host_env=host_env),
                   cwd=work.root, deadline=deadline, log_path=log_path,
                   output_cap=output_cap, on_line=on_line, grace=grace, clock=clock)
