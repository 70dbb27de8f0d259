"""The table, the doc (``docs/BENCHMARKS.md``) and the chart, from a results file."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import replay_report
from .results import Results, median

__all__ = ["ROWS", "Row", "table_rows", "markdown_table", "write_doc", "write_chart"]

CONTENDERS = ("ours", "peer", "floor")


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its unit and its target."""

    key: str
    label: str
    unit: str
    digits: int
    limit: Optional[float] = None  # the target's number
    absolute: bool = False  # True: ours <= limit; False: ours / floor <= limit


ROWS: tuple[Row, ...] = (
    Row("batch_trivial_wall", "Batch-style run, 1 KiB input, 1 output: wall (whole process)",
        "s", 2, 1.00),
    Row("batch_trivial_rss", "same: peak RSS", "MiB", 0),
    Row("batch_many_wall", "same, 200 small output files, committed together: wall", "s", 2,
        1.30),
    Row("big_cpu", "{big} MiB input copied to a {big} MiB output: own CPU (user + sys)",
        "s", 2, 1.20),
    Row("big_rss", "same: peak RSS", "MiB", 0, 1.00),
    Row("big_rss_growth", "same: peak RSS at {big2} MiB / at {big} MiB", "×", 2,
        1.05, absolute=True),
    Row("cold_import", "cold import of the handler module (floor: `import boto3`)", "ms", 0,
        0.80),
    Row("cold_start", "cold start: import + first trivial invocation, in-process", "ms", 0,
        1.00),
    Row("warm_invoke", "warm in-process Lambda invocation, trivial script", "ms", 1, 0.80),
    Row("handoff_cold", "hand-off latency, first in a process (watchdog → SubmitJob answered)",
        "s", 3, 0.5, absolute=True),
    Row("handoff_warm", "hand-off latency, later hand-offs of the process", "s", 3, 0.5,
        absolute=True),
    Row("container_warm_invoke", "warm invocation, script in a pulled image (PRoot "
        "{execmode}); floor: the same with `run_on_host: true`", "ms", 1),
    Row("container_warm_extra", "the image's extra time per warm invocation (image − host)",
        "ms", 1, 100.0, absolute=True),
    Row("container_first_invoke", "first invocation in the pulled image, fresh sandbox (pull, "
        "create, setup, record)", "ms", 0),
    Row("container_udocker_run", "one `udocker run` of that image's container (`/bin/true`), "
        "for comparison", "ms", 0),
    Row("container_pull", "cold pull of a multi-layer image from a loopback registry "
        "({pull}); floor: urllib3, {threads} threads", "s", 3, 1.30),
    Row("layer_zip", "Lambda layer zip (`dist/supervisor-layer.zip`)", "MB", 2, 5.0,
        absolute=True),
)


_NO_RATIOS = ("big_rss_growth", "layer_zip", "container_warm_extra")


def _figure(results: Results, row: Row, contender: str) -> Optional[float]:
    if row.key == "big_rss_growth":
        doubled = results.value("big2x_rss", contender)
        base = results.value("big_rss", contender)
        return doubled / base if doubled is not None and base else None
    if row.key == "layer_zip":
        size = results.meta.get("layer_zip_bytes") if contender == "ours" else None
        return size / 1e6 if size else None
    if row.key == "container_warm_extra":
        if contender != "ours":
            return None
        return results.paired_difference("container_warm_invoke", "ours", "floor")
    return median(results.samples(row.key, contender))


@dataclass(frozen=True)
class TableRow:
    """A row with its figures and ratios."""

    row: Row
    label: str
    values: dict[str, Optional[float]]
    vs_peer: Optional[float]
    vs_floor: Optional[float]
    met: Optional[bool]

    @property
    def target(self) -> str:
        """The target as text."""
        if self.row.limit is None:
            return "—"
        if self.row.absolute:
            return f"≤ {self.row.limit:g} {self.row.unit}".replace(" ×", "×")
        return f"≤ {self.row.limit:.2f}× floor"


