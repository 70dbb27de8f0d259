"""Build the supervisor's deployable artefacts from the installed package, reproducibly.

``supervisor build [-o DIR]`` (and ``./build.sh layer``, which runs it into ``dist/``)
writes:

``supervisor-layer.zip``
    A Lambda layer (``python/…``) that makes ``supervisor.handler.lambda_handler``
    importable on the managed runtimes python3.11–3.13, x86_64 and arm64: the
    supervisor, the part of aws-lambda-powertools it imports, PyYAML (pure Python),
    pinned in ``pins/lambda-layer.txt``. boto3 comes from the runtime unless
    ``--with-boto3`` adds ``pins/lambda-layer-boto3.txt``.
``udocker-layer.zip``
    A second Lambda layer with what running a script in a container image needs:
    ``python/udocker`` (pinned in ``pins/udocker-layer.txt``) and udocker's engine
    files under ``udocker/`` (``/opt/udocker`` on Lambda, where
    ``supervisor.container.spec`` looks): ``bin/patchelf``, ``bin/proot``,
    ``lib/libfakechroot.so``. They come from this machine's Debian packages, with the
    shared libraries they need that Lambda lacks beside them in ``lib/`` (found through
    a ``RUNPATH`` of ``$ORIGIN/../lib``), or from a udockertools tarball
    (``--udocker-tarball``: udocker's own statically linked builds). Built when those
    files are here, or asked for.
``supervisor-batch.pyz``
    ``supervisor-batch`` as one file for any ``python3`` >= 3.9 with nothing installed:
    a zipapp (``#!/usr/bin/env python3``) vendoring ``pins/batch-pyz.txt``, botocore's
    data pruned to the services the supervisor calls. Its ``__main__`` is
    ``pyz_main.py``.

How: the pinned wheels are fetched once with ``pip download`` into a wheelhouse
(later builds are offline), unpacked as plain zips (nothing is compiled, no installer
metadata), pruned, checked (no compiled file; the pruned trees are imported and
exercised in a subprocess whose ``sys.path`` holds only them and the standard
library), and written as zips with sorted entries, a fixed date (1980-01-01), fixed
modes (0644 files, 0755 directories) and a fixed deflate level: the same inputs give
the same bytes, so a deploy can tell whether the layer changed by its hash. The
shipped package leaves out ``supervisor/local`` and this builder.

::

    layout.py      names, places, limits, the Pythons the wheels are for
    pins.py        the requirement files (pins/*.txt)
    wheels.py      pip download into the wheelhouse; unpacking a wheel
    staging.py     the supervisor's files; stripping compiled files; botocore's data
    closure.py     the import closure that prunes powertools
    elf.py         what an engine file needs (libraries, RUNPATH, glibc)
    engines.py     the engine files, the libraries bundled beside them, the manifest
    debian.py      engine source (a): this machine's Debian packages
    tarball.py     engine source (b): a udockertools tarball
    engine_tree.py staging the engines (RUNPATH) and running them
    checks.py      the staged trees imported and used; size limits
    zips.py        reproducible zips and their digests
    artefacts.py   the three builds
    build.py       one build into a directory: skip what is up to date, stamp, lock
    cache.py       the per-user cache deploy and local use
    resolve.py     which artefacts a deploy of some functions uses
"""
from __future__ import annotations

from ..errors import BuildError
from .build import Options, build, report_lines
from .cache import cache_dir, cache_root, cached, wheelhouse
from .layout import ARTEFACT_NAMES, LAYER_NAME, PYZ_NAME, UDOCKER_LAYER_NAME
from .resolve import Artefacts, artefacts_for
from .zips import Artefact

__all__ = ["BuildError", "Options", "build", "report_lines", "cache_dir", "cache_root",
           "cached", "wheelhouse", "Artefact", "Artefacts", "artefacts_for",
           "ARTEFACT_NAMES", "LAYER_NAME", "PYZ_NAME", "UDOCKER_LAYER_NAME"]
