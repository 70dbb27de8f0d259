"""``--layer-zip``, ``--pyz``, ``--udocker-layer-zip``: the artefacts ``deploy`` and
``local`` use, given or (by default) built into the per-user cache on first use."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from ..config import FunctionConfig
from ..packaging import Artefacts, artefacts_for
from .context import Context

__all__ = ["add_artefact_options", "artefacts_of"]

_CACHED = "default: built from the installed package into ~/.cache/supervisor on first use"


def add_artefact_options(parser: argparse.ArgumentParser) -> None:
    """Add the three options, none given by default."""
    parser.add_argument("--layer-zip", type=Path, metavar="PATH",
                        help=f"the supervisor layer ({_CACHED}; supervisor build -o DIR "
                             "writes all three)")
    parser.add_argument("--pyz", type=Path, metavar="PATH",
                        help=f"supervisor-batch.pyz for Batch hosts ({_CACHED})")
    parser.add_argument("--udocker-layer-zip", type=Path, metavar="PATH",
                        help="udocker and its engine files, for functions that run their "
                             "script in an image on Lambda (default: udocker-layer.zip "
                             "beside --layer-zip, else built as above from this machine's "
                             "proot, patchelf and fakechroot)")


def artefacts_of(args: argparse.Namespace, configs: Sequence[FunctionConfig],
                 ctx: Context) -> Artefacts:
    """The artefacts for ``configs``: the options', the rest found or built in the cache."""
    return artefacts_for(configs, environ=os.environ, log=ctx.note, layer_zip=args.layer_zip,
                         batch_pyz=args.pyz, udocker_layer_zip=args.udocker_layer_zip)