def _label_fields(results: Results) -> dict[str, object]:
    meta = results.meta
    big = meta.get("big_mib", 200)
    container = meta.get("container") or {}
    layers = container.get("pull_data_layers_mib") or [8, 8, 8, 8]
    sizes = (f"{len(layers)} × {layers[0]:g} MiB" if len(set(layers)) == 1
             else " + ".join(f"{m:g}" for m in layers) + " MiB")
    pull = f"busybox + {sizes}"
    if container.get("pull_mib"):
        pull = f"{container['pull_mib']:.0f} MiB in {container['pull_blobs']} blobs: {pull}"
    return {"big": big, "big2": 2 * big, "execmode": container.get("execmode", "P1"),
            "pull": pull, "threads": container.get("pull_threads", 4)}


def table_rows(results: Results) -> list[TableRow]:
    """Every row's medians, ratios (ours/peer, ours/floor) and whether the target is met."""
    fields = _label_fields(results)
    out = []
    for row in ROWS:
        values = {c: _figure(results, row, c) for c in CONTENDERS}
        ours = values["ours"]
        vs_peer = vs_floor = None
        if row.key not in _NO_RATIOS:
            vs_peer = results.paired_ratio(row.key, "ours", "peer")
            vs_floor = results.paired_ratio(row.key, "ours", "floor")
        met: Optional[bool] = None
        if row.limit is not None:
            measure = ours if row.absolute else vs_floor
            met = None if measure is None else measure <= row.limit + 1e-9
        out.append(TableRow(row=row, label=row.label.format(**fields),
                            values=values, vs_peer=vs_peer, vs_floor=vs_floor, met=met))
    return out


