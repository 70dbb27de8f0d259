"""Source (b) of the engine files: a udockertools tarball, udocker's own static builds.

``udocker-englib-<version>.tar.gz`` (what ``udocker install`` downloads) holds the
x86_64 files named as udocker looks for them: udocker_dir/bin/patchelf-x86_64,
proot-x86_64-4_8_0 (kernels >= 4.8, as Lambda's; udocker prefers it there) or
proot-x86_64, and udocker_dir/lib/libfakechroot-<distro>-<version>-x86_64.so, one per
guest distribution (udocker picks by the image's /etc/*-release). The builder never
downloads it.
"""
from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Iterable, Optional

from ..errors import BuildError
from .elf import read_elf
from .engines import FAKECHROOT, PATCHELF, PROOT, EngineFile, Engines, bundle_libraries
from .zips import sha256_file

__all__ = ["tarball_engines", "pick_tarball_files"]

TARBALL_ARCH = "x86_64"
TARBALL_PATCHELF = ("bin/patchelf-x86_64", "bin/patchelf")
TARBALL_PROOT = ("bin/proot-x86_64-4_8_0", "bin/proot-x86_64", "bin/proot")
_TARBALL_FAKECHROOT = re.compile(
    r"^lib/libfakechroot-(?P<distro>[A-Za-z]+)-(?P<version>[0-9][0-9.]*)-x86_64\.so$")
# The guest libraries a libfakechroot is built against are glibc's for these (Alpine's
# are musl's); with no --udocker-fakechroot the newest of the first distribution found
# is taken: Fedora's follow glibc's releases most closely.
TARBALL_FAKECHROOT_PREFERENCE = ("Fedora", "CentOS", "AlmaLinux", "Rocky", "RHEL")


def _tarball_members(tf: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The tarball's files by their name under ``udocker_dir/`` (bin/…, lib/…, doc/…)."""
    members: dict[str, tarfile.TarInfo] = {}
    for info in tf.getmembers():
        name = info.name[2:] if info.name.startswith("./") else info.name
        if name.startswith("udocker_dir/"):
            name = name[len("udocker_dir/"):]
        if info.isfile() or info.issym() or info.islnk():
            members[name] = info
    return members


def pick_tarball_files(names: Iterable[str],
                       fakechroot: Optional[str] = None) -> dict[str, str]:
    """Layer name → tarball name for patchelf, proot and libfakechroot.

    ``fakechroot`` (``Fedora-30``, ``CentOS-7``) names the libfakechroot; without it the
    newest of the first distribution of ``TARBALL_FAKECHROOT_PREFERENCE`` the tarball has.
    """
    names = set(names)
    chosen: dict[str, str] = {}
    for layer_name, candidates in ((PATCHELF, TARBALL_PATCHELF), (PROOT, TARBALL_PROOT)):
        found = next((c for c in candidates if c in names), None)
        if found is None:
            raise BuildError(f"the udockertools tarball has none of {', '.join(candidates)}")
        chosen[layer_name] = found
    libs: dict[tuple[str, str], str] = {}
    for name in names:
        match = _TARBALL_FAKECHROOT.match(name)
        if match:
            libs[(match.group("distro"), match.group("version"))] = name
    offered = ", ".join(f"{d}-{v}" for d, v in sorted(libs)) or "none"
    if fakechroot:
        distro, _, version = fakechroot.rpartition("-")
        if (distro, version) not in libs:
            raise BuildError(f"--udocker-fakechroot {fakechroot}: the tarball has no "
                             f"lib/libfakechroot-{fakechroot}-{TARBALL_ARCH}.so; it has: "
                             f"{offered}")
        chosen[FAKECHROOT] = libs[(distro, version)]
        return chosen

    def release(key: tuple[str, str]) -> tuple[int, ...]:
        return tuple(int(n) for n in key[1].split(".") if n)

    for preferred in TARBALL_FAKECHROOT_PREFERENCE:
        keys = [k for k in libs if k[0] == preferred]
        if keys:
            chosen[FAKECHROOT] = libs[max(keys, key=release)]
            return chosen
    raise BuildError(f"the udockertools tarball has no libfakechroot for a glibc "
                     f"distribution ({', '.join(TARBALL_FAKECHROOT_PREFERENCE)}); it has: "
                     f"{offered}; choose one with --udocker-fakechroot DISTRO-VERSION")


def tarball_engines(tarball: Path, fakechroot: Optional[str] = None) -> Engines:
    """Source (b): patchelf, proot and one libfakechroot from a udockertools tarball."""
    try:
        with tarfile.open(tarball) as tf:
            members = _tarball_members(tf)
            chosen = pick_tarball_files(members, fakechroot)

            def read(name: str) -> bytes:
                handle = tf.extractfile(members[name])
                if handle is None:
                    raise BuildError(f"{tarball.name}: {name} is not a file")
                return handle.read()

            version_file = members.get("lib/VERSION")
            version = read("lib/VERSION").decode().strip() if version_file else "unknown"
            files = [EngineFile(layer_name, read(name),
                                f"udockertools {version}: udocker_dir/{name}")
                     for layer_name, name in sorted(chosen.items())]
            docs = [EngineFile(name, read(name), f"udockertools {version}: udocker_dir/{name}")
                    for name in sorted(members) if name.startswith("doc/")
                    and "/" not in name[len("doc/"):] and members[name].isfile()]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BuildError(f"--udocker-tarball {tarball}: {exc}") from None
    for f in files:
        elf = read_elf(f.data, f.origin)
        if elf.machine != TARBALL_ARCH:
            raise BuildError(f"{f.origin}: {elf.machine}, not {TARBALL_ARCH}")
    patchelf = next(f.data for f in files if f.name == PATCHELF)
    files = bundle_libraries(files)  # none for udockertools' static builds
    return Engines(files=tuple(files + docs), patchelf=patchelf,
                   source=f"udockertools {version} (sha256 {sha256_file(tarball)})")

