"""The one line deploy says about storage-provider keys given in plain text. Pure.

A plain ``access_key`` / ``secret_key`` is deployed as it is (SCAR's configurations have
them), but it then sits in the deployment package's ``function_config.yaml`` and in every
hand-off document; a reference to Secrets Manager or Parameter Store keeps it out of both
(:mod:`supervisor.config.credentials`).
"""
from __future__ import annotations

from typing import Optional

from ..config import FunctionConfig
from ..config.parse import provider_name

__all__ = ["plain_keys_note"]


def plain_keys_note(config: FunctionConfig, where: str = "") -> Optional[str]:
    """``<where>: <fields> are plain text …``: every plain-text provider key of ``config``
    and a reference to use instead; ``None`` when there is none."""
    fields = [f"storage_providers.{provider_name(key)}.{name}"
              for key, provider in sorted(config.storage_providers.items())
              for name in ("access_key", "secret_key")
              if isinstance(getattr(provider, name), str)]
    if not fields:
        return None
    prefix = f"{where}: " if where else ""
    one = len(fields) == 1
    return (f"{prefix}{', '.join(fields)} {'is' if one else 'are'} plain text, so "
            f"{'it goes' if one else 'they go'} into the deployment package and every "
            f"hand-off; a reference keeps {'it' if one else 'them'} out, e.g. secret_key: "
            "{secretsmanager: NAME, key: secret_key} or {ssm: /PARAMETER} "
            "(README: Storage-provider keys)")
