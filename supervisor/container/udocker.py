"""The udocker command line: its environment, the engine wrappers, locked one-shot calls.

udocker is configured entirely through its environment, never the network:
``UDOCKER_DIR`` (its repository), ``UDOCKER_TARBALL`` (empty: never download
the udockertools; a path: install them from that local file),
``UDOCKER_USE_PROOT_EXECUTABLE`` / ``UDOCKER_USE_PATCHELF_EXECUTABLE`` /
``UDOCKER_FAKECHROOT_SO`` (the engine files), ``UDOCKER_TMP`` and
``PROOT_TMP_DIR`` (scratch), ``HOME`` (the udocker dir, so no user's
``~/.udocker/udocker.conf`` is read); ``--allow-root`` lets it run as root.

Three small ``/bin/sh`` wrappers live in ``<udocker dir>/supervisor/bin``:
``proot`` drops the ``-k <kernel release>`` option udocker always passes
(kernel-release emulation breaks the dynamic loader on current kernels);
``patchelf`` drops ``-q``, which Debian's patchelf 0.14 does not know
(without it udocker finds no loader and the host's runs the image's
binaries); ``env`` is what udocker's Fakechroot engine starts. The ``proot``
and ``env`` wrappers also *record*: called with the sentinel argument last,
they write the command and environment they were given to a file and exit
instead of running it (see :mod:`supervisor.container.launch`); the files
udocker made for that run in its temp dir (the container's ``/etc/passwd`` and
``/etc/group``, deleted when it exits) are copied beside them.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from ..errors import ImageError, ScriptTimeout
from ..process import kill_group
from ..runner import DEFAULT_PATH
from ..watchdog import Deadline
from .spec import ContainerSpec

__all__ = ["SENTINEL", "proot_wrapper_text", "patchelf_wrapper_text", "env_shim_text",
           "udocker_env", "install_wrappers", "call", "locked", "scratch", "write_if_changed"]

SENTINEL = "__supervisor_record__="
"""The last argument of a recording run: ``__supervisor_record__=<file>``."""

_LOCK_POLL = 0.05

_RECORD = """\
for last do :; done
case ${{last-}} in
    {sentinel}*)
        out=${{last#{sentinel}}}
        printf '%s\\0' {program} "$@" > "$out.argv"
        cat /proc/$$/environ > "$out.env"
        tmp=${{UDOCKER_TMP:-${{PROOT_TMP_DIR:-}}}}
        mkdir "$out.kept"
        if [ -n "$tmp" ]; then
            for file in "$tmp"/udocker-*; do
                [ -f "$file" ] && cp "$file" "$out.kept/"
            done
        fi
        exit 0 ;;
esac
"""


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
{_RECORD.format(sentinel=SENTINEL, program=shlex.quote(str(proot)))}exec {shlex.quote(str(proot))} "$@"
"""


def patchelf_wrapper_text(patchelf: Path) -> str:
    """A ``/bin/sh`` script that runs ``patchelf`` without ``-q`` (unknown to patchelf 0.14)."""
    return f"""#!/bin/sh
# Written by supervisor.container: udocker passes -q, which patchelf 0.14 rejects.
for arg do
    shift
    [ "$arg" = -q ] || set -- "$@" "$arg"
done
exec {shlex.quote(str(patchelf))} "$@"
"""


def env_shim_text(real_env: str) -> str:
    """The ``env`` udocker's Fakechroot engine starts: records, or runs the real ``env``."""
    quoted = shlex.quote(real_env)
    return f"""#!/bin/sh
# Written by supervisor.container: the env(1) udocker's Fakechroot engine runs.
{_RECORD.format(sentinel=SENTINEL, program=quoted)}exec {quoted} "$@"
"""


def write_if_changed(path: Path, text: str, mode: int) -> None:
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


def _bin_dir(spec: ContainerSpec) -> Path:
    return spec.state_dir / "bin"


def install_wrappers(spec: ContainerSpec, host_path: str) -> None:
    """Write the ``proot``, ``patchelf`` and ``env`` wrappers the spec's mode needs."""
    bin_dir = _bin_dir(spec)
    bin_dir.mkdir(parents=True, exist_ok=True)
    settings = spec.settings
    if spec.uses_proot and settings.proot is not None:
        write_if_changed(bin_dir / "proot", proot_wrapper_text(settings.proot), 0o755)
    if not spec.uses_proot:
        if settings.patchelf is not None:
            write_if_changed(bin_dir / "patchelf", patchelf_wrapper_text(settings.patchelf),
                             0o755)
        real_env = shutil.which("env", path=host_path) or "/usr/bin/env"
        write_if_changed(bin_dir / "env", env_shim_text(real_env), 0o755)


def _udocker_pythonpath() -> str:
    """The directory the ``udocker`` package is imported from."""
    found = importlib.util.find_spec("udocker")
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise ImageError("udocker is not installed (pip install udocker, or add the udocker "
                         "layer): it is needed to run scripts in a container image")
    return str(Path(locations[0]).parent)


def udocker_env(spec: ContainerSpec, *, tmp_dir: Path,
                host_env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of the udocker process itself (not the script's).

    From ``host_env`` only ``PATH`` (udocker runs ``tar``) and
    ``LD_LIBRARY_PATH`` (the Lambda runtime's Python needs it) are taken.
    The wrappers' dir comes first on ``PATH``, so the Fakechroot engine
    starts the ``env`` shim.
    """
    host_env = host_env or {}
    settings = spec.settings
    host_path = host_env.get("PATH") or DEFAULT_PATH
    env = {
        "PATH": f"{_bin_dir(spec)}:{host_path}",
        "HOME": str(spec.udocker_dir),
        "UDOCKER_DIR": str(spec.udocker_dir),
        "UDOCKER_TARBALL": str(settings.tools_tarball) if settings.tools_tarball else "",
        "UDOCKER_TMP": str(tmp_dir),
        "PROOT_TMP_DIR": str(tmp_dir),
        "PYTHONPATH": _udocker_pythonpath(),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if spec.uses_proot and settings.proot is not None:
        env["UDOCKER_USE_PROOT_EXECUTABLE"] = str(_bin_dir(spec) / "proot")
    if not spec.uses_proot and settings.tools_tarball is None:
        if settings.fakechroot_so is not None:
            env["UDOCKER_FAKECHROOT_SO"] = str(settings.fakechroot_so)
        if settings.patchelf is not None:
            env["UDOCKER_USE_PATCHELF_EXECUTABLE"] = str(_bin_dir(spec) / "patchelf")
    if host_env.get("LD_LIBRARY_PATH"):
        env["LD_LIBRARY_PATH"] = host_env["LD_LIBRARY_PATH"]
    return env


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def call(spec: ContainerSpec, args: Sequence[str], *, env: Mapping[str, str],
         deadline: Deadline, clock: Callable[[], float], check: bool = True) -> str:
    """Run one udocker command to completion and return its stdout.

    A non-zero exit is a one-line :class:`~supervisor.errors.ImageError` with
    udocker's last error line (unless ``check`` is false). The command runs in
    its own session; at the deadline the whole group is killed and
    :class:`~supervisor.errors.ScriptTimeout` raised.
    """
    argv = [*spec.settings.udocker_command, "--allow-root", *args]
    try:
        proc = subprocess.Popen(argv, env=dict(env), cwd=str(spec.udocker_dir),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True,
                                start_new_session=True)
    except OSError as exc:
        raise ImageError(f"cannot start udocker ({argv[0]}): {exc}") from exc
    try:
        out, err = proc.communicate(timeout=deadline.remaining(clock))
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace=1.0, leader=proc)
        proc.communicate()
        raise ScriptTimeout(f"preparing the container image {spec.image} "
                            f"(udocker {args[0]}) exceeded the time budget") from None
    finally:
        kill_group(proc.pid, grace=1.0, leader=proc)  # nothing it started outlives it
    stdout = out.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise ImageError(f"container image {spec.image}: udocker {args[0]} failed "
                         f"(exit {proc.returncode}): "
                         f"{_last_line(err.decode('utf-8', 'replace'), stdout)}")
    return stdout


@contextlib.contextmanager
def locked(path: Path, deadline: Deadline, clock: Callable[[], float]) -> Iterator[None]:
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
def scratch(spec: ContainerSpec) -> Iterator[Path]:
    """A fresh directory under the udocker dir, removed afterwards."""
    base = spec.udocker_dir / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
