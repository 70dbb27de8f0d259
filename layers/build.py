#!/usr/bin/env python3
"""Build the supervisor's deployable artefacts, reproducibly. Standard library only.

    python layers/build.py [--out DIR] [--wheelhouse DIR] [--with-boto3] [--force]
                           [--udocker-tarball PATH [--udocker-fakechroot DISTRO-VERSION]]

``supervisor-layer.zip``
    A Lambda layer (``python/…``) that makes ``supervisor.handler.lambda_handler``
    importable on the managed runtimes python3.11–3.13, x86_64 and arm64: the
    supervisor, the part of aws-lambda-powertools it imports, PyYAML (pure Python),
    pinned in ``layers/lambda-layer.txt``. boto3 comes from the runtime unless
    ``--with-boto3`` adds ``layers/lambda-layer-boto3.txt``.
``udocker-layer.zip``
    A second Lambda layer with what running a script in a container image needs:
    ``python/udocker`` (pinned in ``layers/udocker-layer.txt``) and udocker's engine
    files under ``udocker/`` (``/opt/udocker`` on Lambda, where
    ``supervisor.container.spec`` looks): ``bin/patchelf``, ``bin/proot``,
    ``lib/libfakechroot.so``. They come from this machine's Debian packages, with the
    shared libraries they need that Lambda lacks beside them in ``lib/`` (found through
    a ``RUNPATH`` of ``$ORIGIN/../lib``), or from a udockertools tarball
    (``--udocker-tarball``: udocker's own statically linked builds).
``supervisor-batch.pyz``
    ``supervisor-batch`` as one file for any ``python3`` >= 3.9 with nothing installed:
    a zipapp (``#!/usr/bin/env python3``) vendoring ``layers/batch-pyz.txt``, botocore's
    data pruned to the services the supervisor calls. Its ``__main__`` is
    ``layers/pyz_main.py``.

How: the pinned wheels are fetched once with ``pip download`` into a wheelhouse
(``dist/.wheels``; later builds are offline), unpacked as plain zips (nothing is
compiled, no installer metadata), pruned, checked (no compiled file; the pruned trees
are imported and exercised in a subprocess whose ``sys.path`` holds only them and the
standard library), and written as zips with sorted entries, a fixed date (1980-01-01),
fixed modes (0644 files, 0755 directories) and a fixed deflate level: the same inputs
give the same bytes, so a deploy can tell whether the layer changed by its hash.

The inputs' hash (requirement files, the supervisor's sources, this builder and its
options, the engine files' contents) is kept in ``<out>/.supervisor-build.json``; when
it matches and the outputs are intact the build is skipped (``--force`` rebuilds).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / "layers"
PACKAGE = ROOT / "supervisor"
PYZ_MAIN = LAYERS / "pyz_main.py"

LAYER_NAME = "supervisor-layer.zip"
UDOCKER_LAYER_NAME = "udocker-layer.zip"
PYZ_NAME = "supervisor-batch.pyz"
ARTEFACT_NAMES = (LAYER_NAME, UDOCKER_LAYER_NAME, PYZ_NAME)
LAYER_NAMES = (LAYER_NAME, UDOCKER_LAYER_NAME)
STAMP_NAME = ".supervisor-build.json"

LAYER_REQUIREMENTS = LAYERS / "lambda-layer.txt"
LAYER_BOTO3_REQUIREMENTS = LAYERS / "lambda-layer-boto3.txt"
UDOCKER_REQUIREMENTS = LAYERS / "udocker-layer.txt"
PYZ_REQUIREMENTS = LAYERS / "batch-pyz.txt"

MIB = 1024 * 1024
# Lambda: a layer zip uploaded directly is at most 50 MB; function + layers unzipped 250 MB.
MAX_LAYER_ZIP = 50 * MIB
MAX_LAYER_UNZIPPED = 250 * MIB

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 9
FILE_MODE = 0o644
DIR_MODE = 0o755
SHEBANG = b"#!/usr/bin/env python3\n"

# The sub-package of the supervisor that stays out of both artefacts: the embedded local
# mode (moto server, demo) is a development tool and needs moto.
PACKAGE_EXCLUDE = ("local",)

# What the managed Lambda runtime brings (boto3 and its dependencies): top-level names.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six",
                    "urllib3")
# Packages cut down to what the supervisor imports (the import closure, see prune_modules).
PRUNED_PACKAGES = ("aws_lambda_powertools",)

# botocore/boto3 service data kept in the pyz: what supervisor-batch and the supervisor's
# clients call (S3 stage-in/out and hand-off, Batch, DynamoDB idempotency, STS, Secrets
# Manager and SSM for provider keys given as references), newest API version only,
# without the documentation examples.
BOTO_SERVICES = ("s3", "batch", "dynamodb", "sts", "secretsmanager", "ssm")
# Files compiled for one platform that a pure-Python artefact drops: PyYAML's libyaml
# binding (yaml/_yaml*.so) and the ``_yaml`` shim package that re-exports it. PyYAML
# falls back to its pure-Python parser and emitter (``yaml.__with_libyaml__`` False).
STRIP = (re.compile(r"^yaml/_yaml\.[^/]*\.(so|pyd)$"), re.compile(r"^_yaml/"))
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".pyc", ".pyo", ".exe")
DIST_INFO_KEEP = re.compile(r"^(METADATA|(LICEN[CS]E|NOTICE|COPYING|AUTHORS)[^/]*|licenses/.+)$")

# The udocker layer's engine files, under ENGINE_DIR/ in the zip: Lambda unpacks layers
# into /opt, so they are /opt/udocker/bin/patchelf, /opt/udocker/lib/libfakechroot.so and
# /opt/udocker/bin/proot, the first places supervisor/container/spec.py looks.
ENGINE_DIR = "udocker"
PATCHELF, PROOT, FAKECHROOT = "bin/patchelf", "bin/proot", "lib/libfakechroot.so"
# Where the executables find the libraries bundled beside them in lib/ (DT_RUNPATH:
# searched after LD_LIBRARY_PATH, before the system's directories).
ENGINE_RUNPATH = "$ORIGIN/../lib"
# Source (a): this machine's Debian packages (fakechroot, patchelf, proot), for tests and
# local runs. {triplet} is the machine's multiarch directory (x86_64-linux-gnu).
DEBIAN_ENGINE_FILES = ((PATCHELF, "/usr/bin/patchelf", "patchelf"),
                       (PROOT, "/usr/bin/proot", "proot"),
                       (FAKECHROOT, "/usr/lib/{triplet}/fakechroot/libfakechroot.so",
                        "fakechroot"))
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
# glibc's own libraries: every glibc system has them, matching its loader; never bundled.
GLIBC_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "libutil.so.1", "libresolv.so.2", "libanl.so.1", "libmvec.so.1",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"})
# The glibc of Lambda's managed Python runtimes: what a bundled executable may need.
LAMBDA_GLIBC = (("Amazon Linux 2023 (python3.12, python3.13)", (2, 34)),
                ("Amazon Linux 2 (python3.11)", (2, 26)))
# Source (b): a udockertools tarball (udocker-englib-<version>.tar.gz, what `udocker
# install` downloads), x86_64 files named as udocker looks for them: udocker_dir/bin/
# patchelf-x86_64, proot-x86_64-4_8_0 (kernels >= 4.8, as Lambda's; udocker prefers it
# there) or proot-x86_64, udocker_dir/lib/libfakechroot-<distro>-<version>-x86_64.so
# (one per guest distribution; udocker picks by the image's /etc/*-release).
TARBALL_ARCH = "x86_64"
TARBALL_PATCHELF = ("bin/patchelf-x86_64", "bin/patchelf")
TARBALL_PROOT = ("bin/proot-x86_64-4_8_0", "bin/proot-x86_64", "bin/proot")
_TARBALL_FAKECHROOT = re.compile(
    r"^lib/libfakechroot-(?P<distro>[A-Za-z]+)-(?P<version>[0-9][0-9.]*)-x86_64\.so$")
# The guest libraries a libfakechroot is built against are glibc's for these (Alpine's
# are musl's); with no --udocker-fakechroot the newest of the first distribution found
# is taken: Fedora's follow glibc's releases most closely.
TARBALL_FAKECHROOT_PREFERENCE = ("Fedora", "CentOS", "AlmaLinux", "Rocky", "RHEL")


class BuildError(Exception):
    """A build that cannot produce a correct artefact; the message says why."""


@dataclass(frozen=True)
class Target:
    """The interpreter a set of wheels is chosen for (pip download's platform flags)."""

    python: str  # "3.11"
    platform: str = "manylinux2014_x86_64"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def tag(self) -> str:
        return f"{self.abi}-{self.platform}"


# The layer's wheels are checked against the oldest runtime it serves, the pyz's against
# Python 3.9 (pip refuses a pin whose Requires-Python excludes the target). The platform
# only picks which of PyYAML's wheels is unpacked: its Python files are the same in all,
# and its one compiled file is stripped.
LAYER_TARGET = Target("3.11")
PYZ_TARGET = Target("3.9")


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a requirements file."""

    name: str
    version: str
    source: str  # file:line, for messages

    @property
    def key(self) -> str:
        return normalize(self.name)


@dataclass(frozen=True)
class Artefact:
    """A built file and what ``check`` and the stamp record about it."""

    path: Path
    sha256: str
    size: int
    unzipped: int


@dataclass(frozen=True)
class Options:
    """What a build depends on besides the files hashed by ``input_hash``."""

    out: Path
    wheelhouse: Path
    package: Path = PACKAGE
    with_boto3: bool = False
    force: bool = False
    verify: bool = True
    udocker_tarball: Optional[Path] = None
    udocker_fakechroot: Optional[str] = None

    def describe(self) -> dict[str, object]:
        # The tarball by content (hashed with the engine files), not by where it lies.
        return {"with_boto3": self.with_boto3,
                "udocker_engines": "tarball" if self.udocker_tarball else "debian",
                "udocker_fakechroot": self.udocker_fakechroot}


def log(message: str) -> None:
    sys.stderr.write(f"==> {message}\n")
    sys.stderr.flush()


def normalize(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 503 / 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


# --------------------------------------------------------------------------- requirements

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def read_pins(path: Path) -> list[Pin]:
    """The pins of a requirements file: every line ``name==version`` (comments allowed)."""
    pins: list[Pin] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise BuildError(f"{path.name}:{number}: {line!r} is not pinned as name==version; "
                             "every requirement of an artefact is pinned")
        pins.append(Pin(match.group(1), match.group(2), f"{path.name}:{number}"))
    return pins


def wheel_for(pin: Pin, wheelhouse: Path) -> Optional[Path]:
    """The wheel of ``pin`` in ``wheelhouse``, if it is there."""
    found = sorted(p for p in wheelhouse.glob("*.whl")
                   if normalize(p.name.split("-")[0]) == pin.key
                   and p.name.split("-")[1] == pin.version)
    if len(found) > 1:
        raise BuildError(f"several wheels for {pin.name}=={pin.version} in {wheelhouse}: "
                         + ", ".join(p.name for p in found))
    return found[0] if found else None


def fetch_wheels(pins: Sequence[Pin], target: Target, wheelhouse: Path) -> list[Path]:
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
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError("pip download failed for " + target.tag + ":\n"
                                 + _tail(proc.stderr or proc.stdout))
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


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- staging

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


def package_files(package: Path = PACKAGE) -> list[Path]:
    """The supervisor's files that go into both artefacts (sorted; no bytecode)."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if (not path.is_file() or "__pycache__" in rel.parts
                or path.suffix in (".pyc", ".pyo") or rel.parts[0] in PACKAGE_EXCLUDE):
            continue
        files.append(path)
    return files


