"""What runs where: the sandbox's container settings and one function's container spec.

:class:`ContainerSettings` is read once from the environment at an entry point
(``handler.py``, ``batch_entry.py``, the local executors); :func:`spec_for`
joins it with a function's ``container`` section into the
:class:`ContainerSpec` that travels in the ``Job``. Nothing below an entry
point reads the environment.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from ..errors import ConfigError
from .probe import ptrace_allowed
from .reference import ImageRef, parse_reference

if TYPE_CHECKING:
    from ..config import ContainerConfig

__all__ = [
    "AUTO", "EXECMODES", "PROOT_MODES", "FAKECHROOT_MODES", "LAMBDA_UDOCKER_DIR",
    "ENV_EXECMODE", "ENV_UDOCKER_DIR", "ENV_TOOLS_TARBALL", "ENV_PROOT", "ENV_FAKECHROOT_SO",
    "ENV_PATCHELF", "ENV_JOB_IMAGE_FILE", "ENV_JOB_IMAGE", "ContainerSettings", "ContainerSpec", "spec_for", "choose_execmode",
    "default_udocker_dir",
]

AUTO = "auto"
PROOT_MODES: tuple[str, ...] = ("P1", "P2")
FAKECHROOT_MODES: tuple[str, ...] = ("F1", "F2", "F3", "F4")
EXECMODES: tuple[str, ...] = (AUTO, *PROOT_MODES, *FAKECHROOT_MODES)
"""``container.execmode``: ``auto`` probes for ``ptrace`` (P1 where allowed, else F1)."""
LAMBDA_UDOCKER_DIR = Path("/tmp/udocker")

ENV_EXECMODE = "SUPERVISOR_CONTAINER_EXECMODE"
ENV_UDOCKER_DIR = "SUPERVISOR_UDOCKER_DIR"
ENV_TOOLS_TARBALL = "UDOCKER_TARBALL"
ENV_PROOT = "SUPERVISOR_PROOT"
ENV_FAKECHROOT_SO = "SUPERVISOR_FAKECHROOT_SO"
ENV_PATCHELF = "SUPERVISOR_PATCHELF"
ENV_JOB_IMAGE_FILE = "SUPERVISOR_JOB_IMAGE_FILE"
"""Set by the local Batch executor: the archive standing in for the job's container."""
ENV_JOB_IMAGE = "SUPERVISOR_JOB_IMAGE"
"""Set by the local Batch executor: the image reference standing in for the job's container."""

# Where the udocker layer puts its engine files (Lambda unpacks layers into /opt), then
# where Debian's packages do.
_LAYER_ROOT = Path("/opt/udocker")
_PROOT_PLACES = (_LAYER_ROOT / "bin" / "proot", Path("/usr/bin/proot"))
_FAKECHROOT_PLACES = (_LAYER_ROOT / "lib" / "libfakechroot.so",
                      Path("/usr/lib/x86_64-linux-gnu/fakechroot/libfakechroot.so"),
                      Path("/usr/lib/aarch64-linux-gnu/fakechroot/libfakechroot.so"))
_PATCHELF_PLACES = (_LAYER_ROOT / "bin" / "patchelf", Path("/usr/bin/patchelf"))


def _default_udocker_command() -> tuple[str, ...]:
    return (sys.executable, "-m", "udocker.maincmd")


def default_udocker_dir(environ: Mapping[str, str]) -> Path:
    """``/tmp/udocker`` on AWS Lambda, else ``$XDG_CACHE_HOME`` (or ``~/.cache``)/supervisor/udocker."""
    if environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return LAMBDA_UDOCKER_DIR
    cache = environ.get("XDG_CACHE_HOME")
    if cache and os.path.isabs(cache):
        return Path(cache) / "supervisor" / "udocker"
    home = environ.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".cache" / "supervisor" / "udocker"


def _first(environ: Mapping[str, str], name: str, places: tuple[Path, ...]) -> Optional[Path]:
    value = environ.get(name)
    if value:
        return Path(value)
    return next((p for p in places if p.is_file()), None)


