"""One invocation's use of run history: read once, decide per record, write once.

History never makes a record worse off than without it. The read gets a small share of
the time budget (its client's timeouts come from that share); a read that fails or is
slow means no history, and the records run as without it. The runs of the invocation are
written in one UpdateItem after the response is built, with the time left before
Lambda's own deadline (less a margin); a write that fails is logged and forgotten.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Callable, Optional

from ..aws import ClientFactory
from ..config import FunctionConfig, HistoryConfig
from ..errors import aws_message
from ..events import InputObject
from ..watchdog import Deadline
from .model import History, HistoryKey, Observation, Outcome, history_id
from .prediction import predict
from .store import HistoryStore

__all__ = ["RunHistory", "READ_SHARE", "READ_MAX_S", "WRITE_MAX_S", "explore_draw",
           "history_key"]

log = logging.getLogger("supervisor.history")

READ_SHARE = 0.05  # of the time budget, for the read
READ_MAX_S = 1.0
_READ_LEAST_S = 0.05  # a smaller share (a budget under 1 s): no read, no history
WRITE_MAX_S = 1.0
# The shortest client timeout (``ClientFactory.bounded``): its connect and its read may each
# take that long, so a write is made only when twice that is left before ``write_by``.
_WRITE_LEAST_S = 0.25


def explore_draw(identity: str, digest: str) -> float:
    """A number in [0, 1) fixed by the object and the history (a retry draws the same)."""
    value = hashlib.sha256(f"{digest}\0{identity}".encode("utf-8", "surrogatepass"))
    return int(value.hexdigest()[:13], 16) / 16 ** 13


class RunHistory:
    """The history of one function, script and image, for one invocation.

    ``budget`` is the records' deadline (what the script must finish by); ``write_by``
    the deadline of the write (Lambda's, less a margin). ``client(seconds)`` gives a
    DynamoDB client that gives up after about ``seconds``.
    """

    def __init__(self, settings: HistoryConfig, key: HistoryKey, *,
                 client: Callable[[float], Any], budget: Deadline, write_by: Deadline,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time) -> None:
        assert settings.table
        self._settings = settings
        self._key = key
        self._id = history_id(key)
        self._store = HistoryStore(settings.table, client,
                                   expires_after_seconds=settings.expires_after_seconds, now=now)
        self._budget = budget
        self._write_by = write_by
        self._clock = clock
        self._history: Optional[History] = None
        self._read = False
        self._pending: list[Observation] = []

    @classmethod
    def of(cls, config: FunctionConfig, *, script: str, memory: int, clients: ClientFactory,
           budget: Deadline, write_by: Deadline,
           clock: Callable[[], float] = time.monotonic) -> "RunHistory":
        """The history of ``config``'s function running ``script`` with ``memory`` MB, over
        ``clients``' bounded DynamoDB clients."""
        return cls(config.history, history_key(config, script, memory),
                   client=lambda seconds: clients.bounded("dynamodb", seconds),
                   budget=budget, write_by=write_by, clock=clock)

    def reason_to_delegate(self, obj: InputObject) -> Optional[str]:
        """Why history sends ``obj`` to Batch at once, or None to run it here."""
        remaining = self._budget.remaining(self._clock)
        if remaining is None:
            return None
        history = self._history_once(remaining)
        if history is None:
            return None
        budget = self._budget.remaining(self._clock) or 0.0
        decision = predict(history, size=obj.size, budget=budget,
                           explore_fraction=self._settings.explore_fraction,
                           draw=explore_draw(obj.identity, self._key.digest))
        if decision.explored:
            log.info("history would hand this record off; it runs here to check",
                     extra={"would": decision.would})
        return decision.reason

    def note(self, obj: InputObject, seconds: float, outcome: Outcome) -> None:
        """Count one run in Lambda (written by :meth:`flush`)."""
        seen = Observation(size=obj.size, seconds=seconds, outcome=outcome)
        self._pending.append(seen)
        if self._history is not None:
            self._history = self._history.plus([seen])

    def flush(self) -> None:
        """Write the runs noted so far; a failure is logged, never raised."""
        from botocore.exceptions import BotoCoreError, ClientError

        pending, self._pending = self._pending, []
        if not pending:
            return
        left = self._write_by.remaining(self._clock)
        seconds = WRITE_MAX_S if left is None else min(WRITE_MAX_S, left / 2)
        if seconds < _WRITE_LEAST_S:
            log.warning("no time left to record the run history", extra={"runs": len(pending)})
            return
        try:
            self._store.add(self._id, self._key, pending, seconds)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not record the run history", extra={
                "table": self._store.table, "error": aws_message(exc)})

    def _history_once(self, remaining: float) -> Optional[History]:
        from botocore.exceptions import BotoCoreError, ClientError

        if not self._read:
            self._read = True
            seconds = min(READ_MAX_S, READ_SHARE * remaining)
            if seconds < _READ_LEAST_S:
                return None
            started = self._clock()
            try:
                self._history = self._store.read(self._id, seconds).plus(self._pending)
            except (ClientError, BotoCoreError) as exc:
                log.warning("run history unavailable: the record runs as without it",
                            extra={"table": self._store.table, "error": aws_message(exc),
                                   "seconds": round(self._clock() - started, 3)})
        return self._history


def history_key(config: FunctionConfig, script: str, memory: int) -> HistoryKey:
    """What ``config``'s runs of ``script`` are counted under: the function, the script, the
    image (and whether the script runs in it on Lambda) and the memory size."""
    container = config.container
    where = "host" if container.run_on_host else "image"
    image = " ".join(part for part in (container.image, container.image_file or "", where)
                     if part)
    return HistoryKey(function=config.name, script=script, image=image, memory=memory)
