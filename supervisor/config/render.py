"""One function written back out in the flat form (deploy, hand-off)."""
from __future__ import annotations

import json
from typing import Any, Mapping

from .credentials import credential_value
from .fields import plain, yaml_dumper
from .model import FunctionConfig, S3Provider, StoragePath


class _Whole(dict[str, Any]):
    """A rendered mapping whose keys replace the raw ones (a name -> value map)."""


def _render_path(path: StoragePath) -> dict[str, Any]:
    return {"storage_provider": path.storage_provider, "path": path.path,
            "prefix": list(path.prefix) or None, "suffix": list(path.suffix) or None}


def _providers_of(config: FunctionConfig, kind: str) -> dict[str, Any]:
    """The ``storage_providers.<kind>`` entries by id (``minio.<id>`` keys are MinIO's)."""
    out: dict[str, Any] = {}
    for key, provider in config.storage_providers.items():
        minio = key.startswith("minio.")
        if minio == (kind == "minio"):
            out[key[len("minio."):] if minio else key] = _render_provider(provider)
    return out


def _render_provider(provider: S3Provider) -> dict[str, Any]:
    """A provider's settings; a credential given as a reference stays a reference (a
    reference mapping is written whole, never merged with the raw one)."""
    def credential(value: Any) -> Any:
        written = credential_value(value)
        return _Whole(written) if isinstance(written, dict) else written

    return {"access_key": credential(provider.access_key),
            "secret_key": credential(provider.secret_key),
            "region": provider.region, "endpoint": provider.endpoint}


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
        "storage_providers": {kind: _Whole(_providers_of(config, kind))
                              for kind in ("s3", "minio")},
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
        "history": {"table": config.history.table,
                    "expires_after_seconds": config.history.expires_after_seconds,
                    "explore_fraction": config.history.explore_fraction},
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
    holds the storage providers' credentials as they were given (a reference stays a
    reference; a plain key is there in plain text): treat it as secret.
    """
    return _overlay(plain(config.raw), _render(config), _render(FunctionConfig(name="")))


def to_yaml(config: FunctionConfig) -> str:
    """The flat YAML of one function: what the deploy writes and the hand-off embeds.

    ``to_mapping(config)`` as block YAML;
    ``parse(yaml.safe_load(to_yaml(c)), check_files=False) == c``.
    """
    import yaml

    return str(yaml.dump(to_mapping(config), Dumper=yaml_dumper(), sort_keys=False,
                         default_flow_style=False, allow_unicode=True))


def to_json(config: FunctionConfig) -> str:
    """``to_mapping(config)`` as indented JSON: YAML too, and read without PyYAML."""
    return json.dumps(to_mapping(config), indent=2, ensure_ascii=False) + "\n"
