"""A fault-injecting HTTP proxy on loopback, in front of the moto server.

Clients reach it through ``AWS_ENDPOINT_URL`` exactly as they reach moto; every request is
forwarded to moto unless a :class:`Rule` matches it, and then its :class:`Fault` happens:

==============  ==========================================================================
fault           what the client sees
==============  ==========================================================================
``error``       an AWS error answer (S3 XML, JSON or REST-JSON, as the service speaks);
                the request never reaches moto
``cut``         moto's answer, its body cut after ``fraction`` of it, then the connection
                closed (the request took effect)
``drop``        nothing: the request is forwarded (it took effect), the answer is thrown
                away and the connection closed
``delay``       the answer ``seconds`` late; ``took_effect`` forwards first, else after
                (a client that gives up meanwhile leaves the request unforwarded)
``hang``        nothing, ever: the request is never forwarded; the connection is held
                until the client gives up or the proxy closes
``trickle``     moto's answer, its body ``chunk`` bytes every ``pause`` seconds
==============  ==========================================================================

A rule matches on the operation (``GetObject``, ``UploadPart``, ``PutItem``, ``SubmitJob``;
see :func:`operation`), method, host, a regex on the path or the query (``uploadId``), a
substring of ``X-Amz-Target``, and the ``nth`` matching requests (1-based; every one when
``nth`` is None). Everything that passed through is recorded (:class:`Seen`) for assertions.

Stdlib only: ``http.server`` on the client side, ``http.client`` towards moto.
"""
from __future__ import annotations

import http.client
import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Collection, Optional
from urllib.parse import unquote, urlsplit

__all__ = ["Fault", "Rule", "Seen", "FaultProxy", "operation"]

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "expect", "content-length"}
_POLL_S = 0.02


@dataclass(frozen=True)
class Fault:
    """What happens to a matching request; build one with the class methods."""

    kind: str
    status: int = 0
    code: str = ""
    seconds: float = 0.0
    took_effect: bool = False
    fraction: float = 0.5
    chunk: int = 16 * 1024
    pause: float = 0.1

    @classmethod
    def error(cls, status: int, code: str) -> "Fault":
        """An error answer with HTTP ``status`` and AWS error ``code``."""
        return cls("error", status=status, code=code)

    @classmethod
    def server_error(cls) -> "Fault":
        """500 InternalError."""
        return cls.error(500, "InternalError")

    @classmethod
    def slow_down(cls) -> "Fault":
        """S3's throttling answer: 503 SlowDown."""
        return cls.error(503, "SlowDown")

    @classmethod
    def throttled(cls) -> "Fault":
        """DynamoDB's and Batch's throttling answer: 400 ThrottlingException."""
        return cls.error(400, "ThrottlingException")

    @classmethod
    def cut(cls, fraction: float = 0.5) -> "Fault":
        """Moto's answer with its body cut after ``fraction`` of it."""
        return cls("cut", fraction=fraction)

    @classmethod
    def drop(cls) -> "Fault":
        """The request takes effect; its answer is never sent."""
        return cls("drop")

    @classmethod
    def delay(cls, seconds: float, *, took_effect: bool = False) -> "Fault":
        """The answer ``seconds`` late (forwarded first when ``took_effect``)."""
        return cls("delay", seconds=seconds, took_effect=took_effect)

    @classmethod
    def hang(cls) -> "Fault":
        """No answer and no effect: held until the client gives up."""
        return cls("hang")

    @classmethod
    def trickle(cls, chunk: int, pause: float) -> "Fault":
        """Moto's answer, its body ``chunk`` bytes every ``pause`` seconds."""
        return cls("trickle", chunk=chunk, pause=pause)


@dataclass
class Rule:
    """Which requests get ``fault``: every given criterion must hold."""

    fault: Fault
    op: Optional[str] = None
    method: Optional[str] = None
    host: Optional[str] = None
    path: Optional[str] = None  # regex, searched in the unquoted path
    query: Optional[str] = None  # regex, searched in the raw query string
    target: Optional[str] = None  # substring of X-Amz-Target
    nth: Optional[Collection[int]] = None  # the matching requests that get it, 1-based
    matched: int = 0  # how many requests matched so far

    def matches(self, request: "_Request") -> bool:
        """Whether ``request`` meets every criterion (it does not count it)."""
        return ((self.op is None or request.op == self.op)
                and (self.method is None or request.method == self.method)
                and (self.host is None or self.host in request.host)
                and (self.path is None or re.search(self.path, request.path) is not None)
                and (self.query is None or re.search(self.query, request.query) is not None)
                and (self.target is None or self.target in request.target))