def copy_package(dest: Path, package: Path = PACKAGE) -> None:
    for path in package_files(package):
        target = dest / "supervisor" / path.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def strip_compiled(tree: Path) -> list[str]:
    """Remove the known platform files (``STRIP``), then ``check_pure``; return them."""
    removed: list[str] = []
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.is_file() and any(rx.search(rel) for rx in STRIP):
            path.unlink()
            removed.append(rel)
    _remove_empty_dirs(tree)
    check_pure(tree)
    return removed


def check_pure(tree: Path) -> None:
    """Fail on any compiled file (by suffix or ELF header) or bytecode cache in ``tree``."""
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.name == "__pycache__":
            raise BuildError(f"{rel}: bytecode in an artefact meant for several Pythons")
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            elf = fh.read(4) == b"\x7fELF"
        if elf or path.suffix in COMPILED_SUFFIXES:
            raise BuildError(f"{rel}: a compiled file in a pure-Python artefact")


def _remove_empty_dirs(tree: Path) -> None:
    for path in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def prune_boto_data(tree: Path, services: Sequence[str] = BOTO_SERVICES) -> None:
    """Keep ``services`` (newest API version, no examples) in botocore's and boto3's data."""
    for package in ("botocore", "boto3"):
        data = tree / package / "data"
        if not data.is_dir():
            continue
        for entry in sorted(data.iterdir()):
            if entry.is_file():
                continue  # endpoints.json, partitions.json, _retry.json, sdk-default-…
            if entry.name not in services:
                shutil.rmtree(entry)
                continue
            versions = sorted(d for d in entry.iterdir() if d.is_dir())
            for old in versions[:-1]:
                shutil.rmtree(old)
            for example in entry.glob("*/examples-*.json"):
                example.unlink()


