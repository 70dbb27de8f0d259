"""Function configuration: typed, frozen values parsed from SCAR's FDL.

One function's configuration is the ``lambda`` section of a SCAR function
definition with its siblings (``storage_providers``, ``batch``, ``iam``,
``cloudwatch``, ``idempotency``, ``handoff``) merged into one flat mapping.

- :func:`parse` turns that mapping, or one FDL ``functions.aws[i]`` entry, into a
  :class:`FunctionConfig`; it checks every field and raises one
  :class:`~supervisor.errors.ConfigError` listing all problems, each as
  ``<field path>: <what is wrong>; <what is allowed>``;
- :func:`load` finds the configuration at run time: env ``FUNCTION_CONFIG``
  (base64 YAML), the file named by env ``FUNCTION_CONFIG_PATH``, then
  ``/var/task/function_config.yaml``;
- :func:`from_fdl` reads whole FDL files (the CLI), in the list form
  ``functions: {aws: [...]}`` and the older ``functions: {NAME: {...}}``;
- :func:`to_mapping` / :func:`to_yaml` write one function back out in the flat
  form (deploy, hand-off).

Input and output paths are folders: ``bucket/in`` holds the keys under
``in/``, so ``bucket/in`` and ``bucket/input`` do not overlap.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Sequence, cast

import yaml

from .errors import ConfigError

__all__ = [
    "ExecutionMode",
    "EXECUTION_MODES",
    "StoragePath",
    "S3Provider",
    "ContainerConfig",
    "ComputeResources",
    "MultiNodeParallel",
    "BatchConfig",
    "FunctionConfig",
    "ENV_CONFIG",
    "ENV_CONFIG_PATH",
    "DEFAULT_CONFIG_PATH",
    "parse",
    "load",
    "from_fdl",
    "to_mapping",
    "to_yaml",
]

ExecutionMode = Literal["lambda", "lambda-batch", "batch"]
EXECUTION_MODES: tuple[str, ...] = ("lambda", "lambda-batch", "batch")


@dataclass(frozen=True)
class StoragePath:
    """One input or output path: ``bucket/prefix`` on a storage provider."""

    storage_provider: str  # "s3" or "s3.<id>"
    path: str  # "bucket" or "bucket/some/prefix", no leading/trailing slash
    prefix: tuple[str, ...] = ()  # outputs only: relative-path prefixes, any of
    suffix: tuple[str, ...] = ()  # outputs only: relative-path suffixes, any of

    @property
    def bucket(self) -> str:
        """The bucket name: the first segment of ``path``."""
        return self.path.split("/", 1)[0]

    @property
    def key_prefix(self) -> str:
        """The key prefix inside the bucket ('' when the path is a bare bucket)."""
        parts = self.path.split("/", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(frozen=True)
class S3Provider:
    """A named ``storage_providers.s3.<id>`` entry with its own credentials."""

    id: str
    access_key: Optional[str] = None
    secret_key: Optional[str] = None
    region: Optional[str] = None
    endpoint: Optional[str] = None

    def __repr__(self) -> str:  # never show the secret
        return f"S3Provider(id={self.id!r}, region={self.region!r}, endpoint={self.endpoint!r})"


@dataclass(frozen=True)
class ContainerConfig:
    """``lambda.container``: the image and the script's environment."""

    image: str = ""
    image_file: Optional[str] = None
    timeout_threshold: int = 10
    environment: Mapping[str, str] = field(default_factory=dict)
    pass_aws_credentials: bool = False


@dataclass(frozen=True)
class ComputeResources:
    """``batch.compute_resources`` with SCAR's defaults."""

    type: str = "EC2"
    desired_v_cpus: int = 0
    min_v_cpus: int = 0
    max_v_cpus: int = 2
    instance_types: tuple[str, ...] = ("m3.medium",)
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    launch_template_name: str = "faas-supervisor"
    instance_role: str = "arn:aws:iam::{account_id}:instance-profile/ecsInstanceRole"


@dataclass(frozen=True)
class MultiNodeParallel:
    """``batch.multi_node_parallel``."""

    enabled: bool = False
    number_nodes: int = 10
    main_node_index: int = 0


