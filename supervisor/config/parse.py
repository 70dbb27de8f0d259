"""One function's mapping to a validated ``FunctionConfig``; all problems at once."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, cast

from ..container.reference import parse_reference
from ..container.spec import AUTO, EXECMODES
from ..errors import ConfigError
from .credentials import read_credential
from .fields import (
    _BATCH_NAME,
    _FUNCTION_NAME,
    _LAMBDA_ENV_LIMIT,
    _LOG_LEVELS,
    _LOG_RETENTION_DAYS,
    _SIBLINGS,
    _join,
    _kind,
    _merge,
    _overlaps,
    _Section,
    _show,
    _unique,
    plain,
    table_name,
)
from .history import parse_history
from .model import (
    EXECUTION_MODES,
    BatchConfig,
    ComputeResources,
    ContainerConfig,
    ExecutionMode,
    FunctionConfig,
    MultiNodeParallel,
    S3Provider,
    StoragePath,
)

_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+")


def parse(data: Mapping[str, Any], *, base_dir: Optional[Path] = None, path: str = "",
          check_files: bool = True) -> FunctionConfig:
    """Parse and check one function's configuration.

    ``data`` is the flat mapping the Lambda sees (the keys of SCAR's ``lambda``
    section plus the sibling keys ``storage_providers``, ``batch``, ``iam``,
    ``cloudwatch``, ``idempotency``, ``handoff``, ``history``), or an FDL function entry
    ``{lambda: {...}, batch: {...}, ...}``, which is merged into that form.
    A relative ``init_script`` is resolved against ``base_dir``; with
    ``check_files`` it must exist. ``path`` prefixes every field path in
    error messages (``functions.aws[0]``). Unknown keys are kept in ``raw``.

    Raises ``ConfigError`` listing every problem found.
    """
    return _parse(data, base_dir=base_dir, path=path, check_files=check_files)


def _flatten(data: Mapping[Any, Any], path: str,
             problems: list[str]) -> tuple[dict[Any, Any], Callable[[str], str]]:
    """Merge an FDL entry's ``lambda`` section with its siblings; say where each key lives."""
    section = data.get("lambda")
    if isinstance(section, Mapping):
        lambda_prefix = _join(path, "lambda")
        merged = dict(section)  # the lambda section first, and it wins over a sibling
        merged.update((k, v) for k, v in data.items() if k != "lambda" and k not in section)
        in_lambda = set(section)

        def where(key: str) -> str:
            if key in in_lambda or (key not in merged and key not in _SIBLINGS):
                return _join(lambda_prefix, key)
            return _join(path, key)

        return merged, where
    if "lambda" in data:
        problems.append(f"{_join(path, 'lambda')}: {_show(section)} is not a mapping; "
                        "must be the function's lambda section")
    return {k: v for k, v in data.items() if k != "lambda"}, lambda key: _join(path, key)


