"""Helpers every command module uses to declare its ``argparse`` subcommand.

Each command module has ``register(subparsers, common)``: it adds its parser
with :func:`add_command` and sets ``func`` to the function ``main`` calls,
``func(args, ctx) -> exit code``. :class:`Parser` is the parser class of the
whole tree: a usage error is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import textwrap
from typing import Any, Callable, NoReturn

from .context import Context

__all__ = ["Command", "add_command", "Subparsers", "Parser"]

#: What a subcommand runs: the parsed arguments and the context in, the exit code out.
Command = Callable[[argparse.Namespace, Context], int]
Subparsers = Any  # argparse's _SubParsersAction, private in typeshed's sense
WIDTH = 79  # of descriptions, filled by us: the formatter keeps the examples as written


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line naming where the options are.

    ``supervisor: the following arguments are required: -f/--file (see
    'supervisor deploy --help')``, then exit code 2; subparsers are of the
    same class.
    """

    def error(self, message: str) -> NoReturn:
        """Print the one line and exit 2 (argparse's ``error`` contract)."""
        self.exit(2, f"supervisor: {' '.join(message.split())} (see '{self.prog} --help')\n")


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