# --------------------------------------------------------------------------- engine files

_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
_PT_INTERP = 3
_SHT_DYNAMIC, _SHT_GNU_VERNEED = 6, 0x6FFFFFFE
_DT_NULL, _DT_NEEDED, _DT_RPATH, _DT_RUNPATH = 0, 1, 15, 29
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")


@dataclass(frozen=True)
class Elf:
    """What the loader needs of an ELF file (64-bit little-endian: x86_64, aarch64)."""

    machine: str
    interpreter: Optional[str]  # PT_INTERP: set for a dynamically linked executable
    needed: tuple[str, ...]  # DT_NEEDED
    runpath: Optional[str]  # DT_RUNPATH, else DT_RPATH
    glibc: Optional[tuple[int, ...]]  # the newest GLIBC_x.y symbol version it needs

    @property
    def dynamic(self) -> bool:
        return self.interpreter is not None or bool(self.needed)


def read_elf(data: bytes, what: str) -> Elf:
    """``data``'s machine, loader, libraries and glibc need, read from its section headers."""
    if data[:4] != b"\x7fELF":
        raise BuildError(f"{what}: not an ELF file")
    if data[4:6] != b"\x02\x01":
        raise BuildError(f"{what}: not a 64-bit little-endian ELF file")
    try:
        (_type, machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
         shentsize, shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        interpreter = None
        for i in range(phnum):
            p_type, _pflags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
                "<IIQQQQ", data, phoff + i * phentsize)
            if p_type == _PT_INTERP:
                interpreter = data[p_offset:p_offset + p_filesz].split(b"\0")[0].decode()
        sections = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize)
                    for i in range(shnum if shoff else 0)]

        def text(strtab: int, offset: int) -> str:
            start = sections[strtab][4] + offset
            return data[start:data.index(b"\0", start)].decode()

        needed: list[str] = []
        rpath = runpath = None
        glibc: Optional[tuple[int, ...]] = None
        for _name, kind, _sflags, _addr, offset, size, link, info in sections:
            if kind == _SHT_DYNAMIC:
                for pos in range(offset, offset + size, 16):
                    tag, value = struct.unpack_from("<qQ", data, pos)
                    if tag == _DT_NULL:
                        break
                    if tag == _DT_NEEDED:
                        needed.append(text(link, value))
                    elif tag == _DT_RPATH:
                        rpath = text(link, value)
                    elif tag == _DT_RUNPATH:
                        runpath = text(link, value)
            elif kind == _SHT_GNU_VERNEED:
                pos = offset
                for _ in range(info):
                    _vn_version, count, _file, aux, following = struct.unpack_from(
                        "<HHIII", data, pos)
                    apos = pos + aux
                    for _ in range(count):
                        _hash, _aflags, _other, name, next_aux = struct.unpack_from(
                            "<IHHII", data, apos)
                        match = _GLIBC_VERSION.match(text(link, name))
                        if match:
                            found = tuple(int(n) for n in match.group(1).split("."))
                            glibc = found if glibc is None else max(glibc, found)
                        apos += next_aux
                    pos += following
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise BuildError(f"{what}: a malformed ELF file ({exc})") from None
    if interpreter is not None and not sections:
        raise BuildError(f"{what}: dynamically linked, but without the section headers "
                         "its libraries are read from")
    return Elf(machine=_ELF_MACHINES.get(machine, f"machine {machine}"),
               interpreter=interpreter, needed=tuple(needed), runpath=runpath or rpath,
               glibc=glibc)


def glibc_text(version: Optional[tuple[int, ...]]) -> str:
    return "none" if version is None else ".".join(map(str, version))


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
        return self.name.startswith("bin/")


@dataclass(frozen=True)
class Engines:
    """The engine files and what is needed to stage them."""

    files: tuple[EngineFile, ...]
    source: str  # "Debian packages", "udockertools 1.2.11 (sha256 ...)"
    patchelf: bytes  # the unmodified patchelf that edits the staged copies' RUNPATH

