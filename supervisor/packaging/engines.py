"""The udocker layer's engine files (patchelf, proot, libfakechroot): what they are and need.

Lambda unpacks layers into /opt, so under ``ENGINE_DIR/`` in the zip they are
/opt/udocker/bin/patchelf, /opt/udocker/lib/libfakechroot.so and /opt/udocker/bin/proot,
the first places ``supervisor/container/spec.py`` looks. Where they come from is
:mod:`.debian` (this machine's packages) or :mod:`.tarball` (udockertools).
"""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

from ..errors import BuildError
from .elf import Elf, glibc_text, read_elf

__all__ = ["EngineFile", "Engines", "ENGINE_DIR", "PATCHELF", "PROOT", "FAKECHROOT",
           "GLIBC_SONAMES", "host_machine", "multiarch", "library_dirs", "bundle_libraries",
           "engine_manifest", "engine_hash", "lambda_glibc_shortfalls"]

ENGINE_DIR = "udocker"
PATCHELF, PROOT, FAKECHROOT = "bin/patchelf", "bin/proot", "lib/libfakechroot.so"
# Where the executables find the libraries bundled beside them in lib/ (DT_RUNPATH:
# searched after LD_LIBRARY_PATH, before the system's directories).
ENGINE_RUNPATH = "$ORIGIN/../lib"
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
# glibc's own libraries: every glibc system has them, matching its loader; never bundled.
GLIBC_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "libutil.so.1", "libresolv.so.2", "libanl.so.1", "libmvec.so.1",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"})
# The glibc of Lambda's managed Python runtimes: what a bundled executable may need.
LAMBDA_GLIBC = (("Amazon Linux 2023 (python3.12, python3.13)", (2, 34)),
                ("Amazon Linux 2 (python3.11)", (2, 26)))


@dataclass(frozen=True)
class EngineFile:
    """One file of the udocker layer's ``udocker/`` tree, before it is staged."""

    name: str  # under udocker/: "bin/patchelf", "lib/libstdc++.so.6", "doc/proot.copyright"
    data: bytes
    origin: str  # where it came from, for the manifest and messages
    runpath: Optional[str] = None  # set by the build (patchelf --set-rpath) when staged
    path: Optional[Path] = None  # the file of this machine it was read from

    @property
    def executable(self) -> bool:
        """Whether it goes to ``bin/`` (mode 0755)."""
        return self.name.startswith("bin/")


@dataclass(frozen=True)
class Engines:
    """The engine files and what is needed to stage them."""

    files: tuple[EngineFile, ...]
    source: str  # "Debian packages", "udockertools 1.2.11 (sha256 ...)"
    patchelf: bytes  # the unmodified patchelf that edits the staged copies' RUNPATH


def host_machine() -> str:
    """This machine's architecture as ELF names it: ``x86_64``, ``aarch64``."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def multiarch(machine: str) -> str:
    """Debian's multiarch directory name for ``machine``: ``x86_64-linux-gnu``."""
    return MULTIARCH.get(machine, f"{machine}-linux-gnu")


def library_dirs(machine: str) -> list[Path]:
    """Where this machine's loader finds libraries (Debian's multiarch dirs first)."""
    triplet = multiarch(machine)
    return [Path(d) for d in (f"/usr/lib/{triplet}", f"/lib/{triplet}", "/usr/lib64", "/lib64",
                              "/usr/lib", "/lib")]


def bundle_libraries(files: Sequence[EngineFile],
                     dirs: Optional[Sequence[Path]] = None) -> list[EngineFile]:
    """The shared libraries the executables in ``files`` need, glibc's excepted, as
    ``lib/<soname>`` (their own needs too), and those executables with their RUNPATH set.

    The libraries are taken from this machine (the same files its loader would map);
    an executable that needs none is returned unchanged (udockertools' are static).
    """
    have = {f.name for f in files}
    bundled: list[EngineFile] = []
    users: dict[str, set[str]] = {}
    todo: list[tuple[str, Elf]] = [(f.name, read_elf(f.data, f.origin))
                                   for f in files if f.executable]
    executables = dict(todo)
    while todo:
        owner, elf = todo.pop(0)
        if dirs is None:
            dirs = library_dirs(elf.machine)
        for soname in elf.needed:
            if soname in GLIBC_SONAMES:
                continue
            users.setdefault(soname, set()).add(owner)
            if f"lib/{soname}" in have:
                continue
            path = next((d / soname for d in dirs if (d / soname).is_file()), None)
            if path is None:
                raise BuildError(f"{owner} needs {soname}, which is in none of "
                                 + ", ".join(map(str, dirs)))
            data = path.read_bytes()
            lib_elf = read_elf(data, str(path))
            if lib_elf.machine != elf.machine:
                raise BuildError(f"{path}: {lib_elf.machine}, but {owner} is {elf.machine}")
            have.add(f"lib/{soname}")
            bundled.append(EngineFile(f"lib/{soname}", data, str(path.resolve()),
                                      path=path.resolve()))
            todo.append((f"lib/{soname}", lib_elf))
    out: list[EngineFile] = []
    for f in files:
        needs = executables[f.name].needed if f.name in executables else ()
        if any(f"lib/{n}" in have and n not in GLIBC_SONAMES for n in needs):
            f = replace(f, runpath=ENGINE_RUNPATH)
        out.append(f)
    for lib in bundled:
        users_of = ", ".join(sorted(users[lib.name[len("lib/"):]]))
        out.append(replace(lib, origin=f"{lib.origin}, needed by {users_of}"))
    return out


def engine_manifest(engines: Engines) -> bytes:
    """``udocker/MANIFEST.txt``: every engine file, where it came from, what it needs."""
    lines = ["# The container engine files of udocker-layer.zip (/opt/udocker on Lambda),",
             f"# from {engines.source}. Written by supervisor build.", ""]
    for f in engines.files:
        note = f.origin
        if not f.name.startswith("doc/"):
            elf = read_elf(f.data, f.origin)
            note += f"; {elf.machine}, " + ("dynamically linked" if elf.dynamic
                                             else "statically linked")
            if elf.glibc is not None:
                note += f", glibc >= {glibc_text(elf.glibc)}"
            if f.runpath:
                note += f"; RUNPATH {f.runpath}"
        lines.append(f"{f.name}\t{note}")
    return ("\n".join(lines) + "\n").encode()


def engine_hash(engines: Engines) -> str:
    """SHA-256 of everything the staged engine tree is made from."""
    digest = hashlib.sha256(engines.source.encode() + b"\0" + engines.patchelf)
    for f in engines.files:
        digest.update(f"{f.name}\0{f.origin}\0{f.runpath}\0".encode())
        digest.update(hashlib.sha256(f.data).digest())
    return digest.hexdigest()


def lambda_glibc_shortfalls(engines: Engines) -> list[str]:
    """For each of Lambda's systems, the engine files run on the host that need a newer
    glibc than it has (not libfakechroot: it is loaded into the container's processes,
    with the image's glibc); one line per system that falls short."""
    needs = {f.name: read_elf(f.data, f.origin).glibc for f in engines.files
             if f.name.startswith(("bin/", "lib/")) and f.name != FAKECHROOT}
    lines = []
    for system, floor in LAMBDA_GLIBC:
        over = [f"{name} ({glibc_text(need)})" for name, need in needs.items()
                if need is not None and need > floor]
        if over:
            lines.append(f"{system}, glibc {glibc_text(floor)}: {', '.join(over)}")
    return lines

