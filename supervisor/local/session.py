"""``supervisor local``: the whole pipeline on one machine, as AWS would run it.

An embedded endpoint (moto over loopback) gets the function definition(s)
deployed with the real provisioning code; uploads under an input path become
S3 events (:mod:`.event_source`), the functions run in their own Lambda-like
subprocesses (:mod:`.lambda_executor`), and the jobs they hand to Batch run on
the local Batch executor (:mod:`.batch_executor`). Outputs that land in
another function's input path trigger it: a workflow. The session ends when
nothing is left to do and reports one row per processed object.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

from ..aws import ClientFactory
from ..config import FunctionConfig, from_fdl
from ..errors import ConfigError, SupervisorError
from ..fileset import named_files
from ..gateway import proxy_event, resolve
from ..packaging import artefacts_for
from ..provision import FunctionRequest, deploy, names_of
from ..provision.userdata import HOST_DIR
from ..workflow import check_loops, edges
from .account import localize, prepare_account
from .batch_executor import LocalBatchExecutor
from .batch_resolve import LocalHost, base_env
from .batch_tap import SubmitJobTap
from .endpoint import start_endpoint
from .event_source import EventSource
from .lambda_executor import LambdaExecutor
from .sessions import new_session
from .store import LocalStore
from .tail import TAIL_LINES, ScriptTail

__all__ = ["LocalCloud", "LocalReport", "run_local", "entry_functions"]

Progress = Callable[[str], None]


class Bar(Protocol):
    """A transfer's progress: called with each chunk's bytes, then ``done``."""

    def __call__(self, bytes_amount: int) -> None: ...  # noqa: E704

    def done(self) -> None: ...  # noqa: E704


#: Makes the bar of one upload (its label and size in bytes).
Bars = Callable[[str, int], Bar]


@dataclass(frozen=True)
class LocalReport:
    """What a local session did: one row per processed object, and whether all went well."""

    endpoint: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = False
    session: str = ""  # the session's id: status/logs --local --session read it
    session_dir: Optional[Path] = None  # its state, logs and copied outputs


def entry_functions(configs: Sequence[FunctionConfig]) -> list[FunctionConfig]:
    """The functions no other function triggers: where a workflow's uploads go in."""
    graph = edges(configs)
    fed = {target for source, targets in graph.items() for target in targets
           if target != source}
    return [c for c in configs if c.name not in fed]