@dataclass
class Seen:
    """One request that reached the proxy, and what became of it."""

    op: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_size: int
    fault: Optional[str] = None  # the fault's kind, None when passed through
    forwarded: bool = False  # moto got it (it took effect)
    status: Optional[int] = None  # what the client was answered (None: no answer)
    sent: int = 0  # body bytes sent to the client
    length: int = 0  # body bytes moto answered
    client_gone: bool = False  # the client closed before the answer was complete
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None


@dataclass(frozen=True)
class _Request:
    op: str
    method: str
    host: str
    path: str
    query: str
    target: str


_S3_QUERY_OPS = (("uploads", {"POST": "CreateMultipartUpload", "GET": "ListMultipartUploads"}),
                 ("uploadId", {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                               "DELETE": "AbortMultipartUpload", "GET": "ListParts"}))


def operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The AWS operation a request is, as far as the proxy's rules need to tell."""
    target = headers.get("x-amz-target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if path.startswith("/v1/"):  # Batch (REST-JSON): /v1/submitjob
        return {"submitjob": "SubmitJob", "listjobs": "ListJobs",
                "describejobs": "DescribeJobs"}.get(path[4:].strip("/"), path[4:])
    params = {part.split("=", 1)[0] for part in query.split("&") if part}
    for name, by_method in _S3_QUERY_OPS:
        if name in params and method in by_method:
            return by_method[method]
    has_key = "/" in path.strip("/")
    if not has_key:
        return {"GET": "ListObjects", "PUT": "CreateBucket", "HEAD": "HeadBucket",
                "DELETE": "DeleteBucket", "POST": "DeleteObjects"}.get(method, method)
    return {"GET": "GetObject", "PUT": "CopyObject" if "x-amz-copy-source" in headers
            else "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, method)


def _error_answer(request: _Request, fault: Fault) -> tuple[int, list[tuple[str, str]], bytes]:
    """The error answer the service would give, in its own protocol."""
    message = f"fault injected: {fault.code}"
    if request.target:  # awsJson (DynamoDB)
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}",
                           "message": message}).encode()
        return fault.status, [("Content-Type", "application/x-amz-json-1.0")], body
    if request.path.startswith("/v1/"):  # REST-JSON (Batch)
        body = json.dumps({"__type": fault.code, "message": message}).encode()
        return fault.status, [("Content-Type", "application/json"),
                              ("x-amzn-ErrorType", fault.code)], body
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
            f"<Message>{message}</Message><RequestId>fault</RequestId></Error>").encode()
    return fault.status, [("Content-Type", "application/xml")], body


