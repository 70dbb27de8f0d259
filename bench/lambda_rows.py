"""The Lambda-side rows, measured in-process by ``lambda_child.py`` in a fresh process.

Per run: the cold import of the handler module, the first invocation (cold start =
import + first invocation), then warm invocations, each on a fresh 1-byte object that
the trivial script copies to one output (so every invocation is checked). The hand-off
rows run a ``lambda-batch`` function whose script sleeps past a 2 s budget.
"""
from __future__ import annotations

import base64
import json
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import workload
from .contenders import UDOCKER_STUB, Contender
from .measure import RunFailed
from .session import Session, rounds_in_order

__all__ = ["run_invoke_rows", "run_handoff_rows", "run_child", "response_ok", "HandoffSetup",
           "HANDOFF_TIMEOUT_S", "HANDOFF_THRESHOLD_S"]

#: The hand-off function: a 3 s Lambda timeout, a 1 s threshold: the watchdog fires at ~2 s.
HANDOFF_TIMEOUT_S = 3.0
HANDOFF_THRESHOLD_S = 1


def run_child(session: Session, contender: Contender, label: str, spec: dict[str, Any],
               extra_env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    log = session.log_path(f"{label}-{contender.name}")
    spec_path, out_path = log.with_suffix(".spec.json"), log.with_suffix(".out.json")
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = dict(session.base_env(), **extra_env)
    with open(log, "wb") as sink:
        done = subprocess.run(contender.lambda_argv(spec_path, out_path), env=env,
                              cwd=session.work, stdin=subprocess.DEVNULL, stdout=sink,
                              stderr=subprocess.STDOUT, timeout=timeout)
    if done.returncode != 0 or not out_path.exists():
        tail = log.read_bytes()[-1500:].decode("utf-8", "replace")
        raise RunFailed(f"lambda child exited with {done.returncode}: ...{tail}")
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def response_ok(contender: Contender, response: Any, status: str) -> Optional[str]:
    """Why the response is not a success with records in ``status``, or None."""
    if not isinstance(response, dict) or response.get("statusCode") != 200:
        return f"response {str(response)[:300]}"
    if contender.name == "ours":
        records = json.loads(response["body"])["records"]
        bad = [r for r in records if r.get("status") != status]
        if bad or not records:
            return f"records {str(records)[:300]}"
    return None


# --------------------------------------------------------------------------- invocations

def check_completed(contender: Contender, calls: list[dict[str, Any]], fixture: Any,
                    prefix: str, bodies: dict[str, bytes],
                    labels: Optional[list[str]] = None) -> None:
    """Every invocation completed and ``prefix/out/`` holds exactly ``bodies``; else
    ``RunFailed`` saying what differs."""
    for number, call in enumerate(calls):
        problem = response_ok(contender, call["response"], "completed")
        if problem:
            label = f" ({labels[number]})" if labels else ""
            raise RunFailed(f"invocation {number}{label}: {problem}")
    found = fixture.outputs(f"{prefix}/out/")
    if set(found) != set(bodies):
        raise RunFailed(f"outputs differ: {sorted(found)[:3]} vs {sorted(bodies)[:3]}")
    for key, body in bodies.items():
        if fixture.body(key) != body:
            raise RunFailed(f"{key}: wrong content")


def _invoke_once(session: Session, contender: Contender, warm: int) -> dict[str, float]:
    fixture = session.fixture
    prefix = fixture.fresh_prefix(f"lambda-{contender.name}")
    script = session.work / f"{prefix}.sh"
    script.write_text(workload.COPY_SCRIPT, encoding="utf-8")
    config = workload.config_yaml(name="bench-lambda", bucket=fixture.bucket, prefix=prefix,
                                  init_script=str(script))
    try:
        events, bodies = [], {}
        for number in range(1 + warm):
            key = f"{prefix}/in/obj{number}.dat"
            body = bytes([97 + number % 26])
            size, etag = fixture.put(key, body)
            events.append(workload.s3_event(fixture.bucket, key, size, etag))
            bodies[f"{prefix}/out/obj{number}.dat"] = body
        result = run_child(session, contender, "lambda",
                            {"events": events, "function_name": "bench-lambda",
                             "timeout": 300}, contender.lambda_env(workload.b64(config)))
        calls = result["invocations"]
        check_completed(contender, calls, fixture, prefix, bodies)
    finally:
        fixture.delete_prefix(prefix)
        script.unlink(missing_ok=True)
    imported = float(result["import_seconds"])
    cold_import = result["boto3_import_seconds"] if contender.name == "floor" else imported
    figures = {"cold_import": 1000.0 * float(cold_import),
               "cold_start": 1000.0 * (imported + float(calls[0]["seconds"])),
               "first_invoke": 1000.0 * float(calls[0]["seconds"])}
    if warm:
        figures["warm_invoke"] = 1000.0 * statistics.median(float(c["seconds"])
                                                            for c in calls[1:])
    return figures


def run_invoke_rows(session: Session, *, warmups: int, rounds: int, warm: int) -> None:
    """Cold import, cold start and warm invocation of every contender."""
    for number, warmup, contender in rounds_in_order(session.contenders, warmups, rounds):
        try:
            figures = _invoke_once(session, contender, warm)
        except (RunFailed, subprocess.TimeoutExpired) as exc:
            session.progress(f"  lambda round {number} {contender.name}: FAILED {exc}")
            session.results.fail("lambda", contender.name, str(exc))
            continue
        for metric, value in figures.items():
            session.results.add(metric, contender.name, value, round_=number, warmup=warmup)
        session.progress(f"  lambda round {number}{' (warm-up)' if warmup else ''} "
                         f"{contender.name}: " + ", ".join(f"{k} {v:.0f} ms"
                                                            for k, v in figures.items()))


# --------------------------------------------------------------------------- hand-off

@dataclass(frozen=True)
class HandoffSetup:
    """The Batch queue the hand-off function submits to, and the peer's udocker stub."""

    name: str
    network: dict[str, str]
    stub: Path
    udocker_dir: Path

    @classmethod
    def create(cls, session: Session, name: str = "bench-handoff") -> "HandoffSetup":
        """Make the queue, job definition and compute environment ``name`` in moto; write
        the stub."""
        network = session.fixture.batch_network()
        session.fixture.batch_queue(network, name)
        stub = session.work / "udocker-stub.sh"
        stub.write_text(UDOCKER_STUB, encoding="utf-8")
        stub.chmod(0o755)
        udocker_dir = session.work / "udocker"
        udocker_dir.mkdir(exist_ok=True)
        return cls(name=name, network=network, stub=stub, udocker_dir=udocker_dir)


def _job_id(contender: Contender, response: dict[str, Any]) -> str:
    if contender.name == "ours":
        return str(json.loads(response["body"])["records"][0]["job_id"])
    text = base64.b64decode(response.get("body", "")).decode("utf-8", "replace")
    if "Job delegated to batch" not in text:
        raise RunFailed(f"not delegated: {text[:300]}")
    return text.split()[-1]


def _deadline_instant(contender: Contender, calls: list[list[float]]) -> float:
    """When the contender's own watchdog fires, from its first look at the time left.

    Ours: remaining - threshold (seconds, as a float). The peer: ``int(remaining / 1000)``
    seconds - threshold, the ``Popen.wait`` timeout of its udocker path.
    """
    if not calls:
        raise RunFailed("the handler never asked the context for its remaining time")
    at, remaining_ms = calls[0]
    if contender.name == "peer":
        return at + int(remaining_ms / 1000) - HANDOFF_THRESHOLD_S
    return at + remaining_ms / 1000.0 - HANDOFF_THRESHOLD_S


def _handoff_once(session: Session, contender: Contender, setup: HandoffSetup,
                  invocations: int) -> list[float]:
    fixture = session.fixture
    prefix = fixture.fresh_prefix(f"handoff-{contender.name}")
    script = session.work / f"{prefix}.sh"
    script.write_text(workload.SLEEP_SCRIPT, encoding="utf-8")
    config = workload.config_yaml(name=setup.name, bucket=fixture.bucket, prefix=prefix,
                                  mode="lambda-batch", init_script=str(script),
                                  threshold=HANDOFF_THRESHOLD_S, timeout=60,
                                  network=setup.network)
    try:
        events = []
        for number in range(invocations):
            key = f"{prefix}/in/obj{number}.dat"
            size, etag = fixture.put(key, b"h")
            events.append(workload.s3_event(fixture.bucket, key, size, etag))
        env = contender.lambda_env(workload.b64(config), handoff=True, stub=setup.stub,
                                   udocker_dir=setup.udocker_dir)
        result = run_child(session, contender, "handoff",
                            {"events": events, "function_name": setup.name,
                             "timeout": HANDOFF_TIMEOUT_S}, env)
        latencies = []
        for number, call in enumerate(result["invocations"]):
            problem = response_ok(contender, call["response"], "delegated")
            if problem:
                raise RunFailed(f"hand-off {number}: {problem}")
            job = _job_id(contender, call["response"])
            if not fixture.job_exists(job):
                raise RunFailed(f"hand-off {number}: job {job!r} is not in Batch")
            latencies.append(float(call["end"]) - _deadline_instant(contender,
                                                                     call["remaining_calls"]))
        if fixture.outputs(f"{prefix}/out/"):
            raise RunFailed("a timed-out run uploaded outputs")
        return latencies
    finally:
        fixture.delete_prefix(prefix)
        script.unlink(missing_ok=True)


def run_handoff_rows(session: Session, setup: HandoffSetup, *, warmups: int,
                     rounds: int) -> None:
    """Hand-off latency: the first hand-off of a fresh process (cold) and the next (warm)."""
    contenders = [c for c in session.contenders if c.name != "floor"]
    for number, warmup, contender in rounds_in_order(contenders, warmups, rounds):
        try:
            cold, warm = _handoff_once(session, contender, setup, invocations=2)
        except (RunFailed, subprocess.TimeoutExpired) as exc:
            session.progress(f"  hand-off round {number} {contender.name}: FAILED {exc}")
            session.results.fail("handoff", contender.name, str(exc))
            continue
        session.results.add("handoff_cold", contender.name, cold, round_=number, warmup=warmup)
        session.results.add("handoff_warm", contender.name, warm, round_=number, warmup=warmup)
        session.progress(f"  hand-off round {number}{' (warm-up)' if warmup else ''} "
                         f"{contender.name}: cold {cold:.3f} s, warm {warm:.3f} s")
