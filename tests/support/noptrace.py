"""Run a command where ``ptrace`` fails with EPERM, as it does on AWS Lambda.

``python tests/support/noptrace.py CMD [ARGS...]`` installs a seccomp filter
that allows every system call except ``ptrace`` (which returns ``EPERM``),
then execs ``CMD``; the filter stays on across ``exec`` and ``fork``, so CMD
and all its children run under it. libseccomp also sets ``no_new_privs``
(setuid bits stop working). The filter is for the native architecture only:
a system call from another ABI (a 32-bit binary) kills the process.

From a test: ``subprocess.run(noptrace_argv(["proot", "-r", "/", "/bin/true"]))``
or ``[*NOPTRACE_ARGV, ...]``. Stdlib only (ctypes over Debian's
``libseccomp2``), so it runs under any Python 3.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["LIBSECCOMP", "NOPTRACE_ARGV", "deny_ptrace", "noptrace_argv"]

LIBSECCOMP = "libseccomp.so.2"
"""Debian's ``libseccomp2`` (``/usr/lib/<triplet>/libseccomp.so.2``)."""
NOPTRACE_ARGV: tuple[str, ...] = (sys.executable, str(Path(__file__).resolve()))
"""The argv prefix that runs a command under :func:`deny_ptrace`."""

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000


def _act_errno(code: int) -> int:
    return _SCMP_ACT_ERRNO | (code & 0x0000FFFF)


def noptrace_argv(command: Sequence[str]) -> list[str]:
    """``command`` prefixed so that it runs with ``ptrace`` denied."""
    return [*NOPTRACE_ARGV, *command]


def deny_ptrace(library: str = LIBSECCOMP) -> None:
    """Install, in this process, a filter that fails ``ptrace`` with EPERM.

    Irreversible for this process and everything it starts. Raises
    ``OSError`` when libseccomp is missing or refuses.
    """
    try:
        lib = ctypes.CDLL(library, use_errno=True)
    except OSError as exc:
        raise OSError(errno.ENOENT, f"{library} not found: install Debian's libseccomp2 "
                                    f"(apt-get install libseccomp2): {exc}") from exc
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_rule_add.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None

    number = lib.seccomp_syscall_resolve_name(b"ptrace")
    if number < 0:
        raise OSError(errno.ENOSYS, "libseccomp does not know the ptrace system call")
    ctx: Optional[int] = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        result = lib.seccomp_rule_add(ctx, _act_errno(errno.EPERM), number, 0)
        if result < 0:
            raise OSError(-result, f"seccomp_rule_add(ptrace): {os.strerror(-result)}")
        result = lib.seccomp_load(ctx)
        if result < 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(ctx)


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(f"usage: {Path(__file__).name} CMD [ARGS...]\n"
                         "runs CMD with the ptrace system call failing with EPERM\n")
        return 2
    try:
        deny_ptrace()
    except OSError as exc:
        sys.stderr.write(f"noptrace: {exc}\n")
        return 125
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        sys.stderr.write(f"noptrace: cannot run {argv[0]}: {exc}\n")
        return 127 if exc.errno == errno.ENOENT else 126


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