@dataclass(frozen=True)
class BatchConfig:
    """The ``batch`` block beside ``lambda``, with SCAR's ``scar.cfg`` defaults."""

    vcpus: int = 1
    memory: int = 1024
    enable_gpu: bool = False
    state: str = "ENABLED"
    type: str = "MANAGED"
    compute_resources: ComputeResources = field(default_factory=ComputeResources)
    service_role: str = "arn:aws:iam::{account_id}:role/service-role/AWSBatchServiceRole"
    multi_node_parallel: MultiNodeParallel = field(default_factory=MultiNodeParallel)
    environment: Mapping[str, str] = field(default_factory=dict)
    job_queue: Optional[str] = None  # default: the function name
    job_definition: Optional[str] = None  # default: the function name
    retry_attempts: Optional[int] = None  # batch.retry_attempts -> retryStrategy.attempts
    job_timeout: Optional[int] = None  # batch.timeout (seconds) -> timeout.attemptDurationSeconds


@dataclass(frozen=True)
class FunctionConfig:
    """One function's configuration: the ``lambda`` section plus its siblings.

    ``raw`` is the merged mapping it was parsed from (unknown keys kept), so a
    configuration can be written back out (hand-off, deploy) without loss.
    """

    name: str
    execution_mode: ExecutionMode = "lambda"
    memory: int = 512
    timeout: int = 300
    init_script: Optional[str] = None  # absolute path once loaded from a file
    container: ContainerConfig = field(default_factory=ContainerConfig)
    input: tuple[StoragePath, ...] = ()
    output: tuple[StoragePath, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)  # the Lambda function's own
    storage_providers: Mapping[str, S3Provider] = field(default_factory=dict)
    batch: BatchConfig = field(default_factory=BatchConfig)
    iam_role: Optional[str] = None
    log_level: str = "INFO"
    log_retention_days: Optional[int] = None  # cloudwatch.log_retention_policy_in_days
    idempotency_table: Optional[str] = None  # idempotency.table
    idempotency_expires_after: int = 86400  # idempotency.expires_after_seconds
    handoff_bucket: Optional[str] = None  # handoff.bucket, default: first input bucket
    handoff_prefix: str = "supervisor-handoff/"  # handoff.prefix
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def delegates(self) -> bool:
        """Whether records may be handed to AWS Batch (``lambda-batch`` or ``batch``)."""
        return self.execution_mode != "lambda"

    @property
    def job_queue_name(self) -> str:
        """The Batch job queue: ``batch.job_queue``, else the function name."""
        return self.batch.job_queue or self.name

    @property
    def job_definition_name(self) -> str:
        """The Batch job definition: ``batch.job_definition``, else the function name."""
        return self.batch.job_definition or self.name


# --------------------------------------------------------------------------- constants

ENV_CONFIG = "FUNCTION_CONFIG"
ENV_CONFIG_PATH = "FUNCTION_CONFIG_PATH"
DEFAULT_CONFIG_PATH = Path("/var/task/function_config.yaml")
_DEFAULT_TASK_ROOT = "/var/task"

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BATCH_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                       1096, 1827, 2192, 2557, 2922, 3288, 3653)
_LAMBDA_ENV_LIMIT = 4096  # bytes, all keys and values of the Lambda function's environment
_SIBLINGS = frozenset({"storage_providers", "batch", "iam", "cloudwatch", "idempotency", "handoff"})

try:  # the C loader is much faster; fall back to the pure-Python one
    _LOADER: Any = yaml.CSafeLoader
    _DUMPER: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = yaml.SafeLoader
    _DUMPER = yaml.SafeDumper


# --------------------------------------------------------------------------- helpers

def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: object, redact: bool = False) -> str:
    """A short one-line rendering of a value for an error message."""
    if redact or isinstance(value, (Mapping, list, tuple)) or value is None:
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (what YAML can write)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _overlaps(a: str, b: str) -> bool:
    """Whether two ``bucket/prefix`` folders share keys (one is, or is inside, the other)."""
    a_dir, b_dir = a.strip("/") + "/", b.strip("/") + "/"
    return a_dir.startswith(b_dir) or b_dir.startswith(a_dir)


