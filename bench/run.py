"""Run the benchmarks: ``python -m bench.run [--rounds N] [--quick] [--only GROUP...]``
(``./build.sh bench``).

One moto server process; this project ("ours"), faas-supervisor 1.5.8 ("peer") and a
hand-written boto3 script ("floor") in turn, every round; medians and ratios. The
container group runs a script in an image pulled from a loopback registry against the
same script on the host, and pulls a multi-layer image against a plain HTTP client.
Writes the raw samples to ``bench/results/<timestamp>.json`` and, for a full run,
regenerates ``docs/BENCHMARKS.md`` and ``docs/benchmarks.png``.

Groups (``--only``): batch (the two small Batch-style rows), lambda (cold import, cold
start, warm invocation), handoff, big (the big-object rows), container (warm invocation
in a pulled image vs on the host, cold pull vs a plain client), replay (run history: a
replayed workload under four policies, about 10 minutes; only with ``--only``, and its
``--doc`` rewrites only its own section of the doc, which a full run keeps as it is).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Sequence

from . import batch_rows, container_rows, lambda_rows, replay_report, replay_rows, report
from .aws import Fixture
from .contenders import ROOT, Contender, make_contenders
from .moto_proc import MotoServer
from .results import Results
from .session import Session

__all__ = ["main"]

LAYER_ZIP = ROOT / "dist" / "supervisor-layer.zip"
RESULTS_DIR = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
CHART = ROOT / "docs" / "benchmarks.png"
REPLAY_CHART = ROOT / "docs" / "benchmarks-replay.png"
GROUPS = ("batch", "lambda", "handoff", "big", "container", "replay")
_DEFAULT_GROUPS = ("batch", "lambda", "handoff", "big", "container")
_PEER_GROUPS = ("batch", "lambda", "handoff", "big", "replay")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./build.sh bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5,
                        help="measured rounds of the small rows (default 5)")
    parser.add_argument("--big-rounds", type=int, default=3,
                        help="measured rounds of the big-object rows (default 3)")
    parser.add_argument("--warmups", type=int, default=1,
                        help="discarded warm-up rounds before each row (default 1)")
    parser.add_argument("--big-mib", type=int, default=200,
                        help="size of the big object in MiB (default 200; doubled once)")
    parser.add_argument("--warm-invocations", type=int, default=10,
                        help="warm invocations per Lambda process (default 10)")
    parser.add_argument("--pull-rounds", type=int, default=15,
                        help="measured rounds of the cold-pull row (default 15)")
    parser.add_argument("--replay-objects", type=int, default=200,
                        help="objects of the replayed workload (default 200)")
    parser.add_argument("--replay-seed", type=int, default=1,
                        help="the replayed workload's seed (default 1)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                        help=f"run only these groups ({', '.join(GROUPS)}); the doc is then "
                             "left alone unless --doc (replay alone: only its section)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round, no warm-up, 20 MiB; the doc is left alone")
    parser.add_argument("--doc", action=argparse.BooleanOptionalAction, default=None,
                        help="regenerate docs/BENCHMARKS.md and the chart "
                             "(default: yes, except with --quick or --only)")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="no measuring: regenerate the doc from a results file")
    parser.add_argument("--peer-python", help="the peer's interpreter "
                        "(default bench/.peer-venv/bin/python)")
    return parser


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _run_python(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "?"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory,
            "kernel": platform.release(), "python": platform.python_version()}


def _versions(contenders: Sequence[Contender]) -> str:
    code = ("import importlib.metadata as m; print(' '.join(f'{p} {m.version(p)}' for p in "
            "('boto3', 'botocore', 's3transfer')))")
    peer_code = "import importlib.metadata as m; print(m.version('faas-supervisor'))"
    ours = next(c for c in contenders if c.name == "ours")
    peer = next((c for c in contenders if c.name == "peer"), None)
    if peer is None:
        return (f"supervisor-runtime {metadata.version('supervisor-runtime')}; project venv: "
                f"{_run_python(ours.python, code)}; moto {metadata.version('moto')}")
    return (f"supervisor-runtime {metadata.version('supervisor-runtime')}, "
            f"faas-supervisor {_run_python(peer.python, peer_code)}; "
            f"project venv: {_run_python(ours.python, code)}; peer venv: "
            f"{_run_python(peer.python, code)}; moto {metadata.version('moto')}")


def _revision() -> str:
    """``git describe --always --dirty`` of the project (read-only), or "?"."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    return done.stdout.strip() or "?"


def _settings(args: argparse.Namespace) -> dict[str, int]:
    replay = {"replay_objects": args.replay_objects, "replay_seed": args.replay_seed}
    if args.quick:
        return {"rounds": 1, "big_rounds": 1, "warmups": 0, "big_mib": 20,
                "warm_invocations": 3, "pull_rounds": 1, **replay}
    return {"rounds": args.rounds, "big_rounds": args.big_rounds, "warmups": args.warmups,
            "big_mib": args.big_mib, "warm_invocations": args.warm_invocations,
            "pull_rounds": args.pull_rounds, **replay}


