"""``supervisor ls`` without ``-b``: the functions ``deploy`` made in this region.

They are the Lambda functions whose handler is the supervisor's
(``ListFunctions``); each with its memory, timeout, runtime, description
(``supervisor: IMAGE`` unless the definition gave one) and last change.
"""
from __future__ import annotations

from typing import Any

from .context import Context
from .output import Column, table, when

__all__ = ["deployed_functions", "run_list_functions", "FUNCTION_COLUMNS"]

FUNCTION_COLUMNS: tuple[Column, ...] = (
    ("name", "name"), ("memory", "memory (MB)"), ("timeout", "timeout (s)"),
    ("runtime", "runtime"), ("description", "description"),
    ("modified", "last modified (UTC)"))


def deployed_functions(lam: Any) -> list[dict[str, Any]]:
    """The supervisor's functions that ``lam`` (a Lambda client) lists, by name."""
    from ..provision.plan import HANDLER

    found = [{"name": fn.get("FunctionName"), "memory": fn.get("MemorySize"),
              "timeout": fn.get("Timeout"), "runtime": fn.get("Runtime"),
              "description": fn.get("Description"), "last_modified": fn.get("LastModified"),
              "arn": fn.get("FunctionArn")}
             for page in lam.get_paginator("list_functions").paginate()
             for fn in page.get("Functions", []) if fn.get("Handler") == HANDLER]
    return sorted(found, key=lambda f: str(f["name"]))


def run_list_functions(ctx: Context) -> int:
    """Print the deployed functions (a table, or JSON)."""
    functions = deployed_functions(ctx.clients.client("lambda"))

    def text() -> str:
        if not functions:
            return "no functions deployed by supervisor in this region"
        rows = [dict(f, modified=when(f["last_modified"])) for f in functions]
        return table(rows, FUNCTION_COLUMNS)

    ctx.emit(functions, text)
    return 0