@dataclass(frozen=True)
class ContainerSettings:
    """The sandbox's side of running containers, read once from the environment.

    ``execmode`` is the deployment's default (``auto`` unless
    ``SUPERVISOR_CONTAINER_EXECMODE`` says otherwise; a function's
    ``container.execmode`` wins); ``udocker_dir`` holds images, containers
    and the per-run dirs; ``proot``/``fakechroot_so``/``patchelf`` are the
    engine files (the udocker layer's under ``/opt/udocker``, else Debian's),
    ``tools_tarball`` a udockertools tarball to install instead of them.
    """

    udocker_dir: Path = field(default_factory=lambda: default_udocker_dir(os.environ))
    execmode: str = AUTO
    proot: Optional[Path] = Path("/usr/bin/proot")
    fakechroot_so: Optional[Path] = None
    patchelf: Optional[Path] = None
    tools_tarball: Optional[Path] = None
    udocker_command: tuple[str, ...] = field(default_factory=_default_udocker_command)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "ContainerSettings":
        """The settings as the environment gives them; ``ConfigError`` for a bad execmode."""
        execmode = (environ.get(ENV_EXECMODE) or AUTO).strip()
        if execmode not in EXECMODES:
            raise ConfigError([f"{ENV_EXECMODE}={execmode!r}: must be one of "
                               f"{', '.join(EXECMODES)}"])
        udocker_dir = environ.get(ENV_UDOCKER_DIR)
        tarball = environ.get(ENV_TOOLS_TARBALL)
        return cls(udocker_dir=Path(udocker_dir) if udocker_dir else default_udocker_dir(environ),
                   execmode=execmode,
                   proot=_first(environ, ENV_PROOT, _PROOT_PLACES),
                   fakechroot_so=_first(environ, ENV_FAKECHROOT_SO, _FAKECHROOT_PLACES),
                   patchelf=_first(environ, ENV_PATCHELF, _PATCHELF_PLACES),
                   tools_tarball=Path(tarball) if tarball else None)


@dataclass(frozen=True)
class ContainerSpec:
    """How one function's script runs in its image: the source, the mode, the sandbox's tools.

    Exactly one source is set: ``reference`` (pulled from a registry),
    ``image_file`` (a ``docker save`` archive on local disk) or
    ``archive_uri`` (such an archive in S3, fetched into the udocker dir
    before it is used); ``image`` is the image as configured, for messages;
    ``insecure`` allows plain HTTP to a registry that is not on loopback.
    """

    image: str
    settings: ContainerSettings
    execmode: str = "P1"
    reference: Optional[ImageRef] = None
    image_file: Optional[Path] = None
    archive_uri: Optional[str] = None
    insecure: bool = False

    def __post_init__(self) -> None:
        sources = [s for s in (self.reference, self.image_file, self.archive_uri) if s]
        if len(sources) != 1:
            raise ValueError("a container spec needs exactly one of reference, image_file "
                             "and archive_uri")
        if self.execmode not in EXECMODES or self.execmode == AUTO:
            raise ValueError(f"execmode must be one of {', '.join(EXECMODES[1:])}, "
                             f"not {self.execmode!r}")

    @property
    def udocker_dir(self) -> Path:
        """udocker's repository: ``layers/``, ``repos/``, ``containers/``."""
        return self.settings.udocker_dir

    @property
    def state_dir(self) -> Path:
        """The supervisor's own files in the udocker dir (markers, lock, wrappers)."""
        return self.udocker_dir / "supervisor"

    @property
    def runs_dir(self) -> Path:
        """Where the work dirs of container runs live: the one directory the container sees."""
        return self.udocker_dir / "runs"

    @property
    def uses_proot(self) -> bool:
        """A PRoot mode (needs ``ptrace``)."""
        return self.execmode in PROOT_MODES

    def with_image_file(self, path: Path) -> "ContainerSpec":
        """The same spec for a local copy of the image archive."""
        return replace(self, image_file=path, reference=None, archive_uri=None)


def choose_execmode(configured: str, settings: ContainerSettings) -> str:
    """The mode to run in: the function's, else the deployment's, else P1 where ``ptrace``
    works and F1 where it does not (AWS Lambda)."""
    mode = configured if configured != AUTO else settings.execmode
    if mode != AUTO:
        return mode
    return "P1" if ptrace_allowed() else "F1"


def spec_for(container: "ContainerConfig", settings: ContainerSettings, *,
             on_lambda: bool) -> Optional[ContainerSpec]:
    """The spec a function's script runs with, or None when it runs on the host.

    On the host: no ``image``/``image_file``, or ``run_on_host`` on Lambda
    (the image is then only for Batch). On Batch (``on_lambda=False``) the
    job already runs in ``container.image``: only an ``image_file`` set up by
    the local Batch executor makes a spec there (see ``batch_entry``).
    """
    if on_lambda and container.run_on_host:
        return None
    image_file = container.image_file
    image = container.image.strip()
    if not image and not image_file:
        return None
    execmode = choose_execmode(container.execmode, settings)
    if image_file and image_file.startswith("s3://"):
        return ContainerSpec(image=image_file, settings=settings, archive_uri=image_file,
                             execmode=execmode)
    if image_file:
        return ContainerSpec(image=image_file, settings=settings, image_file=Path(image_file),
                             execmode=execmode)
    try:
        reference = parse_reference(image)
    except ValueError as exc:
        raise ConfigError([f"container.image: {exc}"]) from None
    return ContainerSpec(image=image, settings=settings, reference=reference,
                         insecure=container.insecure_registry, execmode=execmode)