def _container(session: Session, settings: dict[str, int]) -> None:
    """The container rows, or a note saying why they are skipped (the run goes on)."""
    why = container_rows.unavailable()
    if why is not None:
        _say(f"  skipped: {why}")
        session.results.meta.setdefault("skipped", {})["container"] = why
        return
    try:
        setup = container_rows.ContainerSetup.create(session)
    except Exception as exc:  # the registry, skopeo or the image builder said no
        _say(f"  registry setup FAILED: {type(exc).__name__}: {exc}")
        session.results.fail("container", "setup", f"{type(exc).__name__}: {exc}")
        return
    try:
        session.results.meta["container"] = container_rows.image_meta(setup)
        _say(f"  registry on {setup.registry.url}: {setup.image}, {setup.layered}")
        container_rows.run_invoke_rows(session, setup, warmups=settings["warmups"],
                                       rounds=settings["rounds"],
                                       pairs=settings["warm_invocations"])
        container_rows.run_pull_rows(session, setup, warmups=max(1, settings["warmups"]),
                                     rounds=settings["pull_rounds"])
    finally:
        setup.close()


def _measure(session: Session, settings: dict[str, int], groups: Sequence[str]) -> None:
    rounds, warmups = settings["rounds"], settings["warmups"]
    if "batch" in groups:
        _say("== Batch-style run, 1 KiB input, 1 output")
        batch_rows.run_row(session, batch_rows.TRIVIAL, warmups=warmups, rounds=rounds)
        _say("== same, 200 small outputs")
        batch_rows.run_row(session, batch_rows.MANY, warmups=warmups, rounds=rounds)
    if "lambda" in groups:
        _say("== Lambda: cold import, cold start, warm invocations (in-process)")
        lambda_rows.run_invoke_rows(session, warmups=warmups, rounds=rounds,
                                    warm=settings["warm_invocations"])
    if "handoff" in groups:
        _say("== hand-off latency (lambda-batch, watchdog -> SubmitJob)")
        setup = lambda_rows.HandoffSetup.create(session)
        lambda_rows.run_handoff_rows(session, setup, warmups=warmups, rounds=rounds)
    if "container" in groups:
        _say("== container: warm invocation in a pulled image vs on the host; cold pull")
        _container(session, settings)
    if "big" in groups:
        _big(session, settings)
    if "replay" in groups:
        _say("== run history: a replayed workload under four policies")
        replay_rows.run_replay(session, count=settings["replay_objects"],
                               seed=settings["replay_seed"])


def _big(session: Session, settings: dict[str, int]) -> None:
    warmups = settings["warmups"]
    big = settings["big_mib"]
    _say(f"== {big} MiB input copied to a {big} MiB output")
    master = batch_rows.upload_big_master(session, big)
    batch_rows.run_row(session, batch_rows.big_case(master, "big"), warmups=warmups,
                       rounds=settings["big_rounds"])
    session.fixture.delete_prefix(master)
    _say(f"== {2 * big} MiB (does peak RSS grow with the object?)")
    master = batch_rows.upload_big_master(session, 2 * big)
    batch_rows.run_row(session, batch_rows.big_case(master, "big2x"), warmups=0,
                       rounds=settings["big_rounds"])
    session.fixture.delete_prefix(master)


def _publish(results: Results, results_file: Path, write: bool) -> None:
    shown = results_file.relative_to(ROOT) if results_file.is_relative_to(ROOT) else results_file
    if results.meta.get("groups") == ["replay"]:
        print(replay_report.section(results, shown, None))
        if write:
            chart = REPLAY_CHART if replay_report.write_chart(results, REPLAY_CHART) else None
            replay_report.write_section(results, DOC, chart, shown)
            _say(f"wrote the run-history section of {DOC.relative_to(ROOT)}; raw results: "
                 f"{results_file}")
        return
    print(report.markdown_table(results))
    if not write:
        _say(f"raw results: {results_file} (doc left alone)")
        return
    chart: Optional[Path] = CHART if report.write_chart(results, CHART) else None
    if chart is None:
        _say("matplotlib is missing: no chart (./build.sh bench installs it)")
    report.write_doc(results, DOC, chart, results_file.relative_to(ROOT)
                     if results_file.is_relative_to(ROOT) else results_file)
    _say(f"wrote {DOC.relative_to(ROOT)}" + (f" and {CHART.relative_to(ROOT)}" if chart else "")
         + f"; raw results: {results_file}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure (or, with ``--report``, only re-render); returns the exit code."""
    args = _parser().parse_args(argv)
    if args.report is not None:
        _publish(Results.load(args.report), args.report, write=args.doc is not False)
        return 0
    settings = _settings(args)
    groups = tuple(g for g in GROUPS if g in (args.only or _DEFAULT_GROUPS))
    write_doc = args.doc if args.doc is not None else not (args.quick or args.only)
    contenders = make_contenders(args.peer_python,
                                 need_peer=any(g in _PEER_GROUPS for g in groups))
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    command = "./build.sh bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    meta: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"), **settings, "quick": args.quick,
        "groups": list(groups),
        "command": command.strip(), "machine": _machine(), "revision": _revision(),
        "versions": _versions(contenders),
        "contenders": {c.name: {"label": c.label, "python": c.python,
                                "batch_argv": c.batch_argv()} for c in contenders},
    }
    results = Results(meta)
    work = Path(tempfile.mkdtemp(prefix="supervisor-bench-"))
    results_file = RESULTS_DIR / f"{now.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        with MotoServer(python=sys.executable) as moto:
            _say(f"moto server on {moto.url} (pid {moto.proc.pid if moto.proc else '?'})")
            session = Session(endpoint=moto.url, fixture=Fixture(moto.url), results=results,
                              work=work, contenders=contenders, progress=_say)
            _measure(session, settings, groups)
    finally:
        meta["layer_zip_bytes"] = LAYER_ZIP.stat().st_size if LAYER_ZIP.is_file() else None
        meta["elapsed_s"] = round(time.monotonic() - started, 1)
        results.save(results_file)
        shutil.rmtree(work, ignore_errors=True)
    _publish(results, results_file, write_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