class FaultProxy:
    """The proxy: ``url`` for ``AWS_ENDPOINT_URL``; ``add`` rules; ``seen`` what passed.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.log: list[Seen] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.stopping = threading.Event()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, fault: Fault, **criteria: Any) -> Rule:
        """Add a rule (see :class:`Rule` for the criteria); rules are tried in order."""
        rule = Rule(fault=fault, **criteria)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (what was seen stays)."""
        with self._lock:
            self.rules.clear()

    def seen(self, op: Optional[str] = None,
             where: Optional[Callable[[Seen], bool]] = None) -> list[Seen]:
        """The requests seen so far, of ``op`` and meeting ``where`` when given."""
        with self._lock:
            return [s for s in self.log
                    if (op is None or s.op == op) and (where is None or where(s))]

    def count(self, op: str) -> int:
        """How many ``op`` requests reached the proxy."""
        return len(self.seen(op))

    def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 10.0) -> Seen:
        """The first seen request meeting ``predicate``, waiting up to ``timeout`` s for it."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self.log:
                    if predicate(item):
                        return item
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no such request reached the proxy")
                self._changed.wait(left)

    def close(self) -> None:
        """Stop serving; held and delayed requests are let go at once."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler threads

    def _record(self, seen: Seen) -> None:
        with self._changed:
            self.log.append(seen)
            self._changed.notify_all()

    def _touch(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _fault_for(self, request: _Request) -> Optional[Fault]:
        """The first rule's fault that applies; every matching rule counts the request."""
        chosen = None
        with self._lock:
            for rule in self.rules:
                if rule.matches(request):
                    rule.matched += 1
                    if chosen is None and (rule.nth is None or rule.matched in rule.nth):
                        chosen = rule.fault
        return chosen


class _Handler(BaseHTTPRequestHandler):
    """One client connection: requests forwarded to moto, or faulted."""

    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._serve()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        owner = self.owner
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._read_body()
        request = _Request(op=operation(self.command, unquote(path), query, headers),
                           method=self.command, host=headers.get("host", ""),
                           path=unquote(path), query=query,
                           target=headers.get("x-amz-target", ""))
        fault = owner._fault_for(request)
        seen = Seen(op=request.op, method=self.command, path=request.path, query=query,
                    headers=headers, body_size=len(body),
                    fault=fault.kind if fault else None)
        owner._record(seen)
        try:
            self._answer(request, fault, seen, body)
        finally:
            seen.ended = time.monotonic()
            owner._touch()

    def _answer(self, request: _Request, fault: Optional[Fault], seen: Seen,
                body: bytes) -> None:
        kind = fault.kind if fault else None
        if fault is not None and kind == "error":
            status, headers, payload = _error_answer(request, fault)
            self._send(seen, status, "Fault", headers, payload)
            return
        if fault is not None and kind == "hang":
            self._hold(None, seen)
            self._close()
            return
        if fault is not None and kind == "delay" and not fault.took_effect:
            if not self._hold(fault.seconds, seen):
                self._close()
                return
        status, reason, headers, payload = self._forward(body)
        seen.forwarded, seen.length = True, len(payload)
        if fault is not None and kind == "drop":
            self._close()
            return
        if fault is not None and kind == "delay" and fault.took_effect:
            if not self._hold(fault.seconds, seen):
                self._close()
                return
        if fault is not None and kind == "cut":
            self._send(seen, status, reason, headers, payload,
                       stop_after=int(len(payload) * fault.fraction))
            self._close()
            return
        self._send(seen, status, reason, headers, payload,
                   trickle=fault if kind == "trickle" else None)

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        host, port = self.owner.upstream
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
            if self.command == "HEAD":
                kept += [(k, v) for k, v in answer.getheaders() if k.lower() == "content-length"]
            return answer.status, answer.reason, kept, payload
        finally:
            conn.close()

    def _send(self, seen: Seen, status: int, reason: str, headers: list[tuple[str, str]],
              payload: bytes, *, stop_after: Optional[int] = None,
              trickle: Optional[Fault] = None) -> None:
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        if self.command != "HEAD":
            lines.append(f"Content-Length: {len(payload)}")
        else:
            payload = b""
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        seen.status = status
        body = payload if stop_after is None else payload[:stop_after]
        try:
            self.wfile.write(head)
            if trickle is None:
                self.wfile.write(body)
                seen.sent = len(body)
            else:
                for start in range(0, len(body), trickle.chunk):
                    if start and self.owner.stopping.wait(trickle.pause):
                        break
                    self.wfile.write(body[start:start + trickle.chunk])
                    self.wfile.flush()
                    seen.sent = min(len(body), start + trickle.chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            seen.client_gone = True
            self.close_connection = True
        if seen.sent < len(payload):
            seen.client_gone = seen.client_gone or stop_after is None
            self.close_connection = True

    def _hold(self, seconds: Optional[float], seen: Seen) -> bool:
        """Wait ``seconds`` (forever when None) unless the client hangs up or the proxy
        stops; True when the wait ran its course."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.owner.stopping.is_set():
            if end is not None and time.monotonic() >= end:
                return True
            readable, _, _ = select.select([self.connection], [], [], _POLL_S)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        seen.client_gone = True
                        return False
                except OSError:
                    seen.client_gone = True
                    return False
                time.sleep(_POLL_S)  # a next request already waiting: not a hang-up
        return False

    def _close(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