class LocalCloud:
    """The embedded endpoint with ``configs`` deployed and both executors running.

    A context manager: entering starts the endpoint, creates the local
    account's prerequisites, deploys every function with the real
    provisioning code and starts watching the input paths; leaving stops
    the executors (a job or invocation still running is killed) and the
    endpoint.
    """

    def __init__(self, configs: Sequence[FunctionConfig], *, state_dir: Path,
                 progress: Progress, timeout: Optional[float] = None,
                 layer_zip: Optional[Path] = None,
                 batch_pyz: Optional[Path] = None,
                 udocker_layer_zip: Optional[Path] = None,
                 stream: Optional[Progress] = None) -> None:
        check_loops(configs)
        # those not given: found or built in the per-user cache
        artefacts = artefacts_for(configs, environ=os.environ, log=progress,
                                  layer_zip=layer_zip, batch_pyz=batch_pyz,
                                  udocker_layer_zip=udocker_layer_zip, warnings=False)
        self.configs = list(configs)
        self.state_dir = state_dir
        self.progress = progress
        self.tail = ScriptTail(stream)  # the scripts' output, as it is written
        self.timeout = timeout
        self.layer_zip = artefacts.layer_zip
        self.batch_pyz = artefacts.batch_pyz
        self.udocker_layer_zip = artefacts.udocker_layer_zip
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "LocalCloud":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        # each run its own folder: what earlier runs left (logs, outputs) stays
        self.session, self.session_dir = new_session(self.state_dir)
        self._stack.callback(_prune, self.session_dir)
        self.progress(f"local session {self.session} in {self.session_dir}")
        endpoint = self._stack.enter_context(start_endpoint())
        self.endpoint = endpoint
        self.progress(f"embedded AWS endpoint: {endpoint.url}")
        tap = SubmitJobTap()
        tap.install(endpoint.server)
        self.clients = _clients(endpoint.url)
        account = prepare_account(self.clients, self.configs)
        self.account_id = account.account_id
        self.local = {c.name: localize(c, account) for c in self.configs}
        # The code as deployed (a shipped image archive named by its S3 URI): a script
        # edited during the session does not change what the functions run (as on AWS).
        codes: dict[str, bytes] = {}
        for config in self.local.values():
            result = deploy(config, self.clients, layer_zip=self.layer_zip,
                            batch_pyz=self.batch_pyz, udocker_layer_zip=self.udocker_layer_zip)
            function = result.plan.one(FunctionRequest)
            if function is not None:
                codes[config.name] = function.code
            made = sum(1 for o in result.outcomes if o.action == "created")
            self.progress(f"deployed {config.name} ({config.execution_mode}): "
                          f"{made} resources")
        self.store = LocalStore(self.session_dir, endpoint=endpoint.url)
        local, layer_zip, udocker_zip = self.local, self.layer_zip, self.udocker_layer_zip
        udocker_layers = {f":layer:{names_of(c).udocker_layer}:" for c in local.values()}
        self.lambdas = self._stack.enter_context(LambdaExecutor(
            self.clients, endpoint_env=endpoint.env, store=self.store,
            work_root=self.session_dir / "lambda",
            code=codes.__getitem__,  # called with the FunctionName Lambda reports
            # locally the only layer whose content is at hand is the supervisor's own
            layers=lambda arn: (udocker_zip if any(n in arn for n in udocker_layers)
                                else layer_zip),
            timeout_override=self.timeout))
        host = LocalHost(
            base_env=base_env(os.environ, endpoint.env),
            host_paths={HOST_DIR: self.batch_pyz.resolve().parent},
            executables={"python3": sys.executable}, pull_images=True,
            image_files={c.container.image: Path(c.container.image_file)
                         for c in local.values() if c.container.image_file})
        self.batch = self._stack.enter_context(LocalBatchExecutor(
            self.clients.client("batch"), self.store, self.session_dir / "batch", host=host,
            tap=tap, queues={c.job_queue_name for c in local.values() if c.delegates}))
        self.source = EventSource(self.clients, self.lambdas, functions=set(local))
        self.source.refresh()

    def upload(self, path: Path, function: Optional[str] = None,
               name: Optional[str] = None, bars: Optional[Bars] = None) -> str:
        """Put ``path`` under the first input path of ``function`` (default: the
        workflow's entry), as ``name`` (default its own), drawing a bar from ``bars``;
        returns the S3 URI."""
        config = self.local[function] if function else \
            self.local[entry_functions(self.configs)[0].name]
        target = config.input[0]
        key = f"{target.key_prefix}/{name or path.name}".lstrip("/")
        bar = bars(key, path.stat().st_size) if bars is not None else None
        self.clients.s3().upload_file(str(path), target.bucket, key, Callback=bar)
        if bar is not None:
            bar.done()
        uri = f"s3://{target.bucket}/{key}"
        self.progress(f"uploaded {path} -> {uri}")
        return uri

    def request(self, path: Path, function: Optional[str] = None) -> str:
        """Send ``path``'s content through the REST API of ``function`` (default: the first
        entry function with ``api_gateway``), as API Gateway sends a POST to the local
        Lambda; returns the API's endpoint."""
        entries = entry_functions(self.configs)
        name = function or next((c.name for c in entries if c.raw.get("api_gateway")),
                                entries[0].name)
        route = resolve(self.clients.client("apigateway"), name)
        disposition = f'attachment; filename="{path.name}"'
        event = proxy_event(route, path.read_bytes(), account_id=self.account_id,
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Disposition": disposition})
        self.lambdas.invoke(route.function_arn, event, "Event")
        self.progress(f"requested {route.url} with {path} -> {name}")
        return route.url

    def run_until_quiet(self, max_wait: float = 3600.0) -> None:
        """Deliver events and run jobs until nothing is left to do."""
        _run_until_quiet(self.source, self.lambdas, self.batch, self.store, self.progress,
                         max_wait, self.tail)

    def report(self) -> LocalReport:
        """One row per processed object; outputs copied to the session's ``outputs``."""
        rows = _rows(self.store.snapshot(), self.local, self.tail)
        outputs = self.session_dir / "outputs"
        copied = _copy_outputs(self.clients, rows, outputs, self.progress)
        if copied:
            self.progress(f"outputs copied to {outputs} ({copied} files)")
        ok = bool(rows) and all(r["status"] == "completed" for r in rows)
        return LocalReport(endpoint=self.endpoint.url, rows=rows, ok=ok, session=self.session,
                           session_dir=self.session_dir)


def run_local(fdl: Path, puts: Sequence[Path], *, timeout: Optional[float], state_dir: Path,
              progress: Progress, layer_zip: Optional[Path] = None,
              batch_pyz: Optional[Path] = None, max_wait: float = 3600.0,
              requests: Sequence[Path] = (),
              udocker_layer_zip: Optional[Path] = None,
              stream: Optional[Progress] = None,
              bars: Optional[Bars] = None) -> LocalReport:
    """Deploy ``fdl`` into an embedded endpoint, upload ``puts``, send ``requests``
    through the entry function's REST API, run until quiet.

    The files go to the first input path of the workflow's first entry function (a
    folder: every file under it, named by its path in the folder), each with a progress
    bar from ``bars``. ``stream`` gets each line of the scripts' output as it is written.
    Raises ``ConfigError``/``SupervisorError`` for what stops the session
    before anything runs (a bad definition, a loop, missing artefacts).
    """
    configs = from_fdl(fdl)
    missing = [f"--put {p}: no such file or folder" for p in puts
               if not (p.is_file() or p.is_dir())]
    missing += [f"--request {p}: not a file" for p in requests if not p.is_file()]
    if missing:
        raise ConfigError(missing)
    with LocalCloud(configs, state_dir=state_dir, progress=progress, timeout=timeout,
                    layer_zip=layer_zip, batch_pyz=batch_pyz,
                    udocker_layer_zip=udocker_layer_zip, stream=stream) as cloud:
        for path, name in named_files(puts):
            cloud.upload(path, name=name, bars=bars)
        for body in requests:
            cloud.request(body)
        cloud.run_until_quiet(max_wait)
        return cloud.report()


def _prune(session_dir: Path) -> None:
    """What a finished session keeps: its state, logs and outputs; the functions' unpacked
    code and layers and the jobs' scratch folders (large, and made again) go."""
    for kind, keep in (("lambda", {"logs"}), ("batch", set())):
        root = session_dir / kind
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and kind == "batch":  # a job: keep its attempt logs
                for part in entry.iterdir():
                    if part.is_dir():
                        shutil.rmtree(part, ignore_errors=True)
            elif entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def _clients(url: str) -> ClientFactory:
    import boto3.session

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                    region_name="us-east-1")
    return ClientFactory(session=session, endpoint_url=url)


