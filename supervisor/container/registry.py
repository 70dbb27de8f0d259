"""A Docker Registry HTTP API v2 client: manifests and blobs, anonymous token auth.

Only what a pull needs: ``GET /v2/<name>/manifests/<tag or digest>`` (one
request resolves a tag, as ``docker pull`` does) and ``GET
/v2/<name>/blobs/<digest>`` streamed to a file and checked against its
digest. A ``401`` with ``WWW-Authenticate: Bearer …`` (Docker Hub, most
public registries) is answered with an anonymous token for the repository's
``pull`` scope. HTTPS unless the registry is on loopback or the spec says
``insecure``. Every request's timeouts come from the deadline.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlencode

from ..errors import ImageError, ScriptTimeout
from ..watchdog import Deadline
from .reference import ImageRef, is_loopback

__all__ = ["MANIFEST_TYPES", "INDEX_TYPES", "Manifest", "RegistryClient", "registry_base_url"]

MANIFEST_TYPES: tuple[str, ...] = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES: tuple[str, ...] = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
_ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
_CHUNK = 1024 * 1024
_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 30.0
_MANIFEST_LIMIT = 4 * 1024 * 1024
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')

Clock = Callable[[], float]


def registry_base_url(ref: ImageRef, *, insecure: bool = False) -> str:
    """``https://HOST`` (plain ``http://`` only on loopback or when ``insecure``)."""
    scheme = "http" if insecure or is_loopback(ref.host) else "https"
    return f"{scheme}://{ref.registry}"


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry served it: its digest, media type and exact bytes."""

    digest: str
    media_type: str
    body: bytes

    @property
    def data(self) -> Mapping[str, Any]:
        """The parsed JSON."""
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("a manifest must be a JSON object")
        return value

    @property
    def is_index(self) -> bool:
        """A manifest list / OCI index (one manifest per platform)."""
        return self.media_type in INDEX_TYPES or "manifests" in self.data


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """One repository on one registry. Thread-safe: blobs may be fetched concurrently."""

    def __init__(self, ref: ImageRef, *, insecure: bool = False, label: str = "",
                 clock: Clock, pool: Any = None) -> None:
        import urllib3

        self.ref = ref
        self.label = label or str(ref)
        self.base_url = registry_base_url(ref, insecure=insecure)
        self._clock = clock
        self._pool = pool or urllib3.PoolManager(maxsize=8, retries=False)
        self._token: Optional[str] = None
        self._token_lock = threading.Lock()

    # ------------------------------------------------------------------ requests

    def _timeout(self, deadline: Deadline) -> Any:
        import urllib3

        remaining = deadline.remaining(self._clock)
        if remaining is not None and remaining <= 0:
            raise ScriptTimeout(f"pulling the container image {self.label} exceeded the "
                                "time budget")
        cap = remaining if remaining is not None else _READ_TIMEOUT
        return urllib3.Timeout(connect=min(_CONNECT_TIMEOUT, cap), read=min(_READ_TIMEOUT, cap))

    def _fail(self, what: str, cause: str) -> ImageError:
        return ImageError(f"container image {self.label}: {what}: {cause}")

    def _get(self, path: str, deadline: Deadline, *, what: str,
             headers: Optional[Mapping[str, str]] = None, stream: bool = False) -> Any:
        """A GET with the token when one is needed; the response (status 200) or an error."""
        import urllib3

        url = self.base_url + path
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self._token:
                sent["Authorization"] = f"Bearer {self._token}"
            try:
                response = self._pool.request("GET", url, headers=sent, redirect=True,
                                              preload_content=not stream,
                                              timeout=self._timeout(deadline))
            except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: a subclass
                raise self._fail(what, f"cannot reach {self.ref.registry} "
                                       f"({_reason(exc)})") from None
            except urllib3.exceptions.TimeoutError:
                if deadline.expired(self._clock):
                    raise ScriptTimeout(f"pulling the container image {self.label} exceeded "
                                        "the time budget") from None
                raise self._fail(what, f"{self.ref.registry} did not answer in time") from None
            except urllib3.exceptions.HTTPError as exc:
                raise self._fail(what, f"cannot reach {self.ref.registry} "
                                       f"({_reason(exc)})") from None
            if response.status == 401 and attempt == 1:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.release_conn()
                if challenge.lower().startswith("bearer "):
                    self._authenticate(challenge, deadline)
                    continue
            if response.status == 200:
                return response
            status = response.status
            response.release_conn()
            if status in (401, 403, 404):
                raise self._fail(what, f"not found on {self.ref.registry} (HTTP {status}: "
                                       "unknown name or tag, or access denied)")
            raise self._fail(what, f"{self.ref.registry} answered HTTP {status}")
        raise self._fail(what, "authentication failed")  # pragma: no cover - loop exits above

    def _authenticate(self, challenge: str, deadline: Deadline) -> None:
        """Get an anonymous pull token from the realm the challenge names."""
        import urllib3

        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise self._fail("authentication", f"the registry's token realm {realm!r} "
                                               "is not a URL")
        params.setdefault("scope", f"repository:{self.ref.repository}:pull")
        with self._token_lock:
            try:
                response = self._pool.request("GET", f"{realm}?{urlencode(params)}",
                                              timeout=self._timeout(deadline))
            except urllib3.exceptions.HTTPError as exc:
                raise self._fail("authentication", f"cannot reach {realm} "
                                                   f"({_reason(exc)})") from None
            if response.status != 200:
                raise self._fail("authentication", f"{realm} answered HTTP {response.status}")
            try:
                data = json.loads(response.data)
                token = data.get("token") or data.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not isinstance(token, str) or not token:
                raise self._fail("authentication", f"{realm} gave no token")
            self._token = token

    # ------------------------------------------------------------------ the API

    def manifest(self, reference: str, deadline: Deadline) -> Manifest:
        """The manifest for a tag or digest, its bytes checked against a digest reference."""
        path = f"/v2/{self.ref.repository}/manifests/{reference}"
        response = self._get(path, deadline, what=f"manifest {reference}",
                             headers={"Accept": _ACCEPT})
        body = bytes(response.data)
        if len(body) > _MANIFEST_LIMIT:
            raise self._fail(f"manifest {reference}", "larger than 4 MiB")
        digest = _sha256(body)
        if reference.startswith("sha256:") and digest != reference:
            raise self._fail(f"manifest {reference}", f"the registry sent content with "
                                                      f"digest {digest}")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        manifest = Manifest(digest=digest, media_type=media_type, body=body)
        try:
            data = manifest.data
        except ValueError:
            raise self._fail(f"manifest {reference}", "not a JSON manifest") from None
        if not manifest.media_type:
            manifest = Manifest(digest, str(data.get("mediaType") or ""), body)
        return manifest

    def blob(self, digest: str, dest: Path, deadline: Deadline,
             cancel: Optional[threading.Event] = None) -> int:
        """Download blob ``digest`` to ``dest`` (a temp name, renamed when its digest checks).

        Stops between chunks when ``cancel`` is set or the deadline passed (the
        partial file is removed). Returns the size.
        """
        response = self._get(f"/v2/{self.ref.repository}/blobs/{digest}", deadline,
                             what=f"layer {digest[:19]}", stream=True)
        part = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
        hasher = hashlib.sha256()
        size = 0
        try:
            with open(part, "wb") as handle:
                for chunk in response.stream(_CHUNK):
                    if (cancel is not None and cancel.is_set()) or deadline.expired(self._clock):
                        raise ScriptTimeout(f"pulling the container image {self.label} "
                                            "exceeded the time budget")
                    hasher.update(chunk)
                    handle.write(chunk)
                    size += len(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise self._fail(f"layer {digest[:19]}", "the downloaded content does not "
                                                         "match its digest")
            os.replace(part, dest)
        except OSError as exc:
            raise self._fail(f"layer {digest[:19]}", f"cannot write {dest.parent}: "
                                                     f"{exc.strerror or exc}") from None
        except Exception as exc:
            import urllib3

            if isinstance(exc, urllib3.exceptions.HTTPError):
                raise self._fail(f"layer {digest[:19]}", f"the download broke off "
                                                         f"({_reason(exc)})") from None
            raise
        finally:
            response.release_conn()
            if part.exists():
                part.unlink()
        return size


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a urllib3 error, on one line."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return " ".join(text.split())[:200]
