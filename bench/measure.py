"""Run one contender process under ``/usr/bin/time``: wall time, own CPU, peak RSS."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

__all__ = ["ProcSample", "run_timed", "RunFailed"]

TIME_BIN = "/usr/bin/time"


class RunFailed(Exception):
    """A contender's process failed or did not produce its outputs: no figure for that run."""


@dataclass(frozen=True)
class ProcSample:
    """One process run: wall seconds (the runner's clock), CPU seconds, peak RSS (KiB)."""

    wall: float
    user: float
    sys: float
    maxrss_kib: int
    exit_code: int

    @property
    def cpu(self) -> float:
        """User + system CPU of the process and the children it waited for."""
        return self.user + self.sys

    @property
    def maxrss_mib(self) -> float:
        """``/usr/bin/time``'s ``%M`` in MiB: the largest RSS of the process tree's members."""
        return self.maxrss_kib / 1024.0


def run_timed(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path,
              stdin: Optional[bytes] = None, timeout: float = 900.0) -> ProcSample:
    """Run ``argv`` under ``/usr/bin/time -f '%U %S %M %x'``; stdout and stderr to ``log``.

    Wall time is measured here around the whole process (``time``'s own start-up,
    the same for every contender, included); CPU and peak RSS come from ``time``,
    which reads them from ``wait4`` on the contender, so the runner's own memory
    never leaks into them.
    """
    stats = log.with_suffix(".time")
    wrapped = [TIME_BIN, "-f", "%U %S %M %x", "-o", str(stats), *argv]
    with open(log, "wb") as sink:
        start = time.perf_counter()
        done = subprocess.run(wrapped, input=stdin, stdout=sink, stderr=subprocess.STDOUT,
                              env=dict(env), cwd=cwd, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        wall = time.perf_counter() - start
    fields = stats.read_text().strip().splitlines()[-1].split()
    user, system, maxrss, code = float(fields[0]), float(fields[1]), int(fields[2]), int(fields[3])
    if done.returncode != 0 or code != 0:
        tail = log.read_bytes()[-1500:].decode("utf-8", "replace")
        raise RunFailed(f"{argv[0]} exited with {code}: ...{tail}")
    return ProcSample(wall=wall, user=user, sys=system, maxrss_kib=maxrss, exit_code=code)
