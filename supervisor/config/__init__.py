"""Function configuration: typed, frozen values parsed from SCAR's FDL.

One function's configuration is the ``lambda`` section of a SCAR function
definition with its siblings (``storage_providers``, ``batch``, ``iam``,
``cloudwatch``, ``idempotency``, ``handoff``, ``history``) merged into one flat mapping.

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

A storage provider's ``access_key`` / ``secret_key`` is the key or a :class:`SecretRef`
(Secrets Manager, Parameter Store; :mod:`.credentials`), read at run time by
:mod:`supervisor.secretrefs`.

Input and output paths are folders: ``bucket/in`` holds the keys under
``in/``, so ``bucket/in`` and ``bucket/input`` do not overlap.
"""
from __future__ import annotations

from .fields import DEFAULT_CONFIG_PATH, ENV_CONFIG, ENV_CONFIG_PATH
from .model import (
                    EXECUTION_MODES,
                    BatchConfig,
                    ComputeResources,
                    ContainerConfig,
                    ExecutionMode,
                    FunctionConfig,
                    HistoryConfig,
                    MultiNodeParallel,
                    S3Provider,
                    SecretRef,
                    StoragePath,
)
from .parse import parse
from .render import to_json, to_mapping, to_yaml
from .sources import from_fdl, load

__all__ = [
    "ExecutionMode",
    "EXECUTION_MODES",
    "StoragePath",
    "S3Provider",
    "SecretRef",
    "ContainerConfig",
    "ComputeResources",
    "MultiNodeParallel",
    "BatchConfig",
    "FunctionConfig",
    "HistoryConfig",
    "ENV_CONFIG",
    "ENV_CONFIG_PATH",
    "DEFAULT_CONFIG_PATH",
    "parse",
    "load",
    "from_fdl",
    "to_mapping",
    "to_yaml",
    "to_json",
]
