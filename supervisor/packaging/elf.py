"""What the loader needs of an engine file: machine, libraries, RUNPATH and glibc versions.

The program interpreter is read by :func:`supervisor.container.probe.elf_interpreter`,
the project's one ``PT_INTERP`` reader; the rest comes from the section headers.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Optional

from ..container.probe import elf_interpreter
from ..errors import BuildError

__all__ = ["Elf", "read_elf", "glibc_text"]

_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
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
        """Whether it needs a loader or shared libraries."""
        return self.interpreter is not None or bool(self.needed)


def read_elf(data: bytes, what: str) -> Elf:
    """``data``'s machine, loader, libraries and glibc need, read from its section headers."""
    if data[:4] != b"\x7fELF":
        raise BuildError(f"{what}: not an ELF file")
    if data[4:6] != b"\x02\x01":
        raise BuildError(f"{what}: not a 64-bit little-endian ELF file")
    try:
        (_type, machine, _version, _entry, _phoff, shoff, _flags, _ehsize, _phentsize,
         _phnum, shentsize, shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        interpreter = elf_interpreter(data)
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
    """``2.34``, or ``none``."""
    return "none" if version is None else ".".join(map(str, version))
