"""An image registry on a loopback port: Debian's ``docker-registry`` for tests.

``Registry`` writes a config (filesystem storage in a throw-away directory,
plain HTTP on ``127.0.0.1:PORT``, access log on), runs
``/usr/bin/docker-registry serve CONFIG`` in its own process group with
stdout and stderr appended to ``registry.log``, and kills it on ``stop()``.
``start()`` after ``stop()`` brings it back on the same port with the same
storage: "registry down, then up again". Images get in with ``push()``
(``skopeo copy docker-archive:... docker://...``); ``requests()`` counts,
from the access log, what clients fetched since ``reset_counts()``.

The access log is Apache's combined format, one line per request, next to
the registry's own ``time=... level=info msg="response completed"`` lines::

    127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bb/blobs/sha256:... HTTP/1.1" 200 1084652 "" "skopeo/1.9.3"
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

__all__ = ["DOCKER_REGISTRY", "MANIFEST_ACCEPT", "SKOPEO", "Registry", "RegistryError",
           "count_requests", "free_port", "missing_tools"]

DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
SKOPEO = Path("/usr/bin/skopeo")
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
"""The ``Accept`` header that makes the registry answer with the stored manifest's digest."""

_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')
_KINDS = {"blob": ("blobs", ("GET",)), "manifest": ("manifests", ("GET", "HEAD"))}
_PUSH_TIMEOUT = 180.0
_PROBE_TIMEOUT = 1.0
_LOG_TAIL = 4000


class RegistryError(RuntimeError):
    """The registry did not start, or a push or query against it failed."""


class _PortTaken(RegistryError):
    """The registry could not bind its port."""


def missing_tools(registry: Path = DOCKER_REGISTRY, skopeo: Path = SKOPEO) -> list[str]:
    """The Debian packages to install before a ``Registry`` can run (empty: none)."""
    return [package for package, binary in (("docker-registry", registry), ("skopeo", skopeo))
            if not os.access(binary, os.X_OK)]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def count_requests(log_text: str, kind: str, name: str) -> int:
    """How many access-log lines in ``log_text`` fetched a ``kind`` of repository ``name``.

    ``kind`` is ``"blob"`` (GET ``/v2/<name>/blobs/<digest>``; uploads are not
    fetches) or ``"manifest"`` (GET or HEAD ``/v2/<name>/manifests/<ref>``).
    Every status counts: a 404 was still a request.
    """
    try:
        segment, methods = _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {kind!r}") from None
    prefix = f"/v2/{name}/{segment}/"
    count = 0
    for line in log_text.splitlines():
        match = _ACCESS_LINE.match(line)
        if not match or match["method"] not in methods:
            continue
        path = match["uri"].split("?", 1)[0]
        if path.startswith(prefix) and not path.startswith(prefix + "uploads/"):
            count += 1
    return count


def _yaml_config(storage: Path, port: int) -> str:
    # JSON strings are valid YAML double-quoted scalars: any path is safe.
    return "\n".join((
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {json.dumps(str(storage))}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: supervisor-test-registry",
        "",
    ))


