"""Which artefacts a deploy of some functions uses: the ones given, else the cached ones.

A path given (``--layer-zip``, ``--pyz``, ``--udocker-layer-zip``) is used as it is;
with ``--layer-zip`` alone, a ``udocker-layer.zip`` beside it too. What is not given
comes from the per-user cache (:mod:`.cache`), built there first when needed: the
layer always, ``supervisor-batch.pyz`` when a function hands jobs to Batch, the udocker
layer when one runs its script in a container image on Lambda (from this machine's
Debian packages: when they are missing, the error says what to install).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..config import FunctionConfig
from ..errors import BuildError
from ..provision.plan import runs_containers_on_lambda
from .cache import cached
from .debian import missing_debian_files, missing_text
from .layout import LAYER_NAME, PYZ_NAME, UDOCKER_LAYER_NAME, Log

__all__ = ["Artefacts", "artefacts_for"]


@dataclass(frozen=True)
class Artefacts:
    """The files a deploy reads: ``udocker_layer_zip`` and ``batch_pyz`` exist only when
    a function needs them (deploy reads them only then)."""

    layer_zip: Path
    batch_pyz: Path
    udocker_layer_zip: Path


def artefacts_for(configs: Sequence[FunctionConfig], *, environ: Mapping[str, str],
                  log: Log, layer_zip: Optional[Path] = None,
                  batch_pyz: Optional[Path] = None,
                  udocker_layer_zip: Optional[Path] = None,
                  warnings: bool = True) -> Artefacts:
    """The artefacts for deploying ``configs``: those given, the rest from the cache
    (``warnings``: whether the builder's warnings about real Lambda are shown)."""
    if udocker_layer_zip is None and layer_zip is not None \
            and layer_zip.with_name(UDOCKER_LAYER_NAME).is_file():
        udocker_layer_zip = layer_zip.with_name(UDOCKER_LAYER_NAME)
    in_images = [c.name for c in configs if runs_containers_on_lambda(c)]
    want_udocker = bool(in_images) and udocker_layer_zip is None
    want_pyz = batch_pyz is None and any(c.delegates for c in configs)
    if layer_zip is None or want_pyz or want_udocker:
        if want_udocker:
            missing = missing_debian_files()
            if missing:
                raise BuildError(
                    f"{', '.join(in_images)}: the script runs in container.image on Lambda, "
                    f"which needs {UDOCKER_LAYER_NAME}, built from this machine's proot, "
                    f"patchelf and fakechroot: {missing_text(missing)}; or give one with "
                    "--udocker-layer-zip (supervisor build -o DIR --udocker-tarball PATH "
                    "builds one)")
        found = cached(environ, log, udocker=want_udocker, warnings=warnings)
        layer_zip = layer_zip or found[LAYER_NAME].path
        batch_pyz = batch_pyz or found[PYZ_NAME].path
        if want_udocker:
            udocker_layer_zip = found[UDOCKER_LAYER_NAME].path
    # Not needed by any function, so never read: named beside the layer, as before.
    return Artefacts(layer_zip=layer_zip, batch_pyz=batch_pyz or layer_zip.with_name(PYZ_NAME),
                     udocker_layer_zip=(udocker_layer_zip
                                        or layer_zip.with_name(UDOCKER_LAYER_NAME)))