def _parse(data: Mapping[str, Any], *, base_dir: Optional[Path], path: str,
           check_files: bool, shared_providers: Optional[Mapping[str, Any]] = None,
           ) -> FunctionConfig:
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path or 'configuration'}: {_show(data)} is not a mapping; "
                           "must be one function's configuration"])
    problems: list[str] = []
    merged, where = _flatten(data, path, problems)
    top = _Section(merged, where, problems)

    name = _parse_name(top)
    mode = top.choice("execution_mode", "lambda", EXECUTION_MODES)
    memory = top.integer("memory", 512, 128, 10240, "MB")
    timeout = top.integer("timeout", 300, 1, 900, "seconds")
    init_script = _parse_init_script(top, base_dir, check_files)
    container = _parse_container(top, timeout, base_dir, check_files, mode)

    providers: dict[str, S3Provider] = {}
    if shared_providers is not None:
        providers.update(_parse_providers(_Section.at(
            shared_providers, "storage_providers", problems, redact=True)))
    own = top.section("storage_providers", "storage provider kinds")
    providers.update(_parse_providers(_Section(own.data, own.path, problems, redact=True)))

    inputs = _parse_paths(top, "input", providers, output=False)
    outputs = _parse_paths(top, "output", providers, output=True)
    _check_loops(top, inputs, outputs)

    environment = top.variables("environment")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > _LAMBDA_ENV_LIMIT:
        top.problem("environment", f"the variables take {size} bytes",
                    f"Lambda allows {_LAMBDA_ENV_LIMIT} bytes in all")
    log_level = top.get("log_level")
    if log_level is None:
        log_level = "INFO"
    elif isinstance(log_level, str) and log_level.upper() in _LOG_LEVELS:
        log_level = log_level.upper()
    else:
        top.problem("log_level", f"{_show(log_level)} is not one of {', '.join(_LOG_LEVELS)}")
        log_level = "INFO"

    batch = _parse_batch(top.section("batch"), mode)
    iam_role = top.section("iam").opt_text("role", "must be an IAM role ARN")
    retention = top.section("cloudwatch").get("log_retention_policy_in_days")
    if retention is not None and (isinstance(retention, bool)
                                  or retention not in _LOG_RETENTION_DAYS):
        top.section("cloudwatch").problem(
            "log_retention_policy_in_days", f"{_show(retention)} is not a CloudWatch retention",
            "must be one of " + ", ".join(str(d) for d in _LOG_RETENTION_DAYS))
        retention = None
    idem = top.section("idempotency")
    table = table_name(idem, "table")
    idem_expires = idem.integer("expires_after_seconds", 86400, lo=60, unit="seconds")
    handoff_bucket, handoff_prefix = _parse_handoff(top, inputs, mode)
    history = parse_history(top)

    if problems:
        raise ConfigError(_unique(problems))
    raw = plain(merged)
    if shared_providers:
        raw["storage_providers"] = _merge(plain(shared_providers),
                                          raw.get("storage_providers") or {})
    if init_script is not None:
        raw["init_script"] = init_script
    if container.image_file is not None:
        raw.setdefault("container", {})["image_file"] = container.image_file
    return FunctionConfig(
        name=name,
        execution_mode=cast(ExecutionMode, mode),
        memory=memory,
        timeout=timeout,
        init_script=init_script,
        container=container,
        input=inputs,
        output=outputs,
        environment=environment,
        storage_providers=providers,
        batch=batch,
        iam_role=iam_role,
        log_level=log_level,
        log_retention_days=cast(Optional[int], retention),
        idempotency_table=table,
        idempotency_expires_after=idem_expires,
        handoff_bucket=handoff_bucket,
        handoff_prefix=handoff_prefix,
        history=history,
        raw=raw,
    )


def _parse_name(top: _Section) -> str:
    allowed = "must be 1-64 letters, digits, '-' or '_' (a Lambda function name)"
    value = top.get("name")
    if value is None or value == "":
        top.problem("name", "missing", allowed)
        return ""
    if not isinstance(value, str):
        top.problem("name", f"{_show(value)} is not a string", allowed)
        return ""
    if not _FUNCTION_NAME.fullmatch(value):
        top.problem("name", f"{_show(value)} is not a valid function name", allowed)
    return value


def _parse_init_script(top: _Section, base_dir: Optional[Path],
                       check_files: bool) -> Optional[str]:
    return _local_file(top, "init_script", base_dir, check_files, "shell script")


def _local_file(section: _Section, key: str, base_dir: Optional[Path], check_files: bool,
                what: str) -> Optional[str]:
    """A file named in the configuration, made absolute against ``base_dir``."""
    value = section.opt_text(key, f"must be the path of a {what}")
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = Path(os.path.abspath(base_dir / path))
    if check_files and not path.is_file():
        section.problem(key, f"{str(path)!r} does not exist or is not a file",
                        f"must name an existing {what} (relative paths are resolved against the "
                        "configuration file's directory)")
    return str(path)


