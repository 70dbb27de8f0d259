"""Source (a) of the engine files: this machine's Debian packages, and what they link to.

``patchelf`` (/usr/bin/patchelf), ``proot`` (/usr/bin/proot) and ``fakechroot``'s
libfakechroot.so; the libraries they need beyond glibc's are bundled beside them
(:func:`.engines.bundle_libraries`). For tests and local runs: Debian 12's files want a
newer glibc than Lambda's systems have (the build warns), so for Lambda build from a
udockertools tarball (:mod:`.tarball`).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from ..errors import BuildError
from .engines import (
    FAKECHROOT,
    PATCHELF,
    PROOT,
    EngineFile,
    Engines,
    bundle_libraries,
    host_machine,
    multiarch,
)
from .layout import UDOCKER_LAYER_NAME

__all__ = ["debian_engines", "missing_debian_files", "missing_text", "debian_packages"]

# {triplet} is the machine's multiarch directory (x86_64-linux-gnu).
DEBIAN_ENGINE_FILES = ((PATCHELF, "/usr/bin/patchelf", "patchelf"),
                       (PROOT, "/usr/bin/proot", "proot"),
                       (FAKECHROOT, "/usr/lib/{triplet}/fakechroot/libfakechroot.so",
                        "fakechroot"))


def _dpkg_variants(path: Path) -> list[str]:
    """``path`` as dpkg may have recorded it on a merged-/usr system."""
    found: list[str] = []
    for text in (str(path), str(path.resolve())):
        for a, b in (("/usr/lib/", "/lib/"), ("/usr/bin/", "/bin/")):
            if text.startswith(a):
                found.append("/" + b.strip("/") + "/" + text[len(a):])
            elif text.startswith(b):
                found.append(a + text[len(b):])
        found.append(text)
    return list(dict.fromkeys(found))


def debian_packages(paths: Sequence[Path]) -> dict[Path, tuple[str, str]]:
    """The Debian package (name, version) each of ``paths`` belongs to, where dpkg knows."""
    if shutil.which("dpkg-query") is None:
        return {}
    variants: dict[str, Path] = {}
    for path in paths:
        for text in _dpkg_variants(path):
            variants.setdefault(text, path)
    proc = subprocess.run(["dpkg-query", "-S", *variants], capture_output=True, text=True)
    owners: dict[Path, str] = {}
    for line in proc.stdout.splitlines():
        package, sep, text = line.partition(": ")
        if sep and text in variants and "," not in package and " " not in package:
            owners.setdefault(variants[text], package)
    if not owners:
        return {}
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\n",
                           *sorted(set(owners.values()))], capture_output=True, text=True)
    versions = dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)
    return {path: (package, versions.get(package, "")) for path, package in owners.items()}


def missing_debian_files(machine: Optional[str] = None) -> list[tuple[Path, str]]:
    """The engine files this machine lacks, each with the Debian package that has it."""
    triplet = multiarch(machine or host_machine())
    places = [(Path(place.format(triplet=triplet)), package)
              for _, place, package in DEBIAN_ENGINE_FILES]
    return [(path, package) for path, package in places if not path.is_file()]


def missing_text(missing: Sequence[tuple[Path, str]]) -> str:
    """``missing /usr/bin/proot (proot), …: apt-get install proot …``."""
    install = " ".join(sorted({package for _, package in missing}))
    files = ", ".join(f"{path} ({package})" for path, package in missing)
    return f"missing {files}: apt-get install {install}"


def debian_engines(machine: Optional[str] = None) -> Engines:
    """Source (a): this machine's fakechroot, patchelf and proot, and what they need."""
    machine = machine or host_machine()
    missing = missing_debian_files(machine)
    if missing:
        raise BuildError(f"{UDOCKER_LAYER_NAME}: {missing_text(missing)}, or build it from a "
                         "udockertools tarball with --udocker-tarball PATH")
    triplet = multiarch(machine)
    files = [EngineFile(name, path.read_bytes(), str(path), path=path)
             for name, path in ((name, Path(place.format(triplet=triplet)))
                                for name, place, _ in DEBIAN_ENGINE_FILES)]
    files = bundle_libraries(files)
    packages = debian_packages([f.path for f in files if f.path is not None])
    described: list[EngineFile] = []
    docs: dict[str, EngineFile] = {}
    for f in files:
        package, version = packages.get(f.path, ("", "")) if f.path else ("", "")
        if package:
            name = package.split(":")[0]
            where, _, needed_by = f.origin.partition(", needed by ")
            f = replace(f, origin=f"{where} (Debian {name} {version})".replace(" )", ")")
                        + (f", needed by {needed_by}" if needed_by else ""))
            copyright_file = Path("/usr/share/doc") / name / "copyright"
            if copyright_file.is_file():
                docs.setdefault(name, EngineFile(f"doc/{name}.copyright",
                                                 copyright_file.read_bytes(),
                                                 str(copyright_file)))
        described.append(f)
    patchelf = next(f.data for f in files if f.name == PATCHELF)
    return Engines(files=tuple(described + [docs[n] for n in sorted(docs)]),
                   source="Debian packages", patchelf=patchelf)

