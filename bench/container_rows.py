"""The container rows: a script in a pulled image against the same script on the host, and a
cold pull against a plain HTTP client. Both use one loopback registry.

The registry is ``tests/support/registry.py``'s ``Registry`` (Debian's ``docker-registry``
on ``127.0.0.1``, images pushed with ``skopeo``); without those two programs, proot or
``ptrace`` the rows are skipped with a note, and the rest of the run goes on.

* Warm invocation: per round a fresh ``lambda_child.py`` process (``ours``, the real
  ``supervisor.handler``) with a fresh udocker dir (``SUPERVISOR_UDOCKER_DIR``: a new
  sandbox) invokes two functions that differ only in ``container.run_on_host``: one runs
  the trivial script in ``127.0.0.1:PORT/bench/busybox:v1`` (PRoot, P1), the other on the
  host. Three invocations of each first (the first image one pulls the image, creates the
  container and records its launch command: kept as its own figure), then ``warm`` pairs,
  image and host alternating (ABBA), each on a fresh 1-byte object checked afterwards.
  Figures per round: the median of each side, and their difference.
* Cold pull: ``supervisor.container.pull.pull`` into an empty ``ImageStore`` against the
  floor, a plain urllib3 client with 4 threads that GETs the manifest and every blob into
  files, each checked against its sha256; a fresh directory for each, in the runner's
  process, interleaved, the order swapped every round.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import workload
from .contenders import ROOT, Contender
from .lambda_rows import check_completed, run_child
from .measure import RunFailed
from .session import Session

__all__ = ["ContainerSetup", "unavailable", "run_invoke_rows", "run_pull_rows", "floor_pull",
           "image_meta", "IMAGE_REPO", "LAYERED_REPO", "PULL_LAYER_BYTES", "PULL_THREADS", "EXECMODE"]

IMAGE_REPO, IMAGE_TAG = "bench/busybox", "v1"
LAYERED_REPO, LAYERED_TAG = "bench/layered", "v1"
#: The pulled image: busybox plus these data layers (incompressible bytes).
PULL_LAYER_BYTES: tuple[int, ...] = (8 << 20,) * 4
PULL_THREADS = 4
EXECMODE = "P1"
FUNCTION = "bench-container"
#: Invocations before the timed ones, in this order: the process's first (host), the
#: sandbox's first container run (image: pull, create, setup, record), then two of each.
WARMUP_PLAN: tuple[str, ...] = ("host", "image", "host", "image", "host", "image")
_FIRST_IMAGE = WARMUP_PLAN.index("image")
_CHUNK = 1024 * 1024
_UDOCKER_REPEATS = 3


def _registry_module() -> Any:
    """``tests/support/registry.py``, imported from the project tree (not copied)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support import registry

    return registry


def unavailable() -> Optional[str]:
    """Why the container rows cannot run here (a note for the doc), or None."""
    try:
        registry = _registry_module()
    except ImportError as exc:
        return f"tests/support/registry.py cannot be imported ({exc})"
    missing = registry.missing_tools()
    if missing:
        return f"needs {' and '.join(missing)} (apt-get install {' '.join(missing)})"
    from supervisor.container.probe import ptrace_allowed
    from supervisor.local.image import BUSYBOX

    if not Path("/usr/bin/proot").is_file():
        return "needs proot (apt-get install proot) for execution mode P1"
    if not ptrace_allowed():
        return "ptrace is not allowed here, which PRoot (execution mode P1) needs"
    if not BUSYBOX.is_file():
        return f"needs a static {BUSYBOX} for the test image (apt-get install busybox-static)"
    return None


