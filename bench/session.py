"""What every measurement shares: the server, the runner's fixture, the results, a work dir."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .aws import FAKE_ENV, Fixture
from .contenders import Contender
from .results import Results

__all__ = ["Session", "rounds_in_order"]


@dataclass
class Session:
    """One benchmark run against one moto server."""

    endpoint: str
    fixture: Fixture
    results: Results
    work: Path  # logs, specs, scripts, big input files
    contenders: Sequence[Contender]
    progress: Callable[[str], None] = print
    _counter: list[int] = field(default_factory=lambda: [0])

    def base_env(self) -> dict[str, str]:
        """The environment every contender process starts from (nothing of the runner's)."""
        return dict(FAKE_ENV, AWS_ENDPOINT_URL=self.endpoint, PATH="/usr/local/bin:/usr/bin:/bin",
                    HOME=str(self.work), LANG="C.UTF-8")

    def log_path(self, label: str) -> Path:
        """A fresh log file name for one process."""
        self._counter[0] += 1
        return self.work / f"{self._counter[0]:04d}-{label}-{uuid.uuid4().hex[:6]}.log"


def rounds_in_order(contenders: Sequence[Contender], warmups: int,
                    rounds: int) -> list[tuple[int, bool, Contender]]:
    """(round, is warm-up, contender) in run order: A/B/C every round, rotated each round."""
    plan: list[tuple[int, bool, Contender]] = []
    count = len(contenders)
    for number in range(warmups + rounds):
        shift = number % count
        for contender in list(contenders[shift:]) + list(contenders[:shift]):
            plan.append((number, number < warmups, contender))
    return plan