def host_machine() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def library_dirs(machine: str) -> list[Path]:
    """Where this machine's loader finds libraries (Debian's multiarch dirs first)."""
    triplet = MULTIARCH.get(machine, f"{machine}-linux-gnu")
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


def debian_engines(machine: Optional[str] = None) -> Engines:
    """Source (a): this machine's fakechroot, patchelf and proot, and what they need."""
    machine = machine or host_machine()
    triplet = MULTIARCH.get(machine, f"{machine}-linux-gnu")
    files: list[EngineFile] = []
    missing: list[str] = []
    for name, place, package in DEBIAN_ENGINE_FILES:
        path = Path(place.format(triplet=triplet))
        if not path.is_file():
            missing.append(f"{path} ({package})")
            continue
        files.append(EngineFile(name, path.read_bytes(), str(path), path=path))
    if missing:
        install = " ".join(sorted({p.rsplit("(", 1)[1].rstrip(")") for p in missing}))
        raise BuildError(f"{UDOCKER_LAYER_NAME}: missing {', '.join(missing)}: "
                         f"apt-get install {install}, or build from a udockertools "
                         "tarball with --udocker-tarball")
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


def engines_for(options: "Options") -> Engines:
    if options.udocker_tarball is not None:
        return tarball_engines(options.udocker_tarball, options.udocker_fakechroot)
    return debian_engines()


def engine_manifest(engines: Engines) -> bytes:
    """``udocker/MANIFEST.txt``: every engine file, where it came from, what it needs."""
    lines = ["# The container engine files of udocker-layer.zip (/opt/udocker on Lambda),",
             f"# from {engines.source}. Written by layers/build.py.", ""]
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


