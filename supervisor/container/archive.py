"""An image archive kept in S3 (``container.image_file: s3://…``), fetched once per sandbox.

``supervisor deploy`` ships a local ``docker save`` archive to the staging
bucket under a content-addressed key, so a URI always names the same bytes:
the first invocation of a sandbox downloads it into the udocker dir, later
ones find it there and make no request.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

from ..errors import ImageError, StageInError
from ..watchdog import Deadline
from .spec import ContainerSpec

__all__ = ["fetch_archive", "parse_archive_uri"]


def parse_archive_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ``ImageError`` for anything else."""
    bucket, _, key = uri[len("s3://"):].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket or not key:
        raise ImageError(f"container image {uri}: not an s3://BUCKET/KEY URI")
    return bucket, key


def fetch_archive(spec: ContainerSpec, s3: Any, deadline: Deadline, *,
                  clock: Callable[[], float] = time.monotonic) -> ContainerSpec:
    """The spec with its S3 archive replaced by a local copy (downloaded when not yet held)."""
    if spec.archive_uri is None:
        return spec
    from ..pipeline import run_within
    from ..storage import stage_in

    bucket, key = parse_archive_uri(spec.archive_uri)
    name = hashlib.sha256(spec.archive_uri.encode("utf-8")).hexdigest()[:32]
    folder = spec.udocker_dir / "archives" / name
    held = [p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")]
    if held:
        return spec.with_image_file(held[0])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = run_within(deadline, clock, f"fetching the container image {spec.archive_uri}",
                          lambda: stage_in(s3, bucket=bucket, key=key, input_dir=folder))
    except StageInError as exc:
        raise ImageError(f"container image {spec.archive_uri}: {exc}") from None
    except OSError as exc:
        raise ImageError(f"container image {spec.archive_uri}: cannot write {folder}: "
                         f"{exc.strerror or exc}") from None
    return spec.with_image_file(path)
