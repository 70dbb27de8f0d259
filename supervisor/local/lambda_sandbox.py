"""What a local Lambda invocation runs in: the deployed code, its layers, its environment.

:class:`Sandboxes` turns a function name into a :class:`Sandbox` by reading
the function's configuration from the endpoint (``GetFunctionConfiguration``)
and putting its code on disk:

- the **code** comes from the caller (moto does not serve a function's zip
  back) and must be the deployed bytes: ``base64(sha256(zip))`` equals the
  function's ``CodeSha256``, or :class:`LocalLambdaError`. It is unpacked once
  per hash into ``<work root>/functions/<name>/<sha256 hex[:16]>/``, the
  function's ``LAMBDA_TASK_ROOT`` (``/var/task`` on AWS);
- each **layer** zip comes from the caller too and is checked against the
  layer version's ``Content.CodeSha256`` and, when present, the
  ``supervisor sha256:<hex>`` marker of its Description. The layers are
  unpacked in order into one directory per set of hashes,
  ``<work root>/opt/<hex[:16]>/``, later layers overwriting earlier files,
  as Lambda merges them into ``/opt``.

:func:`lambda_environment` (pure) is the process environment Lambda gives
the runtime, with the local differences spelled out there.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Optional, Sequence

from ..aws import ClientFactory
from ..errors import LocalLambdaError, translated

__all__ = [
    "LocalLambdaError", "Sandbox", "Sandboxes", "lambda_environment", "python_path",
    "AWS_TASK_ROOT", "LOCAL_LANG",
]

AWS_TASK_ROOT = "/var/task"
LOCAL_LANG = "C.UTF-8"
"""``LANG`` of the local runtime: Lambda's is ``en_US.UTF-8``, which most hosts lack."""

_MARKER = "supervisor sha256:"
_CONFIG_PATH_ENV = "FUNCTION_CONFIG_PATH"



@dataclass(frozen=True)
class Sandbox:
    """One function as deployed: its settings and where its code and layers are unpacked."""

    name: str
    arn: str
    region: str
    handler: str
    runtime: str  # e.g. "python3.12"
    memory: int  # MB
    timeout: float  # seconds, after the executor's override
    variables: Mapping[str, str]  # Environment.Variables as deployed
    task_root: Path
    opt_dir: Optional[Path]  # the merged layers (/opt), None without layers
    code_sha256: str


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _hex_of(code_sha256: str) -> str:
    try:
        return base64.b64decode(code_sha256, validate=True).hex()
    except ValueError as exc:
        raise LocalLambdaError(f"CodeSha256 {code_sha256!r} is not base64") from exc


def _check_members(archive: zipfile.ZipFile, what: str) -> None:
    for name in archive.namelist():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise LocalLambdaError(f"{what}: the zip entry {name!r} leaves its directory")


def _extract(archive: zipfile.ZipFile, dest: Path) -> None:
    """Extract with the unix mode bits the zip records (zipfile drops them)."""
    for info in archive.infolist():
        written = Path(archive.extract(info, dest))
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            written.chmod(mode)


