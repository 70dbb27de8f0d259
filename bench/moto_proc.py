"""The moto server as a separate process, so its CPU is never counted as a contender's."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Optional

__all__ = ["MotoServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server -H 127.0.0.1 -p PORT``, Batch without Docker, no access log."""

    def __init__(self, python: str = sys.executable, log_path: Optional[Path] = None) -> None:
        self.python = python
        self.log_path = log_path
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    @property
    def url(self) -> str:
        """The endpoint URL, for ``AWS_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "MotoServer":
        """Start the server and wait until it answers; configure Batch without Docker."""
        self.port = free_port()
        # The access log (one line per request) goes nowhere: writing it costs the server CPU.
        if self.log_path is not None:
            self._log = open(self.log_path, "wb")
        sink = self._log if self._log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() >= end:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.url}") from None
                time.sleep(0.1)
        self._post("/moto-api/config", {"batch": {"use_docker": False}})
        return self

    def _post(self, path: str, body: object) -> None:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