class Registry:
    """A ``docker-registry`` on ``127.0.0.1:<port>`` with its storage under ``root``.

    ``root`` defaults to a new temporary directory, removed by ``close()``;
    a given ``root`` is left in place. ``port`` defaults to a free one, kept
    across ``stop()``/``start()``. Use as a context manager or call
    ``start()`` and ``close()``.
    """

    def __init__(self, root: Optional[Path] = None, *, port: Optional[int] = None,
                 binary: Path = DOCKER_REGISTRY, skopeo: Path = SKOPEO,
                 start_timeout: float = 10.0, stop_timeout: float = 5.0) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="registry-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._may_move = port is None
        self.storage = self.root / "storage"
        self.config_path = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self._binary = binary
        self._skopeo = skopeo
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._offset = 0

    # --- where ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: what goes before ``/name:tag`` in an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> "Registry":
        """Run the registry and wait (bounded) until ``GET /v2/`` answers 200.

        A port picked here that someone took in the meantime is replaced by
        another before the first successful start; after it the port is kept.
        """
        if self.running:
            return self
        for _ in range(2 if self._may_move else 0):
            try:
                return self._launch()
            except _PortTaken:
                self.port = free_port()
        return self._launch()

    def _launch(self) -> "Registry":
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_yaml_config(self.storage, self.port), encoding="utf-8")
        env = {"PATH": os.defpath, "HOME": str(self.root)}  # no REGISTRY_* overrides
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            proc = self._proc = subprocess.Popen(
                [str(self._binary), "serve", str(self.config_path)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                start_new_session=True)
        deadline = time.monotonic() + self._start_timeout
        while True:
            output = self._log_since(started_at)
            if proc.poll() is not None:
                self._proc = None
                error = _PortTaken if "address already in use" in output else RegistryError
                raise error(f"docker-registry exited with {proc.returncode} on start "
                            f"({self.log_path}):\n{output[-_LOG_TAIL:]}")
            # Another server on the port would answer too: wait for this one's own line.
            if f"listening on {self.host}" in output and self._answers():
                self._may_move = False
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise RegistryError(f"docker-registry did not answer on {self.url}/v2/ within "
                                    f"{self._start_timeout:g}s ({self.log_path}):\n"
                                    f"{output[-_LOG_TAIL:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the registry's process group: SIGTERM, then SIGKILL after a grace."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, self._stop_timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        """``stop()``, then remove ``root`` when this object made it."""
        self.stop()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- images --------------------------------------------------------------------------

    def push(self, archive: Path, name: str, tag: str = "latest") -> str:
        """Copy a ``docker save`` archive to ``name:tag`` here; return the manifest digest."""
        if ":" in str(archive):
            raise ValueError(f"skopeo cannot read an archive whose path has a colon: {archive}")
        with tempfile.TemporaryDirectory(dir=self.root, prefix="push-") as work:
            digest_file = Path(work) / "digest"
            argv = [str(self._skopeo), "copy", "--insecure-policy", "--dest-tls-verify=false",
                    "--digestfile", str(digest_file), f"docker-archive:{archive}",
                    f"docker://{self.host}/{name}:{tag}"]
            env = {"PATH": os.defpath, "HOME": work, "TMPDIR": work}
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                                      timeout=_PUSH_TIMEOUT, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RegistryError(f"skopeo copy of {archive} took over "
                                    f"{_PUSH_TIMEOUT:g}s") from exc
            if proc.returncode != 0:
                raise RegistryError(f"skopeo copy of {archive} to {self.host}/{name}:{tag} "
                                    f"failed ({proc.returncode}): {proc.stderr.strip()}")
            digest = digest_file.read_text(encoding="ascii").strip()
        if not digest.startswith("sha256:"):
            raise RegistryError(f"skopeo wrote no digest for {name}:{tag}: {digest!r}")
        return digest

    def manifest_digest(self, name: str, reference: str = "latest") -> str:
        """The ``Docker-Content-Digest`` of a HEAD on the manifest (counts as a request)."""
        request = urllib.request.Request(f"{self.url}/v2/{name}/manifests/{reference}",
                                         method="HEAD", headers={"Accept": MANIFEST_ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                digest = response.headers.get("Docker-Content-Digest", "")
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryError(f"HEAD {name}:{reference} on {self.url}: {exc}") from exc
        if not digest.startswith("sha256:"):
            raise RegistryError(f"no Docker-Content-Digest for {name}:{reference}")
        return str(digest)

    # --- what clients fetched ------------------------------------------------------------

    def requests(self, kind: str, name: str) -> int:
        """GETs of ``/v2/<name>/blobs/`` (``kind="blob"``) or GETs and HEADs of
        ``/v2/<name>/manifests/`` (``"manifest"``) since ``reset_counts()``."""
        self._sync_log()
        return count_requests(self._log_since(self._offset), kind, name)

    def reset_counts(self) -> None:
        """Count only requests made from now on."""
        self._sync_log()
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self) -> str:
        """The whole log (registry messages and access lines) of every run so far."""
        return self._log_since(0)

    # --- internals -----------------------------------------------------------------------

    def _answers(self, query: str = "") -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/{query}",
                                        timeout=_PROBE_TIMEOUT) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _sync_log(self, timeout: float = 5.0) -> None:
        """Make a marked request and wait until its access line is in the log, so the
        lines of requests answered before it are there too."""
        if not self.running:
            return
        token = uuid.uuid4().hex
        if not self._answers(f"?log-sync={token}"):
            return
        deadline = time.monotonic() + timeout
        while token not in self._log_since(self._offset):
            if time.monotonic() >= deadline:
                raise RegistryError(f"the access log of {self.url} stays silent "
                                    f"({self.log_path})")
            time.sleep(0.01)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

