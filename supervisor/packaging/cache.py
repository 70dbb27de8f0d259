"""The per-user cache of built artefacts, what ``deploy`` and ``local`` use unless told.

``${XDG_CACHE_HOME:-~/.cache}/supervisor/``::

    wheels/                    the pinned wheels (pip download, once; any version)
    <version>-<sources>/       supervisor-layer.zip, supervisor-batch.pyz, udocker-layer.zip

``<sources>`` is a hash of the installed package's files, so another version or an
edited package gets a directory of its own, built on first use; in one directory the
builder's stamp skips what is up to date. Deleting the cache is always safe.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from .. import __version__
from ..errors import BuildError
from .build import Options, build
from .layout import PACKAGE, Log
from .staging import package_files
from .zips import Artefact

__all__ = ["cache_root", "cache_dir", "wheelhouse", "cached", "sources_hash"]

_HEADLINES = ("building ", "built ", "waiting ")


def cache_root(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/supervisor``, else ``$HOME/.cache/supervisor``."""
    base = environ.get("XDG_CACHE_HOME", "")
    if not base.startswith("/"):  # unset, or relative: ignored, as the XDG spec says
        home = environ.get("HOME", "")
        if not home:
            raise BuildError("no cache directory for the built artefacts: set XDG_CACHE_HOME "
                             "or HOME, or give the artefacts' paths")
        base = str(Path(home) / ".cache")
    return Path(base) / "supervisor"


def sources_hash(package: Path = PACKAGE) -> str:
    """SHA-256 of every file of ``package`` (builder included), by relative name."""
    digest = hashlib.sha256()
    for path in package_files(package, exclude=()):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_dir(environ: Mapping[str, str], package: Path = PACKAGE) -> Path:
    """Where this version and these sources of the supervisor keep their artefacts."""
    return cache_root(environ) / f"{__version__}-{sources_hash(package)[:16]}"


def wheelhouse(environ: Mapping[str, str]) -> Path:
    """The wheels every build from the cache shares."""
    return cache_root(environ) / "wheels"


def cached(environ: Mapping[str, str], log: Log, *, udocker: bool,
           package: Path = PACKAGE, warnings: bool = True) -> dict[str, Artefact]:
    """The cached artefacts, built first where missing or out of date: the layer and the
    pyz, and the udocker layer when ``udocker`` (its engine files must be here).

    Only the builder's headlines (building, built, waiting) and, with ``warnings``, its
    warnings (about Lambda's glibc: beside the point for a local run) reach ``log``.
    """
    def headlines(line: str) -> None:
        if line.startswith(_HEADLINES) or (warnings and "warning: " in line):
            log(line)

    options = Options(out=cache_dir(environ, package), wheelhouse=wheelhouse(environ),
                      package=package, udocker=udocker)
    return build(options, headlines)