def _merge(base: dict[Any, Any], over: Mapping[Any, Any]) -> dict[Any, Any]:
    """``base`` with ``over`` merged in, mapping by mapping (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = (_merge(old, value) if isinstance(old, dict) and isinstance(value, Mapping)
                    else value)
    return out


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _Section:
    """One mapping of the configuration, the field path leading to it, and the problem list.

    Readers return the default after recording a problem, so parsing goes on
    and every problem is reported at once.
    """

    def __init__(self, data: Mapping[Any, Any], where: Callable[[str], str],
                 problems: list[str], redact: bool = False) -> None:
        self.data = data
        self._where = where
        self.problems = problems
        self.redact = redact  # never show values (credentials)

    @classmethod
    def at(cls, data: Mapping[Any, Any], prefix: str, problems: list[str],
           redact: bool = False) -> "_Section":
        """A section whose fields are ``<prefix>.<key>``."""
        return cls(data, lambda key: _join(prefix, key), problems, redact)

    def path(self, key: str) -> str:
        """The field path of ``key`` in this section."""
        return self._where(key)

    def problem(self, key: str, wrong: str, allowed: str = "") -> None:
        """Record one problem about ``key``."""
        where = self.path(key)
        self.problems.append(f"{where}: {wrong}; {allowed}" if allowed else f"{where}: {wrong}")

    def show(self, value: object) -> str:
        """``value`` as an error message may show it."""
        return _show(value, self.redact)

    def get(self, key: str) -> Any:
        """The value of ``key``; ``None`` when absent or null."""
        return self.data.get(key)

    def section(self, key: str, what: str = "settings") -> "_Section":
        """The sub-mapping ``key`` (empty when absent)."""
        value = self.get(key)
        if value is None:
            value = {}
        elif not isinstance(value, Mapping):
            self.problem(key, f"{self.show(value)} is not a mapping", f"must be a mapping of {what}")
            value = {}
        return _Section.at(value, self.path(key), self.problems, self.redact)

    def opt_text(self, key: str, allowed: str = "must be a string") -> Optional[str]:
        """A string, or ``None`` when absent or blank (SCAR writes unset values as "")."""
        value = self.get(key)
        if value is None or isinstance(value, str):
            return value if value and value.strip() else None
        self.problem(key, f"{self.show(value)} is not a string", allowed)
        return None

    def text(self, key: str, default: str, allowed: str = "must be a string") -> str:
        """A string, ``default`` when absent."""
        value = self.opt_text(key, allowed)
        return default if value is None else value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices``."""
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value in choices:
            return value
        self.problem(key, f"{self.show(value)} is not one of {', '.join(choices)}")
        return default

    def opt_integer(self, key: str, lo: Optional[int] = None, hi: Optional[int] = None,
                    unit: str = "") -> Optional[int]:
        """An integer in ``[lo, hi]`` or ``None``."""
        value = self.get(key)
        if value is None:
            return None
        if lo is not None and hi is not None:
            allowed = f"must be an integer from {lo} to {hi}"
        elif lo is not None:
            allowed = f"must be an integer >= {lo}"
        else:
            allowed = "must be an integer"
        if unit:
            allowed += f" ({unit})"
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"{self.show(value)} is not an integer", allowed)
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.problem(key, f"{value} is out of range", allowed)
            return None
        return value

    def integer(self, key: str, default: int, lo: Optional[int] = None,
                hi: Optional[int] = None, unit: str = "") -> int:
        """An integer in ``[lo, hi]``, ``default`` when absent."""
        value = self.opt_integer(key, lo, hi, unit)
        return default if value is None else value

    def flag(self, key: str, default: bool) -> bool:
        """A real boolean (YAML ``true``/``false``)."""
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(key, f"{self.show(value)} is not a boolean", "must be true or false")
        return default

    def entries(self, key: str, what: str) -> list[tuple[str, Any]]:
        """The items of the list ``key`` with their field paths."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.problem(key, f"{self.show(value)} is not a list", f"must be a list of {what}")
            return []
        base = self.path(key)
        return [(f"{base}[{i}]", item) for i, item in enumerate(value)]

    def texts(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of non-empty strings, ``default`` when absent."""
        if self.get(key) is None:
            return default
        out: list[str] = []
        for where, item in self.entries(key, "non-empty strings"):
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            else:
                self.problems.append(
                    f"{where}: {self.show(item)} is not a non-empty string; "
                    "must be a list of non-empty strings")
        return tuple(out)

    def variables(self, key: str) -> dict[str, str]:
        """``<key>.Variables``: scalar values as strings (YAML numbers and booleans too)."""
        env = self.section(key, "settings (Variables: {NAME: value})")
        values = env.get("Variables")
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            env.problem("Variables", f"{env.show(values)} is not a mapping",
                        "must map variable names to values")
            return {}
        out: dict[str, str] = {}
        base = env.path("Variables")
        for name, value in values.items():
            where = _join(base, name)
            if not isinstance(name, str) or not name:
                self.problems.append(f"{where}: {_show(name)} is not a variable name; "
                                     "names must be non-empty strings")
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                out[name] = str(value)
            else:
                self.problems.append(f"{where}: {_kind(value)} is not a string, number or "
                                     "boolean; environment values must be scalars")
        return out


