"""The Lambda deployment zip (deterministic bytes) and file digests."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Mapping

from ..config import FunctionConfig, to_json
from .errors import ProvisionError

__all__ = ["TASK_ROOT", "CONFIG_NAME", "deployment_zip", "deterministic_zip", "file_sha256",
           "deployed_config"]

TASK_ROOT = "/var/task"
CONFIG_NAME = "function_config.yaml"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ProvisionError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def deterministic_zip(files: Mapping[str, bytes], executable: frozenset[str] = frozenset()
                      ) -> bytes:
    """A zip of ``files`` (name -> bytes) whose bytes depend only on its content.

    Entries are sorted by name, dated 1980-01-01, mode 0644 (0755 for the
    names in ``executable``), deflated.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode bits below are honoured
            info.external_attr = (0o100755 if name in executable else 0o100644) << 16
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def deployed_config(config: FunctionConfig) -> FunctionConfig:
    """``config`` as the function sees it: ``init_script`` beside the YAML file.

    The script is written as a bare file name: ``config.load`` resolves a
    relative ``init_script`` against the configuration file's directory, which
    is ``/var/task`` on AWS and the unpacked code directory when the local
    Lambda executor runs the same zip.
    """
    if config.init_script is None:
        return config
    return dataclasses.replace(config, init_script=Path(config.init_script).name)


def deployment_zip(config: FunctionConfig) -> bytes:
    """The function's code: ``function_config.yaml`` and the ``init_script``, deterministic.

    The configuration is written as JSON, which is YAML too: the handler reads it
    at every cold start without importing PyYAML.
    """
    files = {CONFIG_NAME: to_json(deployed_config(config)).encode("utf-8")}
    executable: frozenset[str] = frozenset()
    if config.init_script is not None:
        script = Path(config.init_script)
        if script.name == CONFIG_NAME:
            raise ProvisionError(f"init_script: {script.name!r} clashes with the deployed "
                                 f"{CONFIG_NAME}; rename the script")
        try:
            files[script.name] = script.read_bytes()
        except OSError as exc:
            raise ProvisionError(f"init_script: cannot read {str(script)!r}: "
                                 f"{exc.strerror or exc}") from exc
        executable = frozenset({script.name})
    return deterministic_zip(files, executable)