@dataclass
class ContainerSetup:
    """The running registry and the two images pushed to it."""

    registry: Any  # tests.support.registry.Registry
    image: str  # 127.0.0.1:PORT/bench/busybox:v1
    layered: str  # 127.0.0.1:PORT/bench/layered:v1
    layered_blobs: int  # config + layers
    layered_bytes: int  # their total size

    @classmethod
    def create(cls, session: Session) -> "ContainerSetup":
        """Build both images, start the registry under the work dir, push them."""
        from supervisor.local.image import build_busybox_image, build_layered_image

        module = _registry_module()
        images = session.work / "images"
        images.mkdir(exist_ok=True)
        busybox = build_busybox_image(images / "busybox.tar", tag=f"{IMAGE_REPO}:{IMAGE_TAG}")
        layered = build_layered_image(images / "layered.tar", tag=f"{LAYERED_REPO}:{LAYERED_TAG}",
                                      layer_bytes=list(PULL_LAYER_BYTES))
        registry = module.Registry(session.work / "registry").start()
        try:
            registry.push(busybox, IMAGE_REPO, IMAGE_TAG)
            registry.push(layered, LAYERED_REPO, LAYERED_TAG)
            manifest = _manifest(registry.url, LAYERED_REPO, LAYERED_TAG, module.MANIFEST_ACCEPT)
        except BaseException:
            registry.close()
            raise
        finally:
            busybox.unlink(missing_ok=True)
            layered.unlink(missing_ok=True)
        blobs = _blobs(manifest)
        return cls(registry=registry, image=f"{registry.host}/{IMAGE_REPO}:{IMAGE_TAG}",
                   layered=f"{registry.host}/{LAYERED_REPO}:{LAYERED_TAG}",
                   layered_blobs=len(blobs), layered_bytes=sum(int(b["size"]) for b in blobs))

    def close(self) -> None:
        """Stop the registry (its storage goes with the work dir)."""
        self.registry.close()


