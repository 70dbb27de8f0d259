"""The replayed workload of the run-history rows: objects, their durations, the script (pure).

Sizes are spread evenly on a log scale over ``OCTAVES`` octaves from ``SMALLEST`` bytes;
the script's duration grows in proportion to the size, times a log-normal noise of
``NOISE`` (10 %), and the sizes are set so that a third of the objects take longer than
the budget. Each object's body starts with its duration (the script sleeps that long and
writes one small output), then padding up to its size. Seeded: every run replays the
same objects in the same shuffled order.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["ReplayObject", "make_workload", "body_of", "REPLAY_SCRIPT", "is_long",
           "OVERHEAD_S"]

SMALLEST = 1024
OCTAVES = 10
LONG_FRACTION = 1 / 3
NOISE = 0.10
SHORTEST_S = 0.02
#: The part of the budget the supervisor's own steps take (stage-in, starting the script,
#: stage-out): a record whose script needs more than the budget less this does not fit.
OVERHEAD_S = 0.15

#: Sleeps for the duration on the input's first line; one output holding that line.
REPLAY_SCRIPT = """\
read seconds < "$INPUT_FILE_PATH"
sleep "$seconds"
echo "$seconds" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").out"
"""


@dataclass(frozen=True)
class ReplayObject:
    """One input of the replay: its name, size and the seconds its script sleeps."""

    name: str
    size: int
    seconds: float


def make_workload(count: int, budget: float, seed: int) -> list[ReplayObject]:
    """``count`` objects in a shuffled order (a third of them longer than ``budget``)."""
    rng = random.Random(seed)
    boundary = SMALLEST * 2 ** (OCTAVES * (1 - LONG_FRACTION))  # takes ``budget`` seconds
    objects = []
    for _ in range(count):
        size = int(SMALLEST * 2 ** (rng.random() * OCTAVES))
        seconds = max(SHORTEST_S, budget * size / boundary * math.exp(rng.gauss(0.0, NOISE)))
        objects.append((size, round(seconds, 3)))
    objects.sort()
    rng.shuffle(objects)
    return [ReplayObject(f"obj{number:04d}.dat", size, seconds)
            for number, (size, seconds) in enumerate(objects)]


def is_long(obj: ReplayObject, budget: float) -> bool:
    """Whether the object's script does not fit the budget (with the supervisor's steps)."""
    return obj.seconds > budget - OVERHEAD_S


def body_of(obj: ReplayObject) -> bytes:
    """The object's content: its duration on the first line, padded to its size."""
    head = f"{obj.seconds:.3f}\n".encode("ascii")
    return head + b"x" * max(0, obj.size - len(head))
