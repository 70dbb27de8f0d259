"""Polling with an injectable clock and sleep (Batch and Lambda settle asynchronously)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

from .errors import ProvisionError

__all__ = ["Waiting", "wait_until"]

T = TypeVar("T")


@dataclass(frozen=True)
class Waiting:
    """How long and how often to poll; tests pass a short ``interval`` or a fake clock."""

    timeout: float = 3600.0  # seconds; a compute environment update drains jobs for up to 30 min
    interval: float = 5.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


DEFAULT_WAITING = Waiting()


def wait_until(check: Callable[[], Optional[T]], what: str, waiting: Waiting) -> T:
    """Call ``check`` until it returns a value (not None); ``ProvisionError`` on timeout.

    ``check`` raises to stop waiting with an error of its own.
    """
    start = waiting.clock()
    while True:
        value = check()
        if value is not None:
            return value
        if waiting.clock() - start + waiting.interval > waiting.timeout:
            raise ProvisionError(f"timed out after {waiting.timeout:g} s waiting for {what}")
        waiting.sleep(waiting.interval)
