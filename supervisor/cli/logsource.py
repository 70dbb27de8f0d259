"""What ``logs`` shows, as sources: one per invocation (attempt) or Batch job attempt.

A :class:`Source` names one log (the Lambda side of a request, or a Batch
job attempt), the title it is shown under, the fields its title already
says (left out of each line, see :mod:`.logtext`) and a :class:`Tail` that
reads the lines new since the last read, so the same sources serve one
printing and ``--follow``. A :class:`View` is the set of sources a command
line asks for (re-read on every poll: new invocations and attempts appear)
and says when there is nothing more to wait for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

from .cloudwatch import LogEvent, RequestFilter
from .errors import CliError
from .logtext import record_of, record_time

__all__ = ["Tail", "Source", "View", "FileTail", "RequestTail", "Tails", "match_id"]


class Tail(Protocol):
    """Reads a log in steps."""

    @property
    def missing(self) -> Optional[str]:
        """Why there is no log (yet), as of the last poll; None when there is one."""

    def poll(self, *, final: bool = False) -> list[LogEvent]:
        """The lines new since the last poll; ``final``: the log is complete (flush)."""


@dataclass(frozen=True)
class Source:
    """One log: the Lambda side of a request (``side`` "lambda") or a Batch job attempt."""

    key: str  # unique in a view
    title: str
    side: str  # "lambda" or "batch"
    ident: str  # the request id or the job id
    tail: Tail = field(compare=False, repr=False)
    attempt: Optional[int] = None
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)


class View(Protocol):
    """The sources a ``logs`` command line asks for."""

    def sources(self) -> list[Source]:
        """The sources as they are now (their tails keep their place between calls)."""

    def finished(self) -> bool:
        """Whether everything shown has ended (as of the last :meth:`sources`)."""

    def empty_error(self, missing: Sequence[str]) -> Optional[str]:
        """The error when not one line was read (one request or job asked for), else None;
        ``missing`` says why of each log that is not there."""

    def empty_note(self) -> str:
        """What to say when not one line was read and that is no error."""


class Tails:
    """The tails of a view by source key, made once and kept between polls."""

    def __init__(self) -> None:
        self._tails: dict[str, Tail] = {}

    def get(self, key: str, make: Callable[[], Tail]) -> Tail:
        """The tail of ``key``, made with ``make`` the first time."""
        if key not in self._tails:
            self._tails[key] = make()
        return self._tails[key]


class FileTail:
    """A local log file that may still grow: its complete lines, in steps.

    A line's time is its record's (see :func:`~.logtext.record_time`), else
    the time of the line before it, else ``start`` (epoch seconds).
    """

    def __init__(self, path: Optional[Path], stream: str, start: float) -> None:
        self.path = path
        self.missing: Optional[str] = None
        self._stream = stream
        self._time = int(start * 1000)
        self._offset = 0
        self._partial = b""

    def poll(self, *, final: bool = False) -> list[LogEvent]:
        """The lines written since the last poll; a last line without a newline only when
        ``final``."""
        if self.path is None:
            self.missing = "no log yet"
            return []
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError as exc:
            self.missing = f"log file {self.path}: {exc.strerror or exc}"
            return []
        self.missing = None
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        events = []
        for raw in lines:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            record = record_of(text)
            stamp = record_time(record) if record is not None else None
            self._time = stamp if stamp is not None else self._time
            events.append(LogEvent(self._time, self._stream, text))
        return events


class RequestTail:
    """The lines of one invocation in a Lambda log stream (see :class:`RequestFilter`)."""

    def __init__(self, inner: Tail, request_id: str) -> None:
        self._inner = inner
        self._filter = RequestFilter(request_id)

    @property
    def reported(self) -> bool:
        """Whether the invocation's ``REPORT`` line was read."""
        return self._filter.reported

    @property
    def missing(self) -> Optional[str]:
        """Why the stream cannot be read (yet), or None."""
        return self._inner.missing

    def poll(self, *, final: bool = False) -> list[LogEvent]:
        """The invocation's lines new since the last poll."""
        return self._filter.feed(self._inner.poll(final=final))


def match_id(given: str, ids: Iterable[str], what: str) -> Optional[str]:
    """The id ``given`` is, or starts (the short ids tables and progress lines show).

    None when no id matches; ``CliError`` when several start with it.
    """
    known = list(dict.fromkeys(ids))
    if given in known:
        return given
    found = [i for i in known if i.startswith(given)]
    if len(found) > 1:
        raise CliError(f"{what} {given} is ambiguous: {', '.join(sorted(found)[:4])}"
                       f"{', …' if len(found) > 4 else ''}; give more of it")
    return found[0] if found else None