# --------------------------------------------------------------------------- parse

def parse(data: Mapping[str, Any], *, base_dir: Optional[Path] = None, path: str = "",
          check_files: bool = True) -> FunctionConfig:
    """Parse and check one function's configuration.

    ``data`` is the flat mapping the Lambda sees (the keys of SCAR's ``lambda``
    section plus the sibling keys ``storage_providers``, ``batch``, ``iam``,
    ``cloudwatch``, ``idempotency``, ``handoff``), or an FDL function entry
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
    container = _parse_container(top, timeout)

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
    table = idem.opt_text("table")
    if table is not None and not _TABLE_NAME.fullmatch(table):
        idem.problem("table", f"{_show(table)} is not a DynamoDB table name",
                     "must be 3-255 letters, digits, '_', '-' or '.'")
    idem_expires = idem.integer("expires_after_seconds", 86400, lo=60, unit="seconds")
    handoff_bucket, handoff_prefix = _parse_handoff(top, inputs, mode)

    if problems:
        raise ConfigError(_unique(problems))
    raw = _plain(merged)
    if shared_providers:
        raw["storage_providers"] = _merge(_plain(shared_providers),
                                          raw.get("storage_providers") or {})
    if init_script is not None:
        raw["init_script"] = init_script
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
    value = top.opt_text("init_script", "must be the path of the user's shell script")
    if value is None:
        return None
    script = Path(value)
    if not script.is_absolute() and base_dir is not None:
        script = Path(os.path.abspath(base_dir / script))
    if check_files and not script.is_file():
        top.problem("init_script", f"{str(script)!r} does not exist or is not a file",
                    "must name an existing shell script (relative paths are resolved "
                    "against the configuration file's directory)")
    return str(script)


def _parse_container(top: _Section, timeout: int) -> ContainerConfig:
    section = top.section("container")
    image = section.text("image", "", "must be a container image name")
    image_file = section.opt_text("image_file", "must be the path of an image tarball")
    if not image.strip() and not (image_file and image_file.strip()):
        section.problem("image", "missing", "set container.image (an image name) or "
                        "container.image_file (an image tarball)")
    threshold = section.integer("timeout_threshold", 10, 0, unit="seconds")
    if threshold >= timeout:
        section.problem("timeout_threshold", f"{threshold} is not less than timeout {timeout}",
                        "must be >= 0 and less than the function timeout")
    return ContainerConfig(
        image=image,
        image_file=image_file,
        timeout_threshold=threshold,
        environment=section.variables("environment"),
        pass_aws_credentials=section.flag("pass_aws_credentials", False),
    )


def _parse_providers(section: _Section) -> dict[str, S3Provider]:
    """``storage_providers.s3.<id>`` entries; other provider kinds are kept in raw only."""
    s3 = section.section("s3", "provider ids")
    out: dict[str, S3Provider] = {}
    for ident, settings in s3.data.items():
        where = s3.path(str(ident))
        if not isinstance(ident, str) or not ident or "." in ident:
            s3.problems.append(f"{where}: not a valid provider id; ids must be non-empty "
                               "and contain no '.'")
            continue
        if settings is not None and not isinstance(settings, Mapping):
            s3.problems.append(f"{where}: {_kind(settings)} is not a mapping; must be the "
                               "provider's settings (access_key, secret_key, region, endpoint)")
            continue
        entry = _Section.at(settings or {}, where, s3.problems, redact=True)
        auth = entry.section("auth", "credentials (access_key, secret_key)")
        access_key = entry.opt_text("access_key") or auth.opt_text("access_key")
        secret_key = entry.opt_text("secret_key") or auth.opt_text("secret_key")
        if bool(access_key) != bool(secret_key):
            entry.problems.append(f"{where}: only one of access_key and secret_key is set; "
                                  "set both or neither")
        endpoint = entry.opt_text("endpoint", "must be a URL")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            entry.problem("endpoint", "is not an http(s) URL", "must start with http:// or https://")
        out[ident] = S3Provider(id=ident, access_key=access_key, secret_key=secret_key,
                                region=entry.opt_text("region"), endpoint=endpoint)
    return out


def _parse_paths(top: _Section, key: str, providers: Mapping[str, S3Provider],
                 output: bool) -> tuple[StoragePath, ...]:
    defined = ["s3"] + [f"s3.{i}" for i in sorted(providers)]
    out: list[StoragePath] = []
    for where, item in top.entries(key, "{storage_provider, path} entries"):
        if not isinstance(item, Mapping):
            top.problems.append(f"{where}: {_show(item)} is not a mapping; must be "
                                "{storage_provider: s3, path: bucket/folder}")
            continue
        entry = _Section.at(item, where, top.problems)
        provider = entry.text("storage_provider", "s3")
        ident = provider[3:] if provider.startswith("s3.") else None
        if provider != "s3" and (ident is None or ident not in providers):
            entry.problem("storage_provider", f"{_show(provider)} is not defined",
                          "must be s3 or s3.<id> with <id> in storage_providers.s3 "
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
            if source.storage_provider == target.storage_provider and \
                    _overlaps(source.path, target.path):
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
    bucket = bucket or (inputs[0].bucket if inputs else None)
    if bucket is not None and mode != "lambda":
        for i, source in enumerate(inputs):
            if _overlaps(f"{bucket}/{prefix}", source.path):
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
    if mode != "lambda":
        for key in ("security_group_ids", "subnets"):
            if not getattr(resources, key) and compute.get(key) in (None, [], ()):
                compute.problem(key, "missing", f"execution_mode {mode} needs a list of at "
                                f"least one {key.rstrip('s').replace('_ids', '_id')}")

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


# --------------------------------------------------------------------------- documents

def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong and where, without quoting the document."""
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or "syntax error"
        mark = exc.problem_mark
        if mark is not None:
            return f"{what} at line {mark.line + 1}, column {mark.column + 1}"
        return what
    return " ".join(str(exc).split())


