"""Reproducible zips: sorted entries, one date (1980-01-01), fixed modes and deflate level.

The same inputs give the same bytes, so a deploy can tell whether a layer changed by
its hash. Also what a written artefact is (:class:`Artefact`) and its digests.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

__all__ = ["Artefact", "tree_entries", "write_zip", "describe", "sha256_file", "payload_id",
           "FILE_MODE", "DIR_MODE", "SHEBANG"]

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 9
FILE_MODE = 0o644
DIR_MODE = 0o755
SHEBANG = b"#!/usr/bin/env python3\n"


@dataclass(frozen=True)
class Artefact:
    """A built file and what the checks and the stamp record about it."""

    path: Path
    sha256: str
    size: int
    unzipped: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the path as text, the digest and both sizes."""
        return {"path": str(self.path), "sha256": self.sha256, "size": self.size,
                "unzipped": self.unzipped}


def tree_entries(tree: Path, prefix: str = "") -> dict[str, Optional[Path]]:
    """Archive name → file (``None`` for a directory) for everything under ``tree``."""
    entries: dict[str, Optional[Path]] = {}
    if prefix:
        entries[prefix.rstrip("/") + "/"] = None
    for path in sorted(tree.rglob("*")):
        name = prefix + path.relative_to(tree).as_posix()
        entries[name + "/" if path.is_dir() else name] = None if path.is_dir() else path
    return entries


def write_zip(dest: Path, entries: Mapping[str, Optional[Path]],
              extra: Optional[Mapping[str, bytes]] = None, head: bytes = b"",
              mode: int = FILE_MODE, modes: Optional[Mapping[str, int]] = None) -> None:
    """Write a reproducible zip: sorted names, fixed date and modes, fixed deflate level.

    Files are 0644 but those ``modes`` names (0755 for the udocker layer's executables:
    Lambda keeps a layer's modes when it unpacks it).
    """
    contents: dict[str, Optional[bytes]] = {
        name: None if path is None else path.read_bytes() for name, path in entries.items()}
    contents.update(extra or {})
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(head)  # zipfile records offsets from the start of the file: a zipapp
        with zipfile.ZipFile(fh, "w") as zf:
            for name in sorted(contents):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.create_system = 3  # Unix, so the modes below are read
                data = contents[name]
                if data is None:
                    info.external_attr = ((0o040000 | DIR_MODE) << 16) | 0x10
                    zf.writestr(info, b"")
                else:
                    info.external_attr = (0o100000 | (modes or {}).get(name, FILE_MODE)) << 16
                    zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED,
                                compresslevel=ZIP_LEVEL)
    tmp.chmod(mode)
    os.replace(tmp, dest)


def describe(path: Path) -> Artefact:
    """The written zip at ``path``: its digest, size and unzipped size."""
    with zipfile.ZipFile(path) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    return Artefact(path=path, sha256=sha256_file(path), size=path.stat().st_size,
                    unzipped=unzipped)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def payload_id(entries: Mapping[str, Optional[Path]]) -> str:
    """SHA-256 of the archive's names and contents: the pyz's unpack directory."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        path = entries[name]
        digest.update(name.encode() + b"\0")
        if path is not None:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
