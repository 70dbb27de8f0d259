"""A text progress bar for uploads, fed by boto3's ``upload_file(Callback=...)``.

boto3 calls the callback from its transfer threads with the bytes sent
since the last call; the bar adds them up under a lock and redraws one line
(``\\r``) only when the shown percentage changes. A disabled bar (not a
terminal, or ``--json``) draws nothing.
"""
from __future__ import annotations

import threading
from typing import TextIO

from .output import shorten, size

__all__ = ["ProgressBar"]

_WIDTH = 24


class ProgressBar:
    """``label  [#########---------]  45%  1.2 MB / 2.6 MB`` on one line of ``stream``."""

    def __init__(self, stream: TextIO, label: str, total: int, *, enabled: bool = True) -> None:
        self._stream = stream
        self._label = shorten(label, 40)
        self._total = max(total, 0)
        self._enabled = enabled
        self._sent = 0
        self._shown = -1
        self._lock = threading.Lock()

    @property
    def sent(self) -> int:
        """Bytes reported so far."""
        return self._sent

    def line(self) -> str:
        """The bar as text (pure; what ``__call__`` draws)."""
        fraction = 1.0 if self._total == 0 else min(self._sent / self._total, 1.0)
        filled = int(round(fraction * _WIDTH))
        return (f"{self._label}  [{'#' * filled}{'-' * (_WIDTH - filled)}]  "
                f"{int(fraction * 100):3d}%  {size(self._sent)} / {size(self._total)}")

    def __call__(self, bytes_amount: int) -> None:
        """boto3's transfer callback: ``bytes_amount`` more bytes were sent."""
        with self._lock:
            self._sent += bytes_amount
            percent = 100 if self._total == 0 else int(100 * self._sent / self._total)
            if self._enabled and percent != self._shown:
                self._shown = percent
                self._stream.write("\r" + self.line())
                self._stream.flush()

    def done(self) -> None:
        """Draw the finished bar and end its line."""
        with self._lock:
            if self._enabled:
                self._sent = max(self._sent, self._total)
                self._stream.write("\r" + self.line() + "\n")
                self._stream.flush()