def _load_document(text: str, source: str) -> Mapping[str, Any]:
    """Parse YAML (or JSON) text that must hold a mapping."""
    document: Any
    try:
        if text.lstrip().startswith("{"):
            try:
                document = json.loads(text)
            except ValueError:
                document = yaml.load(text, Loader=_LOADER)
        else:
            document = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {_yaml_problem(exc)}"]) from exc
    if not isinstance(document, Mapping):
        raise ConfigError([f"{source}: the document is {_kind(document)}, not a mapping; "
                           "must be a YAML mapping of settings"])
    return document


def _read(file: Path, source: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text; must be a YAML file"]) from exc
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read {str(file)!r}: "
                           f"{exc.strerror or type(exc).__name__}"]) from exc


def _decode_inline(text: str) -> Mapping[str, Any]:
    """``FUNCTION_CONFIG``: base64 of YAML, or YAML/JSON text that is not base64."""
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return _load_document(text, f"{ENV_CONFIG} (not base64, read as YAML text)")
    return _load_document(decoded, f"{ENV_CONFIG} (base64)")


def load(environ: Mapping[str, str], *, default_path: Path = DEFAULT_CONFIG_PATH,
         check_files: bool = True) -> FunctionConfig:
    """The function's configuration, from the first source found.

    1. env ``FUNCTION_CONFIG``: base64 of YAML (plain YAML or JSON text is
       accepted too); a relative ``init_script`` is resolved against
       ``LAMBDA_TASK_ROOT`` (default ``/var/task``);
    2. the file named by env ``FUNCTION_CONFIG_PATH`` (it must exist);
    3. ``default_path``.

    A file's relative ``init_script`` is resolved against the file's directory.
    The document is one function's flat configuration or an FDL entry; a whole
    FDL file is accepted too, selecting its only function or the one named by
    ``AWS_LAMBDA_FUNCTION_NAME``. Raises ``ConfigError``.
    """
    inline = environ.get(ENV_CONFIG, "")
    if inline.strip():
        document = _decode_inline(inline)
        base_dir = Path(environ.get("LAMBDA_TASK_ROOT") or _DEFAULT_TASK_ROOT)
    else:
        named = environ.get(ENV_CONFIG_PATH, "")
        if named:
            file, source = Path(named), f"{ENV_CONFIG_PATH}={named}"
        elif default_path.is_file():
            file, source = default_path, str(default_path)
        else:
            raise ConfigError([
                f"no function configuration found: set env {ENV_CONFIG} (base64 YAML), or env "
                f"{ENV_CONFIG_PATH} (a YAML file), or provide {default_path}"])
        document = _load_document(_read(file, source), source)
        base_dir = file.parent
    if "functions" in document and "name" not in document and "lambda" not in document:
        wanted = environ.get("AWS_LAMBDA_FUNCTION_NAME") or None
        configs = _fdl_configs(document, base_dir, None, check_files)
        if len(configs) == 1:
            return configs[0]
        chosen = [c for c in configs if c.name == wanted]
        if not chosen:
            raise ConfigError([f"functions: the FDL defines {len(configs)} functions "
                               f"({', '.join(c.name for c in configs)}) and "
                               f"AWS_LAMBDA_FUNCTION_NAME={wanted or ''} names none of them; "
                               "give one function's configuration"])
        return chosen[0]
    return parse(document, base_dir=base_dir, check_files=check_files)


