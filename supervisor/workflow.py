"""Functions chained through S3: whose outputs trigger whom, and loops refused.

On AWS an output path of one function that is (or lies inside, or around) an
input path of another makes the second run on the first one's outputs: a
workflow. A chain that comes back to a function it started from would run
for ever; ``check_loops`` refuses it before anything is deployed.
"""
from __future__ import annotations

from typing import Sequence

from .config import FunctionConfig
from .errors import ConfigError

__all__ = ["triggers", "edges", "check_loops"]


def triggers(source: FunctionConfig, target: FunctionConfig) -> bool:
    """Whether files ``source`` uploads land in an input path of ``target``."""
    return any(out.overlaps(inp) for out in source.output for inp in target.input)


def edges(configs: Sequence[FunctionConfig]) -> dict[str, list[str]]:
    """Function name -> the names of the functions its outputs trigger, in file order."""
    return {a.name: [b.name for b in configs if triggers(a, b)] for a in configs}


def check_loops(configs: Sequence[FunctionConfig]) -> None:
    """Raise ``ConfigError`` naming every chain of functions that triggers itself."""
    graph = edges(configs)
    problems: list[str] = []
    seen_cycles: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> None:
        for nxt in graph.get(name, []):
            if nxt in path:
                cycle = path[path.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    problems.append(
                        "workflow: " + " -> ".join(cycle) + ": the outputs of "
                        f"{cycle[-2]} trigger {nxt} again (an infinite loop); an output path "
                        "must not lead back to a function earlier in its chain")
            else:
                visit(nxt, path + [nxt])

    for config in configs:
        visit(config.name, [config.name])
    if problems:
        raise ConfigError(problems)
