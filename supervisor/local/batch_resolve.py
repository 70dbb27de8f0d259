"""What one attempt of a Batch job runs, resolved as Batch would (pure).

From the job definition (the revision the job was submitted with), the
overrides the job was submitted with, the attempt number and, for a
multi-node job, the node index, :func:`launches` computes each process the
local Batch executor starts: its argv and its environment.

The environment, later wins: ``LocalHost.base_env`` (PATH, HOME, LANG and
the endpoint's variables, standing in for the image's ``ENV`` and the job
role), the container's ``environment``, the overrides' ``environment``, then
Batch's own ``AWS_BATCH_*`` variables (a reserved prefix: the job's own
``AWS_BATCH_*`` names are dropped, as Batch refuses them), and
``SUPERVISOR_JOB_IMAGE_FILE`` when the job's image maps to a local archive (else, with
``LocalHost.pull_images``, ``SUPERVISOR_JOB_IMAGE``: the image to pull).

The command is the overrides' ``command``, else the container's, with
``Ref::name`` replaced by the job's parameters. Mount points whose volume is a
host ``sourcePath`` are served by a local directory (``LocalHost.host_paths``,
keyed by the ``sourcePath``) and every argument under the mount's
``containerPath`` is rewritten to it; a volume without a host path is a fresh
scratch directory. ``argv[0]`` may be mapped to a local program
(``LocalHost.executables``, e.g. ``{"python3": sys.executable}``).

Where the values come from (see :func:`spec_from_describe`): moto 5 drops
``nodeOverrides`` and ``retryStrategy`` from SubmitJob, and its DescribeJobs
``container.environment`` is the overrides merged with the definition's
variables plus ``AWS_BATCH_JOB_ID`` (one more each call). The submitted request
is used when it is known (:class:`~supervisor.local.batch_tap.SubmitJobTap`,
or the caller's ``track(job_id, request)``); otherwise the overrides are
recomputed from DescribeJobs, which gives the same environment for container
jobs and none for multi-node jobs.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..container.spec import ENV_JOB_IMAGE, ENV_JOB_IMAGE_FILE
from ..errors import JobSpecError

__all__ = [
    "JobSpecError", "JobSpec", "LocalHost", "Launch", "spec_from_describe",
    "overrides_from_describe", "first_compute_environment", "known_job_ids",
    "launches", "node_containers", "node_overrides_for",
    "parse_target_nodes", "max_attempts", "timeout_seconds", "should_retry", "image_file_for",
    "base_env", "BATCH_PREFIX", "IMAGE_FILE_ENV", "MAIN_NODE_ADDRESS", "EXIT_REASON",
    "TIMEOUT_REASON", "MAX_ATTEMPTS", "HOST_ENV_VARS",
]

BATCH_PREFIX = "AWS_BATCH_"
IMAGE_FILE_ENV = ENV_JOB_IMAGE_FILE  # read by supervisor.batch_entry
IMAGE_ENV = ENV_JOB_IMAGE
MAIN_NODE_ADDRESS = "127.0.0.1"  # every node runs on this machine
EXIT_REASON = "Essential container in task exited"  # Batch's statusReason
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
MAX_ATTEMPTS = 10  # retryStrategy.attempts is 1-10
HOST_ENV_VARS = ("PATH", "HOME", "LANG")
"""The only variables a job gets from the host's environment."""



@dataclass(frozen=True)
class JobSpec:
    """One submitted job, as the executor needs it (built by :func:`spec_from_describe`)."""

    job_id: str
    name: str
    queue: str
    compute_environment: str
    definition_arn: str
    kind: str  # "container" | "multinode"
    container: Mapping[str, Any] = field(default_factory=dict)  # containerProperties
    node_properties: Mapping[str, Any] = field(default_factory=dict)
    container_overrides: Mapping[str, Any] = field(default_factory=dict)
    node_overrides: Mapping[str, Any] = field(default_factory=dict)
    retry_strategy: Mapping[str, Any] = field(default_factory=dict)
    timeout: Optional[float] = None  # attemptDurationSeconds
    array_size: Optional[int] = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    created: Optional[float] = None  # seconds since the epoch
    overrides_from: str = "SubmitJob"  # or "DescribeJobs" (recomputed)