def _names_file(text: str) -> bool:
    if not text or "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def from_fdl(path_or_text: str | Path, name: Optional[str] = None, *,
             check_files: bool = True) -> list[FunctionConfig]:
    """The functions of a whole FDL file, in file order.

    ``path_or_text`` is a ``Path``, a string naming an existing file (relative
    ``init_script`` paths are resolved against its directory), or FDL text
    (resolved against the current directory). Both the list form
    ``functions: {aws: [{lambda: ..., batch: ..., ...}]}`` with top-level
    ``storage_providers`` and the older ``functions: {NAME: {image, init_script,
    s3: {input_bucket}, environment, ...}}`` are read; in the older form
    ``input_bucket: B`` means input ``B/input`` and output ``B/output``.
    ``name`` selects one function. Raises ``ConfigError`` listing every problem.
    """
    if isinstance(path_or_text, Path) or _names_file(path_or_text):
        file = Path(path_or_text)
        text, base_dir, source = _read(file, str(file)), file.parent, str(file)
    else:
        text, base_dir, source = path_or_text, Path.cwd(), "FDL text"
        stripped = text.strip()
        if stripped and "\n" not in stripped and ":" not in stripped and "{" not in stripped:
            raise ConfigError([f"{stripped!r}: no such FDL file"])
    return _fdl_configs(_load_document(text, source), base_dir, name, check_files)


def _entry_name(entry: Mapping[str, Any]) -> Optional[str]:
    section = entry.get("lambda")
    value = section.get("name") if isinstance(section, Mapping) else entry.get("name")
    return value if isinstance(value, str) else None


def _from_old_form(name: str, body: Mapping[str, Any], path: str,
                   problems: list[str]) -> dict[str, Any]:
    """``functions: {NAME: {image, s3: {input_bucket}, environment, ...}}`` as the flat form."""
    flat: dict[str, Any] = {k: v for k, v in body.items()
                            if k not in ("image", "s3", "environment")}
    flat["name"] = name
    container = dict(body["container"]) if isinstance(body.get("container"), Mapping) else {}
    if body.get("image") is not None:
        container.setdefault("image", body["image"])
    env = body.get("environment")
    if isinstance(env, Mapping):
        variables = env["Variables"] if isinstance(env.get("Variables"), Mapping) else env
        container["environment"] = {"Variables": dict(variables)}
    elif env is not None:
        problems.append(f"{path}.environment: {_show(env)} is not a mapping; must map "
                        "variable names to values (optionally under Variables)")
    if container:
        flat["container"] = container
    s3 = _Section.at(body, path, problems).section("s3", "buckets (input_bucket, output_bucket)")
    bucket = s3.opt_text("input_bucket", "must be a bucket name")
    if bucket is not None and bucket.strip("/"):
        in_folder = s3.text("input_folder", "input").strip("/")
        out_bucket = s3.text("output_bucket", bucket).strip("/") or bucket
        out_folder = s3.text("output_folder", "output").strip("/")
        flat.setdefault("input", [{"storage_provider": "s3",
                                   "path": f"{bucket.strip('/')}/{in_folder}".rstrip("/")}])
        flat.setdefault("output", [{"storage_provider": "s3",
                                    "path": f"{out_bucket}/{out_folder}".rstrip("/")}])
    elif bucket is not None:
        s3.problem("input_bucket", "is empty", "must be a bucket name")
    return flat