def _manifest(base_url: str, repo: str, reference: str, accept: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(f"{base_url}/v2/{repo}/manifests/{reference}",
                                     headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def _blobs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The config's and the layers' descriptors (digest, size), config first."""
    return [manifest["config"], *manifest["layers"]]


# --------------------------------------------------------------------------- warm invocation

def _plan(pairs: int) -> list[str]:
    """The sides in run order: the warm-ups, then ``pairs`` ABBA-alternating pairs."""
    timed: list[str] = []
    for number in range(pairs):
        timed += ["image", "host"] if number % 2 == 0 else ["host", "image"]
    return list(WARMUP_PLAN) + timed


def _udocker_run_ms(udocker_dir: Path, image: str) -> float:
    """The median wall time of ``udocker run`` of the round's container running ``/bin/true``:
    what each run would cost if it went through udocker instead of the recorded command."""
    from supervisor.container import udocker
    from supervisor.container.reference import parse_reference
    from supervisor.container.spec import ContainerSettings, ContainerSpec
    from supervisor.watchdog import Deadline

    settings = ContainerSettings.from_environ({"SUPERVISOR_UDOCKER_DIR": str(udocker_dir)})
    spec = ContainerSpec(image=image, settings=settings, reference=parse_reference(image),
                         execmode=EXECMODE)
    names = sorted(p.name for p in (udocker_dir / "containers").iterdir()
                   if p.name.startswith("supervisor-"))
    if len(names) != 1:
        raise RunFailed(f"expected one container in {udocker_dir}, found {names}")
    tmp = spec.state_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = udocker.udocker_env(spec, tmp_dir=tmp, host_env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    args = ["--quiet", "run", "--nobanner", "--nosysdirs", "--entrypoint=", names[0], "/bin/true"]
    times = []
    for _ in range(_UDOCKER_REPEATS):
        start = time.perf_counter()
        udocker.call(spec, args, env=env, deadline=Deadline.none(), clock=time.monotonic)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times)


def _invoke_round(session: Session, setup: ContainerSetup, ours: Contender,
                  pairs: int) -> tuple[dict[str, float], dict[str, int]]:
    fixture = session.fixture
    prefix = fixture.fresh_prefix("container")
    script = session.work / f"{prefix}.sh"
    script.write_text(workload.COPY_SCRIPT, encoding="utf-8")
    udocker_dir = session.work / f"{prefix}-udocker"
    configs = {side: workload.b64(workload.config_yaml(
        name=FUNCTION, bucket=fixture.bucket, prefix=prefix, init_script=str(script),
        image=setup.image, run_on_host=side == "host", execmode=EXECMODE))
        for side in ("image", "host")}
    plan = _plan(pairs)
    try:
        events, environ, bodies = [], [], {}
        for number, side in enumerate(plan):
            key = f"{prefix}/in/obj{number}.dat"
            body = bytes([97 + number % 26])
            size, etag = fixture.put(key, body)
            events.append(workload.s3_event(fixture.bucket, key, size, etag))
            environ.append({"FUNCTION_CONFIG": configs[side]})
            bodies[f"{prefix}/out/obj{number}.dat"] = body
        setup.registry.reset_counts()
        result = run_child(session, ours, "container",
                           {"events": events, "environ": environ, "function_name": FUNCTION,
                            "timeout": 300},
                           {"SUPERVISOR_UDOCKER_DIR": str(udocker_dir)})
        calls = result["invocations"]
        if len(calls) != len(plan):
            raise RunFailed(f"{len(calls)} invocations for {len(plan)} events")
        check_completed(ours, calls, fixture, prefix, bodies, labels=list(plan))
        if not (udocker_dir / "containers").is_dir():
            raise RunFailed(f"no container in {udocker_dir}: the image side ran on the host")
        requests = {"image_invocations": plan.count("image"),
                    "manifest": setup.registry.requests("manifest", IMAGE_REPO),
                    "blob": setup.registry.requests("blob", IMAGE_REPO)}
        timed = list(zip(plan, calls))[len(WARMUP_PLAN):]
        figures = {
            side: 1000.0 * statistics.median(float(c["seconds"]) for s, c in timed if s == side)
            for side in ("image", "host")}
        figures["first_image"] = 1000.0 * float(calls[_FIRST_IMAGE]["seconds"])
        figures["udocker_run"] = _udocker_run_ms(udocker_dir, setup.image)
        return figures, requests
    finally:
        fixture.delete_prefix(prefix)
        script.unlink(missing_ok=True)
        shutil.rmtree(udocker_dir, ignore_errors=True)


def run_invoke_rows(session: Session, setup: ContainerSetup, *, warmups: int, rounds: int,
                    pairs: int) -> None:
    """Warm invocation in the pulled image against the same on the host, per fresh sandbox."""
    ours = next(c for c in session.contenders if c.name == "ours")
    for number in range(warmups + rounds):
        warmup = number < warmups
        try:
            figures, requests = _invoke_round(session, setup, ours, pairs)
        except (RunFailed, subprocess.TimeoutExpired, OSError) as exc:
            session.progress(f"  container round {number} FAILED {exc}")
            session.results.fail("container", "ours", str(exc))
            continue
        except Exception as exc:  # the container API changed under the bench: say what
            session.progress(f"  container round {number} FAILED {type(exc).__name__}: {exc}")
            session.results.fail("container", "ours", f"{type(exc).__name__}: {exc}")
            continue
        add = session.results.add
        add("container_warm_invoke", "ours", figures["image"], round_=number, warmup=warmup)
        add("container_warm_invoke", "floor", figures["host"], round_=number, warmup=warmup)
        add("container_first_invoke", "ours", figures["first_image"], round_=number,
            warmup=warmup)
        add("container_udocker_run", "ours", figures["udocker_run"], round_=number,
            warmup=warmup)
        if not warmup:
            session.results.meta.setdefault("container_requests", []).append(requests)
        session.progress(
            f"  container round {number}{' (warm-up)' if warmup else ''}: warm image "
            f"{figures['image']:.1f} ms, host {figures['host']:.1f} ms (+"
            f"{figures['image'] - figures['host']:.1f} ms); first image invocation "
            f"{figures['first_image']:.0f} ms; udocker run {figures['udocker_run']:.0f} ms; "
            f"registry: {requests['manifest']} manifest and {requests['blob']} blob requests "
            f"for {requests['image_invocations']} image invocations")


# --------------------------------------------------------------------------- cold pull

def floor_pull(base_url: str, repo: str, reference: str, dest: Path, *,
               threads: int = PULL_THREADS) -> int:
    """The floor: GET the manifest, then every blob (config and layers) with ``threads``
    threads into files in ``dest``, each checked against its sha256; the bytes written."""
    import urllib3

    module = _registry_module()
    pool = urllib3.PoolManager(maxsize=threads, retries=False)
    answer = pool.request("GET", f"{base_url}/v2/{repo}/manifests/{reference}",
                          headers={"Accept": module.MANIFEST_ACCEPT})
    if answer.status != 200:
        raise RunFailed(f"manifest: HTTP {answer.status}")
    (dest / "manifest.json").write_bytes(answer.data)
    blobs = _blobs(json.loads(answer.data))

    def one(blob: dict[str, Any]) -> int:
        digest = str(blob["digest"])
        response = pool.request("GET", f"{base_url}/v2/{repo}/blobs/{digest}",
                                preload_content=False)
        try:
            if response.status != 200:
                raise RunFailed(f"blob {digest[:19]}: HTTP {response.status}")
            hasher, size = hashlib.sha256(), 0
            with open(dest / digest.replace(":", "-"), "wb") as handle:
                for chunk in response.stream(_CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
        finally:
            response.release_conn()
        if f"sha256:{hasher.hexdigest()}" != digest:
            raise RunFailed(f"blob {digest[:19]}: the content does not match its digest")
        return size

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as workers:
        return sum(workers.map(one, blobs))


def _ours_pull(image: str, dest: Path) -> int:
    """``supervisor.container.pull.pull`` into an empty store; the bytes it holds after."""
    from supervisor.container.pull import pull
    from supervisor.container.reference import parse_reference
    from supervisor.container.store import ImageStore, image_blobs
    from supervisor.watchdog import Deadline

    store = ImageStore(dest)
    pulled = pull(parse_reference(image), store, Deadline.none(), clock=time.monotonic,
                  label=image)
    return sum(store.blob_path(d).stat().st_size for d in image_blobs(pulled.manifest))


def _pull_once(session: Session, setup: ContainerSetup, side: str) -> float:
    dest = Path(tempfile.mkdtemp(prefix=f"pull-{side}-", dir=session.work))
    try:
        start = time.perf_counter()
        if side == "ours":
            size = _ours_pull(setup.layered, dest)
        else:
            size = floor_pull(setup.registry.url, LAYERED_REPO, LAYERED_TAG, dest)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if size != setup.layered_bytes:
        raise RunFailed(f"{side} pulled {size} bytes, the image has {setup.layered_bytes}")
    return seconds


def _order(number: int) -> Sequence[str]:
    return ("ours", "floor") if number % 2 == 0 else ("floor", "ours")


def run_pull_rows(session: Session, setup: ContainerSetup, *, warmups: int, rounds: int) -> None:
    """Cold pull of the layered image: ours against the plain client, interleaved."""
    for number in range(warmups + rounds):
        warmup = number < warmups
        done = []
        for side in _order(number):
            try:
                seconds = _pull_once(session, setup, side)
            except Exception as exc:  # an ImageError, an HTTP error, a changed API: no figure
                session.progress(f"  pull round {number} {side}: FAILED {exc}")
                session.results.fail("pull", side, f"{type(exc).__name__}: {exc}")
                continue
            session.results.add("container_pull", side, seconds, round_=number, warmup=warmup)
            done.append(f"{side} {seconds:.3f} s")
        session.progress(f"  pull round {number}{' (warm-up)' if warmup else ''}: "
                         + ", ".join(done))


def image_meta(setup: ContainerSetup) -> dict[str, Any]:
    """What the doc says about the images and the registry's requests."""
    return {"image": setup.image, "layered": setup.layered, "execmode": EXECMODE,
            "pull_layers": setup.layered_blobs - 1, "pull_blobs": setup.layered_blobs,
            "pull_mib": round(setup.layered_bytes / (1 << 20), 1),
            "pull_data_layers_mib": [b / (1 << 20) for b in PULL_LAYER_BYTES],
            "pull_threads": PULL_THREADS}
