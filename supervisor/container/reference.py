"""Docker image references, parsed as ``docker pull`` reads them. Pure.

``alpine`` is ``registry-1.docker.io/library/alpine:latest``;
``grycap/mrbayes:1.0`` is on Docker Hub too; ``127.0.0.1:5000/tools/ffmpeg``
and ``quay.io/org/img@sha256:…`` name their registry (the first component is
a registry when it holds a ``.`` or a ``:``, or is ``localhost``). A
reference may carry a tag, a digest, or both (the digest wins).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["DOCKER_HUB", "ImageRef", "parse_reference", "is_loopback"]

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class ImageRef:
    """One image: ``registry`` (host[:port]), ``repository``, and a ``tag`` or ``digest``."""

    registry: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint is asked for: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}"
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    @property
    def host(self) -> str:
        """The registry host without its port (brackets of an IPv6 literal removed)."""
        host = self.registry
        if host.startswith("["):
            return host[1:host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (no port) is this machine: ``localhost`` or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress  # only when a registry host is checked: not at the handler's cold start

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _problem(text: str, why: str) -> ValueError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ValueError(f"{shown!r} is not a Docker image reference: {why} "
                      "(expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST])")


def parse_reference(text: str) -> ImageRef:
    """Parse ``text`` as Docker does; ``ValueError`` (one line) when it is not a reference."""
    if not text or text != text.strip():
        raise _problem(text, "empty, or has spaces around it")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise _problem(text, "the digest must be sha256: and 64 hex digits")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise _problem(text, f"bad tag {tag!r}")
    parts = rest.split("/")
    registry = DOCKER_HUB
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
        if not _HOST.fullmatch(registry):
            raise _problem(text, f"bad registry host {registry!r}")
        if registry in _HUB_ALIASES:
            registry = DOCKER_HUB
    if not parts or not all(_COMPONENT.fullmatch(part) for part in parts):
        raise _problem(text, "the name must be lowercase letters, digits and separators")
    if registry == DOCKER_HUB and len(parts) == 1:
        parts.insert(0, "library")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository="/".join(parts), tag=tag, digest=digest)