def _fdl_configs(document: Mapping[str, Any], base_dir: Path, name: Optional[str],
                 check_files: bool) -> list[FunctionConfig]:
    functions = document.get("functions")
    if not isinstance(functions, Mapping):
        wrong = "missing" if functions is None else f"{_kind(functions)} is not a mapping"
        raise ConfigError([f"functions: {wrong}; an FDL file has functions: {{aws: [{{lambda: "
                           "..., batch: ...}]}} or the older functions: {NAME: {...}}"])
    shared = document.get("storage_providers")
    if shared is not None and not isinstance(shared, Mapping):
        raise ConfigError([f"storage_providers: {_kind(shared)} is not a mapping; must map "
                           "provider kinds (s3) to named providers"])
    general: list[str] = []
    entries: list[tuple[str, Optional[str], Mapping[str, Any]]] = []
    if "aws" in functions or any(isinstance(v, list) for v in functions.values()):
        section = _Section.at(functions, "functions", general)
        for where, entry in section.entries("aws", "function entries {lambda: ..., batch: ...}"):
            if isinstance(entry, Mapping):
                entries.append((where, _entry_name(entry), entry))
            else:
                general.append(f"{where}: {_show(entry)} is not a mapping; must be a "
                               "function entry {lambda: ..., batch: ...}")
    else:
        for fname, body in functions.items():
            where = _join("functions", fname)
            if isinstance(body, Mapping):
                entries.append((where, str(fname), _from_old_form(str(fname), body, where,
                                                                  general)))
            else:
                general.append(f"{where}: {_show(body)} is not a mapping; must be the "
                               "function's settings")
    if not entries and not general:
        raise ConfigError(["functions: no functions defined; add functions: {aws: [{lambda: "
                           "{name: ...}}]}"])
    if name is not None and all(n != name for _, n, _ in entries):
        defined = ", ".join(n for _, n, _ in entries if n) or "none"
        raise ConfigError([f"functions: no function named {name!r}; defined: {defined}"])

    problems: list[str] = [] if name is not None else general
    parsed: list[tuple[str, FunctionConfig]] = []
    first_of: dict[str, str] = {}
    for where, fname, entry in entries:
        wanted = name is None or fname == name
        if fname is not None and fname in first_of and wanted:
            lam = ".lambda" if isinstance(entry.get("lambda"), Mapping) else ""
            problems.append(f"{where}{lam}.name: {fname!r} is also the name of "
                            f"{first_of[fname]}; function names must be unique")
        elif fname is not None:
            first_of[fname] = where
        try:
            config = _parse(entry, base_dir=base_dir, path=where, check_files=check_files,
                            shared_providers=shared)
        except ConfigError as exc:
            if wanted:
                problems.extend(exc.problems)
            continue
        parsed.append((where, config))
    chosen = [(w, c) for w, c in parsed if name is None or c.name == name]
    for where, config in chosen:
        if not config.delegates or config.handoff_bucket is None:
            continue
        folder = f"{config.handoff_bucket}/{config.handoff_prefix}"
        for other_where, other in parsed:
            for source in other.input:
                if other is not config and _overlaps(folder, source.path):
                    problems.append(
                        f"{where}.handoff.prefix: the hand-off folder s3://{folder} is inside "
                        f"input path {source.path!r} of {other.name} ({other_where}), so "
                        "every delegation would trigger that function; set handoff.bucket or "
                        "handoff.prefix to a place outside every input path")
    if problems:
        raise ConfigError(_unique(problems))
    return [c for _, c in chosen]


# --------------------------------------------------------------------------- to_yaml

class _Whole(dict[str, Any]):
    """A rendered mapping whose keys replace the raw ones (a name -> value map)."""


def _render_path(path: StoragePath) -> dict[str, Any]:
    return {"storage_provider": path.storage_provider, "path": path.path,
            "prefix": list(path.prefix) or None, "suffix": list(path.suffix) or None}


