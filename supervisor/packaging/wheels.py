"""The pinned wheels: fetched once into a wheelhouse with pip, unpacked as plain zips."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

from ..errors import BuildError
from .checks import tail
from .layout import Log, Target
from .pins import Pin, normalize

__all__ = ["wheel_for", "fetch_wheels", "unpack_wheel"]

DIST_INFO_KEEP = re.compile(r"^(METADATA|(LICEN[CS]E|NOTICE|COPYING|AUTHORS)[^/]*|licenses/.+)$")


def wheel_for(pin: Pin, wheelhouse: Path) -> Optional[Path]:
    """The wheel of ``pin`` in ``wheelhouse``, if it is there."""
    found = sorted(p for p in wheelhouse.glob("*.whl")
                   if normalize(p.name.split("-")[0]) == pin.key
                   and p.name.split("-")[1] == pin.version)
    if len(found) > 1:
        raise BuildError(f"several wheels for {pin.name}=={pin.version} in {wheelhouse}: "
                         + ", ".join(p.name for p in found))
    return found[0] if found else None


def fetch_wheels(pins: Sequence[Pin], target: Target, wheelhouse: Path, log: Log) -> list[Path]:
    """The wheel of every pin, downloading only the missing ones (with pip, for ``target``).

    pip resolves the pins' dependencies too: one that is not pinned here fails the
    build, so a requirements file always lists everything its artefact carries.
    """
    house = wheelhouse / target.tag
    house.mkdir(parents=True, exist_ok=True)
    missing = [pin for pin in pins if wheel_for(pin, house) is None]
    if missing:
        log(f"downloading {len(missing)} wheel(s) for {target.tag} into {house}")
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=house) as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("".join(f"{p.name}=={p.version}\n" for p in pins))
            cmd = [sys.executable, "-m", "pip", "download", "--quiet",
                   "--disable-pip-version-check", "--only-binary=:all:",
                   "--implementation", "cp", "--python-version", target.python,
                   "--abi", target.abi, "--platform", target.platform,
                   "--dest", tmp, "--requirement", str(reqs)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as exc:
                raise BuildError(f"cannot run pip to download the wheels: {exc}") from exc
            if proc.returncode != 0:
                raise BuildError("pip download failed for " + target.tag + ":\n"
                                 + tail(proc.stderr or proc.stdout))
            pinned = {pin.key for pin in pins}
            extra = sorted(p.name for p in Path(tmp).glob("*.whl")
                           if normalize(p.name.split("-")[0]) not in pinned)
            if extra:
                raise BuildError("dependencies that are not pinned: " + ", ".join(extra)
                                 + "; pin them in the requirements file")
            for wheel in Path(tmp).glob("*.whl"):
                if not (house / wheel.name).exists():
                    os.replace(wheel, house / wheel.name)
    wheels = []
    for pin in pins:
        found = wheel_for(pin, house)
        if found is None:
            raise BuildError(f"{pin.source}: pip did not fetch {pin.name}=={pin.version}")
        wheels.append(found)
    return wheels


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Install a wheel's importable files into ``dest`` like pip would, minus metadata.

    Kept from ``*.dist-info``: METADATA and the licence/notice files. ``*.data``:
    purelib/platlib only (scripts, headers and data are not importable code).
    """
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if parts[0].endswith(".dist-info") and not DIST_INFO_KEEP.match("/".join(parts[1:])):
                continue
            if any(p in ("", ".", "..") for p in parts):
                raise BuildError(f"{wheel.name}: unsafe path {info.filename!r}")
            path = dest.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zf.read(info))
