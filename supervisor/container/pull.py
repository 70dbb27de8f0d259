"""Pull a referenced image into the store: resolve the tag, fetch the missing blobs.

Per call: a ``@sha256:`` reference already held needs no request; a tag is
resolved with one manifest request (so a moved tag is noticed at once) and,
when the digest is new, its platform manifest and the blobs not yet held are
fetched, several at a time. What was fetched stays, even when the deadline
cuts the pull short.
"""
from __future__ import annotations

import concurrent.futures
import platform
import threading
from typing import Any, Callable, Mapping, Optional

from ..errors import ImageError, ScriptTimeout
from ..watchdog import Deadline
from .reference import ImageRef
from .registry import Manifest, RegistryClient
from .store import ImageStore, PulledImage, image_blobs

__all__ = ["pull", "select_platform", "host_platform", "BLOB_CONCURRENCY"]

BLOB_CONCURRENCY = 4
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_platform() -> tuple[str, str]:
    """``("linux", "amd64")`` or the like: what an index is resolved for."""
    machine = platform.machine().lower()
    return ("linux", _ARCHES.get(machine, machine))


def select_platform(index: Mapping[str, Any], wanted: tuple[str, str]) -> Optional[str]:
    """The digest of ``index``'s manifest for ``wanted`` (os, architecture), or None. Pure."""
    for entry in index.get("manifests") or ():
        if not isinstance(entry, Mapping):
            continue
        plat = entry.get("platform") or {}
        if (plat.get("os"), plat.get("architecture")) == wanted and entry.get("digest"):
            return str(entry["digest"])
    return None


def pull(ref: ImageRef, store: ImageStore, deadline: Deadline, *, clock: Callable[[], float],
         label: str, insecure: bool = False,
         client: Optional[RegistryClient] = None) -> PulledImage:
    """Have ``ref`` in ``store`` and return it; ``ImageError`` (one line naming ``label``)
    when it cannot be had, ``ScriptTimeout`` when the deadline comes first."""
    if ref.digest:
        held = store.resolved(ref.digest)
        if held is not None:
            return held
    store.ensure_dirs()
    client = client or RegistryClient(ref, insecure=insecure, label=label, clock=clock)
    top = client.manifest(ref.reference, deadline)
    held = store.resolved(top.digest)
    if held is not None:
        return held
    image = _platform_image(client, top, deadline, label)
    missing = [d for d in dict.fromkeys(image_blobs(image.manifest)) if not store.has_blob(d)]
    _fetch(client, store, missing, deadline)
    store.remember(top.digest, image)
    if image.digest != top.digest:
        store.remember(image.digest, image)
    return image


def _platform_image(client: RegistryClient, top: Manifest, deadline: Deadline,
                    label: str) -> PulledImage:
    manifest = top
    if top.is_index:
        wanted = host_platform()
        digest = select_platform(top.data, wanted)
        if digest is None:
            raise ImageError(f"container image {label}: no {'/'.join(wanted)} image in "
                             "its manifest list")
        manifest = client.manifest(digest, deadline)
    data = manifest.data
    if "fsLayers" in data:
        raise ImageError(f"container image {label}: schema 1 manifests are not supported "
                         "(push the image again with a current Docker or skopeo)")
    try:
        image_blobs(data)
    except ValueError as exc:
        raise ImageError(f"container image {label}: {exc}") from None
    return PulledImage(digest=manifest.digest, manifest=data)


def _fetch(client: RegistryClient, store: ImageStore, digests: list[str],
           deadline: Deadline) -> None:
    """Download ``digests`` concurrently; the first failure cancels the rest."""
    if not digests:
        return
    cancel = threading.Event()

    def one(digest: str) -> int:
        return client.blob(digest, store.blob_path(digest), deadline, cancel)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(BLOB_CONCURRENCY, len(digests)),
                                                 thread_name_prefix="pull")
    try:
        futures = [pool.submit(one, d) for d in digests]
        for future in concurrent.futures.as_completed(futures):
            error = future.exception()
            if error is not None:
                cancel.set()
                if isinstance(error, (ImageError, ScriptTimeout)):
                    raise error
                raise ImageError(f"container image {client.label}: "
                                 f"{type(error).__name__}: {error}") from error
    finally:
        cancel.set()
        pool.shutdown(wait=True)