def _render(config: FunctionConfig) -> dict[str, Any]:
    """The typed values as the flat mapping ``parse`` reads (``None`` = leave out)."""
    batch, compute = config.batch, config.batch.compute_resources
    nodes = batch.multi_node_parallel
    return {
        "name": config.name,
        "execution_mode": config.execution_mode,
        "memory": config.memory,
        "timeout": config.timeout,
        "init_script": config.init_script,
        "container": {
            "image": config.container.image or None,
            "image_file": config.container.image_file,
            "timeout_threshold": config.container.timeout_threshold,
            "environment": {"Variables": _Whole(config.container.environment)},
            "pass_aws_credentials": config.container.pass_aws_credentials,
        },
        "input": [_render_path(p) for p in config.input],
        "output": [_render_path(p) for p in config.output],
        "environment": {"Variables": _Whole(config.environment)},
        "log_level": config.log_level,
        "storage_providers": {"s3": _Whole({
            ident: {"access_key": p.access_key, "secret_key": p.secret_key,
                    "region": p.region, "endpoint": p.endpoint}
            for ident, p in config.storage_providers.items()})},
        "batch": {
            "vcpus": batch.vcpus,
            "memory": batch.memory,
            "enable_gpu": batch.enable_gpu,
            "state": batch.state,
            "type": batch.type,
            "compute_resources": {
                "type": compute.type,
                "desired_v_cpus": compute.desired_v_cpus,
                "min_v_cpus": compute.min_v_cpus,
                "max_v_cpus": compute.max_v_cpus,
                "instance_types": list(compute.instance_types),
                "subnets": list(compute.subnets),
                "security_group_ids": list(compute.security_group_ids),
                "launch_template_name": compute.launch_template_name,
                "instance_role": compute.instance_role,
            },
            "service_role": batch.service_role,
            "multi_node_parallel": {"enabled": nodes.enabled, "number_nodes": nodes.number_nodes,
                                    "main_node_index": nodes.main_node_index},
            "environment": {"Variables": _Whole(batch.environment)},
            "job_queue": batch.job_queue,
            "job_definition": batch.job_definition,
            "retry_attempts": batch.retry_attempts,
            "timeout": batch.job_timeout,
        },
        "iam": {"role": config.iam_role},
        "cloudwatch": {"log_retention_policy_in_days": config.log_retention_days},
        "idempotency": {"table": config.idempotency_table,
                        "expires_after_seconds": config.idempotency_expires_after},
        "handoff": {"bucket": config.handoff_bucket, "prefix": config.handoff_prefix},
    }


_ABSENT = object()


def _overlay(raw: Mapping[Any, Any], new: Mapping[str, Any],
             default: Mapping[str, Any]) -> dict[Any, Any]:
    """``raw`` with ``new`` written over it; values equal to ``default`` are added only
    where ``raw`` had the key, so unknown keys survive and the output stays short."""
    out = dict(raw)
    for key, value in new.items():
        old = raw.get(key, _ABSENT)
        fallback = default.get(key, _ABSENT)
        old_map = old if isinstance(old, Mapping) else {}
        if value is None:
            out.pop(key, None)
        elif isinstance(value, _Whole):
            whole = {k: _overlay_item(old_map.get(k), v) for k, v in value.items()}
            if whole or old is not _ABSENT:
                out[key] = whole
        elif isinstance(value, Mapping):
            sub = _overlay(old_map, value, fallback if isinstance(fallback, Mapping) else {})
            if sub or old is not _ABSENT:
                out[key] = sub
        elif old is _ABSENT and value == fallback:
            continue
        elif isinstance(value, list):
            olds = old if isinstance(old, list) else []
            out[key] = [_overlay_item(olds[i] if i < len(olds) else None, item)
                        for i, item in enumerate(value)]
        else:
            out[key] = value
    return out


def _overlay_item(old: Any, item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    return _overlay(old if isinstance(old, Mapping) else {}, item, {})


def to_mapping(config: FunctionConfig) -> dict[str, Any]:
    """The flat mapping of one function, plain dicts and lists (JSON- and YAML-ready).

    It is ``config.raw`` (unknown keys kept) with every typed field written
    over it, so a config changed with ``dataclasses.replace`` is written as
    it is now; ``parse(to_mapping(c), check_files=False) == c``. The result
    holds the storage providers' credentials: treat it as secret.
    """
    return _overlay(_plain(config.raw), _render(config), _render(FunctionConfig(name="")))


def to_yaml(config: FunctionConfig) -> str:
    """The flat YAML of one function: what the deploy writes and the hand-off embeds.

    ``to_mapping(config)`` as block YAML;
    ``parse(yaml.safe_load(to_yaml(c)), check_files=False) == c``.
    """
    return str(yaml.dump(to_mapping(config), Dumper=_DUMPER, sort_keys=False,
                         default_flow_style=False, allow_unicode=True))