def _unpack(sources: Sequence[Callable[[], zipfile.ZipFile]], target: Path, what: str) -> None:
    """Unpack the zips in order into ``target`` (created whole, by a rename, or not at all)."""
    if target.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for open_zip in sources:
            with open_zip() as archive:
                _check_members(archive, what)
                _extract(archive, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not a concurrent unpack of the same hash
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise LocalLambdaError(f"{what}: cannot unpack into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Sandboxes:
    """Resolves functions to :class:`Sandbox` es, verifying and unpacking code once per hash.

    ``code(name)`` returns the zip deployed as function ``name`` (for example
    ``provision.deployment_zip(config)``); ``layers(arn)`` the local zip of a
    layer version ARN. Either may raise; that is a :class:`LocalLambdaError`
    naming the function. ``timeout_override`` shortens every function's
    timeout (never lengthens it). Thread-safe.
    """

    def __init__(self, clients: ClientFactory, *, work_root: Path,
                 code: Callable[[str], bytes], layers: Callable[[str], Path],
                 timeout_override: Optional[float] = None) -> None:
        if timeout_override is not None and timeout_override <= 0:
            raise ValueError("timeout_override must be positive")
        self._clients = clients
        self.work_root = work_root
        self._code = code
        self._layers = layers
        self._timeout_override = timeout_override
        self._lock = threading.Lock()
        self._code_dirs: dict[tuple[str, str], Path] = {}
        self._layer_hex: dict[str, str] = {}

    def resolve(self, function: str) -> Sandbox:
        """The function's sandbox (its name or ARN), code and layers on disk."""
        config = self._configuration(function)
        name = str(config["FunctionName"])
        arn = str(config.get("FunctionArn") or "")
        if config.get("PackageType", "Zip") != "Zip":
            raise LocalLambdaError(f"function {name}: package type {config['PackageType']} "
                                   "cannot run locally; only zip functions can")
        code_sha = str(config.get("CodeSha256") or "")
        layer_arns = [str(x["Arn"]) if isinstance(x, Mapping) else str(x)
                      for x in config.get("Layers") or []]
        with self._lock:
            task_root = self._task_root(name, code_sha)
            opt_dir = self._opt_dir(name, layer_arns)
        timeout = float(config.get("Timeout") or 3)
        if self._timeout_override is not None:
            timeout = min(timeout, self._timeout_override)
        parts = arn.split(":")
        env = config.get("Environment") or {}
        return Sandbox(
            name=name, arn=arn, region=parts[3] if len(parts) > 3 else "us-east-1",
            handler=str(config.get("Handler") or ""), runtime=str(config.get("Runtime") or ""),
            memory=int(config.get("MemorySize") or 128), timeout=timeout,
            variables={str(k): str(v) for k, v in (env.get("Variables") or {}).items()},
            task_root=task_root, opt_dir=opt_dir, code_sha256=code_sha)

    def _configuration(self, function: str) -> Mapping[str, Any]:
        with translated(f"function {function}: cannot read its configuration",
                        LocalLambdaError):
            answer: Mapping[str, Any] = self._clients.client("lambda").get_function_configuration(
                FunctionName=function)
        return answer

    def _task_root(self, name: str, code_sha: str) -> Path:
        known = self._code_dirs.get((name, code_sha))
        if known is not None and known.is_dir():
            return known
        try:
            data = self._code(name)
        except Exception as exc:  # the caller's lookup: say which function it was for
            raise LocalLambdaError(f"function {name}: no local code to run: {exc}") from exc
        actual = _b64_sha256(data)
        if actual != code_sha:
            raise LocalLambdaError(
                f"function {name}: the local code (CodeSha256 {actual}) is not the code that "
                f"was deployed (CodeSha256 {code_sha}); deploy the function again from this "
                "configuration, or give the executor the zip that was deployed")
        target = self.work_root / "functions" / name / _hex_of(code_sha)[:16]

        _unpack([lambda: zipfile.ZipFile(io.BytesIO(data))], target, f"function {name}: code")
        self._code_dirs[(name, code_sha)] = target
        return target

    def _opt_dir(self, name: str, arns: Sequence[str]) -> Optional[Path]:
        if not arns:
            return None
        paths: list[Path] = []
        digests: list[str] = []
        for arn in arns:
            path, digest = self._layer(name, arn)
            paths.append(path)
            digests.append(digest)
        key = hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()[:16]
        target = self.work_root / "opt" / key
        _unpack([functools.partial(zipfile.ZipFile, p) for p in paths], target,
                f"function {name}: layers")
        return target

    def _layer(self, name: str, arn: str) -> tuple[Path, str]:
        """The layer's local zip and its hex digest, verified against the endpoint."""
        try:
            path = Path(self._layers(arn))
        except Exception as exc:  # the caller's lookup
            raise LocalLambdaError(f"function {name}: no local zip for layer {arn}: "
                                   f"{exc}") from exc
        known = self._layer_hex.get(arn)
        if known is not None:
            return path, known
        expected_b64, expected_hex = self._layer_digests(name, arn)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LocalLambdaError(f"function {name}: cannot read layer zip {path}: "
                                   f"{exc.strerror or exc}") from exc
        digest = hashlib.sha256(data)
        actual_hex, actual_b64 = digest.hexdigest(), base64.b64encode(digest.digest()).decode()
        if (expected_b64 and expected_b64 != actual_b64) or (
                expected_hex and expected_hex != actual_hex):
            raise LocalLambdaError(
                f"function {name}: layer zip {path} (sha256 {actual_hex}) is not layer version "
                f"{arn} as published (CodeSha256 {expected_b64 or '-'}, "
                f"marker {expected_hex or '-'}); publish it again or give the published zip")
        self._layer_hex[arn] = actual_hex
        return path, actual_hex

    def _layer_digests(self, name: str, arn: str) -> tuple[str, str]:
        """(``Content.CodeSha256``, hex of the Description marker) of a layer version."""
        from botocore.exceptions import BotoCoreError, ClientError

        layer_arn, _, version = arn.rpartition(":")
        if not layer_arn or not version.isdigit():
            raise LocalLambdaError(f"function {name}: {arn!r} is not a layer version ARN")
        try:
            answer = self._clients.client("lambda").get_layer_version(
                LayerName=layer_arn, VersionNumber=int(version))
        except (ClientError, BotoCoreError) as exc:
            raise LocalLambdaError(f"function {name}: cannot read layer version {arn}: "
                                   f"{exc}") from exc
        code_sha = str((answer.get("Content") or {}).get("CodeSha256") or "")
        description = str(answer.get("Description") or "")
        marker = description[len(_MARKER):].strip() if description.startswith(_MARKER) else ""
        if not code_sha and not marker:
            raise LocalLambdaError(f"function {name}: layer version {arn} has neither a "
                                   "CodeSha256 nor a supervisor sha256 marker to check the "
                                   "local zip against")
        return code_sha, marker


def python_path(sandbox: Sandbox) -> list[str]:
    """The function's module path as the runtime orders it.

    ``LAMBDA_TASK_ROOT``, then ``/opt/python/lib/<runtime>/site-packages`` and
    ``/opt/python`` of the merged layers.
    """
    entries = [str(sandbox.task_root)]
    if sandbox.opt_dir is not None:
        python = sandbox.runtime if sandbox.runtime.startswith("python") else "python3"
        entries.append(str(sandbox.opt_dir / "python" / "lib" / python / "site-packages"))
        entries.append(str(sandbox.opt_dir / "python"))
    return entries


def _local_config_path(value: str, task_root: Path) -> str:
    """``/var/task/<x>`` is ``<task root>/<x>`` here; any other value is kept."""
    path = PurePosixPath(value)
    try:
        relative = path.relative_to(AWS_TASK_ROOT)
    except ValueError:
        return value
    return str(task_root.joinpath(*relative.parts))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def lambda_environment(sandbox: Sandbox, *, log_stream: str,
                       endpoint_env: Mapping[str, str], tmp_dir: Path, python: str,
                       host_path: str, runtime_dir: Path) -> dict[str, str]:
    """The runtime process's environment for one invocation of ``sandbox`` (pure).

    Later wins: ``PATH`` (the interpreter's directory, the layers' ``bin``,
    ``host_path``), ``LANG`` and ``TZ``; the function's ``Environment.Variables``;
    ``endpoint_env`` (the endpoint and its credentials, standing in for the
    execution role's); the variables Lambda reserves. Local differences:

    - ``FUNCTION_CONFIG_PATH`` under ``/var/task`` names the same file under
      the unpacked code (``LAMBDA_TASK_ROOT``); no other variable is rewritten;
    - ``TMPDIR`` is a fresh directory per invocation, standing in for ``/tmp``;
    - ``LAMBDA_RUNTIME_DIR`` is the local runtime's directory;
    - ``PYTHONPATH`` is :func:`python_path`;
    - ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` name files that do
      not exist, so the host's ``~/.aws`` is not read (Lambda has none).
    """
    bin_dirs = [os.path.dirname(os.path.abspath(python))]
    if sandbox.opt_dir is not None:
        bin_dirs.append(str(sandbox.opt_dir / "bin"))
    env = {"PATH": os.pathsep.join([*bin_dirs, host_path] if host_path else bin_dirs),
           "LANG": LOCAL_LANG, "TZ": ":UTC"}
    env.update(sandbox.variables)
    if _CONFIG_PATH_ENV in env:
        env[_CONFIG_PATH_ENV] = _local_config_path(env[_CONFIG_PATH_ENV], sandbox.task_root)
    env.update(endpoint_env)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": sandbox.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(sandbox.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": _seconds(sandbox.timeout),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{sandbox.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_REGION": sandbox.region,
        "AWS_DEFAULT_REGION": sandbox.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{sandbox.runtime or 'python3'}",
        "LAMBDA_TASK_ROOT": str(sandbox.task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": sandbox.handler,
        "PYTHONPATH": os.pathsep.join(python_path(sandbox)),
        "TMPDIR": str(tmp_dir),
        "AWS_CONFIG_FILE": str(tmp_dir / ".aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_dir / ".aws-credentials-absent"),
    })
    return env