MIN_HANDOFF_THRESHOLD = 1
"""``lambda-batch``: the seconds below which a hand-off cannot be done before Lambda's kill
(the script's kill, the hand-off document and SubmitJob all fit in the threshold)."""


def _parse_container(top: _Section, timeout: int, base_dir: Optional[Path],
                     check_files: bool, mode: str) -> ContainerConfig:
    section = top.section("container")
    image = section.text("image", "", "must be a container image name")
    if image.strip():
        try:
            parse_reference(image.strip())
        except ValueError as exc:
            section.problem("image", str(exc).split(" (expected")[0], "must be a Docker "
                            "image reference ([HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST])")
    raw_file = section.data.get("image_file")
    if isinstance(raw_file, str) and raw_file.startswith("s3://"):
        image_file: Optional[str] = raw_file
        if not _S3_URI.fullmatch(raw_file):
            section.problem("image_file", f"{raw_file!r} is not an S3 object URI",
                            "must be a local image tarball or s3://BUCKET/KEY")
    else:
        image_file = _local_file(section, "image_file", base_dir, check_files, "image tarball")
    execmode = section.choice("execmode", AUTO, EXECMODES)
    threshold = section.integer("timeout_threshold", 10, 0, unit="seconds")
    if threshold >= timeout:
        section.problem("timeout_threshold", f"{threshold} is not less than timeout {timeout}",
                        "must be >= 0 and less than the function timeout")
    elif mode == "lambda-batch" and threshold < MIN_HANDOFF_THRESHOLD:
        section.problem("timeout_threshold", f"{threshold} leaves no time to hand off",
                        f"must be at least {MIN_HANDOFF_THRESHOLD} s in lambda-batch: the "
                        "script's kill and the hand-off happen in those seconds before "
                        "Lambda's deadline")
    return ContainerConfig(
        image=image,
        image_file=image_file,
        timeout_threshold=threshold,
        environment=section.variables("environment"),
        pass_aws_credentials=section.flag("pass_aws_credentials", False),
        run_on_host=section.flag("run_on_host", False),
        execmode=execmode,
        insecure_registry=section.flag("insecure_registry", False),
    )


S3_COMPATIBLE: tuple[str, ...] = ("s3", "minio")
"""Provider kinds reached with an S3 client: ``s3.<id>`` and ``minio.<id>`` (an S3-compatible
endpoint, as SCAR's MinIO providers give it)."""


def provider_key(kind: str, ident: str) -> str:
    """The key of a named provider in ``FunctionConfig.storage_providers``: the bare id for
    ``s3`` (as before), ``minio.<id>`` for MinIO."""
    return ident if kind == "s3" else f"{kind}.{ident}"


def provider_name(key: str) -> str:
    """How paths name the provider stored under ``key``: ``s3.<id>`` or ``minio.<id>``."""
    return key if key.startswith("minio.") else f"s3.{key}"


def _parse_providers(section: _Section) -> dict[str, S3Provider]:
    """``storage_providers.s3.<id>`` and ``.minio.<id>`` entries; other kinds stay in raw."""
    out: dict[str, S3Provider] = {}
    for kind in S3_COMPATIBLE:
        out.update(_parse_provider_kind(section, kind))
    return out