def _run_until_quiet(source: EventSource, lambdas: LambdaExecutor,
                     batch: LocalBatchExecutor, store: LocalStore, progress: Progress,
                     max_wait: float, tail: ScriptTail, interval: float = 0.2) -> None:
    """Drive events and jobs until nothing is pending twice in a row; the scripts'
    output goes to ``tail`` as it comes."""
    deadline = time.monotonic() + max_wait
    seen: dict[str, str] = {}
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise SupervisorError(f"the local session did not settle within {max_wait:.0f} s")
        dispatched = source.poll_once()
        found = batch.poll_once()
        doc = store.snapshot()
        tail.poll(doc)
        _report_changes(doc, seen, progress)
        busy = dispatched or found or lambdas.busy() or batch.busy() or source.pending()
        quiet = 0 if busy else quiet + 1
        time.sleep(interval)
    doc = store.snapshot()
    tail.poll(doc)
    _report_changes(doc, seen, progress)


def _report_changes(doc: dict[str, Any], seen: dict[str, str], progress: Progress) -> None:
    for rid, inv in sorted(doc["invocations"].items(), key=lambda kv: kv[1].get("started", 0)):
        status = str(inv.get("status"))
        if seen.get(rid) != status:
            seen[rid] = status
            progress(f"lambda {inv.get('function')}: {status} ({inv.get('object', '')})")
            for record in inv.get("records") or []:
                if record.get("status") == "delegated":
                    progress(f"  handed off to Batch job {str(record.get('job_id'))[:8]}: "
                             f"{record.get('reason')}")
                elif record.get("status") != "completed":
                    progress(f"  {record.get('status')}: {record.get('error') or ''}")
    for job_id, job in doc["jobs"].items():
        status = str(job.get("status"))
        if seen.get(job_id) != status:
            seen[job_id] = status
            progress(f"batch job {job.get('name')} {job_id[:8]}: {status}"
                     + (f" (exit {job['exit_code']})" if status in ("SUCCEEDED", "FAILED")
                        and job.get("exit_code") is not None else ""))


