"""The SCAR FDL keys deploy does not act on, each said in one line instead of dropped.

SCAR's function definitions carry keys for things this project does not (yet) set up.
They stay in the configuration (unknown keys are kept), and ``deploy`` prints one line per
key found, saying what is ignored and why, so nothing is dropped silently. Pure.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..config import FunctionConfig

__all__ = ["IGNORED_KEYS", "IGNORED_PROVIDERS", "ignored_keys", "ignored_fdl_keys"]

IGNORED_KEYS: Mapping[str, str] = {
    "run_script": "it is what scar run sends as the event's script; supervisor invoke sends "
                  "a script the same way",
    "supervisor": "SCAR's faas-supervisor layer settings; this project deploys its own layer",
    "invocation_type": "a setting of scar invoke, not of the function",
    "log_type": "a setting of scar invoke, not of the function",
    "asynchronous": "a setting of scar invoke, not of the function",
    "ecr": "the image is pulled from its registry; no ECR repository is created",
}
"""Keys of a function's ``lambda`` section (and its siblings) that deploy ignores, and why."""

IGNORED_PROVIDERS: Mapping[str, str] = {
    "onedata": "only s3 storage providers are read and written",
    "webdav": "only s3 storage providers are read and written",
    "dcache": "only s3 storage providers are read and written",
    "rucio": "only s3 storage providers are read and written",
}


def ignored_keys(config: FunctionConfig, where: str = "") -> list[str]:
    """One line per key of ``config`` that deploy ignores: ``<path>: ignored: <why>``."""
    prefix = f"{where}." if where else ""
    lines = [f"{prefix}{key}: ignored: {why}" for key, why in IGNORED_KEYS.items()
             if config.raw.get(key) not in (None, "", [], {})]
    deployment = config.raw.get("deployment")
    if isinstance(deployment, Mapping):
        lines.extend(f"{prefix}deployment.{key}: ignored: with deployment.bucket the package "
                     "always goes through it; without, it is sent in the request"
                     for key in deployment if key != "bucket")
    providers = config.raw.get("storage_providers")
    if isinstance(providers, Mapping):
        for kind in providers:
            why = IGNORED_PROVIDERS.get(str(kind))
            if why is not None:
                lines.append(f"{prefix}storage_providers.{kind}: ignored: {why}")
    return lines


def ignored_fdl_keys(document: Mapping[str, Any]) -> list[str]:
    """One line per top-level FDL target deploy ignores (``functions.oscar``, …)."""
    functions = document.get("functions")
    if not isinstance(functions, Mapping) or "aws" not in functions:
        return []
    return [f"functions.{key}: ignored: only functions.aws is deployed (AWS Lambda and Batch)"
            for key in functions if key != "aws"]
