"""The run-history rows: one replayed workload through the real handlers, four policies.

Each policy gets the same objects (``replay_workload``) under a fresh prefix, one Lambda
process (``lambda_child.py``) that invokes its handler once per object, in order, with a
Lambda context whose deadline is real, and a ``lambda-batch`` function whose budget is
``BUDGET_S`` (a 1 s ``timeout_threshold``):

* ``scar``: SCAR's own runtime, faas-supervisor 1.5.8 (every record in Lambda first). Its
  watchdog allows ``int(remaining s) - threshold``, so its context gets 0.9 s more to
  have the same budget.
* ``ours``: this project without history (the same policy, this project's handler).
* ``history``: this project with ``history.table`` (a fresh table, defaults otherwise).
* ``oracle``: this project, told every duration: a record too long for the budget comes
  with ``execution_mode: batch`` (delegated at once), the others run here.

Every record is checked: one that completed has its output, one handed off has none and
a job in Batch. What each record cost is kept in ``meta["replay"]`` for the report.
"""
from __future__ import annotations

import base64
import json
import subprocess
import uuid
from dataclasses import asdict
from typing import Any, Optional

from . import workload
from .contenders import Contender
from .lambda_rows import HandoffSetup, run_child
from .measure import RunFailed
from .replay_workload import REPLAY_SCRIPT, ReplayObject, body_of, is_long, make_workload
from .session import Session

__all__ = ["POLICIES", "run_replay", "BUDGET_S", "THRESHOLD_S", "MEMORY_MB"]

POLICIES = ("scar", "ours", "history", "oracle")
BUDGET_S = 2.0
THRESHOLD_S = 1
MEMORY_MB = 1024  # the bench's Lambda context (lambda_child.Context)
_PEER_EXTRA_S = 0.9  # the peer rounds the time left down to whole seconds
_CHILD_TIMEOUT_S = 3600.0


def _status(contender: Contender, response: Any) -> tuple[str, str]:
    """The record's status (completed, delegated, failed) and reason, from the response."""
    if not isinstance(response, dict) or "body" not in response:
        return "failed", str(response)[:300]
    if contender.name == "peer":
        text = base64.b64decode(response.get("body") or "").decode("utf-8", "replace")
        if "Job delegated to batch" in text:
            return "delegated", "timed out"
        return ("completed" if response.get("statusCode") == 200 else "failed"), text[:300]
    (record,) = json.loads(response["body"])["records"]
    return str(record["status"]), str(record.get("reason") or record.get("error") or "")


def _configs(setup: HandoffSetup, bucket: str, prefix: str, script: str,
             table: Optional[str]) -> tuple[str, str]:
    """The lambda-batch function's YAML (with ``history`` when ``table``) and the same
    function in ``batch`` mode (the oracle's choice for a long record)."""
    def config(mode: str) -> str:
        return workload.config_yaml(name=setup.name, bucket=bucket, prefix=prefix, mode=mode,
                                    init_script=script, threshold=THRESHOLD_S, timeout=60,
                                    network=setup.network)

    history = f"history:\n  table: {table}\n" if table else ""
    return config("lambda-batch") + history, config("batch")


def _replay(session: Session, setup: HandoffSetup, policy: str,
            objects: list[ReplayObject], budget: float) -> list[dict[str, Any]]:
    fixture = session.fixture
    contender = next(c for c in session.contenders if c.name == ("peer" if policy == "scar"
                                                                  else "ours"))
    prefix = fixture.fresh_prefix(f"replay-{policy}")
    script = session.work / f"{prefix}.sh"
    script.write_text(REPLAY_SCRIPT, encoding="utf-8")
    table = f"bench-history-{uuid.uuid4().hex[:8]}" if policy == "history" else None
    if table:
        fixture.history_table(table)
    lambda_batch, batch = _configs(setup, fixture.bucket, prefix, str(script), table)
    try:
        events, environ = [], []
        for obj in objects:
            size, etag = fixture.put(f"{prefix}/in/{obj.name}", body_of(obj))
            events.append(workload.s3_event(fixture.bucket, f"{prefix}/in/{obj.name}", size,
                                            etag))
            chosen = batch if policy == "oracle" and is_long(obj, budget) else lambda_batch
            environ.append({"FUNCTION_CONFIG": workload.b64(chosen)})
        env = contender.lambda_env(workload.b64(lambda_batch), handoff=True, stub=setup.stub,
                                   udocker_dir=setup.udocker_dir)
        timeout = budget + THRESHOLD_S + (_PEER_EXTRA_S if policy == "scar" else 0.0)
        spec: dict[str, Any] = {"events": events, "function_name": setup.name,
                                "timeout": timeout}
        if contender.name == "ours":
            spec["environ"] = environ
        result = run_child(session, contender, f"replay-{policy}", spec, env,
                           timeout=_CHILD_TIMEOUT_S)
        outputs = fixture.outputs(f"{prefix}/out/")
        records = []
        for obj, call in zip(objects, result["invocations"], strict=True):
            status, reason = _status(contender, call["response"])
            has_output = f"{prefix}/out/{obj.name}.out" in outputs
            if (status == "completed") != has_output:
                raise RunFailed(f"{policy} {obj.name}: {status} but output "
                                f"{'present' if has_output else 'missing'} ({reason})")
            records.append({"name": obj.name, "status": status, "reason": reason[:200],
                            "lambda_s": round(float(call["seconds"]), 4)})
        return records
    finally:
        fixture.delete_prefix(prefix)
        script.unlink(missing_ok=True)


def run_replay(session: Session, *, count: int, seed: int, budget: float = BUDGET_S) -> None:
    """The four policies over one workload of ``count`` objects; figures in the meta."""
    objects = make_workload(count, budget, seed)
    replay: dict[str, Any] = {
        "count": count, "seed": seed, "budget_s": budget, "threshold_s": THRESHOLD_S,
        "memory_mb": MEMORY_MB, "objects": [asdict(o) for o in objects], "policies": {}}
    session.results.meta["replay"] = replay
    longs = sum(is_long(o, budget) for o in objects)
    session.progress(f"  {count} objects, {longs} too long for the {budget:g} s budget")
    setup = HandoffSetup.create(session, name="bench-replay")
    for policy in POLICIES:
        try:
            records = _replay(session, setup, policy, objects, budget)
        except (RunFailed, subprocess.TimeoutExpired, ValueError) as exc:
            session.progress(f"  replay {policy}: FAILED {exc}")
            session.results.fail("replay", policy, str(exc))
            continue
        replay["policies"][policy] = records
        batch = [r for r in records if r["status"] == "delegated"]
        session.progress(f"  replay {policy}: {len(batch)} ended on Batch, "
                         f"{sum(r['lambda_s'] for r in batch):.1f} Lambda s on them, "
                         f"{sum(r['lambda_s'] for r in records):.1f} Lambda s in all")
