"""The user's script inside its container image, with udocker: on Lambda, on Batch, locally.

A function names ``container.image`` (a Docker reference, pulled from its
registry) or ``container.image_file`` (a ``docker save`` archive, local or in
S3). The rooms:

- :mod:`.reference` — image references, parsed as ``docker pull`` reads them
- :mod:`.spec` — the sandbox's settings and one function's spec; the execution mode
- :mod:`.probe` — what the sandbox allows (``ptrace``) and what an image holds
- :mod:`.registry`, :mod:`.pull`, :mod:`.store` — Registry API v2, blobs in udocker's layout
- :mod:`.udocker` — udocker's command line, its environment and the engine wrappers
- :mod:`.launch` — the engine command recorded once, filled in per run
- :mod:`.prepare` — image, container, mode and launch command, once per sandbox
- :mod:`.run` — one run of the script

Execution modes: ``P1`` (PRoot) needs ``ptrace``; ``F1`` (Fakechroot,
``LD_PRELOAD``) is what works on AWS Lambda, which forbids it, but cannot
confine a statically linked program. ``auto`` picks by probing.

What the container sees of the host: with PRoot, the runs dir (each record's
``input/``, ``output/``, script and log) at its own path, ``/dev``, ``/proc``,
``/etc/resolv.conf``, ``/etc/hosts``, and a per-sandbox ``/tmp`` and
``/dev/shm`` emptied before each run; with Fakechroot, the runs dir, ``/dev``
and ``/proc`` (excluded from the chroot). ``/proc`` is the host's, so a
script running as the supervisor's user could read the supervisor's
``/proc/<pid>/environ``. The container's own root file system is shared by
the runs of one image: what a script writes outside ``/tmp`` and the work
dir persists.
"""
from __future__ import annotations

from .reference import ImageRef, parse_reference
from .spec import AUTO, EXECMODES, ContainerSettings, ContainerSpec, spec_for

__all__ = ["AUTO", "EXECMODES", "ContainerSettings", "ContainerSpec", "ImageRef",
           "parse_reference", "spec_for"]
