"""The Batch-side rows: one whole ``supervisor-batch``-style process per run."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

from . import workload
from .contenders import Contender
from .measure import ProcSample, RunFailed, run_timed
from .session import Session, rounds_in_order

__all__ = ["BatchCase", "TRIVIAL", "MANY", "big_case", "run_row", "upload_big_master"]

_SMALL_BODY = bytes(range(256)) * 4  # 1 KiB


@dataclass(frozen=True)
class BatchCase:
    """One Batch workload: its script, its input, the outputs it must produce, its figures."""

    name: str
    script: str
    put: Callable[[Session, str], tuple[int, str]]  # (session, key) -> (size, etag)
    expected: Callable[[str, int], dict[str, int]]  # (out prefix, input size) -> key: size
    metrics: Callable[[ProcSample], dict[str, float]]
    check_body: bool = False


def _put_small(session: Session, key: str) -> tuple[int, str]:
    return session.fixture.put(key, _SMALL_BODY)


def _one_copy(out: str, size: int) -> dict[str, int]:
    return {f"{out}input.dat": size}


def _many(out: str, size: int) -> dict[str, int]:
    return {f"{out}f{i}.txt": len(f"{i}\n") for i in range(workload.MANY_FILES)}


TRIVIAL = BatchCase(
    name="trivial", script=workload.COPY_SCRIPT, put=_put_small, expected=_one_copy,
    metrics=lambda s: {"batch_trivial_wall": s.wall, "batch_trivial_rss": s.maxrss_mib,
                       "batch_trivial_cpu": s.cpu},
    check_body=True)

MANY = BatchCase(
    name="many", script=workload.MANY_SCRIPT, put=_put_small, expected=_many,
    metrics=lambda s: {"batch_many_wall": s.wall, "batch_many_rss": s.maxrss_mib,
                       "batch_many_cpu": s.cpu})


def big_case(master: str, row: str) -> BatchCase:
    """The big object (a copy of ``master``) copied to one output; ``row`` names the figures."""
    return BatchCase(
        name=row, script=workload.COPY_SCRIPT,
        put=lambda session, key: session.fixture.copy(master, key), expected=_one_copy,
        metrics=lambda s: {f"{row}_cpu": s.cpu, f"{row}_rss": s.maxrss_mib, f"{row}_wall": s.wall})


def upload_big_master(session: Session, mib: int) -> str:
    """Upload a ``mib`` MiB object once (one random MiB repeated: nothing compresses it)."""
    path = session.work / f"big-{mib}.bin"
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(block)
    key = f"masters/big-{mib}.bin"
    try:
        session.fixture.put_file(key, path)
    finally:
        path.unlink()
    return key


def run_once(session: Session, contender: Contender, case: BatchCase) -> ProcSample:
    """One run with fresh keys; raises ``RunFailed`` unless every expected output is there."""
    fixture = session.fixture
    prefix = fixture.fresh_prefix(f"{case.name}-{contender.name}")
    key = f"{prefix}/in/input.dat"
    try:
        size, etag = case.put(session, key)
        event_json = json.dumps(workload.s3_event(fixture.bucket, key, size, etag))
        config = workload.config_yaml(name=f"bench-{case.name}", bucket=fixture.bucket,
                                      prefix=prefix)
        env = dict(session.base_env(), EVENT=event_json, FUNCTION_CONFIG=workload.b64(config),
                   SCRIPT=workload.b64(case.script))
        sample = run_timed(contender.batch_argv(), env=env, cwd=session.work,
                           log=session.log_path(f"{case.name}-{contender.name}"),
                           stdin=contender.batch_stdin(event_json))
        out = f"{prefix}/out/"
        found = fixture.outputs(out)
        want = case.expected(out, size)
        if found != want:
            missing = sorted(set(want) - set(found))[:3]
            raise RunFailed(f"outputs differ: {len(found)} found, {len(want)} expected; "
                            f"missing e.g. {missing}")
        if case.check_body:
            for name in want:
                if fixture.body(name) != _SMALL_BODY:
                    raise RunFailed(f"{name}: wrong content")
        return sample
    finally:
        fixture.delete_prefix(prefix)


def run_row(session: Session, case: BatchCase, *, warmups: int, rounds: int) -> None:
    """``warmups`` + ``rounds`` rounds of A/B/C; every figure of every run recorded."""
    for number, warmup, contender in rounds_in_order(session.contenders, warmups, rounds):
        try:
            sample = run_once(session, contender, case)
        except RunFailed as exc:
            session.progress(f"  {case.name} round {number} {contender.name}: FAILED {exc}")
            session.results.fail(case.name, contender.name, str(exc))
            continue
        figures = case.metrics(sample)
        for metric, value in figures.items():
            session.results.add(metric, contender.name, value, round_=number, warmup=warmup)
        session.progress(f"  {case.name} round {number}{' (warm-up)' if warmup else ''} "
                         f"{contender.name}: {sample.wall:.2f} s wall, {sample.cpu:.2f} s CPU, "
                         f"{sample.maxrss_mib:.0f} MiB")
