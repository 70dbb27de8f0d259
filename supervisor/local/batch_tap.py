"""Keep every SubmitJob request the embedded endpoint answers, by job id.

moto 5 drops ``nodeOverrides`` and ``retryStrategy`` from SubmitJob (its
backend never sees them), so nothing over HTTP says what a multi-node job
was submitted with. :class:`SubmitJobTap` is a WSGI middleware put in front of
the moto server's application: it copies the body of each ``POST
/v1/submitjob``, lets moto answer, and files the request under the ``jobId``
of the answer before the client sees it. The local Batch executor asks it for
the request of every job it finds.
"""
from __future__ import annotations

import io
import json
import threading
from typing import Any, Callable, Iterable, Optional

__all__ = ["SubmitJobTap"]

SUBMIT_PATH = "/v1/submitjob"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SubmitJobTap:
    """A record of SubmitJob requests (a WSGI middleware; thread-safe)."""

    def __init__(self) -> None:
        self._requests: dict[str, dict[str, Any]] = {}
        self._in_flight = 0
        self._lock = threading.Lock()

    def install(self, server: Any) -> None:
        """Put the tap in front of a started ``moto.server.ThreadedMotoServer``.

        The server's werkzeug server reads its ``app`` on every request, so the
        swap takes effect at once. (``_server`` is moto's attribute.)
        """
        wsgi = getattr(server, "_server", None)
        if wsgi is None or not hasattr(wsgi, "app"):
            raise TypeError("install() needs a started moto ThreadedMotoServer")
        wsgi.app = self.wrap(wsgi.app)

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` with SubmitJob requests recorded."""

        def tapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not _is_submit(environ):
                return app(environ, start_response)
            return self._record(app, environ, start_response)

        return tapped

    def request(self, job_id: str) -> Optional[dict[str, Any]]:
        """The SubmitJob request that created ``job_id`` (a copy), or None."""
        with self._lock:
            found = self._requests.get(job_id)
            return None if found is None else json.loads(json.dumps(found))

    def remember(self, job_id: str, request: dict[str, Any]) -> None:
        """File ``request`` under ``job_id`` (what the tap does for each SubmitJob)."""
        with self._lock:
            self._requests[job_id] = request

    @property
    def in_flight(self) -> int:
        """SubmitJob calls being answered now: their jobs may exist before their record."""
        with self._lock:
            return self._in_flight

    def _record(self, app: WsgiApp, environ: dict[str, Any],
                start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        with self._lock:
            self._in_flight += 1
        try:
            answer = app(environ, start_response)
            try:
                chunks = list(answer)
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
            self._file(body, b"".join(chunks))
            return chunks
        finally:
            with self._lock:
                self._in_flight -= 1

    def _file(self, body: bytes, answer: bytes) -> None:
        try:
            request = json.loads(body or b"{}")
            job_id = json.loads(answer).get("jobId")
        except (ValueError, AttributeError):  # an error answer, or not JSON: nothing to file
            return
        if isinstance(request, dict) and isinstance(job_id, str):
            self.remember(job_id, request)


def _is_submit(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") != "POST":
        return False
    if str(environ.get("PATH_INFO", "")).rstrip("/") != SUBMIT_PATH:
        return False
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    return not auth or "/batch/aws4_request" in auth
