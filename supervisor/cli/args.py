"""Helpers every command module uses to declare its ``argparse`` subcommand.

Each command module has ``register(subparsers, common)``: it adds its parser
with :func:`add_command` and sets ``func`` to the function ``main`` calls,
``func(args, ctx) -> exit code``.
"""
from __future__ import annotations

import argparse
import textwrap
from typing import Any, Callable

from .context import Context

__all__ = ["Command", "add_command", "Subparsers"]

#: What a subcommand runs: the parsed arguments and the context in, the exit code out.
Command = Callable[[argparse.Namespace, Context], int]
Subparsers = Any  # argparse's _SubParsersAction, private in typeshed's sense
WIDTH = 79  # of descriptions, filled by us: the formatter keeps the examples as written


def add_command(subparsers: Subparsers, name: str, *, summary: str, description: str,
                examples: str, common: argparse.ArgumentParser,
                func: Command) -> argparse.ArgumentParser:
    """A subcommand parser whose ``--help`` ends with ``examples`` (kept as written)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=textwrap.fill(description, width=WIDTH),
        epilog="examples:\n" + examples.strip("\n"), parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser
