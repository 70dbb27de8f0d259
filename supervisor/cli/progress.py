"""A text progress bar for transfers, fed by boto3's ``upload_file``/``download_file(Callback=...)``.

boto3 calls the callback from its transfer threads with the bytes moved
since the last call; the bar adds them up under a lock and redraws one line
(``\\r``) only when the shown percentage changes. The line fits the
terminal (the label keeps the end of a long key, the bar narrows) and
never gets shorter, so a redraw leaves nothing of the one before. A
disabled bar (not a terminal, or ``--json``) draws nothing.
"""
from __future__ import annotations

import threading
from typing import Optional, TextIO

from .output import shorten, size
from .terminal import terminal_width

__all__ = ["ProgressBar"]

_BAR = 24  # the widest bar
_LABEL = 40  # the longest label
_SIZE = len("1023.9 KB")  # every size() text fits
_FIXED = len("  []  100%  ") + 2 * _SIZE + len(" / ")
_DEFAULT_WIDTH = 80


class ProgressBar:
    """``label  [#########---------]  45%     1.2 MB /    2.6 MB`` on one line of ``stream``.

    ``width`` is the terminal's (default: ``COLUMNS`` or the size of the
    terminal ``stream`` is, else 80); the line is always shorter.
    """

    def __init__(self, stream: TextIO, label: str, total: int, *, enabled: bool = True,
                 width: Optional[int] = None) -> None:
        room = max((width or terminal_width(stream=stream) or _DEFAULT_WIDTH) - 1 - _FIXED, 0)
        label_width = min(len(label), _LABEL, max(room - 12, room // 2))
        self._bar = min(_BAR, room - label_width)
        self._stream = stream
        self._label = shorten(label, label_width, keep_end=True)
        self._total = max(total, 0)
        self._enabled = enabled
        self._sent = 0
        self._shown = -1
        self._drawn = 0
        self._lock = threading.Lock()

    @property
    def sent(self) -> int:
        """Bytes reported so far."""
        return self._sent

    def line(self) -> str:
        """The bar as text (pure; what ``__call__`` draws)."""
        fraction = 1.0 if self._total == 0 else min(self._sent / self._total, 1.0)
        filled = int(round(fraction * self._bar))
        return (f"{self._label}  [{'#' * filled}{'-' * (self._bar - filled)}]  "
                f"{int(fraction * 100):3d}%  {size(self._sent):>{_SIZE}} / "
                f"{size(self._total):>{_SIZE}}")

    def _draw(self, end: str = "") -> None:
        text = self.line()
        self._stream.write("\r" + text.ljust(self._drawn) + end)
        self._drawn = max(self._drawn, len(text))
        self._stream.flush()

    def __call__(self, bytes_amount: int) -> None:
        """boto3's transfer callback: ``bytes_amount`` more bytes were moved."""
        with self._lock:
            self._sent += bytes_amount
            percent = 100 if self._total == 0 else int(100 * self._sent / self._total)
            if self._enabled and percent != self._shown:
                self._shown = percent
                self._draw()

    def done(self) -> None:
        """Draw the finished bar and end its line."""
        with self._lock:
            if self._enabled:
                self._sent = max(self._sent, self._total)
                self._draw("\n")
