"""Pulled images on disk, in udocker's own repository layout, so ``udocker create`` reads them.

::

    <udocker dir>/layers/sha256:<hex>              every blob (config and layers), once
    <udocker dir>/repos/supervisor/<id>/image/     TAG, v2, manifest, a symlink per blob
    <udocker dir>/supervisor/manifests/<hex>.json  what a pulled digest resolved to

A blob is written under a temporary name and renamed once its digest checks,
so a pull cut off at any point leaves only whole, verified blobs, and the
next pull fetches only what is missing.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import ImageError
from .udocker import write_if_changed

__all__ = ["PulledImage", "ImageStore", "image_blobs"]


@dataclass(frozen=True)
class PulledImage:
    """An image resolved to one platform: its manifest digest and the manifest itself."""

    digest: str
    manifest: Mapping[str, Any]

    @property
    def key(self) -> str:
        """The short hex id the udocker repository and container are named after."""
        return self.digest.split(":", 1)[1][:32]

    @property
    def udocker_name(self) -> str:
        """The image as ``udocker create`` names it (``REPO:TAG``)."""
        return f"supervisor/{self.key}:image"


def image_blobs(manifest: Mapping[str, Any]) -> list[str]:
    """The digests a manifest needs: its config, then its layers, in order."""
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, Mapping) or not isinstance(layers, list):
        raise ValueError("not an image manifest (no config or layers)")
    digests = [str(config.get("digest") or "")]
    digests += [str(layer.get("digest") or "") for layer in layers if isinstance(layer, Mapping)]
    if not all(d.startswith("sha256:") and len(d) == 71 for d in digests):
        raise ValueError("the manifest names a blob without a sha256 digest")
    return digests


class ImageStore:
    """The blobs and pulled images of one udocker dir."""

    def __init__(self, udocker_dir: Path) -> None:
        self.udocker_dir = udocker_dir
        self.layers_dir = udocker_dir / "layers"
        self.manifests_dir = udocker_dir / "supervisor" / "manifests"

    def ensure_dirs(self) -> None:
        """Create the store's directories; ``ImageError`` when the disk says no."""
        try:
            self.layers_dir.mkdir(parents=True, exist_ok=True)
            self.manifests_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImageError(f"cannot create the image store in {self.udocker_dir}: "
                             f"{exc.strerror or exc}") from None

    def blob_path(self, digest: str) -> Path:
        """Where blob ``digest`` lives (whether or not it is there yet)."""
        return self.layers_dir / digest

    def has_blob(self, digest: str) -> bool:
        """Whether the whole, verified blob is held."""
        return self.blob_path(digest).is_file()

    def _manifest_file(self, digest: str) -> Path:
        return self.manifests_dir / (digest.split(":", 1)[1] + ".json")

    def resolved(self, digest: str) -> Optional[PulledImage]:
        """What a manifest (or index) digest pulled before resolved to, if all its blobs are held."""
        try:
            data = json.loads(self._manifest_file(digest).read_text(encoding="utf-8"))
            image = PulledImage(digest=str(data["digest"]), manifest=data["manifest"])
            blobs = image_blobs(image.manifest)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return image if all(self.has_blob(b) for b in blobs) else None

    def remember(self, digest: str, image: PulledImage) -> None:
        """Record that ``digest`` (the tag's manifest or index) resolves to ``image``."""
        text = json.dumps({"digest": image.digest, "manifest": image.manifest}, sort_keys=True)
        try:
            write_if_changed(self._manifest_file(digest), text, 0o644)
        except OSError as exc:
            raise ImageError(f"cannot write the image store in {self.udocker_dir}: "
                             f"{exc.strerror or exc}") from None

    def write_repo(self, image: PulledImage) -> str:
        """Make the image a udocker image tag (``TAG``, ``v2``, ``manifest``, blob links).

        Returns its udocker name. Idempotent: an existing tag dir is rewritten.
        """
        tag_dir = self.udocker_dir / "repos" / "supervisor" / image.key / "image"
        try:
            tag_dir.mkdir(parents=True, exist_ok=True)
            for digest in image_blobs(image.manifest):
                link = tag_dir / digest
                if link.is_symlink() or link.exists():
                    link.unlink()
                os.symlink(os.path.relpath(self.blob_path(digest), tag_dir), link)
            write_if_changed(tag_dir / "manifest", json.dumps(image.manifest), 0o644)
            (tag_dir / "v2").touch()
            write_if_changed(tag_dir / "TAG", f"{tag_dir.parent}:image", 0o644)
        except OSError as exc:
            raise ImageError(f"cannot write the image into {self.udocker_dir}: "
                             f"{exc.strerror or exc}") from None
        return image.udocker_name

