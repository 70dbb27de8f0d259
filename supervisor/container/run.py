"""Run the script in a ready container, like :func:`supervisor.runner.run` on the host."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Optional

from ..errors import ImageError
from ..runner import DEFAULT_PATH, RunResult, run
from ..watchdog import Deadline
from ..workdir import WorkDirs
from .prepare import Ready, prepare, sandbox_dirs
from .spec import ContainerSpec

__all__ = ["container_base_env", "script_variables", "run_in_container"]


def container_base_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """What a script in a container inherits from the supervisor's environment: ``AWS_*`` only.

    Pass it as ``build_env(base_env=...)`` for a container run: the host's
    ``PATH``, ``HOME``, ``LD_LIBRARY_PATH`` and the like describe the host's
    file system, not the image's. ``build_env`` still drops the credentials
    unless the configuration passes them.
    """
    return {name: value for name, value in host_env.items() if name.startswith("AWS_")}


def script_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The script's variables as the container gets them: ``PATH`` only when it is not
    ``build_env``'s host fallback, so that the image's own ``PATH`` applies."""
    return {k: v for k, v in sorted(env.items()) if not (k == "PATH" and v == DEFAULT_PATH)}


def _empty(directory: Path) -> None:
    """Remove what a previous run left in a per-sandbox ``/tmp`` or ``/dev/shm``."""
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


def run_in_container(spec: ContainerSpec, *, script_path: Path, work: WorkDirs,
                     env: Mapping[str, str], deadline: Deadline, log_path: Path,
                     on_line: Optional[Callable[[str], None]] = None,
                     clock: Callable[[], float] = time.monotonic,
                     host_env: Optional[Mapping[str, str]] = None,
                     ready: Optional[Ready] = None,
                     output_cap: int = 10 * 1024 * 1024, grace: float = 2.0) -> RunResult:
    """Run ``/bin/sh script_path`` in the spec's container with the script's ``env``.

    :func:`~supervisor.container.prepare.prepare` first unless ``ready`` is
    given (its time counts against ``deadline``). The work dir must be under
    ``spec.runs_dir``, the one host directory the container sees at its own
    path. The command comes from the recorded launch template: no udocker
    process per run. Same capped log, ``on_line`` stream and process-group
    kill at the deadline as on the host; the exit code is the script's.
    """
    ready = ready or prepare(spec, host_env=host_env, deadline=deadline, clock=clock)
    runs = spec.runs_dir.resolve()
    if runs not in work.root.resolve().parents:
        raise ImageError(f"container image {spec.image}: the work dir {work.root} is not "
                         f"under {runs}, the directory the container sees")
    if spec.uses_proot:
        for directory in sandbox_dirs(spec):
            _empty(directory)
    argv, process_env = ready.template.command(str(script_path), cwd=str(work.root),
                                               variables=script_variables(env))
    return run(argv, env=process_env, cwd=work.root, deadline=deadline, log_path=log_path,
               output_cap=output_cap, on_line=on_line, grace=grace, clock=clock)
