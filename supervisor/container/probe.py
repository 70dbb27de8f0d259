"""What the sandbox allows and what an image holds: the facts the execution mode rests on."""
from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from typing import Optional, Union

__all__ = ["ptrace_allowed", "elf_kind", "elf_interpreter", "is_static_elf",
           "resolve_in_root", "ElfSource"]

_PTRACE_TRACEME = 0
_PT_INTERP = 3
ElfSource = Union[bytes, str, "os.PathLike[str]"]
"""An ELF file's bytes, or its path."""


@functools.lru_cache(maxsize=1)
def ptrace_allowed() -> bool:
    """Whether this process may use ``ptrace`` (PRoot needs it; AWS Lambda forbids it).

    A forked child asks ``PTRACE_TRACEME`` and exits with the answer: no
    Python runs in the child, so forking a threaded process is safe here.
    Answered once per process.
    """
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ptrace = libc.ptrace
    ptrace.restype = ctypes.c_long
    ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if ptrace(_PTRACE_TRACEME, 0, None, None) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def resolve_in_root(root: Path, path: str, *, hops: int = 40) -> Optional[Path]:
    """Where ``path`` of a container's file system is on the host, following its symlinks
    inside ``root`` (an absolute link target is relative to ``root``); None if missing."""
    parts = [p for p in path.split("/") if p]
    current = root
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops -= 1
            if hops < 0:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not candidate.exists():
            return None
        current = candidate
    return current


def _elf_bytes(source: ElfSource) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    with open(source, "rb") as handle:
        return handle.read()


def elf_interpreter(source: ElfSource) -> Optional[str]:
    """The program interpreter (``PT_INTERP``) of an ELF file, or None.

    ``source`` is the file's bytes or its path. None for a statically linked
    executable and for anything that is not ELF (a script, an empty file).
    """
    data = _elf_bytes(source)
    if data[:4] != b"\x7fELF" or len(data) < 52:
        return None
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        if len(data) < 64:
            return None
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + (56 if is64 else 32) > len(data):
            break
        p_type, = struct.unpack_from(endian + "I", data, offset)
        if p_type != _PT_INTERP:
            continue
        if is64:
            p_offset, = struct.unpack_from(endian + "Q", data, offset + 8)
            p_filesz, = struct.unpack_from(endian + "Q", data, offset + 32)
        else:
            p_offset, = struct.unpack_from(endian + "I", data, offset + 4)
            p_filesz, = struct.unpack_from(endian + "I", data, offset + 16)
        raw = data[p_offset:p_offset + p_filesz]
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") or None
    return None


def is_static_elf(source: ElfSource) -> bool:
    """True when ``source`` (bytes or a path) is an ELF file without a program interpreter.

    A statically linked binary runs without the image's loader and libc, so an
    execution mode that confines a program through them does not confine it.
    False for dynamically linked ELF files and for non-ELF files.
    """
    data = _elf_bytes(source)
    return data[:4] == b"\x7fELF" and elf_interpreter(data) is None


def elf_kind(source: ElfSource) -> str:
    """``dynamic`` (has an ELF interpreter), ``static`` (ELF without one), or ``other``;
    ``other`` too for a file that cannot be read."""
    try:
        data = _elf_bytes(source)
    except OSError:
        return "other"
    if data[:4] != b"\x7fELF" or len(data) < 64:  # not ELF, or not even a whole header
        return "other"
    return "dynamic" if elf_interpreter(data) is not None else "static"