def _parse_provider_kind(section: _Section, kind: str) -> dict[str, S3Provider]:
    s3 = section.section(kind, "provider ids")
    out: dict[str, S3Provider] = {}
    for ident, settings in s3.data.items():
        where = s3.path(str(ident))
        if not isinstance(ident, str) or not ident.strip() or ident != ident.strip():
            s3.problems.append(f"{where}: not a valid provider id; ids must be non-empty "
                               "text without spaces around it (dots are fine: s3.my.store)")
            continue
        if settings is not None and not isinstance(settings, Mapping):
            s3.problems.append(f"{where}: {_kind(settings)} is not a mapping; must be the "
                               "provider's settings (access_key, secret_key, region, endpoint)")
            continue
        entry = _Section.at(settings or {}, where, s3.problems, redact=True)
        auth = entry.section("auth", "credentials (access_key, secret_key)")
        before = len(s3.problems)
        access_key = read_credential(entry, "access_key") or read_credential(auth, "access_key")
        secret_key = read_credential(entry, "secret_key") or read_credential(auth, "secret_key")
        if bool(access_key) != bool(secret_key) and len(s3.problems) == before:
            entry.problems.append(f"{where}: only one of access_key and secret_key is set; "
                                  "set both or neither")
        endpoint = entry.opt_text("endpoint", "must be a URL")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            entry.problem("endpoint", "is not an http(s) URL", "must start with http:// or https://")
        if kind == "minio" and endpoint is None:
            entry.problem("endpoint", "missing", "a MinIO provider needs its endpoint URL")
        key = provider_key(kind, ident)
        out[key] = S3Provider(id=key, access_key=access_key, secret_key=secret_key,
                              region=entry.opt_text("region"), endpoint=endpoint)
    return out


def _parse_paths(top: _Section, key: str, providers: Mapping[str, S3Provider],
                 output: bool) -> tuple[StoragePath, ...]:
    defined = ["s3"] + [provider_name(k) for k in sorted(providers)]
    out: list[StoragePath] = []
    for where, item in top.entries(key, "{storage_provider, path} entries"):
        if not isinstance(item, Mapping):
            top.problems.append(f"{where}: {_show(item)} is not a mapping; must be "
                                "{storage_provider: s3, path: bucket/folder}")
            continue
        entry = _Section.at(item, where, top.problems)
        provider = entry.text("storage_provider", "s3")
        if provider != "s3" and provider not in defined:
            entry.problem("storage_provider", f"{_show(provider)} is not defined",
                          "must be s3, s3.<id> or minio.<id> with <id> in storage_providers "
                          f"(defined: {', '.join(defined)})")
        value = entry.get("path")
        if value is not None and not isinstance(value, str):
            entry.problem("path", f"{_show(value)} is not a string",
                          "must be bucket or bucket/folder")
            continue
        stripped = (value or "").strip().strip("/")
        if not stripped:
            entry.problem("path", "missing", "must be bucket or bucket/folder")
            continue
        prefix: tuple[str, ...] = ()
        suffix: tuple[str, ...] = ()
        if output:
            prefix = entry.texts("prefix", ())
            suffix = entry.texts("suffix", ())
        out.append(StoragePath(provider, stripped, prefix, suffix))
    return tuple(out)


def _check_loops(top: _Section, inputs: Sequence[StoragePath],
                 outputs: Sequence[StoragePath]) -> None:
    """An output inside (or around) an input re-triggers the function for ever."""
    for i, source in enumerate(inputs):
        for j, target in enumerate(outputs):
            if source.overlaps(target):
                top.problems.append(
                    f"{top.path('input')}[{i}].path: {source.path!r} overlaps "
                    f"{top.path('output')}[{j}].path {target.path!r} on storage provider "
                    f"{source.storage_provider}, so every output would trigger the function "
                    "again (an infinite loop); input and output paths must not contain "
                    "each other")


def _parse_handoff(top: _Section, inputs: Sequence[StoragePath],
                   mode: str) -> tuple[Optional[str], str]:
    section = top.section("handoff")
    bucket = section.opt_text("bucket", "must be a bucket name")
    if bucket is not None:
        bucket = bucket.strip()
        if "/" in bucket:
            section.problem("bucket", f"{_show(bucket)} is not a bucket name",
                            "must be a bucket name alone; put the folder in handoff.prefix")
            bucket = None
    prefix = section.text("prefix", "supervisor-handoff/").strip().strip("/")
    if not prefix:
        section.problem("prefix", "is empty",
                        "must be a folder for the hand-off documents, outside every input path")
        prefix = "supervisor-handoff"
    prefix += "/"
    if bucket is None and inputs and mode != "lambda" and inputs[0].storage_provider != "s3":
        section.problem("bucket", f"missing, and the first input is on storage provider "
                        f"{inputs[0].storage_provider}",
                        "must name a bucket of the function's own account (storage provider "
                        "s3): hand-off documents are written with its credentials")
    bucket = bucket or (inputs[0].bucket if inputs else None)
    if bucket is not None and mode != "lambda":
        for i, source in enumerate(inputs):
            if source.storage_provider == "s3" and _overlaps(f"{bucket}/{prefix}", source.path):
                section.problem(
                    "prefix", f"the hand-off folder s3://{bucket}/{prefix} is inside input "
                    f"path {source.path!r} ({top.path('input')}[{i}]), so every delegation "
                    "would trigger the function again",
                    "set handoff.bucket or handoff.prefix to a place outside every input path")
    return bucket, prefix