def _num(value: Optional[float], digits: int, unit: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return f"{text} {unit}".rstrip() if unit and unit != "×" else text


def markdown_table(results: Results) -> str:
    """The table as Markdown."""
    lines = ["| row | ours | peer | floor | ours / peer | ours / floor | target | met? |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for t in table_rows(results):
        d, u = t.row.digits, t.row.unit
        met = {True: "yes", False: "**no**", None: "—" if t.row.limit is None else "n/a"}[t.met]
        lines.append(f"| {t.label} | {_num(t.values['ours'], d, u)} | "
                     f"{_num(t.values['peer'], d, u)} | {_num(t.values['floor'], d, u)} | "
                     f"{_num(t.vs_peer, 2)} | {_num(t.vs_floor, 2)} | {t.target} | {met} |")
    return "\n".join(lines)


def _failures(results: Results) -> list[str]:
    found = [f"- {group} rows skipped: {why}"
             for group, why in sorted((results.meta.get("skipped") or {}).items())]
    for workload, by_contender in sorted(results.failures.items()):
        for contender, reasons in sorted(by_contender.items()):
            lines = [line.strip() for line in str(reasons[0]).splitlines() if line.strip()]
            last = lines[-1][:300] if lines else "?"
            found.append(f"- {workload} / {contender}: {len(reasons)} failed run(s), no figure "
                         f"from them; the first ended with: `{last}`")
    return found


def write_doc(results: Results, path: Path, chart: Optional[Path], results_file: Path) -> None:
    """``docs/BENCHMARKS.md``: the table, the chart, how it was measured and how to redo it."""
    meta = results.meta
    machine = meta.get("machine", {})
    chart_line = f"![ratios per row]({chart.name})\n" if chart is not None else ""
    failures = _failures(results)
    text = _DOC.format(
        date=meta.get("date", "?"), table=markdown_table(results), chart=chart_line,
        cpu=machine.get("cpu", "?"), cores=machine.get("cores", "?"),
        memory=machine.get("memory", "?"), kernel=machine.get("kernel", "?"),
        python=machine.get("python", "?"), revision=meta.get("revision", "?"), versions=meta.get("versions", {}),
        rounds=meta.get("rounds"), warmups=meta.get("warmups"),
        big_rounds=meta.get("big_rounds"), big=meta.get("big_mib"),
        big2=2 * int(meta.get("big_mib", 200)), warm=meta.get("warm_invocations"),
        command=meta.get("command", "./build.sh bench"), results_file=results_file.as_posix(),
        elapsed=meta.get("elapsed_s", 0.0), container=_container_text(results),
        commit=_commit_text(results),
        pull_rounds=meta.get("pull_rounds", "?"),
        failures="\n".join(failures) if failures else "None: every run produced its outputs.")
    kept = replay_report.kept_section(path.read_text(encoding="utf-8")) if path.exists() else None
    path.write_text(replay_report.splice(text, kept) if kept else text, encoding="utf-8")


def _requests_text(requests: list[dict[str, int]], blobs: int) -> str:
    if not requests:
        return ""
    invocations = sum(r["image_invocations"] for r in requests)
    manifests = sum(r["manifest"] for r in requests)
    fetched = sum(r["blob"] for r in requests)
    if manifests == invocations and fetched == blobs * len(requests):
        return (f"The registry's access log shows one manifest request per image invocation "
                f"({manifests} for {invocations}: the tag is resolved every time, so a moved "
                f"tag is seen at once) and the image's {blobs} blobs fetched once per sandbox, "
                "by its first invocation. ")
    return (f"The registry's access log counted {manifests} manifest requests for "
            f"{invocations} image invocations and {fetched} blob requests over "
            f"{len(requests)} sandboxes. ")


def _commit_text(results: Results) -> str:
    """What committing 200 outputs together costs, in words, from this run's figures."""
    ours = results.value("batch_many_wall", "ours")
    floor = results.value("batch_many_wall", "floor")
    one = results.value("batch_trivial_wall", "ours")
    one_floor = results.value("batch_trivial_wall", "floor")
    if ours is None or floor is None:
        return "Not measured in this run."
    text = (f"Ours commits a record's outputs together (`supervisor/commit.py`): each of the "
            "200 is a multipart upload left open until all are up, then completed, so it "
            "takes three requests (CreateMultipartUpload, UploadPart, "
            "CompleteMultipartUpload) where the floor's unguarded PutObject takes one: 600 "
            f"requests against 200. Here that is {ours:.2f} s against {floor:.2f} s "
            f"({ours / floor:.2f}×): against the moto server every request costs about the "
            "same CPU on its side, so the row grows with the request count: the 1.3× target "
            "is not met by this commit, which needs three requests per output. "
            "(On S3 the requests run in parallel on the server's side and the commit adds "
            "mostly the round trips of two more requests per output.) ")
    if one is not None and one_floor is not None:
        text += (f"A record's only small output is one PutObject, all or nothing by itself: "
                 f"the first row ({one:.2f} s against {one_floor:.2f} s) pays nothing for "
                 "the commit.")
    return textwrap.fill(text.strip(), width=92, break_on_hyphens=False)


def _container_text(results: Results) -> str:
    """What the container run costs, in words, from this run's figures."""
    meta = results.meta
    skipped = (meta.get("skipped") or {}).get("container")
    if skipped:
        return f"Not measured in this run: {skipped}."
    if "container" not in meta.get("groups", ["container"]):
        return "Not measured in this run (`--only` without `container`)."
    image = results.value("container_warm_invoke", "ours")
    host = results.value("container_warm_invoke", "floor")
    extra = results.paired_difference("container_warm_invoke", "ours", "floor")
    if image is None or host is None or extra is None:
        return "No figures: every round failed (see Failed runs)."
    udocker = results.value("container_udocker_run", "ours")
    first = results.value("container_first_invoke", "ours")
    text = (f"A warm invocation in the image took {image:.1f} ms (median), the same on the "
            f"host {host:.1f} ms: {extra:+.1f} ms per invocation (the median of the "
            "per-round differences). ")
    if udocker is not None and extra < udocker:
        text += (f"One `udocker run` of the same container that runs only `/bin/true` takes "
                 f"{udocker:.0f} ms by itself, {udocker / max(extra, 0.1):.0f} times that "
                 "difference, so a warm run cannot be going through udocker: it runs the "
                 "launch command recorded once per sandbox (PRoot's command line, given the "
                 "script, its working directory and its variables), no udocker process per "
                 "run. ")
    elif udocker is not None:
        text += (f"That is not less than one `udocker run` of the same container "
                 f"({udocker:.0f} ms), so these figures do not tell whether a run goes "
                 "through udocker. ")
    container = meta.get("container") or {}
    text += _requests_text(meta.get("container_requests") or [], 2)
    text += ("What is left of the difference is that manifest request, PRoot starting and "
             "tracing `sh` and `cp`, and emptying the container's own `/tmp` and `/dev/shm` "
             "before the run. ")
    if first is not None:
        text += (f"The first image invocation of a fresh sandbox took {first:.0f} ms: the "
                 "pull of the image, `udocker create`, "
                 f"`udocker setup --execmode={container.get('execmode', 'P1')}` and one "
                 "recording `udocker run`, once per sandbox (a Lambda execution "
                 "environment).")
    return textwrap.fill(text.strip(), width=92, break_on_hyphens=False)


def write_chart(results: Results, path: Path) -> bool:
    """A bar chart of the ratios per row (matplotlib); False when matplotlib is missing.

    Relative rows: ours / floor and ours / peer against the target. Rows with an absolute
    target in seconds or MB: ours / target (target = 1). The growth row: the ratio itself.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [t for t in table_rows(results) if t.row.limit is not None]
    labels, main, peer, targets = [], [], [], []
    for t in rows:
        limit = t.row.limit or 1.0
        ours = t.values["ours"]
        if t.row.absolute and t.row.unit == "×":
            labels.append(t.label)
            main.append(ours)
            targets.append(limit)
        elif t.row.absolute:
            labels.append(f"{t.label} (ours / target)")
            main.append(ours / limit if ours is not None else None)
            targets.append(1.0)
        else:
            labels.append(t.label)
            main.append(t.vs_floor)
            targets.append(limit)
        peer.append(t.vs_peer)
    labels = [text if len(text) <= 70 else text[:68] + "…" for text in labels]
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(rows) + 1.6))
    ys = list(range(len(rows)))
    height = 0.38
    for offset, values, color, name in ((-height / 2, main, "#3b75af", "ours / floor"),
                                        (height / 2, peer, "#ef8636", "ours / peer")):
        ax.barh([y + offset for y in ys], [v or 0.0 for v in values], height, color=color,
                label=name)
        for y, value, target in zip(ys, values, targets):
            ax.text(max(value or 0.0, target) + 0.04, y + offset,
                    "n/a" if value is None else f"{value:.2f}", va="center", fontsize=7)
    for y, target in zip(ys, targets):
        ax.plot([target, target], [y - 0.45, y + 0.45], color="black", linewidth=2)
    ax.plot([], [], color="black", linewidth=2, label="target (ours must be left of it)")
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (lower is better)")
    ax.set_title(f"supervisor benchmarks, {results.meta.get('date', '')}: "
                 "medians, ratios within one run", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


_DOC = """\
# Benchmarks

Generated by `./build.sh bench` ({date}); do not edit by hand, run it again.
Raw samples: `{results_file}`.

**ours** is this project, **peer** is faas-supervisor 1.5.8 (the system it replaces), **floor**
is a hand-written boto3 script doing the same S3 calls and running the same `/bin/sh` script
with nothing else. Every figure is the median of its rounds, all measured in this one run.
A ratio is the median over rounds of the ratio within each round (the three contenders of a
round run back to back), so it is not always the ratio of the two medians beside it: the
machine drifts between rounds, and absolute times by 15–40 % between runs; only ratios of
the same run mean anything. Targets are checked on these ratios. In the container rows the
floor is not the boto3 script: for the warm invocation it is the same function with
`container.run_on_host: true` (the script on the host), for the pull a plain HTTP client.

{table}

{chart}
## Machine and run

- {cpu}, {cores} cores, {memory} RAM, Linux {kernel}, Python {python}
- this project at `{revision}`
- versions: {versions}
- {warmups} warm-up round(s) (discarded) then {rounds} rounds of every small row; the {big} MiB
  row {big_rounds} round(s) after {warmups} warm-up(s) and the {big2} MiB row {big_rounds}
  round(s) (fewer rounds: each big run takes 7–20 s, mostly moto); {warm} warm invocations
  per Lambda process; the container rows: {warmups} warm-up round(s) then {rounds} rounds (a
  fresh sandbox each) of 6 warm-up invocations and {warm} timed pairs, and {pull_rounds} rounds
  of the cold pull after one warm-up
- command: `{command}`, {elapsed:.0f} s in all

To reproduce: `./build.sh bench` (this table and chart; about 8 minutes on 2 cores),
`./build.sh bench --quick` (a smoke run: raw results only, the doc is left alone),
`./build.sh bench --rounds 7` (more rounds), `./build.sh bench --only container` (only the
container rows, about 30 s: raw results only, the doc is left alone; other groups: batch,
lambda, handoff, big). The first run creates `bench/.peer-venv` and installs matplotlib into
`.venv` if it is missing; `./build.sh test` does not run any of this.

## How each contender runs

All three get the same SCAR-form environment — `EVENT` (the S3 notification JSON),
`FUNCTION_CONFIG` (base64 of the function's YAML, as SCAR writes it), `SCRIPT` (base64) —
plus fake credentials and `AWS_ENDPOINT_URL` pointing at one moto server. botocore ≥ 1.31
honours `AWS_ENDPOINT_URL` for every client, so no contender is modified to reach it.

| | Batch-style run (one process per run) | Lambda rows (in-process, `bench/lambda_child.py`) |
| --- | --- | --- |
| ours | `.venv/bin/python -m supervisor.batch_entry` (what `supervisor-batch` runs) | `supervisor.handler.lambda_handler` |
| peer | `bench/.peer-venv/bin/python -m faassupervisor.supervisor` with `EVENT` also on stdin: SCAR's job definition runs `echo $EVENT \\| supervisor`, and its binary mode reads the event there | `faassupervisor.faas.aws_lambda.function_handler.lambda_handler` with `AWS_EXECUTION_ENV=AWS_Lambda_Image` (its container-image runtime: `/bin/sh` runs the script, no udocker) and the configuration in `FDL`; for the hand-off, its udocker path (the only one that delegates on timeout) with `UDOCKER_EXEC` set to a stub that runs the entrypoint directly |
| floor | `.venv/bin/python bench/floor.py` | `bench/floor.py`'s `lambda_handler` |

The peer runs from its Python package in its own venv (`pip install --no-deps
faas-supervisor==1.5.8`, then `webdavclient3==3.14.6 requests boto3 pyyaml setuptools`: its
metadata names a broken requirement), not as the PyInstaller binary SCAR mounts on Batch.
The floor parses the same YAML configuration, downloads with `download_file`, runs the
script with `subprocess`, and uploads each output with one `PutObject` under 8 MiB or
s3transfer's multipart `upload_file` from 8 MiB, eight files at a time: the simplest
one-at-a-time `upload_file` loop takes about twice as long as this project on 200 files
here, so it would not be a floor.

## Method

- One moto server (`python -m moto.server`, a separate process, access log discarded,
  Batch configured with `use_docker: false`) serves every run, so its CPU is never counted.
- Each round runs ours, the peer and the floor one after another, the order rotated every
  round. Every run uses fresh keys and is checked afterwards: the expected output objects
  must all be there (with the right content for small ones, the right size for big ones),
  and a hand-off must have left a job in Batch and no outputs. A run that fails the check
  gets no figure; failures are listed below.
- Batch rows: wall time is the runner's clock around the whole process; own CPU (user + sys)
  and peak RSS come from `/usr/bin/time -f '%U %S %M'` (`wait4` of the contender, its script
  included, the same `cp` for all three), never from the runner's `getrusage`. In the
  {big} MiB row most wall time is moto serving ranged GETs, so CPU and RSS are compared there.
  Its input is a server-side copy of one uploaded object. Growth: the median peak RSS
  of the {big2} MiB runs over that of the {big} MiB runs (1.0 = flat).
- Lambda rows: a fresh process per contender and round times the import of the handler
  module (`supervisor.handler`; the peer's `function_handler`; for the floor the row is
  `import boto3` alone) before anything else is imported, then invokes the handler
  in-process: the first invocation (cold start = import + first invocation; the floor's
  import there includes its module), then {warm} warm ones (their median per process), each
  on a fresh 1-byte object that the trivial script (`cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"`)
  copies to one output, so each invocation is checked.
- Hand-off: a `lambda-batch` function with a 3 s Lambda timeout and a 1 s
  `timeout_threshold`; its script (`exec sleep 60`) runs past the budget. Latency = the end of
  the invocation − the instant the contender's own watchdog was due, from its first call of
  `get_remaining_time_in_millis` (ours: remaining − threshold; the peer: `int(remaining s)` −
  threshold, its `Popen.wait` timeout). It includes stopping the script, (ours) writing the
  hand-off document and SubmitJob answered. First hand-off of a fresh process, and the next
  one in the same process. The floor does not delegate.
- Layer zip: the size of `dist/supervisor-layer.zip` (`./build.sh layer`) when the run
  happens; n/a when it is not built.

## What the commit costs

{commit}

## The container rows

Both need Debian's `docker-registry` and `skopeo` (the registry of
`tests/support/registry.py`, on a loopback port) and, for the warm invocation, proot and
`ptrace`; without them they are skipped with a note below, and the rest of the run goes on.

- Warm invocation, script in a pulled image vs on the host: per round a fresh
  `bench/lambda_child.py` process (ours, the real `supervisor.handler`: `handle(event,
  context, environ=..., clients=ClientFactory())` with one client factory per process, as
  Lambda keeps it) and a fresh, empty udocker dir (`SUPERVISOR_UDOCKER_DIR`: a new sandbox)
  invoke two functions that differ only in `container.run_on_host`. One runs the trivial
  script in `127.0.0.1:PORT/bench/busybox:v1` (built by `supervisor.local.image`, pushed
  with skopeo) with `execmode: P1`, the other (the floor column) on the host. First host,
  image, host, image, host, image (the first image invocation pulls the image, creates the
  container and records its launch command: the row "first invocation in the pulled
  image"), then {warm} pairs, image and host alternating (ABBA), each on a fresh 1-byte
  object whose copy is checked. Per round: the median of each side and their difference; the table gives the
  medians over rounds and the median of the differences. After each round the runner times
  one `udocker run` of that round's container running `/bin/true` (three times, the
  median): what each run would add if it went through udocker.
- Cold pull of a multi-layer image vs the same blobs with a plain client: busybox plus four
  layers of 8 MiB of incompressible bytes (`supervisor.local.image.build_layered_image`),
  pushed to the same registry. Ours: `supervisor.container.pull.pull` into an
  `ImageStore` on a fresh, empty directory (tag resolved, config and layers fetched four at
  a time, each written under a temporary name and renamed once its sha256 checks). The
  floor: a urllib3 `PoolManager` GETs the manifest, then the config and every layer with
  4 threads into files in a fresh directory, each checked against its sha256. Both in the
  runner's process, one after the other, the order swapped every round; both check the
  bytes they hold afterwards.

{container}

## Failed runs

{failures}
"""
