"""What the job's environment says about how to run (not what to run): read once."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from ..container.reference import ImageRef, parse_reference
from ..container.spec import (
    ENV_JOB_IMAGE,
    ENV_JOB_IMAGE_FILE,
)
from ..errors import (
    ConfigError,
)
from ..watchdog import Deadline

__all__ = ["Settings", "read_settings", "PROG", "LOGGER"]

PROG = "supervisor-batch"

EVENT_ENV = "EVENT"
SCRIPT_ENV = "SCRIPT"
REQUEST_ID_ALT_ENV = "REQUEST_ID"
JOB_ID_ENV = "AWS_BATCH_JOB_ID"
TIMEOUT_ENV = "SUPERVISOR_SCRIPT_TIMEOUT"
WORK_DIR_ENV = "SUPERVISOR_WORK_DIR"
# Set by the local Batch executor only: the job's image is this archive and the supervisor
# runs outside it, so the script is run in it with udocker (on AWS Batch the supervisor
# already runs inside the job's image).
IMAGE_FILE_ENV = ENV_JOB_IMAGE_FILE
IMAGE_ENV = ENV_JOB_IMAGE
DEBUG_ENV = "SUPERVISOR_DEBUG"
NODE_INDEX_ENV = "AWS_BATCH_JOB_NODE_INDEX"
MAIN_NODE_INDEX_ENV = "AWS_BATCH_JOB_MAIN_NODE_INDEX"


LOGGER = "supervisor"




@dataclass(frozen=True)
class Settings:
    """What the environment says about how to run (not what to run)."""

    timeout: Optional[float] = None  # seconds per record; None: no deadline
    work_base: Optional[Path] = None  # None: the system temp dir
    node_index: Optional[int] = None
    main_node_index: Optional[int] = None
    debug: bool = False
    image_file: Optional[Path] = None  # SUPERVISOR_JOB_IMAGE_FILE
    image: Optional[ImageRef] = None  # SUPERVISOR_JOB_IMAGE

    @property
    def upload(self) -> bool:
        """Whether this node uploads outputs: always, unless a non-main node of a multi-node job."""
        return self.node_index is None or self.node_index == self.main_node_index

    def deadline(self, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A fresh deadline for one record."""
        return Deadline.none() if self.timeout is None else Deadline.after(self.timeout, clock)


def read_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the settings variables; every problem at once in one ``ConfigError``."""
    problems: list[str] = []
    timeout: Optional[float] = None
    raw = environ.get(TIMEOUT_ENV, "").strip()
    if raw:
        try:
            timeout = float(raw)
        except ValueError:
            timeout = None
        if timeout is None or not math.isfinite(timeout) or timeout <= 0:
            problems.append(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
            timeout = None
    work_base: Optional[Path] = None
    raw = environ.get(WORK_DIR_ENV, "")
    if raw:
        work_base = Path(raw)
        if not work_base.is_dir():
            problems.append(f"{WORK_DIR_ENV}={raw!r}: not an existing directory")
    image_file: Optional[Path] = None
    raw = environ.get(IMAGE_FILE_ENV, "")
    if raw:
        image_file = Path(raw)
        if not image_file.is_file():
            problems.append(f"{IMAGE_FILE_ENV}={raw!r}: not an existing image archive")
    image: Optional[ImageRef] = None
    raw = environ.get(IMAGE_ENV, "")
    if raw and image_file is None:
        try:
            image = parse_reference(raw)
        except ValueError as exc:
            problems.append(f"{IMAGE_ENV}: {exc}")
    node = _index(environ, NODE_INDEX_ENV, problems)
    main_node = _index(environ, MAIN_NODE_INDEX_ENV, problems)
    if (node is None) != (main_node is None):
        node = main_node = None  # not a multi-node job: a lone variable means nothing
    if problems:
        raise ConfigError(problems)
    return Settings(timeout=timeout, work_base=work_base, node_index=node,
                    main_node_index=main_node, debug=environ.get(DEBUG_ENV, "") == "1",
                    image_file=image_file, image=image)


def _index(environ: Mapping[str, str], name: str, problems: list[str]) -> Optional[int]:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        problems.append(f"{name}={raw!r}: expected a node index (0, 1, ...)")
        return None
    return int(raw)