def _parse_batch(section: _Section, mode: str) -> BatchConfig:
    defaults = ComputeResources()
    compute = section.section("compute_resources")
    low = compute.integer("min_v_cpus", defaults.min_v_cpus, 0)
    high = compute.integer("max_v_cpus", defaults.max_v_cpus, 0)
    desired = compute.integer("desired_v_cpus", defaults.desired_v_cpus, 0)
    if low > high:
        compute.problem("min_v_cpus", f"{low} is more than max_v_cpus {high}",
                        "must be <= max_v_cpus")
    elif not low <= desired <= high:
        compute.problem("desired_v_cpus", f"{desired} is outside min_v_cpus..max_v_cpus "
                        f"({low}..{high})", "must be between min_v_cpus and max_v_cpus")
    resources = ComputeResources(
        type=compute.choice("type", defaults.type, ("EC2", "SPOT", "FARGATE", "FARGATE_SPOT")),
        desired_v_cpus=desired,
        min_v_cpus=low,
        max_v_cpus=high,
        instance_types=compute.texts("instance_types", defaults.instance_types),
        subnets=compute.texts("subnets", ()),
        security_group_ids=compute.texts("security_group_ids", ()),
        launch_template_name=compute.text("launch_template_name", defaults.launch_template_name),
        instance_role=compute.text("instance_role", defaults.instance_role),
    )
    # Subnets and security groups are needed to *create* a compute environment (deploy
    # checks them, provision/plan.py), never to submit to one or to run in one.

    nodes = section.section("multi_node_parallel")
    enabled = nodes.flag("enabled", False)
    number = nodes.integer("number_nodes", 10)
    main = nodes.integer("main_node_index", 0)
    if enabled and number < 2:
        nodes.problem("number_nodes", f"{number} is less than 2",
                      "a multi-node parallel job needs at least 2 nodes")
    elif enabled and not 0 <= main < number:
        nodes.problem("main_node_index", f"{main} is outside 0..{number - 1}",
                      "must be a node index from 0 to number_nodes - 1")

    names = {}
    for key in ("job_queue", "job_definition"):
        value = section.opt_text(key)
        if value is not None and not _BATCH_NAME.fullmatch(value):
            section.problem(key, f"{_show(value)} is not a valid name",
                            "must be 1-128 letters, digits, '-' or '_'")
            value = None
        names[key] = value
    return BatchConfig(
        vcpus=section.integer("vcpus", 1, 1),
        memory=section.integer("memory", 1024, 1, unit="MiB"),
        enable_gpu=section.flag("enable_gpu", False),
        state=section.choice("state", "ENABLED", ("ENABLED", "DISABLED")),
        type=section.choice("type", "MANAGED", ("MANAGED", "UNMANAGED")),
        compute_resources=resources,
        service_role=section.text("service_role", BatchConfig.service_role),
        multi_node_parallel=MultiNodeParallel(enabled, number, main),
        environment=section.variables("environment"),
        job_queue=names["job_queue"],
        job_definition=names["job_definition"],
        retry_attempts=section.opt_integer("retry_attempts", 1, 10),
        job_timeout=section.opt_integer("timeout", 60, unit="seconds, the Batch minimum is 60"),
    )