def _rows(doc: dict[str, Any], configs: dict[str, FunctionConfig],
          tail: Optional[ScriptTail] = None) -> list[dict[str, Any]]:
    """One row per object an invocation handled, with where it finally ran; a failed
    row carries the last lines of the script's output (``output_tail``)."""
    tail = tail or ScriptTail()
    rows: list[dict[str, Any]] = []
    invocations = sorted(doc["invocations"].values(), key=lambda inv: inv.get("started", 0))
    for inv in invocations:
        name = str(inv.get("function"))
        mode = configs[name].execution_mode if name in configs else "?"
        records = inv.get("records") or []
        if not records:
            for obj in [f"s3://{o.get('bucket')}/{o.get('key')}"
                        for o in inv.get("objects") or []] or [str(inv.get("object", ""))]:
                rows.append(_row(obj, name, mode, "lambda", "failed",
                                 inv.get("duration"), outputs=[],
                                 error=inv.get("error") or inv.get("status")))
            continue
        for record in records:
            obj = (f"s3://{record.get('bucket')}/{record.get('key')}" if record.get("bucket")
                   else "(request)")
            job_id = record.get("job_id")
            if record.get("status") == "delegated" and job_id:
                job = doc["jobs"].get(job_id, {})
                state = job.get("status", "not started")
                ended = job.get("stopped") or inv.get("ended") or 0
                rows.append(_row(obj, name, mode, "batch",
                                 "completed" if state == "SUCCEEDED" else "failed",
                                 max(0.0, float(ended) - float(inv.get("started") or ended)),
                                 job_id=job_id, job_state=state, outputs=_job_outputs(job),
                                 error=job.get("reason") if state != "SUCCEEDED" else None,
                                 output_tail=tail.last_lines(job.get("log"))))
            else:
                lines = str(record.get("output_tail") or "").splitlines()[-TAIL_LINES:]
                rows.append(_row(obj, name, mode, "lambda", str(record.get("status")),
                                 record.get("duration") or inv.get("duration"),
                                 outputs=list(record.get("uploaded") or []),
                                 error=record.get("error"), output_tail=lines))
    return rows


def _row(obj: str, function: str, mode: str, ran_on: str, status: str, duration: Any, *,
         outputs: list[str], job_id: Optional[str] = None, job_state: Optional[str] = None,
         error: Optional[str] = None, output_tail: Sequence[str] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {"object": obj, "function": function, "mode": mode,
                           "ran_on": ran_on, "status": status,
                           "duration": round(float(duration or 0.0), 2), "job_id": job_id,
                           "job_state": job_state, "outputs": outputs}
    if error and status != "completed":
        row["error"] = error
        row["output_tail"] = list(output_tail)
    return row


def _copy_outputs(clients: ClientFactory, rows: Sequence[dict[str, Any]], dest: Path,
                  progress: Progress) -> int:
    """Download every output of the session to ``dest/<bucket>/<key>`` (the endpoint
    goes away with the session); returns how many files were copied. A file that
    cannot be copied is reported and skipped: the report still comes."""
    from botocore.exceptions import BotoCoreError, ClientError

    count = 0
    for row in rows:
        for uri in row["outputs"]:
            bucket, _, key = uri[5:].partition("/")
            target = dest / bucket / key
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                clients.s3().download_file(bucket, key, str(target))
            except (OSError, ClientError, BotoCoreError) as exc:
                progress(f"could not copy {uri} to {target}: {exc}")
                continue
            count += 1
    return count


def _job_outputs(job: dict[str, Any]) -> list[str]:
    """The S3 URIs a job uploaded: from supervisor-batch's summary line in its log."""
    log = job.get("log")
    if not log:
        return []
    try:
        lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in reversed(lines):
        if line.startswith('{"records"'):
            try:
                summary = json.loads(line)
            except ValueError:
                continue
            return [uri for rec in summary.get("records", []) for uri in rec.get("uploaded", [])]
    return []