@dataclass(frozen=True)
class LocalHost:
    """How this machine stands in for a Batch host and the job's image."""

    base_env: Mapping[str, str] = field(default_factory=dict)
    host_paths: Mapping[str, Path] = field(default_factory=dict)  # host sourcePath -> dir
    executables: Mapping[str, str] = field(default_factory=dict)  # argv[0] -> program
    image_files: Mapping[str, Path] = field(default_factory=dict)  # image -> archive
    pull_images: bool = False  # an image with no archive is pulled (SUPERVISOR_JOB_IMAGE)


@dataclass(frozen=True)
class Launch:
    """One process of one attempt: the container job, or one node of a multi-node job."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    image: str
    image_file: Optional[Path] = None
    node_index: Optional[int] = None
    scratch: tuple[Path, ...] = ()  # directories to create before starting


def base_env(environ: Mapping[str, str], endpoint_env: Mapping[str, str]) -> dict[str, str]:
    """``PATH``, ``HOME``, ``LANG`` of ``environ`` (those set), then ``endpoint_env``."""
    env = {name: environ[name] for name in HOST_ENV_VARS if name in environ}
    env.update(endpoint_env)
    return env


# --------------------------------------------------------------------------- the spec

def _name_of(arn_or_name: str) -> str:
    """``arn:…:job-queue/NAME`` -> ``NAME`` (a plain name is returned as is)."""
    return arn_or_name.rsplit("/", 1)[-1]


def _env_dict(entries: Any) -> dict[str, str]:
    """A ``[{name, value}]`` list as a dict (later entries win; malformed ones skipped)."""
    result: dict[str, str] = {}
    for entry in entries or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            result[entry["name"]] = str(entry.get("value", ""))
    return result


def first_compute_environment(queue: Mapping[str, Any]) -> str:
    """The name of the queue's compute environment with the lowest ``order``."""
    order = [e for e in queue.get("computeEnvironmentOrder") or ()
             if isinstance(e, Mapping) and e.get("computeEnvironment")]
    if not order:
        return ""
    first = min(order, key=lambda e: int(e.get("order", 0)))
    return _name_of(str(first["computeEnvironment"]))


