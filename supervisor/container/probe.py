"""What the sandbox allows and what an image holds: the facts the execution mode rests on."""
from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from typing import Optional

__all__ = ["ptrace_allowed", "elf_kind", "resolve_in_root"]

_PTRACE_TRACEME = 0
_PT_INTERP = 3


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


def elf_kind(path: Path) -> str:
    """``dynamic`` (has an ELF interpreter), ``static`` (ELF without one), or ``other``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return "other"
            is64, little = head[4] == 2, head[5] == 1
            end = "<" if little else ">"
            if is64:
                phoff, = struct.unpack_from(end + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(end + "I", head, 28)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return "other"
    for index in range(phnum):
        kind, = struct.unpack_from(end + "I", table, index * phentsize)
        if kind == _PT_INTERP:
            return "dynamic"
    return "static"