def stage_engines(engines: Engines, tree: Path, tools: Path) -> dict[str, int]:
    """Write the engine files under ``tree`` (RUNPATHs set); their zip modes by name."""
    tool = tools / "patchelf"
    modes: dict[str, int] = {}
    for f in engines.files:
        path = tree / f.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
        path.chmod(0o755 if f.executable else FILE_MODE)
        modes[f.name] = 0o755 if f.executable else FILE_MODE
        if f.runpath is None:
            continue
        if not tool.exists():
            tools.mkdir(parents=True, exist_ok=True)
            tool.write_bytes(engines.patchelf)
            tool.chmod(0o755)
        try:
            proc = subprocess.run([str(tool), "--set-rpath", f.runpath, str(path)],
                                  capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise BuildError(f"{f.name}: cannot run patchelf to set its RUNPATH: {exc}") from None
        if proc.returncode != 0:
            raise BuildError(f"{f.name}: patchelf --set-rpath failed:\n"
                             + _tail(proc.stderr + proc.stdout))
        if read_elf(path.read_bytes(), f.name).runpath != f.runpath:
            raise BuildError(f"{f.name}: patchelf did not set its RUNPATH to {f.runpath}")
    (tree / "MANIFEST.txt").write_bytes(engine_manifest(engines))
    modes["MANIFEST.txt"] = FILE_MODE
    return modes


_CLEAN_ENV = {"PATH": "/usr/bin:/bin"}


def check_engines(engines: Engines, tree: Path) -> None:
    """Run the staged executables (``--version``) in a clean environment, as Lambda
    would run them; check that every bundled library is the one the loader maps, and
    that libfakechroot needs nothing a container image would not have."""
    fakechroot = read_elf((tree / FAKECHROOT).read_bytes(), FAKECHROOT)
    foreign = [n for n in fakechroot.needed if n not in GLIBC_SONAMES]
    if foreign:
        raise BuildError(f"{FAKECHROOT} needs {', '.join(foreign)}: it is preloaded into "
                         "the container's processes, where only glibc can be relied on")
    machine = host_machine()
    lib_dir = (tree / "lib").resolve()
    machines = {f.name: read_elf(f.data, f.origin).machine for f in engines.files
                if f.name.startswith(("bin/", "lib/"))}
    if len(set(machines.values())) > 1:
        raise BuildError("the engine files are for different machines: "
                         + ", ".join(f"{n} {m}" for n, m in sorted(machines.items())))
    for f in engines.files:
        if not f.executable:
            continue
        path = tree / f.name
        elf = read_elf(path.read_bytes(), f.name)
        if elf.machine != machine:
            log(f"udocker layer: {f.name} is {elf.machine}, this machine {machine}: not run")
            continue
        proc = subprocess.run([str(path), "--version"], env=_CLEAN_ENV, cwd=tree,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or (f.name == PATCHELF
                                    and not proc.stdout.startswith("patchelf")):
            raise BuildError(f"{f.name} --version failed in a clean environment:\n"
                             + _tail(proc.stderr + proc.stdout))
        bundled = [n for n in elf.needed if (tree / "lib" / n).is_file()]
        if not bundled:
            continue
        proc = subprocess.run([str(path)], env=dict(_CLEAN_ENV, LD_TRACE_LOADED_OBJECTS="1"),
                              cwd=tree, capture_output=True, text=True, timeout=60)
        mapped = {}
        for line in proc.stdout.splitlines():
            soname, sep, rest = line.strip().partition(" => ")
            if sep:
                mapped[soname] = rest.rsplit(" (", 1)[0].strip()
        wrong = [f"{n} => {mapped.get(n, 'not loaded')}" for n in bundled
                 if n not in mapped or Path(mapped[n]).resolve().parent != lib_dir]
        if wrong:
            raise BuildError(f"{f.name} does not load the libraries beside it: "
                             + "; ".join(wrong))


# --------------------------------------------------------------------------- import closure

@dataclass(frozen=True)
class _Imports:
    required: frozenset[str]  # run when the module is imported, unguarded
    optional: frozenset[str]  # inside functions, or guarded by ``except ImportError``


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _guards_import_error(node: ast.Try) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    for handler in node.handlers:
        kinds = handler.type
        exprs = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
        if kinds is None or any(isinstance(e, ast.Name) and e.id in names for e in exprs):
            return True
    return False


def module_imports(source: str, module: str, is_package: bool) -> _Imports:
    """The modules a source file imports; ``if TYPE_CHECKING:`` blocks left out.

    ``from X import a`` counts as importing ``X`` and, when it is a module, ``X.a``.
    """
    required: set[str] = set()
    optional: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]

    def add(names: Iterable[str], guarded: bool) -> None:
        (optional if guarded else required).update(names)

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_one(stmt, guarded)
                continue
            visit_one(child, guarded)

    def visit_one(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            add((alias.name for alias in node.names), guarded)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                head = base[:len(base) - (node.level - 1)]
                name = ".".join(head + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            add([name] + [f"{name}.{alias.name}" for alias in node.names if alias.name != "*"],
                guarded)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(node, True)
        elif isinstance(node, ast.Try) and _guards_import_error(node):
            for stmt in node.body:
                visit_one(stmt, True)
            for handler in node.handlers:  # the fallback when the import failed
                visit(handler, True)
            for stmt in [*node.orelse, *node.finalbody]:
                visit_one(stmt, guarded)
        else:
            visit(node, guarded)

    visit(ast.parse(source), False)
    return _Imports(frozenset(n for n in required if n), frozenset(n for n in optional if n))


def _module_file(tree: Path, module: str) -> Optional[Path]:
    path = tree.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _stdlib_names() -> frozenset[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    # Python 3.9: every top-level module found outside site-packages is standard.
    import importlib.util
    import pkgutil

    found = set(sys.builtin_module_names)
    for info in pkgutil.iter_modules():
        spec = importlib.util.find_spec(info.name)
        origin = getattr(spec, "origin", None) or ""
        if "site-packages" not in origin and "dist-packages" not in origin:
            found.add(info.name)
    return frozenset(found)


def prune_modules(tree: Path, package: str, roots: Iterable[str],
                  available: Iterable[str]) -> list[str]:
    """Cut ``package`` in ``tree`` down to the import closure of ``roots``; return it.

    The closure follows every import of a kept module, also those inside functions
    (they run lazily, at call time), except imports of modules that cannot be imported
    here anyway: a module whose unguarded module-level imports need a top-level
    package that is not in ``available`` (nor the standard library), like
    powertools' pydantic helpers without pydantic. Parents of a kept module are kept
    (their ``__init__`` runs first). Everything else under ``package`` is deleted,
    data files included.
    """
    have = set(available) | _stdlib_names()
    cache: dict[str, Optional[_Imports]] = {}

    def imports_of(module: str) -> Optional[_Imports]:
        if module not in cache:
            path = _module_file(tree, module)
            cache[module] = None if path is None else module_imports(
                path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        return cache[module]

    broken: dict[str, bool] = {}

    def importable(module: str, stack: frozenset[str] = frozenset()) -> bool:
        if module in broken:
            return not broken[module]
        if module in stack:
            return True
        parts = module.split(".")
        chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        ok = True
        for name in chain:
            found = imports_of(name)
            if found is None:
                continue  # an attribute of a module (from X import name), not a module
            for dep in found.required:
                top = dep.split(".")[0]
                if top == package:
                    if imports_of(dep) is not None and not importable(dep, stack | {module}):
                        ok = False
                elif top not in have:
                    ok = False
        broken[module] = not ok
        return ok

    keep: set[str] = set()
    todo = [r for r in roots if r.split(".")[0] == package]
    while todo:
        module = todo.pop()
        if module in keep or imports_of(module) is None or not importable(module):
            continue
        keep.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        found = imports_of(module)
        assert found is not None
        todo.extend(d for d in found.required | found.optional if d.split(".")[0] == package)
    if package not in keep:
        raise BuildError(f"nothing of {package} is imported by the supervisor")
    files = set()
    for module in keep:
        path = _module_file(tree, module)
        assert path is not None
        files.add(path)
    for path in sorted((tree / package).rglob("*")):
        if path.is_file() and path not in files:
            path.unlink()
    _remove_empty_dirs(tree / package)
    return sorted(keep)


def supervisor_imports(package: str, source: Path = PACKAGE) -> list[str]:
    """The modules of ``package`` the supervisor's own files import (module or lazily)."""
    found: set[str] = set()
    for path in package_files(source):
        if path.suffix != ".py":
            continue
        rel = path.relative_to(source).with_suffix("")
        parts = ["supervisor", *rel.parts]
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        imports = module_imports(path.read_text(encoding="utf-8"), name, is_pkg)
        found.update(d for d in imports.required | imports.optional
                     if d.split(".")[0] == package)
    return sorted(found)


# --------------------------------------------------------------------------- checks

_PYZ_CHECK = r"""
import io, sys, contextlib
sys.path.insert(0, sys.argv[1])
import yaml
assert not yaml.__with_libyaml__, "PyYAML's C extension is present"
assert yaml.safe_load("a: [1, 2]") == {"a": [1, 2]}
import supervisor.batch_entry, boto3
from botocore.stub import Stubber
calls = {"s3": "list_buckets", "batch": "describe_job_queues", "dynamodb": "list_tables",
         "sts": "get_caller_identity", "secretsmanager": "list_secrets",
         "ssm": "describe_parameters"}
session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                region_name="eu-west-1")
for service, operation in calls.items():
    client = session.client(service)
    with Stubber(client) as stub:  # endpoint rules and models load; no request is sent
        stub.add_response(operation, {})
        getattr(client, operation)()
for mod in ("supervisor", "yaml", "boto3", "botocore", "s3transfer", "urllib3"):
    path = sys.modules[mod].__file__
    assert path.startswith(sys.argv[1]), (mod, path)
with contextlib.redirect_stdout(io.StringIO()):
    try:
        supervisor.batch_entry.main(["--version"])
    except SystemExit:
        pass
print("ok")
"""

_LAYER_CHECK = r"""
import contextlib, importlib, io, json, sys
layer, runtime = sys.argv[1], sys.argv[2]
sys.path[:] = [layer] + sys.path + [runtime]  # the runtime's boto3 comes after /opt/python
for name in json.loads(sys.argv[3]):
    importlib.import_module(name)
import yaml, boto3
assert not yaml.__with_libyaml__, "PyYAML's C extension is present"
assert yaml.safe_load("a: [1, 2]") == {"a": [1, 2]}
import supervisor.handler, supervisor.delegate
for mod in ("supervisor", "yaml", "aws_lambda_powertools"):
    assert sys.modules[mod].__file__.startswith(layer), (mod, sys.modules[mod].__file__)
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer,
    IdempotencyConfig, idempotent_function)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError)
with contextlib.redirect_stdout(io.StringIO()) as out:
    logger = Logger(service="check")
    logger.append_keys(request_id="r")
    logger.info("hello", extra={"k": 1})
    metrics = Metrics(namespace="Check", service="check")
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Duration", unit=MetricUnit.Seconds, value=0.5)
    metrics.flush_metrics()
assert '"Invocations"' in out.getvalue(), out.getvalue()
client = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                               region_name="eu-west-1").client("dynamodb")
store = DynamoDBPersistenceLayer(table_name="t", boto3_client=client)
settings = IdempotencyConfig(event_key_jmespath="identity", raise_on_no_idempotency_key=True)
idempotent_function(lambda item: item, data_keyword_argument="item",
                    persistence_store=store, config=settings)
print("ok")
"""


_UDOCKER_CHECK = r"""
import sys
site, version = sys.argv[1], sys.argv[2]
sys.path.insert(0, site)
import udocker, udocker.maincmd, udocker.engine.fakechroot, udocker.engine.proot
import udocker.helper.elfpatcher, udocker.tools
assert udocker.__version__ == version, (udocker.__version__, version)
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] == "udocker":
        assert module.__file__.startswith(site + "/"), (name, module.__file__)
print("ok")
"""


def _check(code: str, *args: str, python: Optional[str] = None) -> None:
    proc = subprocess.run([python or sys.executable, "-I", "-S", "-B", "-c", code, *args],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        raise BuildError("the staged tree does not work:\n" + _tail(proc.stderr + proc.stdout))


def check_layer_size(zip_bytes: int, unzipped_bytes: int, *, max_zip: int = MAX_LAYER_ZIP,
                     max_unzipped: int = MAX_LAYER_UNZIPPED, name: str = LAYER_NAME) -> str:
    """Both sizes as one line; ``BuildError`` when either is over Lambda's limit."""
    line = (f"{mb(zip_bytes)} zipped (limit {mb(max_zip)}), "
            f"{mb(unzipped_bytes)} unzipped (limit {mb(max_unzipped)})")
    over = []
    if zip_bytes > max_zip:
        over.append(f"the zip is over the {mb(max_zip)} Lambda accepts for a layer upload")
    if unzipped_bytes > max_unzipped:
        over.append(f"unzipped it is over the {mb(max_unzipped)} Lambda allows for a "
                    "function and its layers")
    if over:
        raise BuildError(f"{name} is too big: {line}: " + "; ".join(over))
    return line


def check_layers_total(unzipped_bytes: int, *, max_unzipped: int = MAX_LAYER_UNZIPPED) -> str:
    """The layers' unzipped total as one line; ``BuildError`` when over Lambda's limit."""
    line = (f"{' + '.join(LAYER_NAMES)}: {mb(unzipped_bytes)} unzipped "
            f"(limit {mb(max_unzipped)} for a function and all its layers)")
    if unzipped_bytes > max_unzipped:
        raise BuildError(f"the layers are too big together: {line}")
    return line


def mb(size: int) -> str:
    return f"{size / MIB:.1f} MB"


# --------------------------------------------------------------------------- zips

def tree_entries(tree: Path, prefix: str = "") -> dict[str, Optional[Path]]:
    """Archive name → file (``None`` for a directory) for everything under ``tree``."""
    entries: dict[str, Optional[Path]] = {}
    if prefix:
        entries[prefix.rstrip("/") + "/"] = None
    for path in sorted(tree.rglob("*")):
        name = prefix + path.relative_to(tree).as_posix()
        entries[name + "/" if path.is_dir() else name] = None if path.is_dir() else path
    return entries


def write_zip(dest: Path, entries: Mapping[str, Optional[Path]],
              extra: Optional[Mapping[str, bytes]] = None, head: bytes = b"",
              mode: int = FILE_MODE, modes: Optional[Mapping[str, int]] = None) -> None:
    """Write a reproducible zip: sorted names, fixed date and modes, fixed deflate level.

    Files are 0644 but those ``modes`` names (0755 for the udocker layer's executables:
    Lambda keeps a layer's modes when it unpacks it).
    """
    contents: dict[str, Optional[bytes]] = {
        name: None if path is None else path.read_bytes() for name, path in entries.items()}
    contents.update(extra or {})
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(head)  # zipfile records offsets from the start of the file: a zipapp
        with zipfile.ZipFile(fh, "w") as zf:
            for name in sorted(contents):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.create_system = 3  # Unix, so the modes below are read
                data = contents[name]
                if data is None:
                    info.external_attr = ((0o040000 | DIR_MODE) << 16) | 0x10
                    zf.writestr(info, b"")
                else:
                    info.external_attr = (0o100000 | (modes or {}).get(name, FILE_MODE)) << 16
                    zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED,
                                compresslevel=ZIP_LEVEL)
    tmp.chmod(mode)
    os.replace(tmp, dest)


def describe(path: Path) -> Artefact:
    with zipfile.ZipFile(path) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    return Artefact(path=path, sha256=sha256_file(path), size=path.stat().st_size,
                    unzipped=unzipped)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def payload_id(entries: Mapping[str, Optional[Path]]) -> str:
    """SHA-256 of the archive's names and contents: the pyz's unpack directory."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        path = entries[name]
        digest.update(name.encode() + b"\0")
        if path is not None:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the builds

def build_pyz(stage: Path, dest: Path, wheelhouse: Path, package: Path, verify: bool) -> Path:
    """Stage and write ``supervisor-batch.pyz``; returns the staged tree."""
    tree = stage / "pyz"
    tree.mkdir()
    for wheel in fetch_wheels(read_pins(PYZ_REQUIREMENTS), PYZ_TARGET, wheelhouse):
        unpack_wheel(wheel, tree)
    prune_boto_data(tree)
    copy_package(tree, package)
    removed = strip_compiled(tree)
    log(f"pyz: {len(removed)} compiled file(s) removed: {', '.join(removed) or 'none'}")
    if verify:
        _check(_PYZ_CHECK, str(tree))
    check_pure(tree)
    entries = tree_entries(tree)
    build_id = payload_id(entries)
    main = PYZ_MAIN.read_text(encoding="utf-8")
    if main.count('"@BUILD_ID@"') != 1:
        raise BuildError(f"{PYZ_MAIN.name} has no BUILD_ID placeholder")
    main = main.replace('"@BUILD_ID@"', f'"{build_id}"')
    write_zip(dest, entries, extra={"__main__.py": main.encode("utf-8")}, head=SHEBANG,
              mode=0o755)
    if verify:
        _check_pyz_runs(dest)
    return tree


def _check_pyz_runs(pyz: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pyz-check-") as tmp:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SUPERVISOR_CACHE_DIR": tmp}
        proc = subprocess.run([sys.executable, "-I", "-S", str(pyz), "--version"], env=env,
                              cwd=tmp, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not proc.stdout.startswith("supervisor-batch "):
            raise BuildError(f"{pyz.name} --version failed:\n"
                             + _tail(proc.stderr + proc.stdout))


def build_layer(stage: Path, dest: Path, wheelhouse: Path, package: Path,
                runtime_from: Path, with_boto3: bool, verify: bool) -> list[str]:
    """Stage and write ``supervisor-layer.zip``; returns the powertools modules kept."""
    tree = stage / "layer"
    site = tree / "python"
    site.mkdir(parents=True)
    pins = read_pins(LAYER_REQUIREMENTS)
    if with_boto3:
        pins += read_pins(LAYER_BOTO3_REQUIREMENTS)
    for wheel in fetch_wheels(pins, LAYER_TARGET, wheelhouse):
        unpack_wheel(wheel, site)
    copy_package(site, package)
    removed = strip_compiled(site)
    log(f"layer: {len(removed)} compiled file(s) removed: {', '.join(removed) or 'none'}")
    available = {p.name[:-3] if p.name.endswith(".py") else p.name for p in site.iterdir()}
    available |= set(RUNTIME_PROVIDED)
    kept: list[str] = []
    for pruned in PRUNED_PACKAGES:
        roots = supervisor_imports(pruned, package)
        modules = prune_modules(site, pruned, roots, available)
        kept += modules
        log(f"layer: {pruned}: kept the {len(modules)} module(s) that the supervisor's "
            f"{len(roots)} import(s) of it need")
    if verify:
        # The runtime's boto3, simulated by the pyz's copy (it comes after the layer).
        runtime = stage / "runtime"
        runtime.mkdir()
        for name in RUNTIME_PROVIDED:
            for src in (runtime_from / name, runtime_from / f"{name}.py"):
                if src.exists():
                    (runtime / src.name).symlink_to(src)
        _check(_LAYER_CHECK, str(site), str(runtime), json.dumps(kept))
    check_pure(site)
    write_zip(dest, tree_entries(site, "python/"))
    return kept


def build_udocker_layer(stage: Path, dest: Path, wheelhouse: Path, engines: Engines,
                        verify: bool) -> None:
    """Stage and write ``udocker-layer.zip``: ``python/udocker``, ``udocker/`` engines."""
    tree = stage / "udocker-layer"
    site = tree / "python"
    site.mkdir(parents=True)
    pins = read_pins(UDOCKER_REQUIREMENTS)
    for wheel in fetch_wheels(pins, LAYER_TARGET, wheelhouse):
        unpack_wheel(wheel, site)
    check_pure(site)
    modes = stage_engines(engines, tree / ENGINE_DIR, stage / "udocker-tools")
    if verify:
        version = next(p.version for p in pins if p.key == "udocker")
        _check(_UDOCKER_CHECK, str(site), version)
        check_engines(engines, tree / ENGINE_DIR)
    for f in engines.files:
        if f.runpath:
            log(f"udocker layer: {f.name}: RUNPATH {f.runpath} (the libraries beside it)")
    for line in lambda_glibc_shortfalls(engines):
        log(f"udocker layer: warning: needing a newer glibc than Lambda's {line}")
    if lambda_glibc_shortfalls(engines):
        log("udocker layer: warning: these engines are for this machine; for Lambda, build "
            "with --udocker-tarball (udockertools' statically linked engines)")
    fakechroot = read_elf(next(f.data for f in engines.files if f.name == FAKECHROOT),
                          FAKECHROOT)
    log(f"udocker layer: engines from {engines.source}; {FAKECHROOT} needs a container "
        f"image with glibc >= {glibc_text(fakechroot.glibc)}")
    write_zip(dest, tree_entries(tree),
              modes={f"{ENGINE_DIR}/{name}": mode for name, mode in modes.items()})


def input_hash(options: Options, engines: Optional[Engines] = None) -> str:
    """What the artefacts are made of: the files read by the build, and its options."""
    digest = hashlib.sha256()
    named = [(p.relative_to(ROOT).as_posix(), p)
             for p in sorted(LAYERS.glob("*.txt")) + sorted(LAYERS.glob("*.py"))]
    named += [("supervisor/" + p.relative_to(options.package).as_posix(), p)
              for p in package_files(options.package)]
    for name, path in named:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps(options.describe(), sort_keys=True).encode())
    digest.update(zlib.ZLIB_RUNTIME_VERSION.encode())  # deflate's bytes depend on it
    digest.update(engine_hash(engines or engines_for(options)).encode())
    return digest.hexdigest()


def up_to_date(options: Options, inputs: str) -> Optional[dict[str, Artefact]]:
    """The recorded artefacts, when the stamp matches ``inputs`` and they are intact."""
    stamp = options.out / STAMP_NAME
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("inputs") != inputs:
        return None
    found: dict[str, Artefact] = {}
    for name in ARTEFACT_NAMES:
        info = recorded.get("outputs", {}).get(name)
        path = options.out / name
        if not isinstance(info, dict) or not path.is_file() \
                or sha256_file(path) != info.get("sha256"):
            return None
        found[name] = Artefact(path=path, sha256=str(info["sha256"]), size=int(info["size"]),
                               unzipped=int(info["unzipped"]))
    return found


def build(options: Options) -> dict[str, Artefact]:
    """Build the artefacts into ``options.out`` unless they are up to date."""
    engines = engines_for(options)
    inputs = input_hash(options, engines)
    if not options.force:
        found = up_to_date(options, inputs)
        if found is not None:
            log(f"up to date (inputs {inputs[:12]}): nothing to build; --force rebuilds")
            report(found)
            return found
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / STAMP_NAME).unlink(missing_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="supervisor-build-") as tmp:
        stage = Path(tmp)
        pyz_tree = build_pyz(stage, options.out / PYZ_NAME, options.wheelhouse,
                             options.package, options.verify)
        build_layer(stage, options.out / LAYER_NAME, options.wheelhouse, options.package,
                    pyz_tree, options.with_boto3, options.verify)
        build_udocker_layer(stage, options.out / UDOCKER_LAYER_NAME, options.wheelhouse,
                            engines, options.verify)
    found = {name: describe(options.out / name) for name in ARTEFACT_NAMES}
    try:
        for name in LAYER_NAMES:
            check_layer_size(found[name].size, found[name].unzipped, name=name)
        check_layers_total(sum(found[name].unzipped for name in LAYER_NAMES))
    except BuildError:
        report(found)
        raise
    record = {"inputs": inputs, "options": options.describe(),
              "outputs": {name: {"sha256": a.sha256, "size": a.size, "unzipped": a.unzipped}
                          for name, a in found.items()}}
    (options.out / STAMP_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    log(f"built in {time.monotonic() - started:.1f} s")
    report(found)
    return found


def report(found: Mapping[str, Artefact]) -> None:
    for name in LAYER_NAMES:
        layer = found[name]
        sizes = (f"{mb(layer.size)} zipped (limit {mb(MAX_LAYER_ZIP)}), "
                 f"{mb(layer.unzipped)} unzipped (limit {mb(MAX_LAYER_UNZIPPED)})")
        print(f"{layer.path}: {sizes}; sha256 {layer.sha256}")
    total = sum(found[name].unzipped for name in LAYER_NAMES)
    print(f"{' + '.join(LAYER_NAMES)}: {mb(total)} unzipped "
          f"(limit {mb(MAX_LAYER_UNZIPPED)} for a function and all its layers)")
    pyz = found[PYZ_NAME]
    print(f"{pyz.path}: {mb(pyz.size)}; sha256 {pyz.sha256}")
    sys.stdout.flush()


def parse_args(argv: Optional[Sequence[str]] = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="layers/build.py", description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="where the artefacts go (default: dist/)")
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "dist" / ".wheels",
                        help="where the pinned wheels are kept between builds "
                             "(default: dist/.wheels)")
    parser.add_argument("--package", type=Path, default=PACKAGE,
                        help="the supervisor package to ship (default: supervisor/ here; "
                             "tests pass a snapshot)")
    parser.add_argument("--with-boto3", action="store_true",
                        help="bundle boto3/botocore in the layer (layers/lambda-layer-boto3.txt)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip importing the staged trees and running the engines")
    parser.add_argument("--udocker-tarball", type=Path, metavar="PATH",
                        help="take udocker-layer.zip's patchelf, proot and libfakechroot "
                             "from this udockertools tarball (udocker-englib-1.2.11.tar.gz) "
                             "instead of this machine's Debian packages: for Lambda")
    parser.add_argument("--udocker-fakechroot", metavar="DISTRO-VERSION",
                        help="with --udocker-tarball: its libfakechroot for this guest "
                             "distribution (e.g. Fedora-36, CentOS-7; default: the newest "
                             "Fedora one)")
    args = parser.parse_args(argv)
    package = args.package.resolve()
    if not (package / "__init__.py").is_file() or package.name != "supervisor":
        parser.error(f"--package {args.package}: not a directory 'supervisor' with __init__.py")
    tarball = args.udocker_tarball.resolve() if args.udocker_tarball else None
    if tarball is not None and not tarball.is_file():
        parser.error(f"--udocker-tarball {args.udocker_tarball}: no such file")
    if args.udocker_fakechroot and tarball is None:
        parser.error("--udocker-fakechroot needs --udocker-tarball")
    return Options(out=args.out.resolve(), wheelhouse=args.wheelhouse.resolve(),
                   package=package, with_boto3=args.with_boto3, force=args.force,
                   verify=args.verify, udocker_tarball=tarball,
                   udocker_fakechroot=args.udocker_fakechroot)


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    try:
        build(options)
    except BuildError as exc:
        sys.stderr.write(f"layers/build.py: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