def overrides_from_describe(job: Mapping[str, Any],
                            container: Mapping[str, Any]) -> dict[str, Any]:
    """Container overrides recomputed from moto's DescribeJobs entry.

    moto reports ``container.environment`` as the submitted overrides, then the
    definition's variables they do not name, then ``AWS_BATCH_JOB_ID`` (again
    on every call); ``container.command`` is the overrides' command or the
    definition's. Taking every non-``AWS_BATCH_*`` variable as an override
    gives the same environment as definition-then-overrides would.
    """
    detail = job.get("container") or {}
    overrides: dict[str, Any] = {}
    env = {k: v for k, v in _env_dict(detail.get("environment")).items()
           if not k.startswith(BATCH_PREFIX)}
    if env:
        overrides["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    command = detail.get("command")
    if command and list(command) != list(container.get("command") or ()):
        overrides["command"] = list(command)
    return overrides


def _timeout(*sources: Optional[Mapping[str, Any]]) -> Optional[float]:
    for source in sources:
        value = (source or {}).get("attemptDurationSeconds")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def spec_from_describe(job: Mapping[str, Any], definition: Mapping[str, Any],
                       queue: Mapping[str, Any],
                       request: Optional[Mapping[str, Any]] = None) -> JobSpec:
    """The job as submitted, from DescribeJobs, DescribeJobDefinitions, DescribeJobQueues.

    ``request`` is the SubmitJob request when it is known; it is the source of
    the overrides, ``retryStrategy``, ``timeout`` and ``arrayProperties`` (moto
    keeps only the timeout). Without it the overrides come from
    :func:`overrides_from_describe`, the retry strategy from the definition.
    """
    kind = str(definition.get("type") or ("multinode" if job.get("nodeProperties")
                                          else "container"))
    container = definition.get("containerProperties") or {}
    nodes = definition.get("nodeProperties") or job.get("nodeProperties") or {}
    array = (request or {}).get("arrayProperties") or job.get("arrayProperties") or {}
    size = array.get("size") if isinstance(array, Mapping) else None
    parameters = {**(definition.get("parameters") or {}), **(job.get("parameters") or {}),
                  **((request or {}).get("parameters") or {})}
    created = job.get("createdAt")
    common: dict[str, Any] = dict(
        job_id=str(job["jobId"]), name=str(job.get("jobName", "")),
        queue=_name_of(str(queue.get("jobQueueName") or job.get("jobQueue", ""))),
        compute_environment=first_compute_environment(queue),
        definition_arn=str(job.get("jobDefinition") or definition.get("jobDefinitionArn", "")),
        kind=kind, container=container, node_properties=nodes,
        array_size=int(size) if isinstance(size, int) and size > 1 else None,
        parameters={str(k): str(v) for k, v in parameters.items()},
        created=created / 1000.0 if isinstance(created, (int, float)) else None)
    if request is not None:
        return JobSpec(
            **common, container_overrides=request.get("containerOverrides") or {},
            node_overrides=request.get("nodeOverrides") or {},
            retry_strategy=(request.get("retryStrategy")
                            or definition.get("retryStrategy") or {}),
            timeout=_timeout(request.get("timeout"), job.get("timeout"),
                             definition.get("timeout")),
            overrides_from="SubmitJob")
    return JobSpec(
        **common, container_overrides=overrides_from_describe(job, container),
        retry_strategy=definition.get("retryStrategy") or {},
        timeout=_timeout(job.get("timeout"), definition.get("timeout")),
        overrides_from="DescribeJobs")


# --------------------------------------------------------------------------- attempts

def max_attempts(spec: JobSpec) -> int:
    """``retryStrategy.attempts``, 1-10 (default 1)."""
    value = spec.retry_strategy.get("attempts", 1)
    try:
        attempts = int(value)
    except (TypeError, ValueError):
        attempts = 1
    return min(max(attempts, 1), MAX_ATTEMPTS)


def timeout_seconds(spec: JobSpec) -> Optional[float]:
    """The attempt's time limit (``attemptDurationSeconds``), or None."""
    return spec.timeout


def _matches(pattern: Any, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, str(pattern))


def should_retry(strategy: Mapping[str, Any], *, exit_code: Optional[int],
                 status_reason: str, reason: str = "") -> bool:
    """Whether ``evaluateOnExit`` lets a failed attempt be retried.

    The first entry whose given conditions (``onExitCode``, ``onStatusReason``,
    ``onReason``; ``*`` at the end matches anything) all match decides
    (``RETRY`` or ``EXIT``); when none matches, the job is retried. Whether
    attempts remain is the caller's business.
    """
    code = "" if exit_code is None else str(exit_code)
    for entry in strategy.get("evaluateOnExit") or ():
        if not isinstance(entry, Mapping):
            continue
        if (_matches(entry.get("onExitCode"), code)
                and _matches(entry.get("onStatusReason"), status_reason)
                and _matches(entry.get("onReason"), reason)):
            return str(entry.get("action", "")).upper() == "RETRY"
    return True


# --------------------------------------------------------------------------- nodes

def parse_target_nodes(target: str, num_nodes: int) -> range:
    """``"0:"``, ``":3"``, ``"1:3"``, ``"2"`` -> the node indexes (ends inclusive)."""
    text = str(target).strip()
    start_s, sep, end_s = text.partition(":")
    try:
        start = int(start_s) if start_s else 0
        end = (int(end_s) if end_s else num_nodes - 1) if sep else start
    except ValueError:
        raise JobSpecError(f"targetNodes {target!r} is not N, N:, :N or N:M") from None
    if start < 0 or end >= num_nodes or start > end:
        raise JobSpecError(f"targetNodes {target!r} is outside nodes 0-{num_nodes - 1}")
    return range(start, end + 1)


def _num_nodes(spec: JobSpec) -> int:
    value = spec.node_overrides.get("numNodes") or spec.node_properties.get("numNodes")
    if not isinstance(value, int) or value < 1:
        raise JobSpecError("nodeProperties.numNodes is missing or not a positive number")
    return value


def node_containers(node_properties: Mapping[str, Any],
                    num_nodes: Optional[int] = None) -> dict[int, Mapping[str, Any]]:
    """Each node's container, from the ``nodeRangeProperties`` ranges.

    Every node must be covered exactly once (Batch refuses overlaps and gaps).
    """
    count = num_nodes if num_nodes is not None else int(node_properties.get("numNodes") or 0)
    result: dict[int, Mapping[str, Any]] = {}
    for group in node_properties.get("nodeRangeProperties") or ():
        for index in parse_target_nodes(str(group.get("targetNodes", "")), count):
            if index in result:
                raise JobSpecError(f"node {index} is in more than one nodeRangeProperties range")
            result[index] = group.get("container") or {}
    missing = [i for i in range(count) if i not in result]
    if missing:
        raise JobSpecError(f"nodes {missing} are in no nodeRangeProperties range")
    return result


def node_overrides_for(node_overrides: Mapping[str, Any], index: int,
                       num_nodes: int) -> dict[str, Any]:
    """The container overrides of node ``index``: every matching range's, in order."""
    merged: dict[str, Any] = {}
    env: dict[str, str] = {}
    for entry in node_overrides.get("nodePropertyOverrides") or ():
        if index not in parse_target_nodes(str(entry.get("targetNodes", "")), num_nodes):
            continue
        overrides = entry.get("containerOverrides") or {}
        env.update(_env_dict(overrides.get("environment")))
        merged.update({k: v for k, v in overrides.items() if k != "environment"})
    if env:
        merged["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    return merged


# --------------------------------------------------------------------------- launches

def image_file_for(image: str, image_files: Mapping[str, Path]) -> Optional[Path]:
    """The local archive of ``image``: by exact name, else up to ``docker.io/``, ``:latest``."""
    if image in image_files:
        return image_files[image]
    wanted = _normal_image(image)
    for name, path in image_files.items():
        if _normal_image(name) == wanted:
            return path
    return None


def _normal_image(image: str) -> str:
    name = image.strip()
    for prefix in ("docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else f"{name}:latest"


def _mounts(container: Mapping[str, Any], host: LocalHost,
            scratch_root: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """(containerPath, local dir) for every mount point, and the scratch dirs to create."""
    volumes = {str(v.get("name")): v for v in container.get("volumes") or ()
               if isinstance(v, Mapping)}
    mounts: list[tuple[str, Path]] = []
    scratch: list[Path] = []
    for point in container.get("mountPoints") or ():
        path = str(point.get("containerPath") or "").rstrip("/") or "/"
        name = str(point.get("sourceVolume"))
        volume = volumes.get(name)
        if volume is None:
            raise JobSpecError(f"mount point {path} names volume {name!r}, which the job "
                               "definition does not declare")
        source = (volume.get("host") or {}).get("sourcePath")
        if source:
            local = host.host_paths.get(source) or host.host_paths.get(source.rstrip("/"))
            if local is None:
                raise JobSpecError(
                    f"host volume {name!r} (sourcePath {source}) mounted at {path} has no "
                    f"local directory; map it with host_paths={{{source!r}: DIR}}")
            mounts.append((path, Path(local)))
        elif volume.get("efsVolumeConfiguration"):
            raise JobSpecError(f"EFS volume {name!r} mounted at {path} cannot be mounted "
                               "locally")
        else:
            local = scratch_root / "volumes" / name
            mounts.append((path, local))
            scratch.append(local)
    return mounts, scratch


def _rewrite(arg: str, mounts: Sequence[tuple[str, Path]]) -> str:
    for path, local in sorted(mounts, key=lambda m: len(m[0]), reverse=True):
        if arg == path:
            return str(local)
        if arg.startswith(path.rstrip("/") + "/"):
            return str(local) + arg[len(path.rstrip("/")):]
    return arg


def _substitute(arg: str, parameters: Mapping[str, str]) -> str:
    for name in sorted(parameters, key=len, reverse=True):
        arg = arg.replace(f"Ref::{name}", parameters[name])
    return arg


def _launch(spec: JobSpec, container: Mapping[str, Any], overrides: Mapping[str, Any], *,
            batch_env: Mapping[str, str], host: LocalHost, scratch_root: Path,
            node_index: Optional[int] = None) -> Launch:
    command = overrides.get("command") or container.get("command") or []
    if isinstance(command, str):
        command = [command]
    if not command:
        raise JobSpecError("the job definition and the overrides give no command (the "
                           "image's own CMD cannot be run locally)")
    mounts, scratch = _mounts(container, host, scratch_root)
    argv = [_rewrite(_substitute(str(a), spec.parameters), mounts) for a in command]
    argv[0] = host.executables.get(argv[0], argv[0])
    image = str(container.get("image") or "")
    env = dict(host.base_env)
    env.update(_env_dict(container.get("environment")))
    env.update(_env_dict(overrides.get("environment")))
    env = {k: v for k, v in env.items() if not k.startswith(BATCH_PREFIX)}
    env.update(batch_env)
    archive = image_file_for(image, host.image_files) if image else None
    if archive is not None:
        env[IMAGE_FILE_ENV] = str(archive)
    elif image and host.pull_images:
        env[IMAGE_ENV] = image
    return Launch(argv=tuple(argv), env=env, image=image, image_file=archive,
                  node_index=node_index, scratch=tuple(scratch))


def launches(spec: JobSpec, *, attempt: int, host: LocalHost, scratch_root: Path,
             array_index: Optional[int] = None) -> list[Launch]:
    """The processes of attempt ``attempt`` (1-based): main node first for multi-node jobs.

    Raises :class:`JobSpecError` when the job cannot be run as defined (no
    command, an unmapped host volume, bad node ranges, …).
    """
    common = {"AWS_BATCH_JOB_ATTEMPT": str(attempt), "AWS_BATCH_JQ_NAME": spec.queue,
              "AWS_BATCH_CE_NAME": spec.compute_environment}
    if spec.kind != "multinode":
        env = dict(common, AWS_BATCH_JOB_ID=spec.job_id)
        if array_index is not None:
            env.update(AWS_BATCH_JOB_ID=f"{spec.job_id}:{array_index}",
                       AWS_BATCH_JOB_ARRAY_INDEX=str(array_index),
                       AWS_BATCH_JOB_ARRAY_SIZE=str(spec.array_size or 0))
        return [_launch(spec, spec.container, spec.container_overrides, batch_env=env,
                        host=host, scratch_root=scratch_root)]
    if array_index is not None:
        raise JobSpecError("a multi-node job cannot be an array job")
    num_nodes = _num_nodes(spec)
    main = spec.node_properties.get("mainNode", 0)
    if not isinstance(main, int) or not 0 <= main < num_nodes:
        raise JobSpecError(
            f"nodeProperties.mainNode {main!r} is not a node of 0-{num_nodes - 1}")
    containers = node_containers(spec.node_properties, num_nodes)
    result: list[Launch] = []
    for index in [main] + [i for i in range(num_nodes) if i != main]:
        env = dict(common, AWS_BATCH_JOB_ID=f"{spec.job_id}#{index}",
                   AWS_BATCH_JOB_NODE_INDEX=str(index), AWS_BATCH_JOB_MAIN_NODE_INDEX=str(main),
                   AWS_BATCH_JOB_NUM_NODES=str(num_nodes))
        if index != main:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = MAIN_NODE_ADDRESS
        overrides = node_overrides_for(spec.node_overrides, index, num_nodes)
        result.append(_launch(spec, containers[index], overrides, batch_env=env, host=host,
                              scratch_root=scratch_root / f"node-{index}", node_index=index))
    return result


def known_job_ids(ids: Iterable[str]) -> list[str]:
    """Job ids the executor runs itself: not array children (``id:N``) nor nodes (``id#N``)."""
    return [i for i in ids if ":" not in i and "#" not in i]
