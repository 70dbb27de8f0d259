"""The provisioning error and its botocore translation, as provisioning modules import them.

Both live in :mod:`supervisor.errors` (the project's error tree); ``translated`` here
makes ``ProvisionError``.
"""
from __future__ import annotations

from ..errors import ProvisionError, error_code, translated

__all__ = ["ProvisionError", "translated", "error_code"]
